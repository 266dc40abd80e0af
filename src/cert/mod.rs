//! The certificate side of TLS (cf. `corosync-qnetd-certutil`): the names a
//! client certificate carries, and the server's certificate store.
//!
//! ```text
//!   name    PeerNames of a DER certificate (x509-parser); the check itself
//!           is the engine's (qnetd_engine::core::certname)
//!   policy  NSS-like checks of client chains on top of webpki (pathLen,
//!           keyUsage)
//!   store   CertStore: the directory layout, state, init, signing, loading
//!   lock    exclusive flock(2) on the store directory
//!   atomic  crash-safe file writes (temp file, fsync, rename, fsync dir)
//!   issue   key generation and certificate issuing with rcgen
//!   import_nss  the reference's NSS database into the store (pk12util, openssl)
//!   index   the index of issued certificates (serial, cluster, node, time, state)
//! ```
//!
//! No sockets and no clock except the wall clock for certificate validity.

mod atomic;
pub mod import_nss;
pub mod index;
mod issue;
mod lock;
pub mod name;
pub mod policy;
pub mod store;
mod trust;
