//! discador's integration tests, one module per area, in one test binary: one link of the
//! library instead of one per area (on a 2-core machine each extra binary cost minutes).
//!
//! - `api`, `copy`, `recovery`, `dialer`, `export` (CDR export and charts): the real app against
//!   MariaDB and SQLite, calls through the FreeSWITCH simulator; `store`: the store itself on both
//!   backends;
//! - `esl`, `sim`, `controller`: the protocol layer, the simulator, and the controller against
//!   frames captured from FreeSWITCH 1.10.12;
//! - `real_switch`: whole campaigns against a real FreeSWITCH 1.10.12 (`../shared/freeswitch/`);
//!   `script`: the campaign's message, menu, voicemail drop and abandon rule there, checked on
//!   the carrier's recordings of what each called party heard;
//! - `late_beep`: a wrong HUMAN verdict corrected by a voicemail beep during the person's message,
//!   and `sit`: the network's Special Information Tone, an invalid number, on the real switch;
//! - `amd_set`: the labeled AMD set (`scripts/amd-set/`) through the real switch, with its report;
//!   `amd_corpus`: a sample of the AMD corpus's held-out test split (`scripts/amd-corpus/`) there;
//! - `freeswitch_conf`, `cli`: the shipped configuration and the command line;
//! - `metrics`: `/metrics` against the estado and CDR counts, and the API's rate limit;
//! - `nodes`, `procesos`, `cluster`: several FreeSWITCH nodes, several discador processes on one
//!   MariaDB, and both at once with real switches and real `kill -9`s.

mod common;

mod amd_corpus;
mod amd_set;
mod api;
mod cli;
mod cluster;
mod controller;
mod copy;
mod dialer;
mod esl;
mod export;
mod freeswitch_conf;
mod late_beep;
mod metrics;
mod nodes;
mod panel;
mod procesos;
mod real_switch;
mod recovery;
mod rules;
mod script;
mod sim;
mod sit;
mod store;
