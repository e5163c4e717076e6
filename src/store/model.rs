//! What the store reads and writes, in domain types.

use chrono::{DateTime, Utc};

use crate::amd::AmdParams;

use crate::domain::{
    AmdMode, AmdNotSure, AudioPath, CallDisposition, CallResult, CallingRules, CallingWindow,
    CampaignName, CampaignState, Cps, ExcludedDates, Extension, Gateway, Menu, NumberState,
    PhoneNumber, Script, TableName, Voicemail, INTERVALO_REINTENTO, MAX_CANALES, REINTENTOS,
    TIMEOUT_LLAMADA,
};

/// A campaign as stored in `bases`.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub nombre: CampaignName,
    /// Its numbers table (the campaign's own name unless it adopted another table).
    pub tabla: TableName,
    pub cps: Cps,
    pub max_canales: u32,
    /// Extra attempts after the first one.
    pub reintentos: u32,
    /// Seconds between two attempts of one number.
    pub intervalo_reintento: u32,
    pub amd: AmdMode,
    pub amd_incierto: AmdNotSure,
    /// Parameters of the integrated detector (`amd: integrado`); the defaults unless changed.
    pub amd_integrado: AmdParams,
    pub destino_humano: Extension,
    /// Empty: hang up on machines.
    pub destino_maquina: Extension,
    pub caller_id: Option<PhoneNumber>,
    /// `None`: the service's `GATEWAY`.
    pub gateway: Option<Gateway>,
    /// Ring time, seconds.
    pub timeout_llamada: u32,
    pub ventana: CallingWindow,
    pub estado: CampaignState,
    pub creada: DateTime<Utc>,
    pub actualizada: DateTime<Utc>,
    /// Why the service itself moved the campaign to its state (e.g. paused because FreeSWITCH lacks
    /// its AMD module); `None` when an operator did. Shown in estado.
    pub motivo: Option<String>,
    /// What is played and done on an answered call (messages, menu, voicemail).
    pub guion: Script,
    /// Excluded dates, attempts per day, abandon ceiling.
    pub reglas: CallingRules,
}

impl Campaign {
    /// Whether a person's verdict is watched for a late voicemail beep (see the controller's
    /// `late_beep`): the campaign plays `mensaje_humano` (what a wrong HUMAN verdict plays into
    /// a machine's greeting, and the time in which its beep can still be heard) and would treat a
    /// machine otherwise, with its own message or its own destination. A campaign that treats
    /// both alike has nothing to correct.
    pub fn watches_late_beep(&self) -> bool {
        self.amd != AmdMode::Ninguno
            && self.guion.mensaje_humano.is_some()
            && (self.guion.mensaje_maquina.is_some() || self.destino_maquina != self.destino_humano)
    }
}

/// What `create_campaign` needs; [`NewCampaign::new`] fills the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    pub nombre: CampaignName,
    /// `Some`: adopt (or create) this table instead of one named after the campaign.
    pub tabla: Option<TableName>,
    pub cps: Cps,
    pub max_canales: u32,
    pub reintentos: u32,
    pub intervalo_reintento: u32,
    pub amd: AmdMode,
    pub amd_incierto: AmdNotSure,
    pub amd_integrado: AmdParams,
    pub destino_humano: Extension,
    pub destino_maquina: Extension,
    pub caller_id: Option<PhoneNumber>,
    pub gateway: Option<Gateway>,
    pub timeout_llamada: u32,
    pub ventana: CallingWindow,
    pub guion: Script,
    pub reglas: CallingRules,
}

