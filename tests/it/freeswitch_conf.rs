//! The shipped FreeSWITCH configuration is a product: it must be well-formed XML, and every
//! extension, context and channel variable the code names must exist in it.

use std::path::Path;

fn load(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("freeswitch-conf")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("not well-formed XML: {e}"))
}

const FILES: &[&str] = &[
    "discador_vars.xml",
    "dialplan/discador.xml",
    "autoload_configs/event_socket.conf.xml",
    "sip_profiles/external/gw_pstn.xml",
];

#[test]
fn every_file_is_well_formed() {
    for f in FILES {
        let text = load(f);
        parse(&text);
    }
}

/// The extension names of context `discador`, and whether each matches its own name.
fn extensions(doc: &roxmltree::Document<'_>) -> Vec<String> {
    let ctx = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("context") && n.attribute("name") == Some(discador::controller::CONTEXT)
        })
        .expect("context discador");
    ctx.children()
        .filter(|n| n.has_tag_name("extension"))
        .map(|ext| {
            let name = ext.attribute("name").expect("extension name").to_owned();
            let cond = ext
                .children()
                .find(|n| n.has_tag_name("condition"))
                .expect("condition");
            assert_eq!(
                cond.attribute("field"),
                Some("destination_number"),
                "{name}"
            );
            let re = cond.attribute("expression").expect("expression");
            assert_eq!(
                re,
                format!("^{name}$"),
                "extension {name} must match its own name"
            );
            name
        })
        .collect()
}

#[test]
fn the_dialplan_has_every_extension_the_code_names() {
    let text = load("dialplan/discador.xml");
    let doc = parse(&text);
    let names = extensions(&doc);
    // The originate target: `discador XML discador`.
    let target: Vec<&str> = discador::dialer::originate::DIALPLAN_TARGET
        .split(' ')
        .collect();
    assert_eq!(target[1], "XML");
    assert_eq!(target[2], discador::controller::CONTEXT);
    assert!(names.iter().any(|n| n == target[0]), "{names:?}");
    // The campaigns' default destinations.
    for d in ["humano", "maquina"] {
        assert!(names.iter().any(|n| n == d), "missing {d}: {names:?}");
    }
}

#[test]
fn the_socket_entry_connects_back_async_full_and_hangs_up_after() {
    let text = load("dialplan/discador.xml");
    let doc = parse(&text);
    let ext = doc
        .descendants()
        .find(|n| n.has_tag_name("extension") && n.attribute("name") == Some("discador"))
        .unwrap();
    let actions: Vec<(String, String)> = ext
        .descendants()
        .filter(|n| n.has_tag_name("action"))
        .map(|a| {
            (
                a.attribute("application").unwrap_or_default().to_owned(),
                a.attribute("data").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let socket = actions
        .iter()
        .position(|(app, _)| app == "socket")
        .expect("socket action");
    // A channel variable (set by the originate of the process that dialed the call), which falls
    // back to the switch's global of the same name.
    assert_eq!(actions[socket].1, "${discador_socket} async full");
    assert!(
        load("discador_vars.xml").contains("data=\"discador_socket="),
        "the global fallback is defined"
    );
    assert_eq!(actions.last().map(|a| a.0.as_str()), Some("hangup"));
    assert!(socket < actions.len() - 1);
}

#[test]
fn every_variable_used_is_defined_or_set_by_the_code() {
    let vars = load("discador_vars.xml");
    let doc = parse(&vars);
    let defined: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("X-PRE-PROCESS") && n.attribute("cmd") == Some("set"))
        .filter_map(|n| n.attribute("data")?.split('=').next().map(str::to_owned))
        .collect();
    let dialplan = load("dialplan/discador.xml");
    // $${x}: preprocessor variables, which discador_vars.xml must define.
    for part in dialplan.split("$${").skip(1) {
        let name = part.split('}').next().unwrap();
        assert!(
            defined.iter().any(|d| d == name),
            "$${{{name}}} is not defined in discador_vars.xml"
        );
    }
    // ${x} channel variables named discador_*: set by the originate or by the controller.
    let set_by_code = [
        "discador_campana",
        "discador_numero",
        "discador_intento",
        "discador_socket",
        "discador_resultado",
        "discador_amd_resultado",
        "discador_amd_causa",
    ];
    let originate = discador::dialer::originate::Originate {
        uuid: &uuid::Uuid::nil(),
        campana: "C",
        numero_id: 1,
        intento: 1,
        telefono: "123",
        caller_id: None,
        gateway: "gw",
        timeout_s: 30,
        socket: Some("127.0.0.1:8084"),
        silence_when_idle: false,
    }
    .command(&discador::dialer::originate::DialTemplate::parse("loopback/{telefono}").unwrap())
    .unwrap();
    for v in &set_by_code[..4] {
        assert!(
            originate.contains(&format!("{v}=")),
            "originate does not set {v}"
        );
    }
    let controller = include_str!("../../src/controller/mod.rs");
    for v in &set_by_code[4..] {
        assert!(
            controller.contains(&format!("\"{v}\"")),
            "controller does not set {v}"
        );
    }
    let channel_vars = dialplan
        .match_indices("${")
        .filter(|(i, _)| *i == 0 || dialplan.as_bytes()[i - 1] != b'$')
        .map(|(i, _)| dialplan[i + 2..].split('}').next().unwrap());
    for name in channel_vars {
        if name.starts_with("discador_") {
            assert!(
                set_by_code.contains(&name),
                "${{{name}}} is used but nothing sets it"
            );
        }
    }
    for v in set_by_code {
        assert!(
            dialplan.contains(&format!("${{{v}}}")),
            "the dialplan never shows {v}"
        );
    }
}

#[test]
fn the_event_socket_listens_on_loopback_only() {
    let text = load("autoload_configs/event_socket.conf.xml");
    let doc = parse(&text);
    let param = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("param") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
            .map(str::to_owned)
    };
    assert_eq!(param("listen-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(param("listen-port").as_deref(), Some("8021"));
    assert_eq!(param("apply-inbound-acl").as_deref(), Some("loopback.auto"));
}

#[test]
fn the_sample_gateway_is_the_default_gateway() {
    let text = load("sip_profiles/external/gw_pstn.xml");
    let doc = parse(&text);
    let gw = doc
        .descendants()
        .find(|n| n.has_tag_name("gateway"))
        .unwrap();
    assert_eq!(gw.attribute("name"), Some("gw_pstn"));
}

/// FreeSWITCH's XML pre-processor reads the files line by line before any XML parser: it expands
/// `$${…}` and runs `<X-PRE-PROCESS …/>` even inside `<!-- comments -->` (`switch_xml.c`,
/// `preprocess`). A directive quoted in a comment once made `discador_vars.xml` include itself until
/// FreeSWITCH refused to start. An XML parser cannot see this, so the comments are checked as text.
#[test]
fn no_comment_holds_what_the_preprocessor_would_run() {
    for f in FILES {
        let text = load(f);
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<!--") {
            let after = &rest[start + 4..];
            let end = after
                .find("-->")
                .unwrap_or_else(|| panic!("{f}: unclosed comment"));
            let comment = &after[..end];
            let lower = comment.to_ascii_lowercase();
            assert!(
                !lower.contains("x-pre-process"),
                "{f}: a comment names the pre-processor directive: {comment}"
            );
            assert!(
                !comment.contains("$${"),
                "{f}: a comment holds a pre-processor variable: {comment}"
            );
            rest = &after[end + 3..];
        }
    }
}
