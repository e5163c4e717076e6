//! discador: a campaign dialer for FreeSWITCH.
//!
//! The data path of one call, top to bottom:
//! [`api`] → [`dialer`] → [`esl`] → FreeSWITCH → [`controller`] → [`dialer::tracker`] → [`store`].

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod store;
pub mod telemetry;
