//! The daemon test binary: our real `qnetd` binary on loopback (plain and
//! TLS sessions, the management socket, the add-on mode) and, `#[ignore]`d
//! because they need root (`make test-ignored`), the real NSS and OpenSSL
//! clients against it.

#[path = "../support/mod.rs"]
mod support;

mod addon;
mod loopback;
mod mgmt_socket;
mod nss_interop;
pub(crate) mod pairing;
pub(crate) mod tls_loopback;
