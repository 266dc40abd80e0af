//! Code shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "test support code, shared by several test binaries that each use a part"
)]

pub mod golden;
pub mod harness;
pub(crate) mod qclient;
pub(crate) mod runner;
pub(crate) mod scenario;
pub mod server;
