//! Code shared by the integration tests.
#![allow(
    unreachable_pub,
    reason = "test support code, shared by several test binaries"
)]

pub mod golden;
pub mod server;
