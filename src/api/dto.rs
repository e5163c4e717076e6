//! JSON bodies of the API (Spanish field names, the contract) and their conversion to domain types.
//!
//! Requests are deserialized into loose shapes (`Option<String>`, `Option<i64>`) and then parsed
//! field by field, so that a bad value answers 400 naming the field and the rule, not a serde error.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::amd::AmdParams;
use crate::domain::{
    amd_params, format_time, parse_time, parse_zone,
    rules::{parse_abandon_ceiling, RulesError, MAX_INTENTOS_DIA},
    AmdMode, AmdNotSure, AmdParamsJson, AudioPath, CallingWindow, CampaignName, Cps, DaySet,
    ExcludedDates, Extension, Gateway, Limit, Menu, MenuJson, PhoneNumber, TableName, Voicemail,
    ESPERA_AGENTE, INTERVALO_REINTENTO, MAX_CANALES, REINTENTOS, TIMEOUT_LLAMADA,
};
use crate::store::{Campaign, CampaignPatch, DispositionCounts, NewCampaign, NumberStats};

/// A campaign as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Una campaña tal como la muestra la API.")]
pub struct CampaignView {
    #[schema(example = "PRUEBA")]
    pub nombre: String,
    /// Numbers table of the campaign.
    pub tabla: String,
    /// CREADA, ACTIVA, PAUSADA, DETENIDA, FINALIZADA.
    #[schema(example = "CREADA")]
    pub estado: String,
    #[schema(example = 5.0)]
    pub cps: f64,
    pub max_canales: u32,
    pub reintentos: u32,
    pub intervalo_reintento: u32,
    /// ninguno, mod_amd, avmd, integrado.
    pub amd: String,
    /// Where AMD's NOTSURE goes: humano or maquina.
    pub amd_incierto: String,
    /// Parameters of the integrated detector (`amd: integrado`), always whole: the effective
    /// values (the defaults unless changed).
    pub amd_integrado: AmdParamsJson,
    pub destino_humano: String,
    pub destino_maquina: String,
    pub caller_id: Option<String>,
    pub gateway: Option<String>,
    pub timeout_llamada: u32,
    #[schema(example = "09:00")]
    pub hora_inicio: String,
    #[schema(example = "21:00")]
    pub hora_fin: String,
    #[schema(example = json!(["lun", "mar", "mie", "jue", "vie"]))]
    pub dias: Vec<&'static str>,
    #[schema(example = "America/Argentina/Buenos_Aires")]
    pub zona_horaria: String,
    /// Played to a person; `null`: a person goes straight to `destino_humano`.
    #[schema(example = "ivr/bienvenida.wav")]
    pub mensaje_humano: Option<String>,
    /// Played to an answering machine (see `buzon`); `null`: a machine goes to `destino_maquina`.
    pub mensaje_maquina: Option<String>,
    /// Played after an opt-out (`no_llamar`).
    pub mensaje_baja: Option<String>,
    /// Played when no agent answered within `espera_agente_s`.
    pub mensaje_abandono: Option<String>,
    /// The keys a person may press during or after `mensaje_humano` (`timeout` and `intentos`
    /// always shown); `null`: no menu.
    pub menu: Option<MenuJson>,
    /// tras_beep | tras_saludo | no_dejar.
    #[schema(example = "tras_beep")]
    pub buzon: String,
    /// Seconds a person sent to agents waits for one to answer.
    #[schema(example = 2)]
    pub espera_agente_s: u32,
    /// Dates (in `zona_horaria`) on which the campaign never dials.
    #[schema(example = json!(["2026-12-25"]))]
    pub fechas_excluidas: Vec<String>,
    /// The campaign's own cap on attempts per number in any rolling 24 h; `null`: none (the
    /// service's `MAX_INTENTOS_DIA` still applies).
    pub max_intentos_dia: Option<u32>,
    /// Percent of the calls answered by a person (30 days) that may be abandoned: from 80 % of it
    /// the campaign slows down, at it the campaign pauses.
    #[schema(example = 3.0)]
    pub tasa_abandono_maxima: f64,
    pub creada: DateTime<Utc>,
    pub actualizada: DateTime<Utc>,
}

