//! Differential conformance suite: every scenario is played against the
//! reference `corosync-qnetd` 3.0.3 and against our `qnetd` with the same
//! arguments, and every message each simulated client receives must be the
//! same, in the same order and in the same script step.
//!
//! Run: `cargo test --test differential` (add `-- --test-threads 8` to go
//! faster). Without the reference binary every test prints `SKIPPED:
//! corosync-qnetd not installed` and passes.
//!
//! Environment:
//! * `QNETD_DIFF_AGAINST=reference` compares the reference with itself
//!   (checks that the scenarios are deterministic); a path compares that
//!   program instead of our binary.
//! * `QNETD_REFERENCE=/path/corosync-qnetd` overrides the reference.
//! * `QNETD_DIFF_QUIET_MS` (default 100): quiet time that ends a step.
//! * `QNETD_DIFF_SHOW=1` prints every table, not only failing ones;
//!   `QNETD_DIFF_REF_LOG=1` adds the reference log to failure reports;
//!   `QNETD_DIFF_KEEP=1` keeps the per-run temporary directories.

mod support;

#[path = "differential/basic.rs"]
mod basic;
#[path = "differential/conflicts.rs"]
mod conflicts;
#[path = "differential/dpd.rs"]
mod dpd;
#[path = "differential/errors.rs"]
mod errors;
#[path = "differential/ffsplit.rs"]
mod ffsplit;
#[path = "differential/lms.rs"]
mod lms;
#[path = "differential/selftest.rs"]
mod selftest;
#[path = "differential/settings.rs"]
mod settings;
#[path = "differential/twonodelms.rs"]
mod twonodelms;
