//! The sans-IO QNetd engine: everything between the bytes a qdevice client
//! sends and the bytes it gets back, with no socket, no TLS, no file and no
//! clock.
//!
//! ```text
//!   proto   the wire codec: frames, TLVs, messages   (qdevices/msg.c, tlv.c)
//!     ↓
//!   algo    the decision algorithms over a cluster   (qnetd-algo-*.c)
//!     ↓
//!   core    the protocol state machine, Instance     (qnetd-instance.c, ...)
//! ```
//!
//! Each layer uses only the ones above it. This crate depends on neither
//! mio, rustls, socket2 nor signal-hook: the compiler keeps it sans-IO. The
//! `qnetd` crate is the shell around it (sockets, TLS, files, options).
//! After warm-up the per-message path does not allocate
//! (`tests/no_alloc.rs`).
#![doc(test(attr(deny(warnings))))]
// Nothing from the network may panic the engine.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )
)]

pub mod algo;
pub mod core;
pub mod proto;