impl From<&Campaign> for CampaignView {
    fn from(c: &Campaign) -> Self {
        CampaignView {
            nombre: c.nombre.to_string(),
            tabla: c.tabla.to_string(),
            estado: c.estado.as_str().to_owned(),
            cps: c.cps.get(),
            max_canales: c.max_canales,
            reintentos: c.reintentos,
            intervalo_reintento: c.intervalo_reintento,
            amd: c.amd.as_str().to_owned(),
            amd_incierto: c.amd_incierto.as_str().to_owned(),
            amd_integrado: amd_params::to_json(&c.amd_integrado),
            destino_humano: c.destino_humano.as_str().to_owned(),
            destino_maquina: c.destino_maquina.as_str().to_owned(),
            caller_id: c.caller_id.as_ref().map(|p| p.to_string()),
            gateway: c.gateway.as_ref().map(|g| g.to_string()),
            timeout_llamada: c.timeout_llamada,
            hora_inicio: format_time(c.ventana.inicio),
            hora_fin: format_time(c.ventana.fin),
            dias: c.ventana.dias.names(),
            zona_horaria: c.ventana.zona.name().to_owned(),
            mensaje_humano: c.guion.mensaje_humano.as_ref().map(|p| p.to_string()),
            mensaje_maquina: c.guion.mensaje_maquina.as_ref().map(|p| p.to_string()),
            mensaje_baja: c.guion.mensaje_baja.as_ref().map(|p| p.to_string()),
            mensaje_abandono: c.guion.mensaje_abandono.as_ref().map(|p| p.to_string()),
            menu: c.guion.menu.as_ref().map(Menu::to_json),
            buzon: c.guion.buzon.as_str().to_owned(),
            espera_agente_s: c.guion.espera_agente_s,
            fechas_excluidas: c.reglas.fechas_excluidas.names(),
            max_intentos_dia: c.reglas.max_intentos_dia,
            tasa_abandono_maxima: c.reglas.tasa_abandono_maxima,
            creada: c.creada,
            actualizada: c.actualizada,
        }
    }
}

/// `null` → `Some(None)` (clear), absent → `None` (keep): lets PATCH clear an optional setting.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /campanas/`. Only `nombre` is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "Cuerpo de `POST /campanas/`. Solo `nombre` es obligatorio.")]
pub struct CampaignRequest {
    #[schema(example = "PRUEBA")]
    pub nombre: String,
    /// Adopt this existing table (needs at least `id` AUTO_INCREMENT and `telefono`) instead of
    /// creating one named after the campaign.
    pub tabla: Option<String>,
    #[serde(flatten)]
    pub ajustes: SettingsRequest,
}

