//! Pairing a cluster with this server: the sans-IO parts.
//!
//! * [`token`]: pairing windows and `ID.SECRET` tokens.
//! * [`corosync_conf`]: the corosync.conf editor (add / remove `quorum.device`).
pub mod corosync_conf;
pub mod token;
