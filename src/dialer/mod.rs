//! The dialer: one runner per running campaign, pacing, originates, the call tracker and the
//! batched store writer.

pub mod pacing;