/// Settings of a campaign, as `POST /campanas/` and `PATCH /campana/{nombre}` accept them.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(
    description = "Ajustes de una campaña, tal como los aceptan `POST /campanas/` y `PATCH /campana/{nombre}`."
)]
pub struct SettingsRequest {
    /// Calls per second, > 0 and ≤ 1000, fractional allowed. Default 1.
    #[schema(example = 5.0)]
    pub cps: Option<f64>,
    /// Extra attempts after the first, 0..=20. Default 2.
    pub reintentos: Option<i64>,
    /// Seconds between attempts, 0..=604800. Default 300.
    pub intervalo_reintento: Option<i64>,
    /// Live calls, 1..=10000. Default 10.
    pub max_canales: Option<i64>,
    /// ninguno | mod_amd | avmd | integrado. Default ninguno.
    pub amd: Option<String>,
    /// humano | maquina: where an inconclusive AMD goes. Default humano.
    pub amd_incierto: Option<String>,
    /// Parameters of the integrated detector (`amd: integrado`), any subset of
    /// `{"initial_silence_ms", "greeting_ms", "after_greeting_silence_ms", "total_analysis_ms",
    /// "min_word_ms", "between_words_silence_ms", "maximum_words", "maximum_word_ms",
    /// "silence_threshold"}`: the given ones change, the others keep their value (the defaults on
    /// create). Each has a range (see [`AmdParamsJson`]); `total_analysis_ms` must exceed
    /// `initial_silence_ms` and `greeting_ms`. Unknown fields are refused.
    #[schema(value_type = Option<AmdParamsJson>)]
    pub amd_integrado: Option<serde_json::Value>,
    /// Extension in context `discador` for people. Default `humano`.
    pub destino_humano: Option<String>,
    /// Extension for answering machines; empty hangs up. Default `maquina`.
    pub destino_maquina: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub caller_id: Option<Option<String>>,
    /// Gateway; absent or null: the service's `GATEWAY`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub gateway: Option<Option<String>>,
    /// Ring time, seconds, 15..=120. Default 30.
    pub timeout_llamada: Option<i64>,
    #[schema(example = "09:00")]
    pub hora_inicio: Option<String>,
    #[schema(example = "20:00")]
    pub hora_fin: Option<String>,
    pub dias: Option<Vec<String>>,
    /// IANA zone. Default UTC.
    #[schema(example = "America/Argentina/Buenos_Aires")]
    pub zona_horaria: Option<String>,
    /// Sound file played to a person once AMD says HUMANO: relative to FreeSWITCH's sounds
    /// directory (`ivr/bienvenida.wav`) or absolute; up to 255 characters of
    /// `[A-Za-z0-9/._+-]`, no `..`. Absent or null (default): a person goes straight to
    /// `destino_humano`. Null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, example = "ivr/bienvenida.wav")]
    pub mensaje_humano: Option<Option<String>>,
    /// Sound file left on an answering machine (when: see `buzon`); same rules as
    /// `mensaje_humano`. Absent or null (default): a machine goes to `destino_maquina`. Null
    /// clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mensaje_maquina: Option<Option<String>>,
    /// Sound file played after an opt-out (menu action `no_llamar`, which puts the number on the
    /// do-not-call list). Same rules as `mensaje_humano`; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mensaje_baja: Option<Option<String>>,
    /// Sound file played when a person sent to agents is not answered within `espera_agente_s`
    /// (the call is then abandoned). Same rules as `mensaje_humano`; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mensaje_abandono: Option<Option<String>>,
    /// Keys a person may press during or after `mensaje_humano` (which a menu needs):
    /// `{"opciones": {"1": {"accion": "transferir", "destino": "…"}, "9": {"accion":
    /// "no_llamar"}, "0": {"accion": "repetir"}}, "timeout": 5, "intentos": 2}`. Keys `0`–`9`, `*`,
    /// `#`; `transferir` needs `destino` (an extension of context `discador`, or a dial string to
    /// agents such as `sofia/gateway/gw_pstn/agente1`); `timeout` 1..=30 s (default 5), `intentos`
    /// 1..=5 (default 2). Unknown fields are refused. Null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<MenuJson>)]
    pub menu: Option<Option<serde_json::Value>>,
    /// How `mensaje_maquina` is left on an answering machine: tras_beep (default: after the beep,
    /// or after the greeting's silence when no beep comes) | tras_saludo (after the greeting's
    /// silence) | no_dejar (hang up).
    #[schema(example = "tras_beep")]
    pub buzon: Option<String>,
    /// Seconds a person sent to agents (menu `transferir` to a dial string) waits for one to
    /// answer before the call is abandoned, 1..=60. Default 2.
    #[schema(example = 2)]
    pub espera_agente_s: Option<i64>,
    /// Dates `AAAA-MM-DD` (in `zona_horaria`) on which the campaign never dials, at most 1000;
    /// null or `[]` clears them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["2026-12-25", "2027-01-01"]))]
    pub fechas_excluidas: Option<Option<serde_json::Value>>,
    /// The campaign's own cap on attempts per number in any rolling 24 h, 1..=50; null (default):
    /// none. `MAX_INTENTOS_DIA` of the service applies across campaigns besides.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, example = 3)]
    pub max_intentos_dia: Option<Option<serde_json::Value>>,
    /// Abandon-rate ceiling in percent of the calls answered by a person over 30 days, 0 < x ≤
    /// 100; default 3 (FTC TSR, Ofcom).
    #[schema(value_type = Option<f64>, example = 3.0)]
    pub tasa_abandono_maxima: Option<serde_json::Value>,
}