impl NewCampaign {
    /// A campaign with every default: 1 CPS, 10 channels, 2 retries 300 s apart, no AMD (the
    /// integrated detector's parameters at their defaults), destinations
    /// `humano` / `maquina`, 30 s ring time, 09:00–21:00 UTC every day, no script.
    pub fn new(nombre: CampaignName) -> Self {
        NewCampaign {
            nombre,
            tabla: None,
            cps: Cps::default(),
            max_canales: MAX_CANALES.default,
            reintentos: REINTENTOS.default,
            intervalo_reintento: INTERVALO_REINTENTO.default,
            amd: AmdMode::default(),
            amd_incierto: AmdNotSure::default(),
            amd_integrado: AmdParams::default(),
            destino_humano: Extension::named("humano"),
            destino_maquina: Extension::named("maquina"),
            caller_id: None,
            gateway: None,
            timeout_llamada: TIMEOUT_LLAMADA.default,
            ventana: CallingWindow::default(),
            guion: Script::default(),
            reglas: CallingRules::default(),
        }
    }
}

impl NewCampaign {
    /// The campaign as [`Store::create_campaign`](super::Store::create_campaign) stores it: these
    /// settings in table `tabla`, state CREADA, created at `now`.
    pub fn created(&self, tabla: TableName, now: DateTime<Utc>) -> Campaign {
        Campaign {
            nombre: self.nombre.clone(),
            tabla,
            cps: self.cps,
            max_canales: self.max_canales,
            reintentos: self.reintentos,
            intervalo_reintento: self.intervalo_reintento,
            amd: self.amd,
            amd_incierto: self.amd_incierto,
            amd_integrado: self.amd_integrado.clone(),
            destino_humano: self.destino_humano.clone(),
            destino_maquina: self.destino_maquina.clone(),
            caller_id: self.caller_id.clone(),
            gateway: self.gateway.clone(),
            timeout_llamada: self.timeout_llamada,
            ventana: self.ventana.clone(),
            estado: CampaignState::Creada,
            creada: now,
            actualizada: now,
            motivo: None,
            guion: self.guion.clone(),
            reglas: self.reglas.clone(),
        }
    }
}

/// A change of settings; `None` leaves a field as it is. For the optional settings, `Some(None)`
/// clears them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignPatch {
    pub cps: Option<Cps>,
    pub max_canales: Option<u32>,
    pub reintentos: Option<u32>,
    pub intervalo_reintento: Option<u32>,
    pub amd: Option<AmdMode>,
    pub amd_incierto: Option<AmdNotSure>,
    /// The whole parameter set (the API merges a partial change onto the current one).
    pub amd_integrado: Option<AmdParams>,
    pub destino_humano: Option<Extension>,
    pub destino_maquina: Option<Extension>,
    pub caller_id: Option<Option<PhoneNumber>>,
    pub gateway: Option<Option<Gateway>>,
    pub timeout_llamada: Option<u32>,
    pub ventana: Option<CallingWindow>,
    pub mensaje_humano: Option<Option<AudioPath>>,
    pub mensaje_maquina: Option<Option<AudioPath>>,
    pub mensaje_baja: Option<Option<AudioPath>>,
    pub mensaje_abandono: Option<Option<AudioPath>>,
    pub menu: Option<Option<Menu>>,
    pub buzon: Option<Voicemail>,
    pub espera_agente_s: Option<u32>,
    pub fechas_excluidas: Option<ExcludedDates>,
    pub max_intentos_dia: Option<Option<u32>>,
    pub tasa_abandono_maxima: Option<f64>,
}

impl CampaignPatch {
    pub fn apply_to(&self, c: &mut Campaign) {
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        set(&mut c.cps, &self.cps);
        set(&mut c.max_canales, &self.max_canales);
        set(&mut c.reintentos, &self.reintentos);
        set(&mut c.intervalo_reintento, &self.intervalo_reintento);
        set(&mut c.amd, &self.amd);
        set(&mut c.amd_incierto, &self.amd_incierto);
        set(&mut c.amd_integrado, &self.amd_integrado);
        set(&mut c.destino_humano, &self.destino_humano);
        set(&mut c.destino_maquina, &self.destino_maquina);
        set(&mut c.caller_id, &self.caller_id);
        set(&mut c.gateway, &self.gateway);
        set(&mut c.timeout_llamada, &self.timeout_llamada);
        set(&mut c.ventana, &self.ventana);
        let g = &mut c.guion;
        set(&mut g.mensaje_humano, &self.mensaje_humano);
        set(&mut g.mensaje_maquina, &self.mensaje_maquina);
        set(&mut g.mensaje_baja, &self.mensaje_baja);
        set(&mut g.mensaje_abandono, &self.mensaje_abandono);
        set(&mut g.menu, &self.menu);
        set(&mut g.buzon, &self.buzon);
        set(&mut g.espera_agente_s, &self.espera_agente_s);
        let r = &mut c.reglas;
        set(&mut r.fechas_excluidas, &self.fechas_excluidas);
        set(&mut r.max_intentos_dia, &self.max_intentos_dia);
        set(&mut r.tasa_abandono_maxima, &self.tasa_abandono_maxima);
    }
}

