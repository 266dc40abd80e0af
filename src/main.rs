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
//! program is a [`qnetd::cmd`] module with the same `run(program, args)`;
//! the tables are [`qnetd::cmd::SUBCOMMANDS`] and [`qnetd::cmd::BY_NAME`].

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use qnetd::cmd::{BY_NAME, SUBCOMMANDS, daemon};

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
    if let Some(&(name, _, run)) = SUBCOMMANDS.iter().find(|(name, _, _)| Some(*name) == sub) {
        return run(
            &format!("{program} {name}"),
            args.into_iter().skip(1).collect(),
        );
    }
    daemon::run(&program, args)
}