/// Body of `PATCH /campana/{nombre}`: any subset of the settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "Cuerpo de `PATCH /campana/{nombre}`: cualquier subconjunto de los ajustes."
)]
pub struct PatchRequest {
    #[serde(flatten)]
    pub ajustes: SettingsRequest,
}

fn bounded(l: Limit, v: Option<i64>) -> Result<Option<u32>, ApiError> {
    v.map(|v| l.check(v))
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// An optional sound file: absent keeps it, `null` clears it, a text must be an [`AudioPath`].
fn audio(
    field: &'static str,
    v: &Option<Option<String>>,
) -> Result<Option<Option<AudioPath>>, ApiError> {
    match v {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(p)) => Ok(Some(Some(
            AudioPath::parse(field, p).map_err(invalid(field))?,
        ))),
    }
}

/// The menu: absent keeps it, `null` clears it, an object must be a valid [`MenuJson`] (read here,
/// not by serde, so that a bad shape or an unknown field answers 400 naming `menu`).
fn menu(v: &Option<Option<serde_json::Value>>) -> Result<Option<Option<Menu>>, ApiError> {
    match v {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(raw)) => {
            let json: MenuJson = serde_json::from_value(raw.clone()).map_err(invalid("menu"))?;
            Ok(Some(Some(Menu::parse(&json).map_err(invalid("menu"))?)))
        }
    }
}

/// The integrated detector's parameters: absent keeps them, an object must be an
/// [`AmdParamsJson`] (read here, not by serde, so that a bad shape or an unknown field answers 400
/// naming `amd_integrado`) and is merged onto `base`.
fn amd_integrado(
    v: &Option<serde_json::Value>,
    base: &AmdParams,
) -> Result<Option<AmdParams>, ApiError> {
    let Some(raw) = v else { return Ok(None) };
    let json: AmdParamsJson =
        serde_json::from_value(raw.clone()).map_err(invalid("amd_integrado"))?;
    Ok(Some(
        amd_params::parse(base, &json).map_err(invalid("amd_integrado"))?,
    ))
}

fn invalid<E: std::fmt::Display>(field: &str) -> impl Fn(E) -> ApiError + '_ {
    move |e| {
        let msg = e.to_string();
        if msg.starts_with(field) {
            ApiError::invalid(msg)
        } else {
            ApiError::invalid(format!("{field}: {msg}"))
        }
    }
}

