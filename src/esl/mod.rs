//! The FreeSWITCH Event Socket protocol, and nothing else: framing ([`codec`]), messages
//! ([`frame`], [`event`]), typed commands ([`command`]), the inbound client ([`inbound`]) and the
//! outbound-socket server ([`outbound`]). No dialer knowledge lives here.
//!
//! The two ends of a call, as the dialer uses them:
//!
//! ```no_run
//! use std::time::Duration;
//! use discador::config::Secret;
//! use discador::esl::{EventFormat, InboundClient, InboundConfig, JobResult, OutboundConfig, OutboundServer};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Inbound: one connection, originates with our own Job-UUID, events for everyone.
//! let fs = InboundClient::start(InboundConfig {
//!     addr: "127.0.0.1:8021".into(),
//!     password: Secret::new("ClueCon"),
//!     events: vec!["CHANNEL_ANSWER".into(), "CHANNEL_HANGUP_COMPLETE".into()],
//!     format: EventFormat::Plain,
//!     backoff_min: Duration::from_millis(500),
//!     backoff_max: Duration::from_secs(30),
//!     command_timeout: Duration::from_secs(5),
//! });
//! fs.wait_connected(Duration::from_secs(10)).await?;
//! let mut events = fs.events();
//! let job = fs.bgapi("originate sofia/gateway/gw_pstn/5551234 &park()", uuid::Uuid::new_v4()).await?;
//! match job.await? {
//!     JobResult::Ok(channel_uuid) => println!("ringing: {channel_uuid}"),
//!     JobResult::Err(cause) => println!("failed: {cause}"), // USER_BUSY, NO_ANSWER, …
//! }
//! let _first = events.recv().await?;
//!
//! // Outbound: FreeSWITCH's `socket` application connects here, one session per answered call.
//! let cfg = OutboundConfig { max_sessions: 500, idle_timeout: Duration::from_secs(60) };
//! let (server, _addr) = OutboundServer::bind("127.0.0.1:8084", cfg).await?;
//! let stop = CancellationToken::new();
//! server
//!     .run(
//!         |mut call| async move {
//!             if call.myevents().await.is_err() || call.linger(10).await.is_err() {
//!                 return;
//!             }
//!             let _ = call.execute("amd", "").await;
//!             if call.variable("amd_result") == Some("MACHINE") {
//!                 let _ = call.execute("playback", "/var/lib/discador/mensaje.wav").await;
//!             }
//!             let _ = call.hangup("NORMAL_CLEARING").await;
//!         },
//!         stop,
//!     )
//!     .await;
//! # Ok(())
//! # }
//! ```

pub mod codec;
pub mod command;
pub mod error;
pub mod event;
pub mod frame;
pub mod inbound;
pub mod outbound;
pub mod urlenc;

pub use codec::{CommandCodec, EslCodec, FrameLimits, RawCommand};
pub use command::{
    Api, Auth, BgApi, Command, EventFormat, Filter, Linger, MyEvents, NixEvent, SendMsg, Subscribe,
    UnicastTransport,
};
pub use error::EslError;
pub use event::Event;
pub use frame::{Frame, FrameKind};
pub use inbound::{BgJob, ConnState, InboundClient, InboundConfig, JobResult};
pub use outbound::{OutboundConfig, OutboundServer, OutboundSession};
