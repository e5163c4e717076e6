//! The rows both backends read and write, and their conversion to and from domain types.
//!
//! Every struct here is checked against MySQL and SQLite alike: the SQL types used (`BigInt`,
//! `Integer`, `Double`, `Text`, `Time`, `Timestamp`) mean the same on both.

use chrono::{DateTime, NaiveDateTime, NaiveTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use super::schema::{bases, intentos_telefono, llamadas};
use super::{
    CallRecord, Campaign, ClaimedNumber, DispositionCounts, InFlight, NumberStats, StoreError,
    TableName,
};
use crate::domain::{
    amd_params, parse_zone, AmdMode, AmdNotSure, AudioPath, CallResult, CallingRules,
    CallingWindow, CampaignName, CampaignState, Cps, DaySet, Extension, Gateway, Menu, NumberState,
    PhoneNumber, Script, Voicemail, ESPERA_AGENTE,
};

/// Now, at the millisecond precision of `DATETIME(3)`, so a returned campaign equals the stored one.
pub(super) fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// A time as bound to a query: UTC, truncated to the millisecond. MySQL's `DATETIME(3)` keeps
/// milliseconds; on SQLite the text form then always has 0 or 3 decimals, so text order is time
/// order (`proximo_intento <= ?` compares text there).
pub(super) fn to_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.trunc_subsecs(3).naive_utc()
}

pub(super) fn from_naive(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

pub(super) fn to_u32(field: &str, v: i32) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Database(format!("{field} negativo en la base: {v}")))
}

/// Settings and counters are stored as `INT`; every bounded setting is ≤ 604 800 (see
/// domain::settings), far below `i32::MAX`.
pub(super) fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = bases)]
#[diesel(check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub(super) struct BaseRow {
    nombre: String,
    tabla: String,
    cps: f64,
    max_canales: i32,
    reintentos: i32,
    intervalo_reintento: i32,
    amd: String,
    amd_incierto: String,
    destino_humano: String,
    destino_maquina: String,
    caller_id: Option<String>,
    gateway: Option<String>,
    timeout_llamada: i32,
    hora_inicio: NaiveTime,
    hora_fin: NaiveTime,
    dias: String,
    zona_horaria: String,
    estado: String,
    creada: NaiveDateTime,
    actualizada: NaiveDateTime,
    motivo: Option<String>,
    mensaje_humano: Option<String>,
    mensaje_maquina: Option<String>,
    mensaje_baja: Option<String>,
    mensaje_abandono: Option<String>,
    /// JSON (`MenuJson`).
    menu: Option<String>,
    buzon: String,
    espera_agente_s: i32,
    /// JSON (`AmdParamsJson`); NULL: the defaults.
    amd_integrado: Option<String>,
    /// JSON (`CallingRules`); NULL: the defaults.
    reglas: Option<String>,
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = bases)]
#[diesel(treat_none_as_null = true)]
pub(super) struct BaseValues<'a> {
    nombre: &'a str,
    tabla: &'a str,
    cps: f64,
    max_canales: i32,
    reintentos: i32,
    intervalo_reintento: i32,
    amd: &'a str,
    amd_incierto: &'a str,
    destino_humano: &'a str,
    destino_maquina: &'a str,
    caller_id: Option<&'a str>,
    gateway: Option<&'a str>,
    timeout_llamada: i32,
    hora_inicio: NaiveTime,
    hora_fin: NaiveTime,
    dias: String,
    zona_horaria: &'a str,
    estado: &'a str,
    creada: NaiveDateTime,
    actualizada: NaiveDateTime,
    motivo: Option<&'a str>,
    mensaje_humano: Option<&'a str>,
    mensaje_maquina: Option<&'a str>,
    mensaje_baja: Option<&'a str>,
    mensaje_abandono: Option<&'a str>,
    menu: Option<String>,
    buzon: &'a str,
    espera_agente_s: i32,
    amd_integrado: Option<String>,
    reglas: Option<String>,
}