impl SettingsRequest {
    /// Parses every present field into a patch; the window is merged onto `base`, the integrated
    /// detector's parameters onto `amd`.
    pub fn to_patch(
        &self,
        base: &CallingWindow,
        amd: &AmdParams,
    ) -> Result<CampaignPatch, ApiError> {
        let ventana = if self.hora_inicio.is_some()
            || self.hora_fin.is_some()
            || self.dias.is_some()
            || self.zona_horaria.is_some()
        {
            let mut w = base.clone();
            if let Some(t) = &self.hora_inicio {
                w.inicio = parse_time("hora_inicio", t).map_err(invalid("hora_inicio"))?;
            }
            if let Some(t) = &self.hora_fin {
                w.fin = parse_time("hora_fin", t).map_err(invalid("hora_fin"))?;
            }
            if let Some(d) = &self.dias {
                w.dias = DaySet::parse(d).map_err(invalid("dias"))?;
            }
            if let Some(z) = &self.zona_horaria {
                w.zona = parse_zone(z).map_err(invalid("zona_horaria"))?;
            }
            Some(w)
        } else {
            None
        };
        Ok(CampaignPatch {
            cps: self
                .cps
                .map(Cps::parse)
                .transpose()
                .map_err(invalid("cps"))?,
            max_canales: bounded(MAX_CANALES, self.max_canales)?,
            reintentos: bounded(REINTENTOS, self.reintentos)?,
            intervalo_reintento: bounded(INTERVALO_REINTENTO, self.intervalo_reintento)?,
            amd: self
                .amd
                .as_deref()
                .map(AmdMode::parse)
                .transpose()
                .map_err(invalid("amd"))?,
            amd_incierto: self
                .amd_incierto
                .as_deref()
                .map(AmdNotSure::parse)
                .transpose()
                .map_err(invalid("amd_incierto"))?,
            amd_integrado: amd_integrado(&self.amd_integrado, amd)?,
            destino_humano: self
                .destino_humano
                .as_deref()
                .map(|d| Extension::parse("destino_humano", d))
                .transpose()
                .map_err(invalid("destino_humano"))?,
            destino_maquina: self
                .destino_maquina
                .as_deref()
                .map(|d| Extension::parse("destino_maquina", d))
                .transpose()
                .map_err(invalid("destino_maquina"))?,
            caller_id: match &self.caller_id {
                None => None,
                Some(None) => Some(None),
                Some(Some(c)) => Some(Some(PhoneNumber::parse(c).map_err(invalid("caller_id"))?)),
            },
            gateway: match &self.gateway {
                None => None,
                Some(None) => Some(None),
                Some(Some(g)) => Some(Some(Gateway::parse(g).map_err(invalid("gateway"))?)),
            },
            timeout_llamada: bounded(TIMEOUT_LLAMADA, self.timeout_llamada)?,
            ventana,
            mensaje_humano: audio("mensaje_humano", &self.mensaje_humano)?,
            mensaje_maquina: audio("mensaje_maquina", &self.mensaje_maquina)?,
            mensaje_baja: audio("mensaje_baja", &self.mensaje_baja)?,
            mensaje_abandono: audio("mensaje_abandono", &self.mensaje_abandono)?,
            menu: menu(&self.menu)?,
            buzon: self
                .buzon
                .as_deref()
                .map(Voicemail::parse)
                .transpose()
                .map_err(invalid("buzon"))?,
            espera_agente_s: bounded(ESPERA_AGENTE, self.espera_agente_s)?,
            fechas_excluidas: excluded_dates(&self.fechas_excluidas)?,
            max_intentos_dia: match &self.max_intentos_dia {
                None => None,
                Some(None) => Some(None),
                Some(Some(v)) => {
                    let n = v.as_i64().ok_or_else(|| {
                        ApiError::invalid("max_intentos_dia: debe ser un número entero")
                    })?;
                    Some(Some(
                        MAX_INTENTOS_DIA
                            .check(n)
                            .map_err(invalid("max_intentos_dia"))?,
                    ))
                }
            },
            tasa_abandono_maxima: self
                .tasa_abandono_maxima
                .as_ref()
                .map(|v| {
                    v.as_f64()
                        .ok_or(RulesError::BadRate)
                        .and_then(parse_abandon_ceiling)
                        .map_err(invalid("tasa_abandono_maxima"))
                })
                .transpose()?,
        })
    }
}

