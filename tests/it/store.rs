//! The store itself, on both backends: claims never overlap, a batch of results is atomic and keeps
//! each number on its own attempt, claims take new numbers before due retries, dispositions are
//! recorded and counted, older numbers tables get their new columns, and a store opens on a
//! current-thread runtime. (Through the app's store, so that the schema is the one the app made.)

use crate::common;

use chrono::{Duration, Utc};
use common::{on_both_backends, Backend, TestApp};
use discador::config::Secret;
use discador::domain::{
    CallDisposition, CallResult, CampaignName, Disposition, NumberState, PhoneNumber, TableName,
};
use discador::store::{
    CallRecord, ClaimedNumber, DispositionCounts, NewCampaign, NewNumber, NumberUpdate, Store,
};

/// A campaign `nombre` created through the API with `phones` loaded as CSV: its store and its row.
async fn loaded<I: IntoIterator<Item = String>>(
    t: &TestApp,
    nombre: &str,
    phones: I,
) -> (Store, discador::store::Campaign) {
    t.create(nombre).await;
    t.load_numbers(nombre, &phones.into_iter().collect::<Vec<_>>())
        .await;
    let store = t.app.store.clone();
    let name = CampaignName::parse(nombre).unwrap();
    let c = store.campaign(&name).await.unwrap().unwrap();
    (store, c)
}