impl<'a> BaseValues<'a> {
    pub(super) fn of(c: &'a Campaign) -> Self {
        BaseValues {
            nombre: c.nombre.as_str(),
            tabla: c.tabla.as_str(),
            cps: c.cps.get(),
            max_canales: to_i32(c.max_canales),
            reintentos: to_i32(c.reintentos),
            intervalo_reintento: to_i32(c.intervalo_reintento),
            amd: c.amd.as_str(),
            amd_incierto: c.amd_incierto.as_str(),
            destino_humano: c.destino_humano.as_str(),
            destino_maquina: c.destino_maquina.as_str(),
            caller_id: c.caller_id.as_ref().map(|p| p.as_str()),
            gateway: c.gateway.as_ref().map(|g| g.as_str()),
            timeout_llamada: to_i32(c.timeout_llamada),
            hora_inicio: c.ventana.inicio,
            hora_fin: c.ventana.fin,
            dias: c.ventana.dias.to_csv(),
            zona_horaria: c.ventana.zona.name(),
            estado: c.estado.as_str(),
            creada: to_naive(c.creada),
            actualizada: to_naive(c.actualizada),
            motivo: c.motivo.as_deref(),
            mensaje_humano: c.guion.mensaje_humano.as_ref().map(AudioPath::as_str),
            mensaje_maquina: c.guion.mensaje_maquina.as_ref().map(AudioPath::as_str),
            mensaje_baja: c.guion.mensaje_baja.as_ref().map(AudioPath::as_str),
            mensaje_abandono: c.guion.mensaje_abandono.as_ref().map(AudioPath::as_str),
            menu: c.guion.menu.as_ref().map(Menu::to_db),
            buzon: c.guion.buzon.as_str(),
            espera_agente_s: to_i32(c.guion.espera_agente_s),
            amd_integrado: amd_params::to_db(&c.amd_integrado),
            reglas: c.reglas.to_db(),
        }
    }
}

impl TryFrom<BaseRow> for Campaign {
    type Error = StoreError;

    /// A row edited by hand into something invalid is reported, never trusted.
    fn try_from(r: BaseRow) -> Result<Self, StoreError> {
        let bad = |what: &str, e: String| {
            StoreError::Database(format!(
                "fila inválida en bases ({}): {what}: {e}",
                r.nombre
            ))
        };
        let guion = script(&r)?;
        let amd_integrado = amd_params::from_db(r.amd_integrado.as_deref())
            .map_err(|e| invalid_row(&r.nombre, "amd_integrado", e))?;
        let reglas = CallingRules::from_db(r.reglas.as_deref())
            .map_err(|e| invalid_row(&r.nombre, "reglas", e))?;
        Ok(Campaign {
            nombre: CampaignName::parse(&r.nombre).map_err(|e| bad("nombre", e.to_string()))?,
            tabla: TableName::parse(&r.tabla).map_err(|e| bad("tabla", e.to_string()))?,
            cps: Cps::parse(r.cps).map_err(|e| bad("cps", e.to_string()))?,
            max_canales: to_u32("max_canales", r.max_canales)?,
            reintentos: to_u32("reintentos", r.reintentos)?,
            intervalo_reintento: to_u32("intervalo_reintento", r.intervalo_reintento)?,
            amd: AmdMode::parse(&r.amd).map_err(|e| bad("amd", e.to_string()))?,
            amd_incierto: AmdNotSure::parse(&r.amd_incierto)
                .map_err(|e| bad("amd_incierto", e.to_string()))?,
            amd_integrado,
            destino_humano: Extension::parse("destino_humano", &r.destino_humano)
                .map_err(|e| bad("destino_humano", e.to_string()))?,
            destino_maquina: Extension::parse("destino_maquina", &r.destino_maquina)
                .map_err(|e| bad("destino_maquina", e.to_string()))?,
            caller_id: r
                .caller_id
                .as_deref()
                .map(PhoneNumber::parse)
                .transpose()
                .map_err(|e| bad("caller_id", e.to_string()))?,
            gateway: r
                .gateway
                .as_deref()
                .map(Gateway::parse)
                .transpose()
                .map_err(|e| bad("gateway", e.to_string()))?,
            timeout_llamada: to_u32("timeout_llamada", r.timeout_llamada)?,
            ventana: CallingWindow {
                inicio: r.hora_inicio,
                fin: r.hora_fin,
                dias: DaySet::parse_csv(&r.dias).map_err(|e| bad("dias", e.to_string()))?,
                zona: parse_zone(&r.zona_horaria)
                    .map_err(|e| bad("zona_horaria", e.to_string()))?,
            },
            estado: CampaignState::parse(&r.estado).map_err(|e| bad("estado", e.to_string()))?,
            creada: from_naive(r.creada),
            actualizada: from_naive(r.actualizada),
            motivo: r.motivo,
            guion,
            reglas,
        })
    }
}

