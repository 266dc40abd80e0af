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
//!    ↓
//!  net      the shell: one mio loop owning every socket, TLS (net/tls),
//!           the management socket (net/ipc), signals, the clock
//!    ↓
//!  cmd      the programs: daemon, certutil, tool, healthcheck (main.rs
//!           picks one)
//!
//!  side modules, used by net and cmd:
//!  config   the settings: model, command line, add-on options → Config
//!  cert     certificate names and the certificate store
//!  error    the daemon's fatal errors
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
pub mod mgmt;
pub mod net;
pub mod pair;