on_both_backends!(
    store_claims_never_overlap_and_apply_is_atomic,
    worker_threads = 4
);
async fn store_claims_never_overlap_and_apply_is_atomic(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (store, c) = loaded(&t, "CLAIM", (0..300).map(|i| format!("555{i:04}"))).await;
    let name = c.nombre.clone();
    let now = Utc::now();

    // Four concurrent claimers: each row exactly once.
    let claims = futures::future::join_all((0..4).map(|_| {
        let (store, c) = (store.clone(), c.clone());
        async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(&c, now, 25).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }
    }))
    .await;
    let mut ids: Vec<i64> = claims.iter().flatten().map(|n| n.id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (300, 300));
    let uuids: std::collections::HashSet<String> = claims.iter().flatten().map(uuid_of).collect();
    assert_eq!(uuids.len(), 300, "a fresh uuid per claimed row");
    assert_eq!(store.in_flight(&c).await.unwrap().len(), 300);

    // Unclaim gives numbers back without counting an attempt.
    store.unclaim(&c, &ids[..100]).await.unwrap();
    let s = store.stats(&c).await.unwrap();
    assert_eq!((s.pendientes, s.marcando), (100, 200));

    // A retry due later is not claimed now.
    let first = claims
        .iter()
        .flatten()
        .find(|n| n.id == ids[150])
        .unwrap()
        .clone();
    let later = now + Duration::seconds(300);
    let record = |estado, resultado, proximo| CallRecord {
        campana: name.clone(),
        tabla: TableName::parse("CLAIM").unwrap(),
        numero_id: first.id,
        telefono: first.telefono.clone(),
        intento: 1,
        uuid: uuid_of(&first),
        nodo: "fs1".into(),
        estado,
        resultado,
        causa: Some("USER_BUSY".into()),
        amd_resultado: None,
        amd_causa: None,
        amd_inicial: None,
        proximo_intento: proximo,
        inicio: now,
        contestada: None,
        fin: now + Duration::seconds(20),
        billsec: 0,
        duracion: 20,
        disposicion: None,
    };
    store
        .apply(&[
            NumberUpdate::Answered {
                tabla: TableName::parse("CLAIM").unwrap(),
                id: ids[200],
            },
            NumberUpdate::Finished(record(
                NumberState::Pendiente,
                CallResult::Ocupado,
                Some(later),
            )),
        ])
        .await
        .unwrap();
    let s = store.stats(&c).await.unwrap();
    assert_eq!((s.pendientes, s.marcando, s.contestados), (101, 198, 1));
    let due_now = store.claim_due(&c, now, 1000).await.unwrap();
    assert_eq!(due_now.len(), 100, "the retry is not due yet");
    let due_later = store.claim_due(&c, later, 1000).await.unwrap();
    assert_eq!((due_later.len(), due_later[0].intentos), (1, 1));
    assert_eq!(t.db.sql("SELECT COUNT(*) FROM llamadas"), "1");

    // One bad update (unknown table) rolls the whole batch back.
    let mut bad = record(NumberState::Completado, CallResult::Humano, None);
    bad.tabla = TableName::parse("NOEXISTE").unwrap();
    let err = store
        .apply(&[
            NumberUpdate::Finished(record(NumberState::Completado, CallResult::Humano, None)),
            NumberUpdate::Finished(bad),
        ])
        .await;
    assert!(err.is_err());
    assert_eq!(
        t.db.sql("SELECT COUNT(*) FROM llamadas"),
        "1",
        "nothing of the failed batch was written"
    );

    // DNC.
    let p = |s: &str| PhoneNumber::parse(s).unwrap();
    assert_eq!(
        store
            .add_dnc(&[p("5550001"), p("5550002"), p("5550001")])
            .await
            .unwrap(),
        2
    );
    let hit = store.dnc_contains(&["5550001", "5559999"]).await.unwrap();
    assert_eq!(
        hit.into_iter().collect::<Vec<_>>(),
        vec!["5550001".to_owned()]
    );
    t.shutdown().await;
}
on_both_backends!(
    batched_results_keep_each_number_on_its_own_attempt,
    worker_threads = 2
);
async fn batched_results_keep_each_number_on_its_own_attempt(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (store, c) = loaded(&t, "LOTE", (1..=4).map(|i| format!("555100{i}"))).await;
    let name = c.nombre.clone();
    let tabla = TableName::parse("LOTE").unwrap();
    let now = Utc::now();
    let claimed = store.claim_due(&c, now, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let record = |n: &discador::store::ClaimedNumber, uuid: &str, estado, resultado| CallRecord {
        campana: name.clone(),
        tabla: tabla.clone(),
        numero_id: n.id,
        telefono: n.telefono.clone(),
        intento: 1,
        uuid: uuid.to_owned(),
        nodo: "fs1".into(),
        estado,
        resultado,
        causa: Some("NORMAL_CLEARING".into()),
        amd_resultado: None,
        amd_causa: None,
        amd_inicial: None,
        proximo_intento: None,
        inicio: now,
        contestada: Some(now),
        fin: now,
        billsec: 5,
        duracion: 7,
        disposicion: None,
    };
    let (a, b, d, e) = (&claimed[0], &claimed[1], &claimed[2], &claimed[3]);
    let batch = vec![
        // Answered then finished in the same batch: the final state wins.
        NumberUpdate::Answered {
            tabla: tabla.clone(),
            id: a.id,
        },
        NumberUpdate::Finished(record(
            a,
            &uuid_of(a),
            NumberState::Completado,
            CallResult::Humano,
        )),
        // A record of an older attempt (another UUID) must not touch the row...
        NumberUpdate::Finished(record(
            b,
            "00000000-0000-0000-0000-000000000000",
            NumberState::Error,
            CallResult::Ocupado,
        )),
        // ...two records of one number in a batch: the last one wins.
        NumberUpdate::Finished(record(
            d,
            &uuid_of(d),
            NumberState::Error,
            CallResult::Ocupado,
        )),
        NumberUpdate::Finished(record(
            d,
            &uuid_of(d),
            NumberState::Completado,
            CallResult::Maquina,
        )),
        // Only answered.
        NumberUpdate::Answered {
            tabla: tabla.clone(),
            id: e.id,
        },
    ];
    store.apply(&batch).await.unwrap();
    let row = |id: i64| {
        t.db.sql(&format!(
            "SELECT estado, resultado, duracion FROM LOTE WHERE id = {id}"
        ))
    };
    assert_eq!(row(a.id), "COMPLETADO\tHUMANO\t7");
    assert_eq!(
        row(b.id),
        "MARCANDO\tNULL\t0",
        "an older attempt's record is not applied"
    );
    assert_eq!(row(d.id), "COMPLETADO\tMAQUINA\t7");
    assert_eq!(row(e.id), "CONTESTADO\tNULL\t0");
    // Every attempt keeps one CDR row, applied to its number or not; of two records of one attempt,
    // the last, like the number's row.
    assert_eq!(t.db.sql("SELECT COUNT(*) FROM llamadas"), "3");
    assert_eq!(
        t.db.sql(&format!(
            "SELECT resultado FROM llamadas WHERE numero_id = {}",
            d.id
        )),
        "MAQUINA"
    );
    // The same batch again (as after a COMMIT whose acknowledgement was lost) changes nothing.
    let before = t.db.sql("SELECT * FROM llamadas ORDER BY id");
    store.apply(&batch).await.unwrap();
    assert_eq!(t.db.sql("SELECT * FROM llamadas ORDER BY id"), before);
    assert_eq!(row(d.id), "COMPLETADO\tMAQUINA\t7");
    t.shutdown().await;
}
on_both_backends!(store_connects_on_a_current_thread_runtime);
/// The store works on the default (current-thread) test runtime too, as other modules' tests use it.
async fn store_connects_on_a_current_thread_runtime(backend: Backend) {
    let db = common::TestDb::new(backend);
    let store = discador::store::Store::connect(&discador::config::Secret::new(db.url()))
        .await
        .expect("connect");
    store.ping().await.expect("ping");
    // Idempotent: a second connect finds the migrations applied.
    discador::store::Store::connect(&discador::config::Secret::new(db.url()))
        .await
        .expect("reconnect");
    assert!(store.campaigns().await.expect("list").is_empty());
}

// MySQL only: the outage is a cut TCP proxy (`DbProxy`) in front of MariaDB.
on_both_backends!(
    claims_take_new_numbers_first_then_due_retries,
    worker_threads = 2
);
/// A claim takes numbers never tried (by id), then retries that are due (oldest first), and never
/// a retry that is due later.
async fn claims_take_new_numbers_first_then_due_retries(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (store, c) = loaded(&t, "ORDEN", (1..=6).map(|i| format!("555200{i}"))).await;
    let name = c.nombre.clone();
    let now = Utc::now();
    let first = store.claim_due(&c, now, 3).await.unwrap();
    let ids: Vec<i64> = first.iter().map(|n| n.id).collect();
    // Three busy lines: due 10 s ago, due 20 s ago, due in 5 minutes.
    let retry = |i: usize, proximo| {
        NumberUpdate::Finished(CallRecord {
            campana: name.clone(),
            tabla: c.tabla.clone(),
            numero_id: first[i].id,
            telefono: first[i].telefono.clone(),
            intento: 1,
            uuid: uuid_of(&first[i]),
            nodo: "fs1".into(),
            estado: NumberState::Pendiente,
            resultado: CallResult::Ocupado,
            causa: Some("USER_BUSY".into()),
            amd_resultado: None,
            amd_causa: None,
            amd_inicial: None,
            proximo_intento: Some(proximo),
            inicio: now,
            contestada: None,
            fin: now,
            billsec: 0,
            duracion: 0,
            disposicion: None,
        })
    };
    store
        .apply(&[
            retry(0, now - Duration::seconds(10)),
            retry(1, now - Duration::seconds(20)),
            retry(2, now + Duration::seconds(300)),
        ])
        .await
        .unwrap();
    let next: Vec<i64> = store
        .claim_due(&c, Utc::now(), 10)
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    let mut fresh: Vec<i64> = next
        .iter()
        .copied()
        .filter(|id| !ids.contains(id))
        .collect();
    fresh.sort();
    assert_eq!(next.len(), 5, "3 never tried + 2 due retries: {next:?}");
    assert_eq!(next[..3], fresh[..], "never-tried numbers first, by id");
    assert_eq!(
        next[3..],
        [ids[1], ids[0]],
        "then due retries, oldest due first"
    );
    t.shutdown().await;
}
/// The UUID a claim gave a number, as text.
fn uuid_of(n: &discador::store::ClaimedNumber) -> String {
    n.uuid
        .expect("a claim gives every number a UUID")
        .hyphenated()
        .to_string()
}

/// The final record of a claimed number's attempt, answered, with `disposicion`.
fn answered(
    c: &discador::store::Campaign,
    n: &ClaimedNumber,
    resultado: CallResult,
    disposicion: Option<CallDisposition>,
) -> NumberUpdate {
    let now = Utc::now();
    NumberUpdate::Finished(CallRecord {
        campana: c.nombre.clone(),
        tabla: c.tabla.clone(),
        numero_id: n.id,
        telefono: n.telefono.clone(),
        intento: 1,
        uuid: uuid_of(n),
        nodo: "fs1".into(),
        estado: NumberState::Completado,
        resultado,
        causa: Some("NORMAL_CLEARING".into()),
        amd_resultado: None,
        amd_causa: None,
        amd_inicial: None,
        proximo_intento: None,
        inicio: now,
        contestada: Some(now),
        fin: now,
        billsec: 30,
        duracion: 35,
        disposicion,
    })
}

on_both_backends!(dispositions_are_recorded_and_counted, worker_threads = 2);
/// A call's disposition lands in its CDR (all seven columns) and on its number; estado's counts
/// read them back.
async fn dispositions_are_recorded_and_counted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("OTRA").await;
    let (store, c) = loaded(&t, "DISPO", (1..=6).map(|i| format!("555300{i}"))).await;
    let name = c.nombre.clone();
    let n = store.claim_due(&c, Utc::now(), 10).await.unwrap();
    assert_eq!(n.len(), 6);

    let transferida = CallDisposition {
        disposicion: Disposition::Transferida,
        mensaje_ms: Some(12_345),
        teclas: "1*".into(),
        accion: Some("transferir"),
        transferida_a: Some("sofia/gateway/gw_pstn/agente1".into()),
        agente_contesto: Some(true),
        tras_beep_ms: Some(850),
    };
    let abandonada = CallDisposition {
        agente_contesto: Some(false),
        ..CallDisposition::new(Disposition::Abandonada)
    };
    // More keys than the column holds: cut, never a refused batch.
    let baja = CallDisposition {
        teclas: "9".repeat(40),
        accion: Some("no_llamar"),
        ..CallDisposition::new(Disposition::Baja)
    };
    let dejado = CallDisposition {
        tras_beep_ms: Some(420),
        mensaje_ms: Some(20_000),
        ..CallDisposition::new(Disposition::MensajeDejado)
    };
    store
        .apply(&[
            answered(&c, &n[0], CallResult::Humano, Some(transferida)),
            answered(&c, &n[1], CallResult::Humano, Some(abandonada)),
            answered(&c, &n[2], CallResult::Humano, Some(baja)),
            answered(&c, &n[3], CallResult::Maquina, Some(dejado)),
            answered(
                &c,
                &n[4],
                CallResult::Humano,
                Some(CallDisposition::new(Disposition::Escucho)),
            ),
            answered(&c, &n[5], CallResult::Ocupado, None),
        ])
        .await
        .unwrap();

    let cdr = |id: i64| {
        t.db.sql(&format!(
            "SELECT disposicion, mensaje_ms, teclas, accion, transferida_a, agente_contesto, \
             tras_beep_ms FROM llamadas WHERE numero_id = {id}"
        ))
    };
    assert_eq!(
        cdr(n[0].id),
        "TRANSFERIDA\t12345\t1*\ttransferir\tsofia/gateway/gw_pstn/agente1\t1\t850"
    );
    assert_eq!(cdr(n[1].id), "ABANDONADA\tNULL\tNULL\tNULL\tNULL\t0\tNULL");
    assert_eq!(
        cdr(n[2].id),
        format!(
            "BAJA\tNULL\t{}\tno_llamar\tNULL\tNULL\tNULL",
            "9".repeat(32)
        )
    );
    assert_eq!(
        cdr(n[3].id),
        "MENSAJE_DEJADO\t20000\tNULL\tNULL\tNULL\tNULL\t420"
    );
    assert_eq!(cdr(n[5].id), "NULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL");
    let number = |id: i64| {
        t.db.sql(&format!(
            "SELECT estado, disposicion FROM DISPO WHERE id = {id}"
        ))
    };
    assert_eq!(number(n[0].id), "COMPLETADO\tTRANSFERIDA");
    assert_eq!(number(n[3].id), "COMPLETADO\tMENSAJE_DEJADO");
    assert_eq!(number(n[5].id), "COMPLETADO\tNULL");

    let counts = store.disposition_counts(&name).await.unwrap();
    assert_eq!(
        counts,
        DispositionCounts {
            escucharon: 1,
            transferidos: 1,
            abandonados: 1,
            bajas: 1,
            mensajes_dejados: 1,
            atendidas_por_persona: 4,
        }
    );
    assert_eq!(counts.tasa_abandono(), 25.0);
    let otra = CampaignName::parse("OTRA").unwrap();
    assert_eq!(
        store.disposition_counts(&otra).await.unwrap(),
        DispositionCounts::default(),
        "only the campaign's own calls"
    );

    let (s, e) = t.get("/discador/estado/DISPO").await;
    assert_eq!(s, 200, "{e}");
    let st = &e["estadisticas"];
    let got: Vec<_> = [
        "escucharon",
        "transferidos",
        "abandonados",
        "bajas",
        "mensajes_dejados",
    ]
    .iter()
    .map(|k| st[k].as_u64())
    .collect();
    assert_eq!(got, vec![Some(1); 5], "{st}");
    assert_eq!(st["tasa_abandono"].as_f64(), Some(25.0), "{st}");
    let (_, e) = t.get("/discador/estado/OTRA").await;
    assert_eq!(
        (
            e["estadisticas"]["abandonados"].as_u64(),
            e["estadisticas"]["tasa_abandono"].as_f64()
        ),
        (Some(0), Some(0.0)),
        "{e}"
    );
    t.shutdown().await;
}

