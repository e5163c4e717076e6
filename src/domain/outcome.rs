//! What a FreeSWITCH hangup cause means for a number: the one table that maps causes to results.
//!
//! Only an *unanswered* attempt is classified here; an answered call's result comes from AMD
//! (`HUMANO` / `MAQUINA`). The table is deliberately explicit, cause by cause, because a cause mapped
//! to the wrong result is the mistake that costs call centers the most: an invalid number retried
//! forever, or a busy number given up on after one try.

use super::states::CallResult;

/// Maps an unanswered attempt's hangup cause (FreeSWITCH's `Hangup-Cause`, or the cause after `-ERR`
/// in a BACKGROUND_JOB) to its result. Unknown causes count as a network failure: retried, because
/// giving up on a reachable number is worse than one more attempt.
pub fn result_for_cause(cause: &str) -> CallResult {
    match cause.trim() {
        // The line was busy.
        "USER_BUSY" => CallResult::Ocupado,
        // Rang without answer; the carrier's or our own ring timer ran out.
        "NO_ANSWER" | "NO_USER_RESPONSE" | "ALLOTTED_TIMEOUT" | "SUBSCRIBER_ABSENT"
        | "PROGRESS_TIMEOUT" => CallResult::NoContesta,
        // The callee (or their handset) declined.
        "CALL_REJECTED" => CallResult::Rechazada,
        // The number itself is wrong: never retried.
        "UNALLOCATED_NUMBER"
        | "NO_ROUTE_DESTINATION"
        | "INVALID_NUMBER_FORMAT"
        | "NUMBER_CHANGED"
        | "INCOMPATIBLE_DESTINATION" => CallResult::NumeroInvalido,
        // Our side or the network: retried.
        "NORMAL_TEMPORARY_FAILURE"
        | "NETWORK_OUT_OF_ORDER"
        | "GATEWAY_DOWN"
        | "RECOVERY_ON_TIMER_EXPIRE"
        | "NORMAL_CIRCUIT_CONGESTION"
        | "SWITCH_CONGESTION"
        | "DESTINATION_OUT_OF_ORDER"
        | "REQUESTED_CHAN_UNAVAIL"
        | "SERVICE_UNAVAILABLE"
        | "EXCHANGE_ROUTING_ERROR"
        | "NO_ROUTE_TRANSIT_NET"
        | "MEDIA_TIMEOUT"
        | "USER_NOT_REGISTERED"
        | "SYSTEM_SHUTDOWN"
        | "NORMAL_UNSPECIFIED"
        | "DISCADOR_RECUPERADO" => CallResult::FallaRed,
        // We (or an operator) ended the attempt before an answer.
        "ORIGINATOR_CANCEL" | "MANAGER_REQUEST" | "LOSE_RACE" => CallResult::Cancelada,
        _ => CallResult::FallaRed,
    }
}

/// Whether a number whose attempt ended with `result` may be dialed again (within its attempt cap).
/// Successful contacts are never redialed; invalid and do-not-call numbers never are either.
pub fn is_retryable(result: CallResult) -> bool {
    match result {
        CallResult::Humano
        | CallResult::Maquina
        | CallResult::NumeroInvalido
        | CallResult::NoLlamar => false,
        CallResult::NoContesta
        | CallResult::Ocupado
        | CallResult::Rechazada
        | CallResult::FallaRed
        | CallResult::Cancelada
        | CallResult::Interrumpida => true,
    }
}

/// What an originate that FreeSWITCH answered `-ERR <CAUSE>` *without ever creating a channel*
/// means. Such a call never left the switch, so it is not an attempt of the number (with one
/// exception, below); the real switch answers this way when it is over `sessions-per-second` or
/// `max-sessions` (`DESTINATION_OUT_OF_ORDER`), or when the dial string names a gateway, profile or
/// endpoint it does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The switch (or the gateway) is busy right now: the number goes back to the queue after a
    /// short delay and the dialer slows down.
    Capacity,
    /// The campaign is configured for something this FreeSWITCH does not have: dialing more of it
    /// would fail the same way, so the campaign is paused with the cause for an operator to fix.
    Configuration,
    /// The cause is about the number itself (e.g. `INVALID_NUMBER_FORMAT`): an attempt like any
    /// other, classified by [`result_for_cause`], so that a bad number cannot be requeued forever.
    Number,
}

