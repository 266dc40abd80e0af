//! The daemon test binary: our real `qnetd` binary on loopback (plain and
//! TLS sessions, the management socket, the add-on mode, the status panel
//! over HTTP and in headless Chromium) and, `#[ignore]`d
//! because they need root (`make test-ignored`), the real NSS and OpenSSL
//! clients against it.

#[path = "../support/mod.rs"]
mod support;

/// The TLS client helpers of the unit tests (`src/net/tls/testkit.rs`),
/// shared by `tls_loopback` and `cert_policy`.
#[path = "../../src/net/tls/testkit.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with the unit tests; not all of it is used here"
)]
mod testkit;

mod addon;
mod addon_files;
mod addon_mode;
mod browser;
mod cert_policy;
mod cli;
mod local_files;
mod loopback;
mod mgmt_socket;
mod mqtt_broker;
mod mqtt_daemon;
mod nss_interop;
mod packaging;
mod pairing;
mod panel;
mod systemd;
mod tls_loopback;
