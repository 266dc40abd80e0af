//! Code shared by the integration tests.
pub(crate) mod golden;
pub(crate) mod qclient;
pub(crate) mod runner;
pub(crate) mod scenario;
