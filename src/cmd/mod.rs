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
//! `main.rs` only picks one of them by name, from [`SUBCOMMANDS`] and
//! [`BY_NAME`]; the daemon's help lists [`SUBCOMMANDS`].
//!
//! What every program shares:
//! - messages on stderr start with `PROGRAM: ` (`qnetd tool: `,
//!   `corosync-qnetd-certutil: `...);
//! - `--help` prints the usage and `--version` the [`version_line`] to
//!   stdout and exit 0; `-h` keeps the exit status of the reference program
//!   of that name (1 for `corosync-qnetd` and `corosync-qnetd-tool`, 0 for
//!   `corosync-qnetd-certutil`);
//! - exit status [`EXIT_OK`] on success, [`EXIT_FAILURE`] for a usage
//!   error or a failure; higher statuses only where the reference program
//!   defines them (`tool`: 2, 3, 4; `certutil`: 2), see each module.
//!
//! Under a reference name (`corosync-qnetd-tool`, `corosync-qnetd-certutil`)
//! a program keeps that tool's exact output and statuses.

use std::ffi::OsString;
use std::process::ExitCode;

pub mod certutil;
pub mod daemon;
pub mod healthcheck;
pub mod pair;
pub mod tool;
pub mod unpair;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: a usage error or a failure (the reference's `exit 1`).
pub const EXIT_FAILURE: u8 = 1;

/// A program's entry point: the name to show in messages, the arguments
/// after it.
pub type Run = fn(&str, Vec<OsString>) -> ExitCode;

/// Subcommands, `qnetd NAME ...`: name, one line of help, entry point.
pub const SUBCOMMANDS: [(&str, &str, Run); 5] = [
    (
        "certutil",
        "the certificate store (corosync-qnetd-certutil)",
        certutil::run,
    ),
    (
        "tool",
        "status of the running server (corosync-qnetd-tool)",
        tool::run,
    ),
    (
        "healthcheck",
        "exit 0 if the server answers on its socket and port",
        healthcheck::run,
    ),
    (
        "pair",
        "open a pairing window and print the node command",
        pair::run,
    ),
    ("unpair", "revoke a cluster's certificates", unpair::run),
];

/// Programs chosen by the name the binary is invoked by (a symlink).
pub const BY_NAME: [(&str, Run); 2] = [
    (tool::REFERENCE_NAME, tool::run),
    (certutil::REFERENCE_NAME, certutil::run),
];

/// What `--version` prints in every program (one line).
#[must_use]
pub fn version_line() -> String {
    format!(
        "qnetd version '{}' (Corosync Qdevice Network Daemon protocol {})",
        env!("CARGO_PKG_VERSION"),
        crate::REFERENCE_VERSION
    )
}

/// The value of the option `parser` is at, as UTF-8 text (the client
/// programs' one way to read a text argument).
pub(crate) fn text_value(parser: &mut lexopt::Parser) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|v| format!("invalid UTF-8 in argument {}", v.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommand_names_are_distinct_and_not_options() {
        for (i, (name, help, _)) in SUBCOMMANDS.iter().enumerate() {
            assert!(!name.starts_with('-') && !help.is_empty());
            assert!(SUBCOMMANDS.iter().skip(i + 1).all(|(n, _, _)| n != name));
        }
        assert!(version_line().contains(env!("CARGO_PKG_VERSION")));
    }
}
