//! The engine test binary: the sans-IO `Instance` driven through bytes with
//! a fake clock (sessions, and the replay of the reference traces). Needs
//! nothing installed.

#[path = "../support/mod.rs"]
mod support;

mod golden_replay;
mod session;