/// The excluded dates: absent keeps them, `null` clears them, otherwise an array of `AAAA-MM-DD`
/// texts (read here, not by serde, so that a bad shape answers 400 naming the field).
fn excluded_dates(
    v: &Option<Option<serde_json::Value>>,
) -> Result<Option<ExcludedDates>, ApiError> {
    match v {
        None => Ok(None),
        Some(None) => Ok(Some(ExcludedDates::default())),
        Some(Some(raw)) => {
            let list: Vec<String> = serde_json::from_value(raw.clone()).map_err(|_| {
                ApiError::invalid("fechas_excluidas: se espera una lista de fechas AAAA-MM-DD")
            })?;
            Ok(Some(
                ExcludedDates::parse(&list).map_err(invalid("fechas_excluidas"))?,
            ))
        }
    }
}

impl CampaignRequest {
    pub fn to_new(&self) -> Result<NewCampaign, ApiError> {
        let nombre = CampaignName::parse(&self.nombre).map_err(invalid("nombre"))?;
        let mut c = NewCampaign::new(nombre);
        c.tabla = self
            .tabla
            .as_deref()
            .map(TableName::parse)
            .transpose()
            .map_err(invalid("tabla"))?;
        let p = self.ajustes.to_patch(&c.ventana, &c.amd_integrado)?;
        // Reuse the patch logic on a throw-away campaign shape so defaults and overrides agree.
        c.cps = p.cps.unwrap_or(c.cps);
        c.max_canales = p.max_canales.unwrap_or(c.max_canales);
        c.reintentos = p.reintentos.unwrap_or(c.reintentos);
        c.intervalo_reintento = p.intervalo_reintento.unwrap_or(c.intervalo_reintento);
        c.amd = p.amd.unwrap_or(c.amd);
        c.amd_incierto = p.amd_incierto.unwrap_or(c.amd_incierto);
        c.amd_integrado = p.amd_integrado.unwrap_or(c.amd_integrado);
        c.destino_humano = p.destino_humano.unwrap_or(c.destino_humano);
        c.destino_maquina = p.destino_maquina.unwrap_or(c.destino_maquina);
        c.caller_id = p.caller_id.unwrap_or(c.caller_id);
        c.gateway = p.gateway.unwrap_or(c.gateway);
        c.timeout_llamada = p.timeout_llamada.unwrap_or(c.timeout_llamada);
        c.ventana = p.ventana.unwrap_or(c.ventana);
        let g = &mut c.guion;
        g.mensaje_humano = p.mensaje_humano.unwrap_or(g.mensaje_humano.take());
        g.mensaje_maquina = p.mensaje_maquina.unwrap_or(g.mensaje_maquina.take());
        g.mensaje_baja = p.mensaje_baja.unwrap_or(g.mensaje_baja.take());
        g.mensaje_abandono = p.mensaje_abandono.unwrap_or(g.mensaje_abandono.take());
        g.menu = p.menu.unwrap_or(g.menu.take());
        g.buzon = p.buzon.unwrap_or(g.buzon);
        g.espera_agente_s = p.espera_agente_s.unwrap_or(g.espera_agente_s);
        let r = &mut c.reglas;
        r.fechas_excluidas = p.fechas_excluidas.unwrap_or(r.fechas_excluidas.clone());
        r.max_intentos_dia = p.max_intentos_dia.unwrap_or(r.max_intentos_dia);
        r.tasa_abandono_maxima = p.tasa_abandono_maxima.unwrap_or(r.tasa_abandono_maxima);
        c.guion
            .check()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(c)
    }
}

/// Body of `/discador/iniciar/`, `/pausar/`, `/reanudar/`, `/detener/`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "Cuerpo de `/discador/iniciar/`, `/pausar/`, `/reanudar/`, `/detener/`.")]
pub struct DialerRequest {
    #[schema(example = "PRUEBA")]
    pub nombre_campana: String,
    /// Only for `iniciar`: overrides (and saves) the campaign's cps.
    #[schema(example = 5.0)]
    pub cps: Option<f64>,
}

/// Answer of the dialer commands.
#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Respuesta de los comandos del discador.")]
pub struct DialerReply {
    pub campana: String,
    pub estado: String,
    pub mensaje: String,
}

