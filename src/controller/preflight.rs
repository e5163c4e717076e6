//! Before a campaign dials, the switch is asked whether it has what the campaign's script names:
//! every audio file (`file_exists`, relative paths under its `sounds_dir`), every extension a menu
//! transfers to (in context `discador` of its dialplan), every gateway a menu bridges through, and
//! `mod_avmd` for a voicemail drop after the beep. A call that reaches a missing file would play
//! nothing (a person in silence, a retry that can never succeed), so the campaign is refused (409)
//! or paused with the reason instead.

use regex::Regex;

use super::CONTEXT;
use crate::dialer::node::{ask_true_false, Modules};
use crate::domain::TransferTarget;
use crate::esl::InboundClient;
use crate::store::Campaign;

/// Why a campaign's script cannot run on this switch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptProblem {
    /// The switch lacks something the script names; the message names the field.
    #[error("{0}")]
    Missing(String),
    /// The switch could not be asked (no connection, an unreadable answer): try again later.
    #[error("no se pudo consultar a FreeSWITCH: {0}")]
    Unknown(String),
}

/// Checks `campaign`'s script against the switch behind `esl`, whose modules are `modules`.
pub async fn check(
    esl: &InboundClient,
    campaign: &Campaign,
    modules: Modules,
) -> Result<(), ScriptProblem> {
    let guion = &campaign.guion;
    if guion.needs_avmd(campaign.amd) && modules.mod_avmd == Some(false) {
        return Err(ScriptProblem::Missing(
            "buzon: tras_beep necesita mod_avmd y FreeSWITCH no lo tiene cargado (use tras_saludo \
             o cargue mod_avmd)"
                .to_owned(),
        ));
    }
    let files = guion.files();
    if !files.is_empty() {
        let sounds_dir = esl
            .api("global_getvar sounds_dir")
            .await
            .map_err(|e| ScriptProblem::Unknown(e.to_string()))?;
        let sounds_dir = sounds_dir.trim();
        for (field, path) in files {
            let full = path.resolve(sounds_dir);
            match ask_true_false(esl, &format!("file_exists {full}")).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(ScriptProblem::Missing(format!(
                        "{field}: FreeSWITCH no tiene el archivo {path} ({full})"
                    )))
                }
                Err(why) => return Err(ScriptProblem::Unknown(why)),
            }
        }
    }
    let Some(menu) = &guion.menu else {
        return Ok(());
    };
    let mut dialplan: Option<String> = None;
    for target in menu.targets() {
        match target {
            TransferTarget::Extension(e) => {
                if dialplan.is_none() {
                    let xml = esl
                        .api(&format!("xml_locate dialplan context name {CONTEXT}"))
                        .await
                        .map_err(|e| ScriptProblem::Unknown(e.to_string()))?;
                    dialplan = Some(xml);
                }
                let xml = dialplan.as_deref().unwrap_or("");
                if !extension_exists(xml, e.as_str()) {
                    return Err(ScriptProblem::Missing(format!(
                        "menu.opciones.destino: la extensión {e} no existe en el contexto \
                         {CONTEXT} del dialplan de FreeSWITCH",
                        e = e.as_str()
                    )));
                }
            }
            TransferTarget::Agents(d) => {
                if let Some(gw) = d.gateway() {
                    let status = esl
                        .api(&format!("sofia status gateway {gw}"))
                        .await
                        .map_err(|e| ScriptProblem::Unknown(e.to_string()))?;
                    if status.contains("Invalid Gateway") {
                        return Err(ScriptProblem::Missing(format!(
                            "menu.opciones.destino: FreeSWITCH no conoce el gateway {gw} de {d}",
                            d = d.as_str()
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether a `destination_number` condition of the context's XML (as `xml_locate` prints it)
/// matches `name`. FreeSWITCH's expressions are PCRE; one this regex engine cannot read counts as
/// a match (the check must never refuse a dialplan that works).
pub fn extension_exists(context_xml: &str, name: &str) -> bool {
    if !context_xml.contains("<context") {
        return false;
    }
    let mut found = false;
    for cond in context_xml.split("<condition").skip(1) {
        let tag = cond.split('>').next().unwrap_or("");
        let field = attribute(tag, "field");
        if field.is_some_and(|f| f != "destination_number") {
            continue;
        }
        let Some(expr) = attribute(tag, "expression") else {
            continue;
        };
        let expr = unescape(expr);
        found = match Regex::new(&expr) {
            Ok(re) => re.is_match(name),
            Err(_) => true,
        };
        if found {
            break;
        }
    }
    found
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &tag[start..];
    Some(&rest[..rest.find('"')?])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"
<context name="discador">
  <extension name="discador">
    <condition field="destination_number" expression="^discador$">
      <action application="socket" data="127.0.0.1:8084 async full"></action>
    </condition>
  </extension>
  <extension name="ventas">
    <condition field="destination_number" expression="^(ventas|cobranzas)$"></condition>
  </extension>
  <extension name="x"><condition field="${x}" expression="^otra$"/></extension>
  <extension name="y"><condition field="destination_number" expression="^a&amp;b$"/></extension>
</context>"#;

    #[test]
    fn extensions_are_matched_like_the_dialplan_does() {
        assert!(extension_exists(XML, "discador"));
        assert!(extension_exists(XML, "ventas"));
        assert!(extension_exists(XML, "cobranzas"));
        assert!(extension_exists(XML, "a&b"));
        assert!(
            !extension_exists(XML, "otra"),
            "not a destination_number condition"
        );
        assert!(!extension_exists(XML, "soporte"));
        assert!(!extension_exists("-ERR no such context", "ventas"));
        assert!(extension_exists(
            r#"<context><condition field="destination_number" expression="^(?&lt;n&gt;x)(?=y)$"/></context>"#,
            "z"
        ));
    }
}
