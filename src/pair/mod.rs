//! Pairing a cluster with this server: the sans-IO parts.
//!
//! * [`token`]: pairing windows and `ID.SECRET` tokens.
//! * [`pin`]: the SPKI pin of the server certificate for `curl --pinnedpubkey`.
//! * [`corosync_conf`]: the corosync.conf editor (add / remove `quorum.device`).
pub mod corosync_conf;
pub mod pin;
pub mod token;