/// Counters of `GET /discador/estado/{nombre}`. The seed's keys (total, completados, pendientes,
/// errores) are kept; total = completados + pendientes + errores + en_curso (+ otros, only non-zero
/// for a hand-edited adopted table).
#[derive(Debug, Serialize, ToSchema)]
#[schema(
    description = "Contadores de `GET /discador/estado/{nombre}`. Se conservan las claves del sistema original (total, completados, pendientes, errores); total = completados + pendientes + errores + en_curso (+ otros, distinto de cero solo en una tabla adoptada editada a mano)."
)]
pub struct Estadisticas {
    pub total: u64,
    pub completados: u64,
    pub pendientes: u64,
    pub errores: u64,
    /// MARCANDO + CONTESTADO.
    pub en_curso: u64,
    pub marcando: u64,
    pub contestados: u64,
    pub humanos: u64,
    pub maquinas: u64,
    /// Rows with an unknown `estado` (only in hand-edited adopted tables).
    pub otros: u64,
    /// Calls whose person heard the whole message (disposition ESCUCHO), over all attempts (the
    /// CDRs of `llamadas`).
    pub escucharon: u64,
    /// Calls transferred (TRANSFERIDA): an agent answered, or the call went to a dialplan
    /// extension.
    pub transferidos: u64,
    /// Calls sent to agents that none answered within `espera_agente_s` (ABANDONADA).
    pub abandonados: u64,
    /// People who asked not to be called again (BAJA; the number went onto the do-not-call list).
    pub bajas: u64,
    /// Messages left whole on an answering machine (MENSAJE_DEJADO).
    pub mensajes_dejados: u64,
    /// `abandonados` per 100 calls answered by a person (result HUMANO), 2 decimals; 0 when no
    /// person answered yet. The abandonment rate that FTC TSR / Ofcom limit.
    #[schema(example = 1.25)]
    pub tasa_abandono: f64,
    /// The campaign's abandon-rate ceiling (`tasa_abandono_maxima`), percent over 30 days.
    #[schema(example = 3.0)]
    pub tasa_abandono_maxima: f64,
    /// Pending numbers that wait for their calling window to open in their own time zone.
    pub esperan_horario: u64,
    /// Pending numbers that wait for the attempts cap per rolling 24 h (`MAX_INTENTOS_DIA` or
    /// `max_intentos_dia`) to let them be called again.
    pub esperan_tope_diario: u64,
    /// Pending numbers that wait because today is one of `fechas_excluidas` (all of them, on such a
    /// day; 0 otherwise).
    pub esperan_fecha_excluida: u64,
    pub cps_configurado: f64,
    /// Live figures from the dialer (e.g. `cps_real`, `llamadas_activas`) when it is running.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub en_vivo: serde_json::Map<String, serde_json::Value>,
}

