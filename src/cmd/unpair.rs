//! `qnetd unpair CLUSTER [-p SOCKET]`: revokes every certificate of the
//! cluster in the running daemon (through its management socket). Its
//! clients are disconnected at once, and TLS handshakes with those
//! certificates are refused from then on. On the nodes, remove the device
//! with `pvecm qdevice remove` (Proxmox VE), or with the undo file the
//! pairing command left (plain Corosync).

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use super::pair::{request, socket_of};
use crate::mgmt::pair::parse_kv;
use crate::mgmt::quote;

fn parse(program: &str, args: Vec<OsString>) -> Result<(String, Option<PathBuf>), String> {
    use lexopt::prelude::*;
    let usage = format!("usage: {program} CLUSTER [-p SOCKET]");
    let mut parser = lexopt::Parser::from_args(args);
    let (mut name, mut socket) = (None, None);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('p') | Long("socket") => {
                socket = Some(parser.value().map_err(|e| e.to_string())?.into());
            }
            Value(v) if name.is_none() => {
                name = Some(
                    v.into_string()
                        .map_err(|v| format!("invalid UTF-8 in {}", v.to_string_lossy()))?,
                );
            }
            Short('h') | Long("help") => return Err(usage),
            _ => return Err(format!("{}\n{usage}", arg.unexpected())),
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or(usage)?;
    Ok((name, socket))
}

/// Runs `qnetd unpair`.
pub fn run(program: &str, args: Vec<OsString>) -> ExitCode {
    let result = parse(program, args).and_then(|(name, socket)| {
        let line = format!(
            "unpair {}\n",
            String::from_utf8_lossy(&quote(name.as_bytes()))
        );
        let body = request(&socket_of(socket), &line).map_err(|e| format!("{program}: {e}"))?;
        Ok(format!(
            "cluster {name} unpaired: {} certificate(s) revoked, {} client(s) disconnected. \
             Remove the device on the nodes (Proxmox VE: pvecm qdevice remove).",
            parse_kv(&body, "revoked").unwrap_or("?"),
            parse_kv(&body, "disconnected").unwrap_or("?")
        ))
    });
    match result {
        Ok(line) => {
            let _ = writeln!(io::stdout(), "{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "{e}");
            ExitCode::FAILURE
        }
    }
}