/// A `bases` value of campaign `nombre` that no longer parses, as `Invalid` naming the campaign and
/// the field (`e` may already start with it, e.g. `amd_integrado.greeting_ms: …`).
fn invalid_row(nombre: &str, field: &str, e: String) -> StoreError {
    let e = if e.starts_with(field) {
        e
    } else {
        format!("{field}: {e}")
    };
    StoreError::Invalid(format!("campaña {nombre} inválida en bases: {e}"))
}

/// The script of a `bases` row. A value that no longer parses (edited by hand, or written by a
/// version with other rules) is `Invalid` naming the campaign and the field.
fn script(r: &BaseRow) -> Result<Script, StoreError> {
    let bad = |field: &str, e: String| invalid_row(&r.nombre, field, e);
    let audio = |field: &'static str, raw: &Option<String>| {
        raw.as_deref()
            .map(|p| AudioPath::parse(field, p))
            .transpose()
            .map_err(|e| bad(field, e.to_string()))
    };
    Ok(Script {
        mensaje_humano: audio("mensaje_humano", &r.mensaje_humano)?,
        mensaje_maquina: audio("mensaje_maquina", &r.mensaje_maquina)?,
        mensaje_baja: audio("mensaje_baja", &r.mensaje_baja)?,
        mensaje_abandono: audio("mensaje_abandono", &r.mensaje_abandono)?,
        menu: r
            .menu
            .as_deref()
            .map(Menu::from_db)
            .transpose()
            .map_err(|e| bad("menu", e))?,
        buzon: Voicemail::parse(&r.buzon).map_err(|e| bad("buzon", e.to_string()))?,
        espera_agente_s: ESPERA_AGENTE
            .check(i64::from(r.espera_agente_s))
            .map_err(|e| bad("espera_agente_s", e.to_string()))?,
    })
}

/// One CDR row of `llamadas`.
#[derive(Insertable)]
#[diesel(table_name = llamadas)]
pub(super) struct NewCall<'a> {
    campana: &'a str,
    numero_id: i64,
    telefono: &'a str,
    intento: i32,
    uuid: &'a str,
    nodo: &'a str,
    estado: &'a str,
    resultado: &'a str,
    causa: Option<&'a str>,
    amd_resultado: Option<&'a str>,
    amd_causa: Option<&'a str>,
    inicio: NaiveDateTime,
    contestada: Option<NaiveDateTime>,
    fin: NaiveDateTime,
    billsec: i32,
    duracion: i32,
    disposicion: Option<&'static str>,
    mensaje_ms: Option<i32>,
    teclas: Option<&'a str>,
    accion: Option<&'static str>,
    transferida_a: Option<&'a str>,
    agente_contesto: Option<bool>,
    tras_beep_ms: Option<i32>,
    amd_inicial: Option<&'a str>,
}

