//! discador: a campaign dialer for FreeSWITCH.
//!
//! The data path of one call, top to bottom:
//! [`api`] → [`dialer`] → [`esl`] → FreeSWITCH → [`controller`] → [`dialer::tracker`] → [`store`].

pub mod amd;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod controller;
pub mod copy;
pub mod demo;
pub mod dialer;
pub mod domain;
pub mod esl;
pub mod events;
pub mod metrics;
pub mod procesos;
pub mod secret;
pub mod sim;
pub mod store;
pub mod telemetry;
