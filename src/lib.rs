//! qnetd: a Corosync QNetd server.
//!
//! The layers, in dependency order (each uses only the ones above it), and
//! the side modules beside them:
//!
//! ```text
//!  qnetd-engine (crates/qnetd-engine: sans-IO, no mio/rustls/socket2/signal-hook)
//!  ┌──────────────────────────────────────────────────────────────────────┐
//!  │ proto   wire codec: frames, TLVs, the 18 messages                    │
//!  │   ↓                                                                  │
//!  │ algo    decision algorithms: test, ffsplit, 2nodelms, lms            │
//!  │   ↓                                                                  │
//!  │ core    protocol state machine (Instance), timers, cluster-name check│
//!  └──────────────────────────────────────────────────────────────────────┘
//!    ↓
//!  mgmt     management protocol and reports, read-only over the Instance
//!  panel    the status panel, sans-IO: HTTP routing, the page, live feed
//!    ↓
//!  net      the shell: one mio loop owning every socket (net/mod), its
//!           start-up (net/start), new clients (net/accept), TLS (net/tls),
//!           the management socket (net/ipc), the panel's HTTP listener
//!           (net/http), the pairing endpoint (net/pair), MQTT (net/mqtt),
//!           signals, the clock
//!    ↓
//!  cmd      the programs: daemon, certutil, tool, healthcheck (main.rs
//!           picks one)
//!
//!  side modules, used by net and cmd:
//!  config   the settings: model, command line, add-on options → Config
//!  cert     certificate names and the certificate store
//!  error    the daemon's fatal errors
//!  logging  where log lines go: stderr, stdout (add-on), journal, syslog
//!  sys      the service manager: sd_notify READY=1 / STOPPING=1
//! ```
//!
//! [`proto`], [`algo`] and [`core`] are re-exported from `qnetd-engine`, so
//! `qnetd::core::Instance` and `qnetd_engine::core::Instance` are the same.
#![doc(test(attr(deny(warnings))))]

pub use qnetd_engine::{algo, core, proto};

pub mod cert;
pub mod cmd;
pub mod config;
pub mod error;
pub mod logging;
pub mod mgmt;
pub mod mqtt;
pub mod net;
pub mod pair;
pub mod panel;
pub mod sys;

/// The reference server whose protocol we speak byte for byte
/// (corosync-qnetd, from corosync-qdevice). Shown by `-v`, in the start-up
/// log, in the image labels and in DOCS; set in `release.env`.
pub const REFERENCE_VERSION: &str = "3.0.3";