/// `s` cut to at most `n` characters (the width of its `VARCHAR`): a CDR is never refused for a
/// value longer than its column (MySQL's strict mode would fail the writer's whole batch).
fn fit(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

impl<'a> From<&'a CallRecord> for NewCall<'a> {
    fn from(r: &'a CallRecord) -> Self {
        let d = r.disposicion.as_ref();
        NewCall {
            campana: r.campana.as_str(),
            numero_id: r.numero_id,
            telefono: &r.telefono,
            intento: to_i32(r.intento),
            uuid: &r.uuid,
            nodo: &r.nodo,
            estado: r.estado.as_str(),
            resultado: r.resultado.as_str(),
            causa: r.causa.as_deref(),
            amd_resultado: r.amd_resultado.as_deref(),
            amd_causa: r.amd_causa.as_deref(),
            inicio: to_naive(r.inicio),
            contestada: r.contestada.map(to_naive),
            fin: to_naive(r.fin),
            billsec: to_i32(r.billsec),
            duracion: to_i32(r.duracion),
            disposicion: d.map(|d| d.disposicion.as_str()),
            mensaje_ms: d.and_then(|d| d.mensaje_ms).map(to_i32),
            teclas: d.map(|d| fit(&d.teclas, 32)).filter(|t| !t.is_empty()),
            accion: d.and_then(|d| d.accion).map(|a| fit(a, 16)),
            transferida_a: d
                .and_then(|d| d.transferida_a.as_deref())
                .map(|t| fit(t, 255)),
            agente_contesto: d.and_then(|d| d.agente_contesto),
            tras_beep_ms: d
                .and_then(|d| d.tras_beep_ms)
                .map(|ms| ms.clamp(i32::MIN.into(), i32::MAX.into()) as i32),
            amd_inicial: r.amd_inicial.as_deref().map(|a| fit(a, 16)),
        }
    }
}

/// `SELECT COUNT(*) AS n`.
#[derive(QueryableByName)]
pub(super) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(super) n: i64,
}

/// A single id (or a 0/1 flag selected `AS id`).
#[derive(QueryableByName)]
pub(super) struct IdRow {
    #[diesel(sql_type = BigInt)]
    pub(super) id: i64,
}

