//! The FreeSWITCH Event Socket protocol, and nothing else: framing ([`codec`]), messages
//! ([`frame`], [`event`]), typed commands ([`command`]), the inbound client ([`inbound`]) and the
//! outbound-socket server ([`outbound`]). No dialer knowledge lives here.

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
