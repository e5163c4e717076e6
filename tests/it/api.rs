//! End-to-end tests: the real app on an ephemeral port, a fresh database per test, HTTP. Every test
//! that touches the store runs on both backends (`name::mysql`, `name::sqlite`).

use crate::common;

use chrono::Utc;
use common::{config, on_both_backends, Backend, TestApp};
use discador::domain::CampaignName;
use serde_json::{json, Value};

async fn estadisticas(t: &TestApp, nombre: &str) -> Value {
    let (s, body) = t.get(&format!("/discador/estado/{nombre}")).await;
    assert_eq!(s, 200, "{body}");
    body["estadisticas"].clone()
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(
        body["mensaje"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

on_both_backends!(health_docs_and_openapi, worker_threads = 2);
async fn health_docs_and_openapi(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (s, body) = t.get("/health").await;
    // No FreeSWITCH in these tests: the database is fine, the service says it is degraded and why.
    assert_eq!(
        (s, body["estado"].as_str(), body["base_de_datos"].as_str()),
        (200, Some("degradado"), Some("ok")),
        "{body}"
    );
    let motor = match backend {
        Backend::Mysql => "mysql",
        Backend::Sqlite => "sqlite",
    };
    assert_eq!(body["motor_base_de_datos"], motor, "{body}");
    assert!(
        matches!(
            body["freeswitch"].as_str(),
            Some("conectando" | "desconectado")
        ),
        "{body}"
    );

    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.get(t.url("/docs")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let r = t.http.get(t.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
    let r = t
        .http
        .get(t.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("/openapi.json"));

    let (s, spec) = t.get("/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/campanas/",
        "/campana/{nombre}",
        "/campana/{nombre}/numeros",
        "/discador/iniciar/",
        "/discador/pausar/",
        "/discador/reanudar/",
        "/discador/detener/",
        "/discador/estado/{nombre}",
        "/health",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "missing {path} in the spec"
        );
    }
    t.shutdown().await;
}

on_both_backends!(create_read_update_campaign, worker_threads = 2);
async fn create_read_update_campaign(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (s, body) = t.get("/campanas/").await;
    assert_eq!((s, body), (200, json!([])));

    let full = json!({"nombre": "PRUEBA", "cps": 5, "reintentos": 2, "intervalo_reintento": 300,
        "max_canales": 50, "amd": "mod_amd", "destino_humano": "humano", "destino_maquina": "",
        "caller_id": "+54 11 4000-0000", "gateway": "gw_pstn", "timeout_llamada": 30,
        "hora_inicio": "09:00", "hora_fin": "20:00", "dias": ["lun","mar","mie","jue","vie"],
        "zona_horaria": "America/Argentina/Buenos_Aires"});
    let (s, c) = t.post_json("/campanas/", full.clone()).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["estado"], "CREADA");
    assert_eq!(c["tabla"], "PRUEBA");
    assert_eq!(c["caller_id"], "+541140000000");
    assert_eq!(c["dias"], json!(["lun", "mar", "mie", "jue", "vie"]));
    assert_eq!(c["destino_maquina"], "");

    // Defaults when only the name is given.
    let d = t.create("Minima").await;
    assert_eq!(
        (
            d["cps"].as_f64(),
            d["max_canales"].as_u64(),
            d["reintentos"].as_u64(),
            d["timeout_llamada"].as_u64()
        ),
        (Some(1.0), Some(10), Some(2), Some(30))
    );
    assert_eq!(
        (
            d["hora_inicio"].as_str(),
            d["hora_fin"].as_str(),
            d["zona_horaria"].as_str()
        ),
        (Some("09:00"), Some("21:00"), Some("UTC"))
    );
    assert_eq!(d["amd"], "ninguno");
    assert_eq!(d["amd_incierto"], "humano");

    let (s, e) = t.post_json("/campanas/", full).await;
    assert_error(s, &e, 409, "conflicto");

    let (s, got) = t.get("/campana/PRUEBA").await;
    assert_eq!(s, 200);
    assert_eq!(got, c, "what was returned at creation is what is stored");
    let (s, list) = t.get("/campanas/").await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(2)));

    let (s, p) = t
        .patch_json(
            "/campana/PRUEBA",
            json!({"cps": 0.5, "caller_id": null, "dias": ["sab"]}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (p["cps"].as_f64(), &p["caller_id"], &p["dias"]),
        (Some(0.5), &Value::Null, &json!(["sab"]))
    );
    assert_eq!(p["hora_fin"], "20:00", "untouched fields stay");
    let (_, got) = t.get("/campana/PRUEBA").await;
    assert_eq!(got, p);

    let (s, e) = t.patch_json("/campana/PRUEBA", json!({"cps": 0})).await;
    assert_error(s, &e, 400, "invalido");
    assert!(e["mensaje"].as_str().unwrap().contains("cps"), "{e}");
    let (s, e) = t.patch_json("/campana/NOEXISTE", json!({"cps": 2})).await;
    assert_error(s, &e, 404, "no_encontrado");
    let (s, e) = t.get("/campana/NOEXISTE").await;
    assert_error(s, &e, 404, "no_encontrado");
    t.shutdown().await;
}

on_both_backends!(call_script_settings, worker_threads = 2);
/// The call script: created whole and read back, changed one field at a time, cleared with null;
/// every bad value answers 400 naming its field and changes nothing.
async fn call_script_settings(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let menu = json!({"opciones": {
        "1": {"accion": "transferir", "destino": "sofia/gateway/gw_pstn/agente1"},
        "2": {"accion": "transferir", "destino": "ventas"},
        "9": {"accion": "no_llamar"},
        "0": {"accion": "repetir"}}, "timeout": 7});
    let (s, c) = t
        .post_json(
            "/campanas/",
            json!({"nombre": "GUION", "mensaje_humano": "ivr/bienvenida.wav",
                "mensaje_maquina": "/var/lib/discador/deuda+v2.wav", "mensaje_baja": "ivr/baja.wav",
                "mensaje_abandono": "ivr/abandono.wav", "menu": menu, "buzon": "tras_saludo",
                "espera_agente_s": 5}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let mut shown = menu.clone();
    shown["intentos"] = json!(2); // the default, always shown
    assert_eq!(
        (
            &c["mensaje_humano"],
            &c["mensaje_maquina"],
            &c["mensaje_baja"],
            &c["mensaje_abandono"]
        ),
        (
            &json!("ivr/bienvenida.wav"),
            &json!("/var/lib/discador/deuda+v2.wav"),
            &json!("ivr/baja.wav"),
            &json!("ivr/abandono.wav")
        )
    );
    assert_eq!(c["menu"], shown, "{c}");
    assert_eq!(
        (&c["buzon"], &c["espera_agente_s"]),
        (&json!("tras_saludo"), &json!(5))
    );
    let (s, got) = t.get("/campana/GUION").await;
    assert_eq!(
        (s, &got),
        (200, &c),
        "what was returned at creation is what is stored"
    );

    // No script: the defaults.
    let d = t.create("SIN_GUION").await;
    for f in [
        "mensaje_humano",
        "mensaje_maquina",
        "mensaje_baja",
        "mensaje_abandono",
        "menu",
    ] {
        assert_eq!(d[f], Value::Null, "{f}: {d}");
    }
    assert_eq!(
        (&d["buzon"], &d["espera_agente_s"]),
        (&json!("tras_beep"), &json!(2))
    );

    // One field changes, the others stay.
    let (s, p) = t
        .patch_json("/campana/GUION", json!({"espera_agente_s": 10}))
        .await;
    assert_eq!(s, 200, "{p}");
    let mut want = c.clone();
    want["espera_agente_s"] = json!(10);
    want["actualizada"] = p["actualizada"].clone();
    assert_eq!(p, want);
    let (s, p) = t
        .patch_json(
            "/campana/GUION",
            json!({"buzon": "no_dejar", "mensaje_baja": "ivr/adios.wav"}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (
            &p["buzon"],
            &p["mensaje_baja"],
            &p["menu"],
            &p["espera_agente_s"]
        ),
        (
            &json!("no_dejar"),
            &json!("ivr/adios.wav"),
            &shown,
            &json!(10)
        )
    );

    // null clears.
    let (s, p) = t
        .patch_json(
            "/campana/GUION",
            json!({"menu": null, "mensaje_baja": null}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (&p["menu"], &p["mensaje_baja"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        p["mensaje_humano"], "ivr/bienvenida.wav",
        "untouched fields stay"
    );
    let (_, got) = t.get("/campana/GUION").await;
    assert_eq!(got, p);
    let (s, p) = t.patch_json("/campana/GUION", json!({"menu": menu})).await;
    assert_eq!((s, &p["menu"]), (200, &shown), "{p}");

    // Bad values: 400 naming the field, on create and on change, and nothing changes.
    let (_, before) = t.get("/campana/GUION").await;
    let opcion = |o: Value| json!({"opciones": {"1": o}});
    let cases = [
        (json!({"mensaje_humano": "a b.wav"}), "mensaje_humano"),
        (json!({"mensaje_humano": "x!y"}), "mensaje_humano"),
        (json!({"mensaje_humano": "{a=b}c"}), "mensaje_humano"),
        (json!({"mensaje_humano": "$x"}), "mensaje_humano"),
        (json!({"mensaje_humano": "a\nb.wav"}), "mensaje_humano"),
        (
            json!({"mensaje_humano": "../../etc/passwd"}),
            "mensaje_humano",
        ),
        (json!({"mensaje_humano": ""}), "mensaje_humano"),
        (json!({"mensaje_maquina": "a,b.wav"}), "mensaje_maquina"),
        (json!({"mensaje_baja": "a'b"}), "mensaje_baja"),
        (json!({"mensaje_abandono": "a|b"}), "mensaje_abandono"),
        (
            json!({"menu": {"opciones": {"x": {"accion": "repetir"}}}}),
            "menu",
        ),
        (json!({"menu": opcion(json!({"accion": "colgar"}))}), "menu"),
        (
            json!({"menu": opcion(json!({"accion": "transferir"}))}),
            "menu",
        ),
        (
            json!({"menu": opcion(json!({"accion": "transferir", "destino": "user/1,user/2"}))}),
            "menu",
        ),
        (
            json!({"menu": opcion(json!({"accion": "transferir", "destino": "a,b"}))}),
            "menu",
        ),
        (
            json!({"menu": {"opciones": {"1": {"accion": "repetir"}}, "otra": 1}}),
            "menu",
        ),
        (
            json!({"menu": opcion(json!({"accion": "repetir", "x": 1}))}),
            "menu",
        ),
        (json!({"menu": {"opciones": {}}}), "menu"),
        (json!({"menu": "1"}), "menu"),
        (
            json!({"menu": {"opciones": {"1": {"accion": "repetir"}}, "timeout": 0}}),
            "menu",
        ),
        (json!({"buzon": "otro"}), "buzon"),
        (json!({"espera_agente_s": 0}), "espera_agente_s"),
        (json!({"espera_agente_s": 61}), "espera_agente_s"),
        // A menu needs mensaje_humano, whichever field the change touches.
        (json!({"mensaje_humano": null}), "menu"),
        (json!({"mensaje_humano": null, "menu": menu}), "menu"),
    ];
    for (body, field) in &cases {
        let (s, e) = t.patch_json("/campana/GUION", body.clone()).await;
        assert_error(s, &e, 400, "invalido");
        let m = e["mensaje"].as_str().unwrap();
        assert!(m.starts_with(field), "{body} → {e}");
        let mut create = body.clone();
        create["nombre"] = json!("MALA");
        if create.get("mensaje_humano").is_none() {
            create["mensaje_humano"] = json!("ivr/bienvenida.wav");
        }
        if create.get("menu").is_none() && *field == "menu" {
            create["menu"] = menu.clone();
        }
        let (s, e) = t.post_json("/campanas/", create.clone()).await;
        assert_error(s, &e, 400, "invalido");
        assert!(
            e["mensaje"].as_str().unwrap().starts_with(field),
            "{create} → {e}"
        );
    }
    // A menu on a campaign without mensaje_humano, on create and on change.
    let (s, e) = t
        .post_json("/campanas/", json!({"nombre": "MALA", "menu": menu}))
        .await;
    assert_error(s, &e, 400, "invalido");
    assert!(e["mensaje"].as_str().unwrap().starts_with("menu"), "{e}");
    let (s, e) = t
        .patch_json("/campana/SIN_GUION", json!({"menu": menu}))
        .await;
    assert_error(s, &e, 400, "invalido");
    assert!(e["mensaje"].as_str().unwrap().starts_with("menu"), "{e}");
    // Unknown fields stay refused next to the new ones.
    let (s, e) = t
        .patch_json("/campana/GUION", json!({"mensajes_humano": "a.wav"}))
        .await;
    assert_error(s, &e, 400, "json_invalido");

    let (_, after) = t.get("/campana/GUION").await;
    assert_eq!(after, before, "refused changes change nothing");
    let (_, sin) = t.get("/campana/SIN_GUION").await;
    assert_eq!(sin, d);
    let (_, list) = t.get("/campanas/").await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    t.shutdown().await;
}

on_both_backends!(integrated_amd_settings, worker_threads = 2);
/// The integrated detector's parameters: always shown whole; a create or a change names only what
/// it changes, the rest keeps its value; a bad value, an unknown field or a wrong shape answers 400
/// naming `amd_integrado` and changes nothing; a stored value that no longer parses is reported.
async fn integrated_amd_settings(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let defaults = json!({"initial_silence_ms": 3500, "greeting_ms": 2500,
        "after_greeting_silence_ms": 800, "total_analysis_ms": 6500, "min_word_ms": 100,
        "between_words_silence_ms": 100, "maximum_words": 7, "maximum_word_ms": 5000,
        "silence_threshold": 256});

    // No module needed for `integrado`; one field given, the other eight at their defaults.
    let (s, c) = t
        .post_json(
            "/campanas/",
            json!({"nombre": "AMD_PROPIO", "amd": "integrado", "amd_integrado": {"greeting_ms": 2000}}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["amd"], "integrado");
    let mut want = defaults.clone();
    want["greeting_ms"] = json!(2000);
    assert_eq!(c["amd_integrado"], want, "{c}");
    let (_, got) = t.get("/campana/AMD_PROPIO").await;
    assert_eq!(got, c, "what was returned at creation is what is stored");
    let stored: Value = serde_json::from_str(
        &t.db
            .sql("SELECT amd_integrado FROM bases WHERE nombre = 'AMD_PROPIO'"),
    )
    .expect("stored as JSON");
    assert_eq!(stored, want, "stored with all nine fields");

    // Not given: the defaults, shown whole, stored as NULL.
    let d = t.create("SIN_AMD").await;
    assert_eq!(d["amd_integrado"], defaults, "{d}");
    assert_eq!(
        t.db.sql("SELECT amd_integrado FROM bases WHERE nombre = 'SIN_AMD'"),
        "NULL"
    );

    // A change of one field keeps the others.
    let (s, p) = t
        .patch_json(
            "/campana/AMD_PROPIO",
            json!({"amd_integrado": {"maximum_words": 4}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    want["maximum_words"] = json!(4);
    assert_eq!(p["amd_integrado"], want, "{p}");
    assert_eq!(p["amd"], "integrado");
    let (_, got) = t.get("/campana/AMD_PROPIO").await;
    assert_eq!(got, p);
    // Other settings leave it alone.
    let (s, p) = t
        .patch_json("/campana/AMD_PROPIO", json!({"amd_incierto": "maquina"}))
        .await;
    assert_eq!((s, &p["amd_integrado"]), (200, &want), "{p}");
    // Both rules of the merged result: raising greeting_ms past total_analysis_ms is refused,
    // raising both together is not.
    let (s, p) = t
        .patch_json(
            "/campana/AMD_PROPIO",
            json!({"amd_integrado": {"greeting_ms": 6000, "total_analysis_ms": 7000}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    want["greeting_ms"] = json!(6000);
    want["total_analysis_ms"] = json!(7000);
    assert_eq!(p["amd_integrado"], want, "{p}");

    // Bad values: 400 naming the field, on change and on create, and nothing changes.
    let (_, before) = t.get("/campana/AMD_PROPIO").await;
    let cases = [
        (
            json!({"amd_integrado": {"greeting_ms": 10}}),
            "amd_integrado.greeting_ms",
        ),
        (json!({"amd_integrado": {"otro": 1}}), "amd_integrado"),
        (json!({"amd_integrado": "x"}), "amd_integrado"),
        (json!({"amd_integrado": [1]}), "amd_integrado"),
        (
            json!({"amd_integrado": {"maximum_words": 2.5}}),
            "amd_integrado",
        ),
        (
            json!({"amd_integrado": {"total_analysis_ms": 2000, "initial_silence_ms": 2500}}),
            "amd_integrado.total_analysis_ms",
        ),
        (
            json!({"amd_integrado": {"silence_threshold": 8193}}),
            "amd_integrado.silence_threshold",
        ),
        (
            json!({"amd_integrado": {"maximum_words": 0}}),
            "amd_integrado.maximum_words",
        ),
    ];
    for (body, field) in &cases {
        let (s, e) = t.patch_json("/campana/AMD_PROPIO", body.clone()).await;
        assert_error(s, &e, 400, "invalido");
        assert!(
            e["mensaje"].as_str().unwrap().starts_with(field),
            "{body} → {e}"
        );
        let mut create = body.clone();
        create["nombre"] = json!("MALA");
        let (s, e) = t.post_json("/campanas/", create.clone()).await;
        assert_error(s, &e, 400, "invalido");
        assert!(
            e["mensaje"].as_str().unwrap().starts_with(field),
            "{create} → {e}"
        );
    }
    // Merged onto the current values: greeting_ms is 6000 here, so total_analysis_ms 5000 is
    // refused for this campaign though it is the default.
    let (s, e) = t
        .patch_json(
            "/campana/AMD_PROPIO",
            json!({"amd_integrado": {"total_analysis_ms": 5000}}),
        )
        .await;
    assert_error(s, &e, 400, "invalido");
    assert!(
        e["mensaje"]
            .as_str()
            .unwrap()
            .starts_with("amd_integrado.total_analysis_ms"),
        "{e}"
    );
    let (_, after) = t.get("/campana/AMD_PROPIO").await;
    assert_eq!(after, before, "refused changes change nothing");
    let (s, _) = t.get("/campana/MALA").await;
    assert_eq!(s, 404);

    // A stored value edited by hand into something invalid is reported naming the field.
    t.db.sql("UPDATE bases SET amd_integrado = '{\"greeting_ms\": 10}' WHERE nombre = 'SIN_AMD'");
    let (s, e) = t.get("/campana/SIN_AMD").await;
    assert_ne!(s, 200, "{e}");
    assert!(
        e["mensaje"]
            .as_str()
            .is_some_and(|m| m.contains("amd_integrado.greeting_ms")),
        "{e}"
    );
    t.shutdown().await;
}

on_both_backends!(
    hostile_names_are_refused_and_change_nothing,
    worker_threads = 2
);
async fn hostile_names_are_refused_and_change_nothing(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("SANA").await;
    let long = "a".repeat(80);
    for name in [
        "x`; DROP TABLE bases; --",
        "",
        long.as_str(),
        "bases",
        "LLAMADAS",
        "dnc",
        "o'brien",
        "a\"b",
        "campaña",
        "名前",
        "1abc",
        "a b",
        "__diesel_schema_migrations",
    ] {
        let (s, e) = t.post_json("/campanas/", json!({ "nombre": name })).await;
        assert_error(s, &e, 400, "invalido");
        assert!(e["mensaje"].as_str().unwrap().starts_with("nombre"), "{e}");
        let (s, e) = t
            .post_json("/discador/iniciar/", json!({ "nombre_campana": name }))
            .await;
        assert_error(s, &e, 400, "invalido");
    }
    for raw in [
        "x%60%3B%20DROP%20TABLE%20bases%3B%20--",
        "bases",
        "%27",
        "%E5%90%8D",
        "%FF",
    ] {
        let (s, e) = t.get(&format!("/campana/{raw}")).await;
        assert_error(s, &e, 400, "invalido");
        let (s, e) = t.get(&format!("/discador/estado/{raw}")).await;
        assert_error(s, &e, 400, "invalido");
    }
    let (s, e) = t
        .post_json("/campanas/", json!({"nombre": "OK1", "tabla": "x`y"}))
        .await;
    assert_error(s, &e, 400, "invalido");
    // Everything is still there and nothing else was created.
    let (s, list) = t.get("/campanas/").await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(
        t.db.tables(),
        [
            "SANA",
            "bases",
            "dnc",
            "intentos_telefono",
            "llamadas",
            "nodos",
            "procesos"
        ]
    );
    t.shutdown().await;
}

on_both_backends!(invalid_settings_and_bodies, worker_threads = 2);
async fn invalid_settings_and_bodies(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let cases = [
        (json!({"nombre": "A", "cps": -1}), "cps"),
        (json!({"nombre": "A", "cps": 1000.5}), "cps"),
        (
            json!({"nombre": "A", "timeout_llamada": 10}),
            "timeout_llamada",
        ),
        (json!({"nombre": "A", "max_canales": 0}), "max_canales"),
        (json!({"nombre": "A", "reintentos": 21}), "reintentos"),
        (
            json!({"nombre": "A", "intervalo_reintento": -5}),
            "intervalo_reintento",
        ),
        (json!({"nombre": "A", "dias": ["lunes"]}), "dias"),
        (
            json!({"nombre": "A", "zona_horaria": "Mars/Olympus"}),
            "zona_horaria",
        ),
        (
            json!({"nombre": "A", "hora_inicio": "25:00"}),
            "hora_inicio",
        ),
        (json!({"nombre": "A", "amd": "magic"}), "amd"),
        (json!({"nombre": "A", "caller_id": "123,456"}), "caller_id"),
        (json!({"nombre": "A", "gateway": "gw/../x"}), "gateway"),
        (
            json!({"nombre": "A", "destino_humano": "a b"}),
            "destino_humano",
        ),
    ];
    for (body, field) in cases {
        let (s, e) = t.post_json("/campanas/", body.clone()).await;
        assert_error(s, &e, 400, "invalido");
        assert!(
            e["mensaje"].as_str().unwrap().contains(field),
            "{body} → {e}"
        );
    }
    for body in [
        &b"{not json"[..],
        b"{\"nombre\": \"A\", \"cps\": \"x\"}",
        b"{\"nombre\": \"A\", \"extra\": 1}",
        b"",
        b"[]",
    ] {
        let (s, e) = t
            .post_raw("/campanas/", "application/json", body.to_vec())
            .await;
        assert_error(s, &e, 400, "json_invalido");
    }
    let big = format!("{{\"nombre\": \"{}\"}}", "a".repeat(100_000));
    let (s, e) = t
        .post_raw("/campanas/", "application/json", big.into_bytes())
        .await;
    assert_error(s, &e, 413, "demasiado_grande");
    // The seed's curl sends no JSON content type: accepted anyway.
    let (s, c) = t
        .post_raw(
            "/campanas/",
            "application/x-www-form-urlencoded",
            br#"{"nombre": "Form"}"#.to_vec(),
        )
        .await;
    assert_eq!(s, 201, "{c}");

    let r = t.http.delete(t.url("/campanas/")).send().await.unwrap();
    let (s, e) = TestApp::split(r).await;
    assert_error(s, &e, 405, "metodo_no_permitido");
    let (s, e) = t.get("/no/existe").await;
    assert_error(s, &e, 404, "no_encontrado");
    let (s, list) = t.get("/campanas/").await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    t.shutdown().await;
}

on_both_backends!(csv_import_reports_every_bad_line, worker_threads = 2);
async fn csv_import_reports_every_bad_line(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("CARGA").await;
    let mut csv: Vec<u8> = b"nombre,TELEFONO,deuda\r\n".to_vec();
    csv.extend_from_slice(b"Ana,+54 (11) 4000-0001,100\r\n"); // line 2: ok
    csv.extend_from_slice(b"\r\n"); // line 3: empty, skipped
    csv.extend_from_slice(b"Bob,1000|2000,5\n"); // 4: dial-string char
    csv.extend_from_slice(b"Eve,123{x=y},5\n"); // 5
    csv.extend_from_slice(b"Zoe,12'34,5\n"); // 6
    csv.extend_from_slice(b"Ola,\xff\xfe123,5\n"); // 7: not UTF-8
    csv.extend_from_slice(b"Ivo\n"); // 8: no telefono field
    csv.extend_from_slice(b"Ana2,+5411 4000 0001,7\n"); // 9: duplicate of line 2
    csv.extend_from_slice(b"Leo,12,5\n"); // 10: too short
    csv.extend_from_slice(b"Mia,\"4000,0002\",5\n"); // 11: quoted comma
    csv.extend_from_slice(b"Noa,4000^^0003,5\n"); // 12
    csv.extend_from_slice(b"Pia,4000[0004],5\n"); // 13
    csv.extend_from_slice(b"Raf,5550004,\xe9\n"); // 14: other column not UTF-8
    csv.extend_from_slice(b"Sol,5550005,9"); // 15: ok, no final newline
    let (s, r) = t
        .post_raw("/campana/CARGA/numeros", "text/csv; charset=utf-8", csv)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["insertados"].as_u64(),
            r["duplicados"].as_u64(),
            r["invalidos"].as_u64()
        ),
        (Some(2), Some(1), Some(10)),
        "{r}"
    );
    let lines: Vec<u64> = r["errores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["linea"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![4, 5, 6, 7, 8, 10, 11, 12, 13, 14]);
    let e4 = &r["errores"][0];
    assert_eq!(
        (e4["valor"].as_str(), e4["motivo"].as_str()),
        (Some("1000|2000"), Some("carácter no permitido '|'"))
    );
    assert!(r["errores"][3]["motivo"]
        .as_str()
        .unwrap()
        .contains("UTF-8"));

    let stored =
        t.db.sql("SELECT telefono, datos, estado, intentos FROM CARGA ORDER BY id");
    assert_eq!(
        stored,
        "+541140000001\t{\"deuda\":\"100\",\"nombre\":\"Ana\"}\tPENDIENTE\t0\n5550005\t{\"deuda\":\"9\",\"nombre\":\"Sol\"}\tPENDIENTE\t0"
    );
    let st = estadisticas(&t, "CARGA").await;
    assert_eq!(
        (st["total"].as_u64(), st["pendientes"].as_u64()),
        (Some(2), Some(2))
    );

    // Missing `telefono` column: 400, nothing inserted.
    let (s, e) = t
        .post_raw(
            "/campana/CARGA/numeros",
            "text/csv",
            b"phone\n5551234\n".to_vec(),
        )
        .await;
    assert_error(s, &e, 400, "invalido");
    let (s, e) = t
        .post_raw("/campana/CARGA/numeros", "text/csv", Vec::new())
        .await;
    assert_error(s, &e, 400, "invalido");
    // A line without end is not buffered forever.
    let (s, e) = t
        .post_raw(
            "/campana/CARGA/numeros",
            "text/csv",
            [b"telefono\n".to_vec(), vec![b'1'; 200_000]].concat(),
        )
        .await;
    assert_error(s, &e, 413, "demasiado_grande");
    let (s, e) = t
        .post_raw(
            "/campana/CARGA/numeros",
            "text/plain",
            b"telefono\n5551234\n".to_vec(),
        )
        .await;
    assert_error(s, &e, 415, "tipo_contenido");
    let (s, e) = t
        .post_raw(
            "/campana/NOEXISTE/numeros",
            "text/csv",
            b"telefono\n5551234\n".to_vec(),
        )
        .await;
    assert_error(s, &e, 404, "no_encontrado");
    assert_eq!(estadisticas(&t, "CARGA").await["total"].as_u64(), Some(2));
    t.shutdown().await;
}

on_both_backends!(json_import, worker_threads = 2);
async fn json_import(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("JSONC").await;
    let body = json!({"numeros": [
        {"telefono": "5550001", "nombre": "Ana"},
        {"telefono": 5550002},
        {"telefono": "555,0003"},
        {"nombre": "sin telefono"},
        "5550004",
        {"telefono": "5550001"},
    ]});
    let (s, r) = t.post_json("/campana/JSONC/numeros", body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["insertados"].as_u64(),
            r["duplicados"].as_u64(),
            r["invalidos"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );
    let lines: Vec<u64> = r["errores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["linea"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 4, 5]);
    let (s, e) = t
        .post_raw(
            "/campana/JSONC/numeros",
            "application/json",
            b"{\"numeros\": 5}".to_vec(),
        )
        .await;
    assert_error(s, &e, 400, "json_invalido");
    t.shutdown().await;
}

on_both_backends!(dialer_commands_record_state, worker_threads = 2);
async fn dialer_commands_record_state(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("PRUEBA").await;
    let cmd = |op: &'static str, body: Value| {
        let t = &t;
        async move { t.post_json(&format!("/discador/{op}/"), body).await }
    };
    let (s, e) = cmd("iniciar", json!({"nombre_campana": "PRUEBA", "cps": 5})).await;
    assert_error(s, &e, 409, "conflicto"); // no pending numbers
    let (s, e) = cmd("iniciar", json!({"nombre_campana": "NOEXISTE"})).await;
    assert_error(s, &e, 404, "no_encontrado");
    let (s, e) = cmd("iniciar", json!({"nombre_campana": "PRUEBA", "cps": 0})).await;
    assert_error(s, &e, 400, "invalido");
    let (s, e) = cmd("pausar", json!({"nombre_campana": "PRUEBA"})).await;
    assert_error(s, &e, 409, "conflicto"); // not active

    let (s, _) = t
        .post_raw(
            "/campana/PRUEBA/numeros",
            "text/csv",
            b"telefono\n5550001\n5550002\n".to_vec(),
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = cmd("iniciar", json!({"nombre_campana": "PRUEBA", "cps": 2.5})).await;
    assert_eq!((s, r["estado"].as_str()), (200, Some("ACTIVA")), "{r}");
    let (_, c) = t.get("/campana/PRUEBA").await;
    assert_eq!(c["cps"].as_f64(), Some(2.5), "cps override is saved");
    let (s, e) = cmd("iniciar", json!({"nombre_campana": "PRUEBA"})).await;
    assert_error(s, &e, 409, "conflicto");
    let (s, r) = cmd("pausar", json!({"nombre_campana": "PRUEBA"})).await;
    assert_eq!((s, r["estado"].as_str()), (200, Some("PAUSADA")));
    let (s, e) = cmd("pausar", json!({"nombre_campana": "PRUEBA"})).await;
    assert_error(s, &e, 409, "conflicto");
    let (s, r) = cmd("reanudar", json!({"nombre_campana": "PRUEBA"})).await;
    assert_eq!((s, r["estado"].as_str()), (200, Some("ACTIVA")));
    let (s, r) = cmd("detener", json!({"nombre_campana": "PRUEBA"})).await;
    assert_eq!((s, r["estado"].as_str()), (200, Some("DETENIDA")));
    let (s, e) = cmd("reanudar", json!({"nombre_campana": "PRUEBA"})).await;
    assert_error(s, &e, 409, "conflicto");
    let (s, e) = cmd("detener", json!({"nombre_campana": "PRUEBA", "cps": 3})).await;
    assert_error(s, &e, 400, "invalido");

    let (s, body) = t.get("/discador/estado/PRUEBA").await;
    assert_eq!(
        (s, body["campana"].as_str(), body["estado"].as_str()),
        (200, Some("PRUEBA"), Some("DETENIDA"))
    );
    let st = &body["estadisticas"];
    for key in [
        "total",
        "completados",
        "pendientes",
        "errores",
        "en_curso",
        "contestados",
        "humanos",
        "maquinas",
    ] {
        assert!(st[key].is_u64(), "{key} in {st}");
    }
    assert_eq!(st["total"].as_u64(), Some(2));
    t.shutdown().await;
}

on_both_backends!(
    token_protects_everything_but_health_and_docs,
    worker_threads = 2
);
async fn token_protects_everything_but_health_and_docs(backend: Backend) {
    let mut t = TestApp::spawn_with(backend, &["--api-token", "tok-123"]).await;
    t.create("CONTOKEN").await; // with the token
    let token = t.token.take();
    for path in [
        "/campanas/",
        "/campana/CONTOKEN",
        "/discador/estado/CONTOKEN",
        "/no/existe",
    ] {
        let (s, e) = t.get(path).await;
        assert_error(s, &e, 401, "no_autorizado");
    }
    let r = t
        .http
        .get(t.url("/campanas/"))
        .bearer_auth("tok-124")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = t
        .http
        .get(t.url("/campanas/"))
        .header("authorization", "tok-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (s, e) = t
        .post_json("/discador/iniciar/", json!({"nombre_campana": "CONTOKEN"}))
        .await;
    assert_error(s, &e, 401, "no_autorizado");
    for path in ["/health", "/docs/", "/openapi.json"] {
        let r = t.http.get(t.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    t.token = token;
    let (s, _) = t.get("/campanas/").await;
    assert_eq!(s, 200);
    t.shutdown().await;
}

on_both_backends!(public_address_needs_a_token, worker_threads = 2);
async fn public_address_needs_a_token(backend: Backend) {
    let db = common::TestDb::new(backend);
    let url = db.url();
    let err = discador::app::spawn(config(&[
        "--database-url",
        &url,
        "--api-listen",
        "0.0.0.0:0",
    ]))
    .await;
    assert!(err.is_err(), "non-loopback without token must be refused");
    let ok = discador::app::spawn(config(&[
        "--database-url",
        &url,
        "--api-listen",
        "0.0.0.0:0",
        "--api-token",
        "x",
    ]))
    .await;
    ok.expect("with a token it starts")
        .shutdown()
        .await
        .unwrap();
}

// MySQL only: an unreachable server is a network condition; an SQLite file has no server to lose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_answers_503_and_stays_up() {
    // Port 1 on loopback: nothing listens there.
    let app = discador::app::spawn(config(&[
        "--database-url",
        "mysql://root:hunter2@127.0.0.1:1/discador_x",
    ]))
    .await
    .expect("the service starts without its database");
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.api_addr);
    for path in ["/campanas/", "/campana/PRUEBA", "/discador/estado/PRUEBA"] {
        let (s, e) = TestApp::split(http.get(format!("{base}{path}")).send().await.unwrap()).await;
        assert_error(s, &e, 503, "no_disponible");
        assert!(!e.to_string().contains("hunter2"));
    }
    let (s, e) = TestApp::split(
        http.post(format!("{base}/campanas/"))
            .json(&json!({"nombre": "X"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &e, 503, "no_disponible");
    let (s, h) = TestApp::split(http.get(format!("{base}/health")).send().await.unwrap()).await;
    assert_eq!(
        (s, h["base_de_datos"].as_str()),
        (200, Some("no_disponible"))
    );
    app.shutdown().await.unwrap();
}

on_both_backends!(adopts_an_existing_table, worker_threads = 2);
async fn adopts_an_existing_table(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    // The same tables in each dialect. An adopted table's `id` must be generated by the database:
    // AUTO_INCREMENT on MySQL, the rowid alias `INTEGER PRIMARY KEY` on SQLite (`INT PRIMARY KEY`
    // is not one: SQLite generates no value for it).
    t.db.sql(match backend {
        Backend::Mysql => {
            "CREATE TABLE leads (id BIGINT AUTO_INCREMENT PRIMARY KEY, telefono VARCHAR(32), cliente VARCHAR(20));
             INSERT INTO leads (telefono, cliente) VALUES ('5550001', 'a'), ('5550002', 'b');
             CREATE TABLE sin_tel (id BIGINT AUTO_INCREMENT PRIMARY KEY, numero VARCHAR(32));
             CREATE TABLE sin_auto (id BIGINT PRIMARY KEY, telefono VARCHAR(32));
             CREATE TABLE sin_pk (id BIGINT, telefono VARCHAR(32));
             CREATE TABLE solo_tel (telefono VARCHAR(32));
             CREATE TABLE tel_nulo (id BIGINT AUTO_INCREMENT PRIMARY KEY, telefono VARCHAR(32));
             INSERT INTO tel_nulo (telefono) VALUES ('5550009'), (NULL);
             CREATE TABLE OCUPADA (id INT);"
        }
        Backend::Sqlite => {
            "CREATE TABLE leads (id INTEGER PRIMARY KEY, telefono TEXT NOT NULL, cliente TEXT);
             INSERT INTO leads (telefono, cliente) VALUES ('5550001', 'a'), ('5550002', 'b');
             CREATE TABLE sin_tel (id INTEGER PRIMARY KEY, numero TEXT);
             CREATE TABLE sin_auto (id INT PRIMARY KEY, telefono TEXT NOT NULL);
             CREATE TABLE sin_pk (id INTEGER, telefono TEXT);
             CREATE TABLE solo_tel (telefono TEXT);
             CREATE TABLE tel_nulo (id INTEGER PRIMARY KEY, telefono TEXT);
             INSERT INTO tel_nulo (telefono) VALUES ('5550009'), (NULL);
             CREATE TABLE OCUPADA (id INT);"
        }
    });
    let (s, c) = t
        .post_json("/campanas/", json!({"nombre": "ADOPTA", "tabla": "leads"}))
        .await;
    assert_eq!((s, c["tabla"].as_str()), (201, Some("leads")), "{c}");
    let st = estadisticas(&t, "ADOPTA").await;
    assert_eq!(
        (st["total"].as_u64(), st["pendientes"].as_u64()),
        (Some(2), Some(2))
    );
    let (s, r) = t
        .post_raw(
            "/campana/ADOPTA/numeros",
            "text/csv",
            b"telefono\n5550002\n5550003\n".to_vec(),
        )
        .await;
    assert_eq!(
        (s, r["insertados"].as_u64(), r["duplicados"].as_u64()),
        (200, Some(1), Some(1))
    );

    let (s, e) = t
        .post_json("/campanas/", json!({"nombre": "OTRA", "tabla": "leads"}))
        .await;
    assert_error(s, &e, 409, "conflicto");
    for (tabla, about) in [
        ("sin_tel", "telefono"),
        ("sin_auto", "id"),
        ("sin_pk", "id"),
        ("solo_tel", "id"),
        ("tel_nulo", "sin teléfono"),
    ] {
        let (s, e) = t
            .post_json("/campanas/", json!({"nombre": "MALA", "tabla": tabla}))
            .await;
        assert_error(s, &e, 400, "invalido");
        assert!(
            e["mensaje"].as_str().unwrap().contains(about),
            "{tabla}: {e}"
        );
    }
    let (s, e) = t
        .post_json("/campanas/", json!({"nombre": "OCUPADA"}))
        .await;
    assert_error(s, &e, 409, "conflicto");
    let (_, list) = t.get("/campanas/").await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "failed creations leave nothing behind"
    );
    t.shutdown().await;
}

on_both_backends!(
    do_not_call_list_takes_valid_numbers_and_names_the_rest,
    worker_threads = 2
);
async fn do_not_call_list_takes_valid_numbers_and_names_the_rest(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (s, b) = t
        .post_json(
            "/dnc/",
            json!({"telefonos": ["+54 9 11 4444-5555", "+5491144445555", "12ab", "5550001,999", "5550002"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["agregados"], 2, "{b}");
    assert_eq!(
        b["ya_estaban"], 0,
        "the same number twice is added once: {b}"
    );
    assert_eq!(b["invalidos"], 2, "{b}");
    assert_eq!(b["errores"][0]["linea"], 3, "{b}");
    assert_eq!(b["errores"][1]["valor"], "5550001,999", "{b}");
    let (s, b) = t
        .post_json("/dnc/", json!({"telefonos": ["5550002"]}))
        .await;
    assert_eq!(
        (s, b["agregados"].as_u64(), b["ya_estaban"].as_u64()),
        (200, Some(0), Some(1))
    );
    let (s, e) = t.post_json("/dnc/", json!({"numeros": ["5550002"]})).await;
    assert_error(s, &e, 400, "json_invalido");
    assert_eq!(t.db.sql("SELECT COUNT(*) FROM dnc"), "2");
    t.shutdown().await;
}

on_both_backends!(wide_csv_rows_load_in_several_batches, worker_threads = 2);
async fn wide_csv_rows_load_in_several_batches(backend: Backend) {
    // 2,500 rows of 8 KB: 20 MB of data, split by the byte cap of a batch.
    let t = TestApp::spawn(backend).await;
    t.create("ANCHA").await;
    let filler = "x".repeat(8 * 1024);
    let mut csv = String::from("telefono,notas\n");
    for i in 0..2_500 {
        csv.push_str(&format!("555{i:05},{filler}\n"));
    }
    let (s, r) = t
        .post_raw("/campana/ANCHA/numeros", "text/csv", csv.into_bytes())
        .await;
    assert_eq!((s, r["insertados"].as_u64()), (200, Some(2_500)), "{r}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_mid_run_answers_503_then_recovers() {
    let db = common::TestDb::new(Backend::Mysql);
    let mut proxy = common::DbProxy::start_db().await;
    let url = proxy.url(&db.name);
    let app = discador::app::spawn(config(&["--database-url", &url]))
        .await
        .expect("app starts");
    let http = reqwest::Client::new();
    let base = format!("http://{}", app.api_addr);
    let get = |path: &str| {
        let req = http.get(format!("{base}{path}"));
        async move { TestApp::split(req.send().await.unwrap()).await }
    };
    let (s, _) = TestApp::split(
        http.post(format!("{base}/campanas/"))
            .json(&json!({"nombre": "CAIDA"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);

    proxy.cut().await;
    let (s, e) = get("/campana/CAIDA").await;
    assert_error(s, &e, 503, "no_disponible");
    let (s, h) = get("/health").await;
    assert_eq!(
        (s, h["base_de_datos"].as_str()),
        (200, Some("no_disponible"))
    );

    proxy.restore().await;
    let (s, c) = get("/campana/CAIDA").await;
    assert_eq!((s, c["nombre"].as_str()), (200, Some("CAIDA")), "{c}");
    app.shutdown().await.unwrap();
}

on_both_backends!(estado_follows_the_numbers_table, worker_threads = 2);
async fn estado_follows_the_numbers_table(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.create("VIVO").await;
    let csv: String = std::iter::once("telefono".to_owned())
        .chain((0..20).map(|i| format!("555{i:04}")))
        .collect::<Vec<_>>()
        .join("\n");
    t.post_raw("/campana/VIVO/numeros", "text/csv", csv.into_bytes())
        .await;
    let st = estadisticas(&t, "VIVO").await;
    assert_eq!(
        (st["pendientes"].as_u64(), st["en_curso"].as_u64()),
        (Some(20), Some(0))
    );

    // The dialer claims numbers behind the API's back; the cached counts catch up by themselves.
    let c = t
        .app
        .store
        .campaign(&CampaignName::parse("VIVO").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.app
            .store
            .claim_due(&c, Utc::now(), 5)
            .await
            .unwrap()
            .len(),
        5
    );
    let mut seen = None;
    for _ in 0..100 {
        let st = estadisticas(&t, "VIVO").await;
        let total = ["completados", "pendientes", "errores", "en_curso"]
            .iter()
            .map(|k| st[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(
            total,
            st["total"].as_u64().unwrap(),
            "counts always add up: {st}"
        );
        if st["en_curso"].as_u64() == Some(5) {
            seen = Some(st);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let st = seen.expect("the cache refreshed within 10 s");
    assert_eq!(
        (st["pendientes"].as_u64(), st["marcando"].as_u64()),
        (Some(15), Some(5))
    );
    t.shutdown().await;
}

on_both_backends!(names_that_differ_only_in_case, worker_threads = 2);
/// MySQL table names are case-sensitive on Linux (and `bases.nombre` is binary), so `Prueba` and
/// `PRUEBA` are two campaigns with two tables. SQLite's table names are not: there the second one
/// would be the first one's table, so it is refused as a conflict and the first campaign is left
/// as it was; adopting that table under another spelling is refused likewise.
async fn names_that_differ_only_in_case(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let first = t.create("Prueba").await;
    let (s, r) = t
        .post_raw(
            "/campana/Prueba/numeros",
            "text/csv",
            b"telefono\n5550001\n5550002\n".to_vec(),
        )
        .await;
    assert_eq!((s, r["insertados"].as_u64()), (200, Some(2)), "{r}");

    let (s, second) = t.post_json("/campanas/", json!({"nombre": "PRUEBA"})).await;
    let (s_adopt, adopt) = t
        .post_json("/campanas/", json!({"nombre": "OTRA", "tabla": "prueba"}))
        .await;
    match backend {
        Backend::Mysql => {
            assert_eq!(s, 201, "{second}");
            assert_eq!(s_adopt, 201, "a new table `prueba`: {adopt}");
            assert_eq!(
                t.db.tables(),
                [
                    "PRUEBA",
                    "Prueba",
                    "bases",
                    "dnc",
                    "intentos_telefono",
                    "llamadas",
                    "nodos",
                    "procesos",
                    "prueba"
                ]
            );
            let (s, c) = t.get("/campana/PRUEBA").await;
            assert_eq!((s, c["tabla"].as_str()), (200, Some("PRUEBA")), "{c}");
            assert_eq!(estadisticas(&t, "PRUEBA").await["total"].as_u64(), Some(0));
            let (_, list) = t.get("/campanas/").await;
            assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
        }
        Backend::Sqlite => {
            for (s, e) in [(s, &second), (s_adopt, &adopt)] {
                assert_error(s, e, 409, "conflicto");
                assert!(
                    e["mensaje"]
                        .as_str()
                        .unwrap()
                        .to_lowercase()
                        .contains("prueba"),
                    "the message names the clashing table: {e}"
                );
            }
            assert_eq!(
                t.db.tables(),
                [
                    "Prueba",
                    "bases",
                    "dnc",
                    "intentos_telefono",
                    "llamadas",
                    "nodos",
                    "procesos"
                ]
            );
            // Lookups stay exact, as on MySQL: `PRUEBA` is not another spelling of `Prueba`.
            let (s, e) = t.get("/campana/PRUEBA").await;
            assert_error(s, &e, 404, "no_encontrado");
            let (_, list) = t.get("/campanas/").await;
            assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        }
    }
    // The first campaign and its numbers are untouched either way.
    let (s, got) = t.get("/campana/Prueba").await;
    assert_eq!((s, &got), (200, &first));
    let st = estadisticas(&t, "Prueba").await;
    assert_eq!(
        (st["total"].as_u64(), st["pendientes"].as_u64()),
        (Some(2), Some(2)),
        "{st}"
    );
    t.shutdown().await;
}

on_both_backends!(table_names_that_sqlite_reserves, worker_threads = 2);
/// SQLite reserves every table name starting with `sqlite_` (in any case). The name rules refuse
/// them on both backends, so a set of campaigns can move between backends: 400 `invalido`, nothing
/// created.
async fn table_names_that_sqlite_reserves(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for body in [
        json!({"nombre": "sqlite_x"}),
        json!({"nombre": "SQLITE_Y"}),
        json!({"nombre": "MAESTRA", "tabla": "sqlite_master"}),
        json!({"nombre": "SECUENCIA", "tabla": "sqlite_sequence"}),
    ] {
        let (s, r) = t.post_json("/campanas/", body.clone()).await;
        assert_error(s, &r, 400, "invalido");
    }
    let (_, list) = t.get("/campanas/").await;
    assert_eq!(list, json!([]));
    assert_eq!(
        t.db.tables(),
        [
            "bases",
            "dnc",
            "intentos_telefono",
            "llamadas",
            "nodos",
            "procesos"
        ]
    );
    // The store is still fine for ordinary names.
    t.create("NORMAL").await;
    t.shutdown().await;
}

on_both_backends!(
    a_restart_on_the_same_database_keeps_everything,
    worker_threads = 2
);
/// Everything stored survives a clean restart on the same database (on SQLite: the same file,
/// created by the app in WAL mode).
async fn a_restart_on_the_same_database_keeps_everything(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    if let Some(path) = t.db.path() {
        assert!(path.is_file(), "the app creates {}", path.display());
        assert_eq!(t.db.sql("PRAGMA journal_mode"), "wal");
    }
    t.create("PERSISTE").await;
    let (s, p) = t
        .patch_json(
            "/campana/PERSISTE",
            json!({"cps": 2.5, "dias": ["lun", "sab"], "caller_id": "5551000"}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (s, r) = t
        .post_raw(
            "/campana/PERSISTE/numeros",
            "text/csv",
            b"telefono,nombre\n5550001,Ana\n5550002,Bob\n5550003,Eva\n".to_vec(),
        )
        .await;
    assert_eq!((s, r["insertados"].as_u64()), (200, Some(3)), "{r}");
    let (s, r) = t
        .post_json("/dnc/", json!({"telefonos": ["5559999"]}))
        .await;
    assert_eq!((s, r["agregados"].as_u64()), (200, Some(1)), "{r}");
    let (_, before) = t.get("/campana/PERSISTE").await;

    let db = t.shutdown().await;
    if let Some(path) = db.path() {
        assert!(path.is_file(), "the file outlives the app");
    }
    let t = TestApp::spawn_on(db, &[]).await;
    let (s, after) = t.get("/campana/PERSISTE").await;
    assert_eq!((s, &after), (200, &before));
    let (_, list) = t.get("/campanas/").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let st = estadisticas(&t, "PERSISTE").await;
    assert_eq!(
        (st["total"].as_u64(), st["pendientes"].as_u64()),
        (Some(3), Some(3)),
        "{st}"
    );
    // The numbers, their data and the table's unique index came back too.
    assert_eq!(
        t.db.sql("SELECT telefono, datos FROM PERSISTE ORDER BY id"),
        "5550001\t{\"nombre\":\"Ana\"}\n5550002\t{\"nombre\":\"Bob\"}\n5550003\t{\"nombre\":\"Eva\"}"
    );
    let (s, r) = t
        .post_raw(
            "/campana/PERSISTE/numeros",
            "text/csv",
            b"telefono\n5550001\n5550004\n".to_vec(),
        )
        .await;
    assert_eq!(
        (s, r["insertados"].as_u64(), r["duplicados"].as_u64()),
        (200, Some(1), Some(1)),
        "{r}"
    );
    let (s, r) = t
        .post_json("/dnc/", json!({"telefonos": ["5559999"]}))
        .await;
    assert_eq!((s, r["ya_estaban"].as_u64()), (200, Some(1)), "{r}");
    t.create("NUEVA").await;
    t.shutdown().await;
}
