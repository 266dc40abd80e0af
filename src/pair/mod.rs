//! Pairing a cluster with this server: the sans-IO parts.
//!
//! * [`token`]: pairing windows and `ID.SECRET` tokens.
pub mod token;