impl Estadisticas {
    pub fn new(
        s: &NumberStats,
        d: &DispositionCounts,
        c: &Campaign,
        live: Option<serde_json::Map<String, serde_json::Value>>,
        excluded_today: bool,
    ) -> Self {
        Estadisticas {
            total: s.total,
            completados: s.completados,
            pendientes: s.pendientes,
            errores: s.errores,
            en_curso: s.marcando + s.contestados,
            marcando: s.marcando,
            contestados: s.contestados,
            humanos: s.humanos,
            maquinas: s.maquinas,
            otros: s.otros(),
            escucharon: d.escucharon,
            transferidos: d.transferidos,
            abandonados: d.abandonados,
            bajas: d.bajas,
            mensajes_dejados: d.mensajes_dejados,
            tasa_abandono: d.tasa_abandono(),
            tasa_abandono_maxima: c.reglas.tasa_abandono_maxima,
            esperan_horario: s.esperan_horario,
            esperan_tope_diario: s.esperan_tope_diario,
            esperan_fecha_excluida: if excluded_today { s.pendientes } else { 0 },
            cps_configurado: c.cps.get(),
            en_vivo: live.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Respuesta de `GET /discador/estado/{nombre}`.")]
pub struct EstadoReply {
    #[schema(example = "PRUEBA")]
    pub campana: String,
    #[schema(example = "ACTIVA")]
    pub estado: String,
    /// Why the service itself paused the campaign (e.g. FreeSWITCH lacks its AMD module, or refuses
    /// its gateway); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motivo: Option<String>,
    /// The `PROCESO_ID` of the process that runs the campaign (its lease owner, alive); null when
    /// no process runs it. With several processes on one database, estado reads the same on all.
    #[schema(example = "discador-1")]
    pub proceso: Option<String>,
    pub estadisticas: Estadisticas,
    /// The campaign's live calls per FreeSWITCH node (in this process).
    #[schema(value_type = Object, example = json!({"fs1": 3, "fs2": 2}))]
    pub llamadas_por_nodo: std::collections::BTreeMap<String, usize>,
}

/// One refused line of an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(description = "Una línea rechazada de una carga.")]
pub struct ErrorLinea {
    /// Line of the CSV (1 = header) or position in the JSON array (1-based).
    pub linea: u64,
    /// The value as received (truncated to 64 characters).
    pub valor: String,
    pub motivo: String,
}

/// Answer of `POST /campana/{nombre}/numeros`.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(description = "Respuesta de `POST /campana/{nombre}/numeros`.")]
pub struct CargaReply {
    pub insertados: u64,
    /// Already in the campaign (or repeated in the file).
    pub duplicados: u64,
    pub invalidos: u64,
    /// The first 100 refused lines.
    pub errores: Vec<ErrorLinea>,
}

/// JSON form of a number import: `{"numeros": [{"telefono": "…", …}]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    description = "Forma JSON de una carga de números: `{\"numeros\": [{\"telefono\": \"…\", …}]}`."
)]
pub struct NumerosJson {
    #[schema(value_type = Vec<Object>)]
    pub numeros: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(description = "Respuesta de `GET /health`.")]
pub struct HealthReply {
    /// `ok`, or `degradado` when a dependency is down.
    pub estado: &'static str,
    /// `ok` or `no_disponible`.
    pub base_de_datos: &'static str,
    /// The store in use: `sqlite` or `mysql`.
    pub motor_base_de_datos: &'static str,
    /// The ESL connection to FreeSWITCH: `conectado`, `conectando`, `desconectado` or
    /// `clave_incorrecta` (absent when this process does not dial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeswitch: Option<&'static str>,
    /// FreeSWITCH's answer to `module_exists` for the AMD modules, asked at every connection:
    /// `true` / `false`, `null` while not connected (absent when this process does not dial).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"mod_amd": true, "mod_avmd": false}))]
    pub modulos: Option<crate::dialer::node::Modules>,
    /// Each FreeSWITCH node (absent when this process does not dial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodos: Option<Vec<super::nodes::NodoView>>,
    /// `recuperando` until the calls of the previous run are accounted for (campaigns cannot be
    /// started or resumed meanwhile: 503), then `listo` (absent when this process does not dial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arranque: Option<&'static str>,
}

/// Body of `POST /dnc/`: numbers never to be called (any campaign).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    description = "Cuerpo de `POST /dnc/`: números que no se deben llamar nunca (en ninguna campaña)."
)]
pub struct DncRequest {
    #[schema(example = json!(["+5491144445555", "011 4444-5556"]))]
    pub telefonos: Vec<String>,
}

/// Answer of `POST /dnc/`.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(description = "Respuesta de `POST /dnc/`.")]
pub struct DncReply {
    /// Numbers added to the list.
    pub agregados: u64,
    /// Numbers that were on the list already.
    pub ya_estaban: u64,
    pub invalidos: u64,
    /// The refused values (first 100), `linea` = 1-based position in `telefonos`.
    pub errores: Vec<ErrorLinea>,
}