/// One number to load; `datos` are the import's other columns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNumber {
    pub telefono: PhoneNumber,
    pub datos: Option<serde_json::Value>,
    /// The number's own zone (given, or derived from the number); `None`: the campaign's.
    pub zona: Option<chrono_tz::Tz>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertCounts {
    pub inserted: u64,
    /// Already in the campaign (or twice in the same batch).
    pub duplicates: u64,
}

/// Per-state counts of one campaign, read in one statement so they add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NumberStats {
    pub total: u64,
    pub pendientes: u64,
    /// PENDIENTE numbers waiting for their calling window (in their own zone).
    pub esperan_horario: u64,
    /// PENDIENTE numbers waiting for the attempts cap per rolling 24 h.
    pub esperan_tope_diario: u64,
    pub marcando: u64,
    pub contestados: u64,
    pub completados: u64,
    pub errores: u64,
    /// Numbers whose last result is HUMANO / MAQUINA.
    pub humanos: u64,
    pub maquinas: u64,
}

impl NumberStats {
    /// Rows whose `estado` is none of the five states (only possible in an adopted table edited by
    /// hand); reported so that the counts still add up to `total`.
    pub fn otros(&self) -> u64 {
        self.total.saturating_sub(
            self.pendientes + self.marcando + self.contestados + self.completados + self.errores,
        )
    }
}

/// How a campaign's answered calls ended, counted over its CDRs (`llamadas`) in one statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispositionCounts {
    /// ESCUCHO: the person heard the whole message.
    pub escucharon: u64,
    /// TRANSFERIDA: an agent answered, or the call went to a dialplan extension.
    pub transferidos: u64,
    /// ABANDONADA: sent to agents, none answered in time.
    pub abandonados: u64,
    /// BAJA: the person asked not to be called again.
    pub bajas: u64,
    /// MENSAJE_DEJADO: the message was left on a machine.
    pub mensajes_dejados: u64,
    /// Calls whose result is HUMANO: the base of the abandonment rate.
    pub atendidas_por_persona: u64,
}

impl DispositionCounts {
    /// Abandoned calls per 100 calls answered by a person, to 2 decimals; 0 when none was.
    pub fn tasa_abandono(&self) -> f64 {
        if self.atendidas_por_persona == 0 {
            return 0.0;
        }
        let pct = 100.0 * self.abandonados as f64 / self.atendidas_por_persona as f64;
        (pct * 100.0).round() / 100.0
    }
}

/// An attempt recorded for the caps per rolling 24 h (`intentos_telefono`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub telefono: String,
    pub campana: String,
    pub momento: DateTime<Utc>,
}

/// A number claimed for dialing (now MARCANDO).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedNumber {
    pub id: i64,
    /// Raw text from the table (users may write it directly): the dialer parses it.
    pub telefono: String,
    /// Attempts made before this one.
    pub intentos: u32,
    /// Fresh per claim; becomes the call's `origination_uuid`. `None` only if the row was edited by
    /// hand between the claim and its reading (the dialer then records the number without a call).
    pub uuid: Option<uuid::Uuid>,
    pub datos: Option<serde_json::Value>,
    /// The number's own zone; `None`: the campaign's.
    pub zona: Option<chrono_tz::Tz>,
}

