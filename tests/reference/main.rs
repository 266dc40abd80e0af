//! The reference test binary: everything that runs against the reference
//! `corosync-qnetd` 3.0.3 (Debian package `corosync-qnetd`).
//!
//! Differential conformance suite: every scenario is played against the
//! reference and against our `qnetd` with the same arguments (`-f -l
//! 127.0.0.1 -p PORT -d -s off -S lock_file=..,local_socket_file=..
//! [,settings]`, one private port and directory per run), and every message
//! each simulated client receives must be the same, in the same order and
//! during the same script step. `mgmt_interop` runs the real
//! `corosync-qnetd-tool` against both servers.
//!
//! Run: `cargo test --test reference`. The scenarios mostly wait on the
//! network, so more threads than cores pay off: `cargo test --test
//! reference -- --test-threads 8` takes about 20 s instead of about 70 s
//! on 2 cores. Without the reference binary every test that needs it is
//! recorded as SKIPPED by name (`support/skip.rs`) and `make test` lists
//! them at the end; with `QNETD_REQUIRE_ALL=1` they fail instead.
//!
//! Layout: `support/qclient.rs` (simulated qdevice clients),
//! `support/scenario.rs` (the DSL, its per-client half in
//! `scenario/client.rs`), `support/runner.rs` (servers, steps; the
//! comparison and report in `runner/compare.rs`); the scenarios are in this
//! folder, one file per area; `selftest.rs` proves the comparator fails on
//! mangled transcripts.
//!
//! Environment:
//! * `QNETD_DIFF_AGAINST=reference` compares the reference with itself
//!   (checks that the scenarios are deterministic); a path compares that
//!   program instead of our binary.
//! * `QNETD_REFERENCE=/path/corosync-qnetd` overrides the reference.
//! * `QNETD_DIFF_QUIET_MS` (default 60): quiet time that ends a step.
//! * `QNETD_DIFF_SHOW=1` prints every table, not only failing ones;
//!   `QNETD_DIFF_REF_LOG=1` adds the reference log to failure reports;
//!   `QNETD_DIFF_KEEP=1` keeps the per-run temporary directories.

#[path = "../support/mod.rs"]
mod support;

mod basic;
mod conflicts;
mod dpd;
mod errors;
mod ffsplit;
mod ipc;
mod lms;
mod mgmt_interop;
mod selftest;
mod settings;
mod twonodelms;
