//! States and results, spelled exactly as the database and the API show them.

use crate::domain::settings::text_enum;

/// A text that is not one of a state enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: valor desconocido {value:?} (se espera uno de {expected:?})")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

text_enum!(
    /// Life of one number: PENDIENTE → MARCANDO (claimed, originate in flight) → CONTESTADO (call up)
    /// → COMPLETADO; back to PENDIENTE when a retry is due; ERROR when it must not be retried.
    NumberState {
        Pendiente => "PENDIENTE",
        Marcando => "MARCANDO",
        Contestado => "CONTESTADO",
        Completado => "COMPLETADO",
        Error => "ERROR",
    }
);

text_enum!(
    /// Why a number ended where it did.
    CallResult {
        Humano => "HUMANO",
        Maquina => "MAQUINA",
        NoContesta => "NO_CONTESTA",
        Ocupado => "OCUPADO",
        Rechazada => "RECHAZADA",
        NumeroInvalido => "NUMERO_INVALIDO",
        FallaRed => "FALLA_RED",
        NoLlamar => "NO_LLAMAR",
        Cancelada => "CANCELADA",
        /// Answered, but the call never reached its destination: FreeSWITCH died, the event socket
        /// was lost or the controller failed before it handed the call on. Nobody heard the
        /// message, so it is a counted attempt that is retried, never a COMPLETADO.
        Interrumpida => "INTERRUMPIDA",
    }
);

text_enum!(
    /// Life of a campaign. CREADA → ACTIVA ⇄ PAUSADA → DETENIDA; FINALIZADA when nothing is left.
    CampaignState {
        Creada => "CREADA",
        Activa => "ACTIVA",
        Pausada => "PAUSADA",
        Detenida => "DETENIDA",
        Finalizada => "FINALIZADA",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in NumberState::ALL {
            assert_eq!(NumberState::parse(s.as_str()), Ok(*s));
        }
        for r in CallResult::ALL {
            assert_eq!(CallResult::parse(r.as_str()), Ok(*r));
            let json = serde_json::to_string(r).unwrap(); // enums always serialize
            assert_eq!(serde_json::from_str::<CallResult>(&json).ok(), Some(*r));
        }
        for c in CampaignState::ALL {
            assert_eq!(CampaignState::parse(c.as_str()), Ok(*c));
        }
        assert_eq!(CallResult::NoContesta.as_str(), "NO_CONTESTA");
        assert!(NumberState::parse("pendiente").is_err());
    }
}