/// A number in MARCANDO or CONTESTADO: a call the dialer must know about after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub id: i64,
    pub telefono: String,
    pub estado: NumberState,
    pub uuid: Option<String>,
    pub intentos: u32,
    pub ultimo_intento: Option<DateTime<Utc>>,
    /// `Some(HUMANO | MAQUINA)`: the controller handed this attempt to its destination before the
    /// service stopped (recorded by [`NumberUpdate::Delivered`]).
    pub entregada: Option<CallResult>,
}

/// The final record of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub campana: CampaignName,
    pub tabla: TableName,
    pub numero_id: i64,
    pub telefono: String,
    /// Attempt number (1 for the first call); stored as the number's `intentos`.
    pub intento: u32,
    pub uuid: String,
    /// FreeSWITCH node that carried the call.
    pub nodo: String,
    /// COMPLETADO, PENDIENTE (a retry is due at `proximo_intento`) or ERROR.
    pub estado: NumberState,
    pub resultado: CallResult,
    /// FreeSWITCH hangup cause.
    pub causa: Option<String>,
    pub amd_resultado: Option<String>,
    pub amd_causa: Option<String>,
    /// The first verdict (HUMAN, NOTSURE) when a late voicemail beep corrected it to MACHINE
    /// (`amd_causa` LATE_BEEP); `None` when the verdict stood.
    pub amd_inicial: Option<String>,
    pub proximo_intento: Option<DateTime<Utc>>,
    pub inicio: DateTime<Utc>,
    pub contestada: Option<DateTime<Utc>>,
    pub fin: DateTime<Utc>,
    pub billsec: u32,
    pub duracion: u32,
    /// How an answered call ended under the campaign's script; `None` for a call that was not
    /// answered (or that no script followed). Stored on the number (`disposicion`) and in the CDR.
    pub disposicion: Option<CallDisposition>,
}

/// One write of the batched writer.
// The size difference is fine: updates travel in short-lived Vecs, and a plain `CallRecord` keeps the
// writer's code simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum NumberUpdate {
    /// MARCANDO → CONTESTADO.
    Answered { tabla: TableName, id: i64 },
    /// An attempt is over: update the number, append a `llamadas` row.
    Finished(CallRecord),
    /// The controller handed an answered call to its destination as `resultado` (HUMANO / MAQUINA):
    /// recorded on the number (still CONTESTADO) so that recovery after a crash of this process
    /// knows the call was delivered even if its end was never seen.
    Delivered {
        tabla: TableName,
        id: i64,
        uuid: String,
        resultado: CallResult,
    },
    /// The originate of attempt `uuid` is being sent now: `ultimo_intento` is set to `at`. Until
    /// then a claimed number's `ultimo_intento` is NULL, which is how recovery after a crash tells
    /// a number that was only claimed (its call never sent: back to PENDIENTE, no attempt) from a
    /// call that ended while nobody listened (a counted attempt).
    Sent {
        tabla: TableName,
        id: i64,
        uuid: String,
        at: DateTime<Utc>,
    },
    /// The originate never left FreeSWITCH (refused with no channel: sessions-per-second,
    /// max-sessions, a gateway it does not know): MARCANDO → PENDIENTE, due at `proximo`, without
    /// counting an attempt and without a CDR. Only the attempt `uuid` is touched.
    Requeued {
        tabla: TableName,
        id: i64,
        uuid: String,
        proximo: DateTime<Utc>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandonment_rate() {
        let c = |abandonados, atendidas_por_persona| DispositionCounts {
            abandonados,
            atendidas_por_persona,
            ..DispositionCounts::default()
        };
        assert_eq!(c(0, 0).tasa_abandono(), 0.0);
        assert_eq!(c(3, 0).tasa_abandono(), 0.0);
        assert_eq!(c(1, 3).tasa_abandono(), 33.33);
        assert_eq!(c(2, 3).tasa_abandono(), 66.67);
        assert_eq!(c(5, 5).tasa_abandono(), 100.0);
    }
}
