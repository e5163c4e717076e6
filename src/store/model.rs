//! What the store reads and writes, in domain types.

use chrono::{DateTime, Utc};

use crate::domain::{
    AmdMode, AmdNotSure, CallResult, CallingWindow, CampaignName, CampaignState, Cps, Extension,
    Gateway, NumberState, PhoneNumber, TableName, INTERVALO_REINTENTO, MAX_CANALES, REINTENTOS,
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
    pub destino_humano: Extension,
    pub destino_maquina: Extension,
    pub caller_id: Option<PhoneNumber>,
    pub gateway: Option<Gateway>,
    pub timeout_llamada: u32,
    pub ventana: CallingWindow,
}

impl NewCampaign {
    /// A campaign with every default: 1 CPS, 10 channels, 2 retries 300 s apart, no AMD, destinations
    /// `humano` / `maquina`, 30 s ring time, 09:00–21:00 UTC every day.
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
            destino_humano: Extension::named("humano"),
            destino_maquina: Extension::named("maquina"),
            caller_id: None,
            gateway: None,
            timeout_llamada: TIMEOUT_LLAMADA.default,
            ventana: CallingWindow::default(),
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
    pub destino_humano: Option<Extension>,
    pub destino_maquina: Option<Extension>,
    pub caller_id: Option<Option<PhoneNumber>>,
    pub gateway: Option<Option<Gateway>>,
    pub timeout_llamada: Option<u32>,
    pub ventana: Option<CallingWindow>,
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
        set(&mut c.destino_humano, &self.destino_humano);
        set(&mut c.destino_maquina, &self.destino_maquina);
        set(&mut c.caller_id, &self.caller_id);
        set(&mut c.gateway, &self.gateway);
        set(&mut c.timeout_llamada, &self.timeout_llamada);
        set(&mut c.ventana, &self.ventana);
    }
}

/// One number to load; `datos` are the import's other columns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNumber {
    pub telefono: PhoneNumber,
    pub datos: Option<serde_json::Value>,
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
    pub proximo_intento: Option<DateTime<Utc>>,
    pub inicio: DateTime<Utc>,
    pub contestada: Option<DateTime<Utc>>,
    pub fin: DateTime<Utc>,
    pub billsec: u32,
    pub duracion: u32,
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
