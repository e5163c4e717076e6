//! `discador copy`: everything stored moves between backends exactly, and a second run adds nothing.
//! Each test copies FROM the named backend TO the other one.

use crate::common;

use chrono::{Duration, Utc};
use common::{on_both_backends, Backend, TestDb};
use discador::config::Secret;
use discador::copy::{copy, copy_between};
use discador::domain::{
    AudioPath, CallDisposition, CallResult, CampaignName, CampaignState, Disposition, Menu,
    NumberState, PhoneNumber, Voicemail,
};
use discador::store::{CallRecord, NewCampaign, NewNumber, NumberUpdate, Store};

fn other(b: Backend) -> Backend {
    match b {
        Backend::Mysql => Backend::Sqlite,
        Backend::Sqlite => Backend::Mysql,
    }
}

on_both_backends!(
    copies_everything_and_a_rerun_adds_nothing,
    worker_threads = 2
);
async fn copies_everything_and_a_rerun_adds_nothing(from: Backend) {
    let (src_db, dst_db) = (TestDb::new(from), TestDb::new(other(from)));
    let (src_url, dst_url) = (Secret::new(src_db.url()), Secret::new(dst_db.url()));
    let src = Store::connect(&src_url).await.expect("source opens");

    // A campaign in the middle of its life: more numbers than one copy page, some dialed.
    let name = CampaignName::parse("COPIA").unwrap();
    let mut new = NewCampaign::new(name.clone());
    new.reintentos = 3;
    new.guion.mensaje_humano = Some(AudioPath::parse("mensaje_humano", "ivr/hola.wav").unwrap());
    new.guion.mensaje_abandono = Some(AudioPath::parse("mensaje_abandono", "/a/b.wav").unwrap());
    new.guion.menu = Some(
        Menu::parse(
            &serde_json::from_value(serde_json::json!({"opciones": {
                "1": {"accion": "transferir", "destino": "user/1000"},
                "9": {"accion": "no_llamar"}}, "intentos": 3}))
            .unwrap(),
        )
        .unwrap(),
    );
    new.guion.buzon = Voicemail::NoDejar;
    new.guion.espera_agente_s = 7;
    let c = src.create_campaign(&new).await.unwrap();
    let numbers: Vec<NewNumber> = (0..2_500u32)
        .map(|i| NewNumber {
            telefono: PhoneNumber::parse(&format!("+54911{:08}", i)).unwrap(),
            datos: Some(serde_json::json!({ "cliente": format!("c{i}"), "n": i })),
            zona: None,
        })
        .collect();
    src.insert_numbers(&c, &numbers).await.unwrap();
    let c = src
        .transition_campaign_state(&name, &[CampaignState::Creada], CampaignState::Activa, None)
        .await
        .unwrap();
    let now = Utc::now();
    let claimed = src.claim_due(&c, now, 6).await.unwrap();
    let record = |i: usize, estado, resultado, proximo| {
        let n = &claimed[i];
        // The first call carries a disposition with every detail.
        let disposicion = (i == 0).then(|| CallDisposition {
            disposicion: Disposition::Transferida,
            mensaje_ms: Some(4_321),
            teclas: "01".into(),
            accion: Some("transferir"),
            transferida_a: Some("user/1000".into()),
            agente_contesto: Some(true),
            tras_beep_ms: Some(-5),
        });
        NumberUpdate::Finished(CallRecord {
            campana: name.clone(),
            tabla: c.tabla.clone(),
            numero_id: n.id,
            telefono: n.telefono.clone(),
            intento: 1,
            uuid: n.uuid.expect("claimed").hyphenated().to_string(),
            nodo: "fs1".into(),
            estado,
            resultado,
            causa: Some("NORMAL_CLEARING".into()),
            amd_resultado: Some("HUMAN".into()),
            amd_causa: None,
            // The first call's verdict was corrected by a late beep.
            amd_inicial: (i == 0).then(|| "HUMAN".to_owned()),
            proximo_intento: proximo,
            inicio: now,
            contestada: Some(now),
            fin: now + Duration::milliseconds(12_345),
            billsec: 12,
            duracion: 12,
            disposicion,
        })
    };
    src.apply(&[
        record(0, NumberState::Completado, CallResult::Humano, None),
        record(1, NumberState::Error, CallResult::NumeroInvalido, None),
        record(
            2,
            NumberState::Pendiente,
            CallResult::Ocupado,
            Some(now + Duration::seconds(300)),
        ),
        NumberUpdate::Answered {
            tabla: c.tabla.clone(),
            id: claimed[3].id,
        },
    ])
    .await
    .unwrap();
    let dnc: Vec<PhoneNumber> = ["+5491100000001", "+5491100000002", "+5491100000003"]
        .iter()
        .map(|t| PhoneNumber::parse(t).unwrap())
        .collect();
    src.add_dnc(&dnc).await.unwrap();
    // Two attempts the caps per rolling 24 h count.
    let attempts: Vec<(&str, &str, String)> = claimed[..2]
        .iter()
        .map(|n| {
            let uuid = n.uuid.expect("claimed").hyphenated().to_string();
            (n.telefono.as_str(), "COPIA", uuid)
        })
        .collect();
    src.record_attempts(&attempts, now, None).await.unwrap();

    let report = copy(&src_url, &dst_url).await.expect("copy succeeds");
    // The ACTIVA campaign keeps its state once all its numbers are in (it was PAUSADA meanwhile).
    assert_eq!(report.campanas_nuevas, 1);
    assert_eq!(report.numeros.get("COPIA"), Some(&2_500));
    assert_eq!((report.llamadas, report.dnc, report.intentos), (3, 3, 2));
    assert_eq!(
        dst_attempts(&dst_url).await,
        src.attempt_rows(0, 10).await.unwrap(),
        "the attempts exactly"
    );

    let dst = Store::connect(&dst_url).await.expect("destination opens");
    let c_dst = dst.campaign(&name).await.unwrap().expect("campaign copied");
    let c_src = src.campaign(&name).await.unwrap().unwrap();
    assert_eq!(c_dst, c_src, "settings, state and times copied exactly");
    assert_eq!(c_dst.guion, new.guion, "the script too");
    assert_eq!(
        dst.stats(&c_dst).await.unwrap(),
        src.stats(&c_src).await.unwrap()
    );
    assert_eq!(
        dst.number_rows(&c_dst, 0, 10_000).await.unwrap(),
        src.number_rows(&c_src, 0, 10_000).await.unwrap(),
        "every number row identical, ids included"
    );
    let cdrs = src.cdr_rows(0, 100).await.unwrap();
    assert_eq!(dst.cdr_rows(0, 100).await.unwrap(), cdrs);
    let first = cdrs.iter().find(|r| r.numero_id == claimed[0].id).unwrap();
    assert_eq!(
        (
            first.disposicion.as_deref(),
            first.mensaje_ms,
            first.teclas.as_deref(),
            first.accion.as_deref(),
            first.transferida_a.as_deref(),
            first.agente_contesto,
            first.tras_beep_ms,
        ),
        (
            Some("TRANSFERIDA"),
            Some(4_321),
            Some("01"),
            Some("transferir"),
            Some("user/1000"),
            Some(true),
            Some(-5)
        ),
        "the CDR's disposition columns are copied"
    );
    let numbers_dst = dst.number_rows(&c_dst, 0, 10).await.unwrap();
    let copied = numbers_dst.iter().find(|r| r.id == claimed[0].id).unwrap();
    assert_eq!(copied.disposicion.as_deref(), Some("TRANSFERIDA"));
    assert_eq!(
        dst.dnc_rows("", 100).await.unwrap(),
        src.dnc_rows("", 100).await.unwrap()
    );

    // A second run (e.g. after an interruption) writes nothing and breaks nothing.
    let again = copy_between(&src, &dst)
        .await
        .expect("second copy succeeds");
    assert_eq!(again.campanas_nuevas, 0);
    assert_eq!(again.numeros.get("COPIA"), Some(&0));
    assert_eq!((again.llamadas, again.dnc, again.intentos), (0, 0, 0));

    // The destination carries on where the source stopped: the next claim takes new numbers only,
    // and a numbers upload still sees the copied ones as duplicates.
    let next = dst.claim_due(&c_dst, Utc::now(), 5).await.unwrap();
    let taken: Vec<i64> = claimed.iter().map(|n| n.id).collect();
    assert_eq!(next.len(), 5);
    assert!(next.iter().all(|n| !taken.contains(&n.id)), "{next:?}");
    let dup = dst.insert_numbers(&c_dst, &numbers[..10]).await.unwrap();
    assert_eq!((dup.inserted, dup.duplicates), (0, 10));
}

