//! qnetd: a Corosync QNetd server.
//!
//! See the README for the architecture. Layers, in dependency order:
//! [`proto`] (codec) → [`algo`] (decisions) → [`core`] (sans-IO engine) →
//! `net` (the mio shell), with [`config`] and [`limits`] beside them.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod algo;
pub mod certname;
pub mod cli;
pub mod config;
pub mod core;
pub mod error;
pub mod limits;
pub mod net;
pub mod proto;