/// The result of [`super::sql::stats`].
#[derive(QueryableByName)]
pub(super) struct StatsRow {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    pendientes: i64,
    #[diesel(sql_type = BigInt)]
    marcando: i64,
    #[diesel(sql_type = BigInt)]
    contestados: i64,
    #[diesel(sql_type = BigInt)]
    completados: i64,
    #[diesel(sql_type = BigInt)]
    errores: i64,
    #[diesel(sql_type = BigInt)]
    humanos: i64,
    #[diesel(sql_type = BigInt)]
    maquinas: i64,
    #[diesel(sql_type = BigInt)]
    esperan_horario: i64,
    #[diesel(sql_type = BigInt)]
    esperan_tope_diario: i64,
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl From<StatsRow> for NumberStats {
    fn from(r: StatsRow) -> Self {
        NumberStats {
            total: count(r.total),
            pendientes: count(r.pendientes),
            esperan_horario: count(r.esperan_horario),
            esperan_tope_diario: count(r.esperan_tope_diario),
            marcando: count(r.marcando),
            contestados: count(r.contestados),
            completados: count(r.completados),
            errores: count(r.errores),
            humanos: count(r.humanos),
            maquinas: count(r.maquinas),
        }
    }
}

/// The result of [`super::sql::disposition_counts`].
#[derive(QueryableByName)]
pub(super) struct DispositionRow {
    #[diesel(sql_type = BigInt)]
    escucharon: i64,
    #[diesel(sql_type = BigInt)]
    transferidos: i64,
    #[diesel(sql_type = BigInt)]
    abandonados: i64,
    #[diesel(sql_type = BigInt)]
    bajas: i64,
    #[diesel(sql_type = BigInt)]
    mensajes_dejados: i64,
    #[diesel(sql_type = BigInt)]
    atendidas_por_persona: i64,
}

impl From<DispositionRow> for DispositionCounts {
    fn from(r: DispositionRow) -> Self {
        DispositionCounts {
            escucharon: count(r.escucharon),
            transferidos: count(r.transferidos),
            abandonados: count(r.abandonados),
            bajas: count(r.bajas),
            mensajes_dejados: count(r.mensajes_dejados),
            atendidas_por_persona: count(r.atendidas_por_persona),
        }
    }
}

/// A number just claimed (see [`super::sql::claimed`]).
#[derive(QueryableByName)]
pub(super) struct ClaimRow {
    #[diesel(sql_type = BigInt)]
    pub(super) id: i64,
    #[diesel(sql_type = Text)]
    telefono: String,
    #[diesel(sql_type = Integer)]
    intentos: i32,
    #[diesel(sql_type = Nullable<Text>)]
    uuid: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    datos: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    zona_horaria: Option<String>,
}

/// `datos` is JSON text; a hand-edited value that is not JSON is passed on as a JSON string.
fn parse_datos(raw: Option<String>) -> Option<serde_json::Value> {
    raw.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
}

impl TryFrom<ClaimRow> for ClaimedNumber {
    type Error = StoreError;
    fn try_from(r: ClaimRow) -> Result<Self, StoreError> {
        Ok(ClaimedNumber {
            id: r.id,
            telefono: r.telefono,
            intentos: to_u32("intentos", r.intentos)?,
            uuid: r
                .uuid
                .as_deref()
                .and_then(|u| uuid::Uuid::parse_str(u).ok()),
            datos: parse_datos(r.datos),
            // A zone edited by hand into something unknown: the campaign's zone applies, as for a
            // number without one.
            zona: r.zona_horaria.as_deref().and_then(|z| parse_zone(z).ok()),
        })
    }
}

/// A number in flight (see [`super::sql::in_flight`]).
#[derive(QueryableByName)]
pub(super) struct InFlightRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    telefono: String,
    #[diesel(sql_type = Text)]
    estado: String,
    #[diesel(sql_type = Nullable<Text>)]
    uuid: Option<String>,
    #[diesel(sql_type = Integer)]
    intentos: i32,
    #[diesel(sql_type = Nullable<Timestamp>)]
    ultimo_intento: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    resultado: Option<String>,
}

impl TryFrom<InFlightRow> for InFlight {
    type Error = StoreError;
    fn try_from(r: InFlightRow) -> Result<Self, StoreError> {
        Ok(InFlight {
            id: r.id,
            telefono: r.telefono,
            estado: NumberState::parse(&r.estado)
                .map_err(|e| StoreError::Database(e.to_string()))?,
            uuid: r.uuid,
            intentos: to_u32("intentos", r.intentos)?,
            ultimo_intento: r.ultimo_intento.map(from_naive),
            // A result this attempt's controller recorded when it handed the call on (see
            // `NumberUpdate::Delivered`); anything else in the column is an older attempt's.
            entregada: r
                .resultado
                .as_deref()
                .and_then(|s| CallResult::parse(s).ok())
                .filter(|r| matches!(r, CallResult::Humano | CallResult::Maquina))
                .filter(|_| r.estado == "CONTESTADO"),
        })
    }
}

/// A numbers-table row exactly as stored (the columns discador owns), for copying a campaign to
/// another database. Times are UTC.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct NumberRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub telefono: String,
    #[diesel(sql_type = Text)]
    pub estado: String,
    #[diesel(sql_type = Integer)]
    pub intentos: i32,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub proximo_intento: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub ultimo_intento: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resultado: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub causa: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub uuid: Option<String>,
    #[diesel(sql_type = Integer)]
    pub duracion: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub datos: Option<String>,
    /// The last attempt's disposition (see [`crate::domain::Disposition`]).
    #[diesel(sql_type = Nullable<Text>)]
    pub disposicion: Option<String>,
    /// The number's own IANA zone (`None`: the campaign's).
    #[diesel(sql_type = Nullable<Text>)]
    pub zona_horaria: Option<String>,
    /// Why a PENDIENTE number waits (HORARIO, TOPE_DIARIO), if it does.
    #[diesel(sql_type = Nullable<Text>)]
    pub espera: Option<String>,
}