on_both_backends!(
    a_campaign_on_another_table_is_not_overwritten,
    worker_threads = 2
);
async fn a_campaign_on_another_table_is_not_overwritten(from: Backend) {
    let (src_db, dst_db) = (TestDb::new(from), TestDb::new(other(from)));
    let src = Store::connect(&Secret::new(src_db.url())).await.unwrap();
    let dst = Store::connect(&Secret::new(dst_db.url())).await.unwrap();
    let name = CampaignName::parse("MISMA").unwrap();
    src.create_campaign(&NewCampaign::new(name.clone()))
        .await
        .unwrap();
    let mut elsewhere = NewCampaign::new(name.clone());
    elsewhere.tabla = Some(discador::domain::TableName::parse("OTRA").unwrap());
    dst.create_campaign(&elsewhere).await.unwrap();
    let err = copy_between(&src, &dst).await.unwrap_err().to_string();
    assert!(err.contains("MISMA") && err.contains("OTRA"), "{err}");
    assert_eq!(dst.campaigns().await.unwrap().len(), 1);
}

on_both_backends!(a_destination_with_other_rows_is_refused, worker_threads = 2);
/// The destination already has the campaign (same table) with other numbers and calls: the copy
/// stops with an error instead of merging, and the destination keeps exactly what it had.
async fn a_destination_with_other_rows_is_refused(from: Backend) {
    let (src_db, dst_db) = (TestDb::new(from), TestDb::new(other(from)));
    let src = Store::connect(&Secret::new(src_db.url())).await.unwrap();
    let dst = Store::connect(&Secret::new(dst_db.url())).await.unwrap();
    let name = CampaignName::parse("MEZCLA").unwrap();
    let load = |store: Store, prefix: &'static str| {
        let name = name.clone();
        async move {
            let c = store
                .create_campaign(&NewCampaign::new(name))
                .await
                .unwrap();
            let numbers: Vec<NewNumber> = (0..3u32)
                .map(|i| NewNumber {
                    telefono: PhoneNumber::parse(&format!("{prefix}{i:04}")).unwrap(),
                    datos: None,
                    zona: None,
                })
                .collect();
            store.insert_numbers(&c, &numbers).await.unwrap();
            c
        }
    };
    load(src.clone(), "+5491120").await;
    let c_dst = load(dst.clone(), "+5491130").await;
    let before = dst.number_rows(&c_dst, 0, 100).await.unwrap();
    let err = copy_between(&src, &dst).await.unwrap_err().to_string();
    assert!(err.contains("MEZCLA") && err.contains("distintos"), "{err}");
    assert_eq!(dst.number_rows(&c_dst, 0, 100).await.unwrap(), before);
}

on_both_backends!(
    a_missing_source_is_an_error_not_a_new_database,
    worker_threads = 2
);
async fn a_missing_source_is_an_error_not_a_new_database(backend: Backend) {
    let (src_db, dst_db) = (TestDb::new(backend), TestDb::new(other(backend)));
    let err = copy(&Secret::new(src_db.url()), &Secret::new(dst_db.url()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("origen:"), "{err}");
    if let Some(path) = src_db.path() {
        assert!(!path.exists(), "the copy created the source file");
    }
}

/// The recorded attempts of the database at `url`.
async fn dst_attempts(url: &Secret) -> Vec<discador::store::AttemptCopyRow> {
    let store = Store::connect(url).await.expect("opens");
    store.attempt_rows(0, 10).await.unwrap()
}