on_both_backends!(
    older_numbers_tables_get_their_new_columns_when_the_store_opens,
    worker_threads = 2
);
/// A campaign created before `disposicion`, `zona_horaria` and `espera` existed gets them when the
/// store opens; a
/// campaign whose table was dropped by hand does not stop the store from opening.
async fn older_numbers_tables_get_their_new_columns_when_the_store_opens(backend: Backend) {
    let db = common::TestDb::new(backend);
    let url = Secret::new(db.url());
    let store = Store::connect(&url).await.expect("connect");
    let vieja = store
        .create_campaign(&NewCampaign::new(CampaignName::parse("VIEJA").unwrap()))
        .await
        .unwrap();
    store
        .create_campaign(&NewCampaign::new(CampaignName::parse("PERDIDA").unwrap()))
        .await
        .unwrap();
    store
        .insert_numbers(
            &vieja,
            &[NewNumber {
                telefono: PhoneNumber::parse("5554001").unwrap(),
                datos: None,
                zona: None,
            }],
        )
        .await
        .unwrap();
    let has_column = || {
        db.sql(match backend {
            Backend::Mysql => {
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = 'VIEJA' \
                 AND COLUMN_NAME IN ('disposicion', 'zona_horaria', 'espera')"
            }
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM pragma_table_info('VIEJA') \
                 WHERE name IN ('disposicion', 'zona_horaria', 'espera')"
            }
        })
    };
    assert_eq!(has_column(), "3", "a new numbers table has them");
    if backend == Backend::Mysql {
        db.sql("ALTER TABLE VIEJA DROP INDEX idx_zona");
    } else {
        db.sql("DROP INDEX `VIEJA#zona`");
    }
    db.sql("ALTER TABLE VIEJA DROP COLUMN disposicion");
    db.sql("ALTER TABLE VIEJA DROP COLUMN zona_horaria");
    db.sql("ALTER TABLE VIEJA DROP COLUMN espera");
    db.sql("DROP TABLE PERDIDA");
    assert_eq!(has_column(), "0");
    drop(store);

    let store = Store::connect(&url)
        .await
        .expect("opens, even with a campaign's table missing");
    assert_eq!(has_column(), "3", "added back when the store opened");
    assert_eq!(store.campaigns().await.unwrap().len(), 2);
    // And the writer can record a disposition there.
    let n = store.claim_due(&vieja, Utc::now(), 1).await.unwrap();
    store
        .apply(&[answered(
            &vieja,
            &n[0],
            CallResult::Humano,
            Some(CallDisposition::new(Disposition::Escucho)),
        )])
        .await
        .unwrap();
    assert_eq!(db.sql("SELECT disposicion FROM VIEJA"), "ESCUCHO");
    // Opening again changes nothing.
    Store::connect(&url).await.expect("reopen");
    assert_eq!(has_column(), "3");
}

