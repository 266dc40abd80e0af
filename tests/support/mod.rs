//! Code shared by the integration tests.
pub(crate) mod golden;
pub(crate) mod qclient;
