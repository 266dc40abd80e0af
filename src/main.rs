#![forbid(unsafe_code)]
//! The `qnetd` binary: the daemon and its companion tools in one file.
//!
//! ```text
//! qnetd [daemon options]                      the server (corosync-qnetd compatible)
//! qnetd --options /data/options.json [flags]  the server as a Home Assistant add-on
//! qnetd certutil [certutil options]           the certificate store (corosync-qnetd-certutil compatible)
//! qnetd tool [tool options]                   the management client (corosync-qnetd-tool compatible)
//! qnetd healthcheck [options]                 exit 0 if the daemon answers, 1 otherwise
//! qnetd pair [options]                        open a pairing window; prints the node command last
//! qnetd unpair CLUSTER [-p SOCKET]            revoke a cluster's certificates
//! ```
//!
//! Invoked as `corosync-qnetd` (a symlink) it behaves the same; invoked as
//! `corosync-qnetd-certutil` or `corosync-qnetd-tool` it is that tool. Each
//! program is a [`qnetd::cmd`] module with the same `run(program, args)`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use qnetd::cmd::{certutil, daemon, healthcheck, pair, tool, unpair};

/// A program's entry point: the name to show in messages, the arguments
/// after it.
type Run = fn(&str, Vec<OsString>) -> ExitCode;

/// Programs chosen by the name the binary is invoked by (a symlink).
const BY_NAME: [(&str, Run); 2] = [
    (tool::REFERENCE_NAME, tool::run),
    ("corosync-qnetd-certutil", certutil::run),
];

/// Subcommands: `qnetd NAME ...`.
const SUBCOMMANDS: [(&str, Run); 5] = [
    ("certutil", certutil::run),
    ("tool", tool::run),
    ("healthcheck", healthcheck::run),
    ("pair", pair::run),
    ("unpair", unpair::run),
];

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next();
    let args: Vec<OsString> = args.collect();
    let program = argv0
        .as_ref()
        .and_then(|a| Path::new(a).file_name())
        .map_or_else(|| "qnetd".to_string(), |n| n.to_string_lossy().into_owned());
    if let Some(&(_, run)) = BY_NAME.iter().find(|(name, _)| *name == program) {
        let argv0 = argv0.map_or_else(|| program.clone(), |a| a.to_string_lossy().into_owned());
        return run(&argv0, args);
    }
    let sub = args.first().and_then(|a| a.to_str());
    if let Some(&(name, run)) = SUBCOMMANDS.iter().find(|(name, _)| Some(*name) == sub) {
        return run(
            &format!("{program} {name}"),
            args.into_iter().skip(1).collect(),
        );
    }
    daemon::run(&program, args)
}
