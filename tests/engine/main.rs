//! The engine test binary: the sans-IO `Instance` driven through bytes with
//! a fake clock (sessions, the replay of the reference traces, and the
//! bounded work per message). Needs nothing installed.

#[path = "../support/mod.rs"]
mod support;

mod bounded_work;
mod golden_replay;
mod session;