/// Classifies a `-ERR` cause of an originate that created no channel.
pub fn refusal(cause: &str) -> Refusal {
    match cause.trim() {
        "INVALID_GATEWAY"
        | "INVALID_PROFILE"
        | "INVALID_URL"
        | "CHAN_NOT_IMPLEMENTED"
        | "SERVICE_NOT_IMPLEMENTED"
        | "FACILITY_NOT_IMPLEMENTED"
        | "BEARERCAPABILITY_NOTIMPL" => Refusal::Configuration,
        other if result_for_cause(other) == CallResult::NumeroInvalido => Refusal::Number,
        _ => Refusal::Capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cause the design names, one by one, with the result and retry rule it must get.
    #[test]
    fn causes_map_to_results_one_by_one() {
        let table = [
            ("USER_BUSY", CallResult::Ocupado, true),
            ("NO_ANSWER", CallResult::NoContesta, true),
            ("NO_USER_RESPONSE", CallResult::NoContesta, true),
            ("ALLOTTED_TIMEOUT", CallResult::NoContesta, true),
            ("CALL_REJECTED", CallResult::Rechazada, true),
            ("UNALLOCATED_NUMBER", CallResult::NumeroInvalido, false),
            ("NO_ROUTE_DESTINATION", CallResult::NumeroInvalido, false),
            ("INVALID_NUMBER_FORMAT", CallResult::NumeroInvalido, false),
            ("NORMAL_TEMPORARY_FAILURE", CallResult::FallaRed, true),
            ("NETWORK_OUT_OF_ORDER", CallResult::FallaRed, true),
            ("GATEWAY_DOWN", CallResult::FallaRed, true),
            ("RECOVERY_ON_TIMER_EXPIRE", CallResult::FallaRed, true),
            ("NORMAL_CIRCUIT_CONGESTION", CallResult::FallaRed, true),
            ("SWITCH_CONGESTION", CallResult::FallaRed, true),
            ("ORIGINATOR_CANCEL", CallResult::Cancelada, true),
            ("SOMETHING_NEW_IN_1_12", CallResult::FallaRed, true),
            (" USER_BUSY\n", CallResult::Ocupado, true),
        ];
        for (cause, result, retry) in table {
            assert_eq!(result_for_cause(cause), result, "cause {cause:?}");
            assert_eq!(
                is_retryable(result_for_cause(cause)),
                retry,
                "cause {cause:?}"
            );
        }
    }

    #[test]
    fn refusals_without_a_channel_by_cause() {
        for c in [
            "DESTINATION_OUT_OF_ORDER",
            "SWITCH_CONGESTION",
            "GATEWAY_DOWN",
            "NEW_ONE",
        ] {
            assert_eq!(refusal(c), Refusal::Capacity, "{c}");
        }
        for c in [
            "INVALID_GATEWAY",
            "INVALID_PROFILE",
            "INVALID_URL",
            "CHAN_NOT_IMPLEMENTED",
        ] {
            assert_eq!(refusal(c), Refusal::Configuration, "{c}");
        }
        for c in ["INVALID_NUMBER_FORMAT", "UNALLOCATED_NUMBER"] {
            assert_eq!(refusal(c), Refusal::Number, "{c}");
        }
        assert!(is_retryable(CallResult::Interrumpida));
    }

    #[test]
    fn contacts_and_blocked_numbers_are_never_retried() {
        for r in [
            CallResult::Humano,
            CallResult::Maquina,
            CallResult::NoLlamar,
            CallResult::NumeroInvalido,
        ] {
            assert!(!is_retryable(r), "{r:?}");
        }
    }
}
