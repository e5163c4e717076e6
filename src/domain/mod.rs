//! Parse-don't-validate domain types.
//!
//! Every value that comes from outside (HTTP, CSV, the database a user edits by hand) is turned into
//! one of these types at the edge; past that point a bad value cannot exist. Each type has `parse`
//! (or `TryFrom`), `as_str` where it has a text form, and serde through that text form, so the JSON
//! and the database see exactly the same spelling.
//!
//! Error messages are in Spanish: they go straight into the API's `mensaje`.

pub mod amd_params;
mod names;
pub mod number_zone;
pub mod outcome;
mod phone;
mod rate;
pub mod rules;
mod script;
mod settings;
pub mod states;
mod window;

pub use amd_params::AmdParamsJson;
pub use names::{CampaignName, NameError, TableName};
pub use number_zone::derive_zone;
pub use phone::{mask, PhoneError, PhoneNumber};
pub use rate::{Cps, CpsError};
pub use rules::{CallingRules, ExcludedDates, Wait};
pub use script::{
    AudioPath, CallDisposition, DialTarget, Disposition, Menu, MenuAction, MenuJson, MenuKey,
    MenuOptionJson, Script, TransferTarget, Voicemail, ESPERA_AGENTE, MENU_INTENTOS, MENU_TIMEOUT,
};
pub use settings::{
    AmdMode, AmdNotSure, Extension, Gateway, Limit, SettingError, INTERVALO_REINTENTO, MAX_CANALES,
    REINTENTOS, TIMEOUT_LLAMADA,
};
pub use states::{CallResult, CampaignState, NumberState, UnknownState};
pub use window::{
    first_instant, format_time, parse_time, parse_zone, CallingWindow, DaySet, Weekday, WindowError,
};