/// A `llamadas` (CDR) row exactly as stored, id included, for copying to another database and
/// for the CDR export (read by name there: [`super::sql::cdr_page`]).
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = llamadas)]
#[diesel(check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct CdrRow {
    pub id: i64,
    pub campana: String,
    pub numero_id: i64,
    pub telefono: String,
    pub intento: i32,
    pub uuid: String,
    pub nodo: String,
    pub estado: String,
    pub resultado: String,
    pub causa: Option<String>,
    pub amd_resultado: Option<String>,
    pub amd_causa: Option<String>,
    pub inicio: NaiveDateTime,
    pub contestada: Option<NaiveDateTime>,
    pub fin: NaiveDateTime,
    pub billsec: i32,
    pub duracion: i32,
    pub disposicion: Option<String>,
    pub mensaje_ms: Option<i32>,
    pub teclas: Option<String>,
    pub accion: Option<String>,
    pub transferida_a: Option<String>,
    pub agente_contesto: Option<bool>,
    pub tras_beep_ms: Option<i32>,
    pub amd_inicial: Option<String>,
}

/// The result of [`super::sql::cdr_span`].
#[derive(QueryableByName)]
pub(super) struct SpanRow {
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(super) desde: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(super) hasta: Option<NaiveDateTime>,
}

/// One point of [`super::sql::cdr_buckets`].
#[derive(QueryableByName)]
pub(super) struct BucketRow {
    #[diesel(sql_type = BigInt)]
    pub(super) punto: i64,
    #[diesel(sql_type = BigInt)]
    pub(super) intentos: i64,
    #[diesel(sql_type = BigInt)]
    pub(super) contestadas: i64,
}

/// One line of [`super::sql::result_counts`].
#[derive(QueryableByName)]
pub(super) struct ResultCountRow {
    #[diesel(sql_type = Text)]
    pub(super) resultado: String,
    #[diesel(sql_type = BigInt)]
    pub(super) n: i64,
}

/// A do-not-call entry as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::dnc)]
#[diesel(check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct DncRow {
    pub telefono: String,
    pub creado: NaiveDateTime,
}

/// One zone of [`super::sql::pending_zones`] (NULL: the campaign's).
#[derive(QueryableByName)]
pub(super) struct ZoneRow {
    #[diesel(sql_type = Nullable<Text>)]
    pub(super) zona_horaria: Option<String>,
}

/// One attempt of [`super::sql::attempts_since`].
#[derive(QueryableByName)]
pub(super) struct AttemptRow {
    #[diesel(sql_type = Text)]
    pub(super) telefono: String,
    #[diesel(sql_type = Text)]
    pub(super) campana: String,
    #[diesel(sql_type = Timestamp)]
    pub(super) momento: NaiveDateTime,
}

impl From<AttemptRow> for super::Attempt {
    fn from(r: AttemptRow) -> Self {
        super::Attempt {
            telefono: r.telefono,
            campana: r.campana,
            momento: from_naive(r.momento),
        }
    }
}

/// [`super::sql::abandon_counts`].
#[derive(QueryableByName)]
pub(super) struct AbandonRow {
    #[diesel(sql_type = BigInt)]
    abandonados: i64,
    #[diesel(sql_type = BigInt)]
    atendidas: i64,
}

impl AbandonRow {
    /// `(abandoned, answered by a person)`.
    pub(super) fn counts(&self) -> (u64, u64) {
        (count(self.abandonados), count(self.atendidas))
    }
}

/// An `intentos_telefono` row exactly as stored, id included, for copying to another database.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = intentos_telefono)]
#[diesel(check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
pub struct AttemptCopyRow {
    pub id: i64,
    pub telefono: String,
    pub campana: String,
    pub uuid: String,
    pub momento: NaiveDateTime,
}