on_both_backends!(
    a_claim_is_marked_sent_only_when_its_originate_goes_out,
    worker_threads = 2
);
/// Recovery tells a number that was only claimed from a call that was sent by `ultimo_intento`:
/// NULL from the claim, set by `NumberUpdate::Sent` for that attempt only.
async fn a_claim_is_marked_sent_only_when_its_originate_goes_out(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (store, c) = loaded(&t, "ENVIO", (1..=3).map(|i| format!("555200{i}"))).await;
    let tabla = TableName::parse("ENVIO").unwrap();
    let now = Utc::now();
    let claimed = store.claim_due(&c, now, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let sent_at = |id: i64| {
        t.db.sql(&format!("SELECT ultimo_intento FROM ENVIO WHERE id = {id}"))
    };
    for n in &claimed {
        assert_eq!(sent_at(n.id), "NULL", "claimed, not sent");
    }
    store
        .apply(&[
            NumberUpdate::Sent {
                tabla: tabla.clone(),
                id: claimed[0].id,
                uuid: uuid_of(&claimed[0]),
                at: now,
            },
            // Another attempt's UUID: not this number's current attempt, left alone.
            NumberUpdate::Sent {
                tabla: tabla.clone(),
                id: claimed[1].id,
                uuid: uuid_of(&claimed[2]),
                at: now,
            },
        ])
        .await
        .unwrap();
    assert_ne!(sent_at(claimed[0].id), "NULL");
    assert_eq!(sent_at(claimed[1].id), "NULL");
    assert_eq!(sent_at(claimed[2].id), "NULL");
    let in_flight = store.in_flight(&c).await.unwrap();
    let sent: Vec<bool> = in_flight
        .iter()
        .map(|n| n.ultimo_intento.is_some())
        .collect();
    assert_eq!(sent, [true, false, false]);
    t.shutdown().await;
}
