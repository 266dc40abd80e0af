//! The programs of the `qnetd` binary, one module each, all with the same
//! entry point: `run(program, args) -> ExitCode`, where `program` is the
//! name to print in messages and `args` the arguments after it.
//!
//! ```text
//!   daemon        qnetd [options]                 the server (corosync-qnetd)
//!   certutil      qnetd certutil [options]        corosync-qnetd-certutil
//!   tool          qnetd tool [options]            corosync-qnetd-tool
//!   healthcheck   qnetd healthcheck [options]     exit 0 if the daemon answers
//!   pair          qnetd pair [options]            open a pairing window, print the node command
//!   unpair        qnetd unpair CLUSTER            revoke a cluster's certificates
//! ```
//!
//! `main.rs` only picks one of them by name.

pub mod certutil;
pub mod daemon;
pub mod healthcheck;
pub mod pair;
pub mod tool;
pub mod unpair;

/// The value of the option `parser` is at, as UTF-8 text (the client
/// programs' one way to read a text argument).
pub(crate) fn text_value(parser: &mut lexopt::Parser) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|v| format!("invalid UTF-8 in argument {}", v.to_string_lossy()))
}
