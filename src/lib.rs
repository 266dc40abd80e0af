//! qnetd: a Corosync QNetd server.
//!
//! See the README for the architecture. Layers, in dependency order:
//! [`proto`] (codec) → [`algo`] (decisions) → [`core`] (sans-IO engine) →
//! [`mgmt`] (management reports, cold path) → `net` (the mio shell), with
//! [`config`] and [`limits`] beside them. [`tool`] and [`healthcheck`] are
//! the client subcommands of the same binary.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod addon;
pub mod algo;
pub mod certname;
pub mod certstore;
pub mod certutil;
pub mod cli;
pub mod config;
pub mod core;
pub mod error;
pub mod healthcheck;
pub mod limits;
pub mod mgmt;
pub mod net;
pub mod pair;
pub mod proto;
pub mod tool;
