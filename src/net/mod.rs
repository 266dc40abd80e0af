//! The I/O shell around the sans-IO core.

pub mod tls;
