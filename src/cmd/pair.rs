//! `qnetd pair`: opens a pairing window in the running daemon (through its
//! management socket) and prints the command to run on a cluster node as
//! the last line of standard output.
//!
//! ```text
//! qnetd pair [--nodes N] [--cluster NAME] [--ttl DURATION] [--address HOST]
//!            [--replace] [--wait] [-p SOCKET]
//! ```
//!
//! `DURATION` is seconds, or a number with `s`, `m` or `h`. The address
//! defaults to the daemon's listen address unless that is a wildcard (the
//! daemon then refuses and says to give `--address`). With `-s off` the
//! daemon refuses and says why. `--wait` then follows the window and exits
//! 0 once every node of the cluster votes over TLS with its certificate,
//! 1 when the window closes or expires first.

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::healthcheck::{ask, now};
use crate::config::DEFAULT_LOCAL_SOCKET_FILE;
use crate::mgmt::pair::parse_kv;
use crate::mgmt::quote;

/// Time allowed for one management request.
const REQUEST_BUDGET: Duration = Duration::from_secs(5);
/// How often `--wait` asks.
const WAIT_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    nodes: Option<u32>,
    cluster: Option<String>,
    ttl_secs: Option<u64>,
    address: Option<String>,
    replace: bool,
    wait: bool,
    socket: Option<PathBuf>,
}

fn usage(program: &str) -> String {
    format!(
        "usage: {program} [--nodes N] [--cluster NAME] [--ttl DURATION] [--address HOST] [--replace] [--wait] [-p SOCKET]"
    )
}

/// Seconds of `30`, `90s`, `30m`, `1h`.
fn parse_duration(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last()? {
        (i, 's') => (s.get(..i)?, 1),
        (i, 'm') => (s.get(..i)?, 60),
        (i, 'h') => (s.get(..i)?, 3600),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
}

fn parse(program: &str, args: Vec<OsString>) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut o = Options::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("nodes") => {
                let v = super::text_value(&mut parser)?;
                o.nodes = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--nodes: invalid value '{v}'"))?,
                );
            }
            Long("cluster") => o.cluster = Some(super::text_value(&mut parser)?),
            Long("ttl") => {
                let v = super::text_value(&mut parser)?;
                o.ttl_secs = Some(parse_duration(&v).ok_or_else(|| {
                    format!("--ttl: invalid duration '{v}' (seconds, or 90s, 30m, 1h)")
                })?);
            }
            Long("address") => o.address = Some(super::text_value(&mut parser)?),
            Long("replace") => o.replace = true,
            Long("wait") => o.wait = true,
            Short('p') | Long("socket") => {
                o.socket = Some(parser.value().map_err(|e| e.to_string())?.into());
            }
            Short('h') | Long("help") => return Err(usage(program)),
            _ => return Err(format!("{}\n{}", arg.unexpected(), usage(program))),
        }
    }
    Ok(o)
}

fn word(key: &str, value: &str) -> String {
    format!(
        " {key}={}",
        String::from_utf8_lossy(&quote(value.as_bytes()))
    )
}

/// The `pair open` request line.
fn open_request(o: &Options) -> String {
    let mut line = String::from("pair open");
    if let Some(n) = o.nodes {
        line += &format!(" nodes={n}");
    }
    if let Some(c) = &o.cluster {
        line += &word("cluster", c);
    }
    if let Some(t) = o.ttl_secs {
        line += &format!(" ttl={t}");
    }
    if let Some(a) = &o.address {
        line += &word("address", a);
    }
    if o.replace {
        line += " replace=1";
    }
    line.push('\n');
    line
}

/// Sends `request`; the `OK` body, or the daemon's error line.
pub(crate) fn request(socket: &Path, request: &str) -> Result<String, String> {
    let reply = ask(socket, request.as_bytes(), now() + REQUEST_BUDGET).map_err(|e| {
        format!("{e} (is qnetd running? give its management socket with -p SOCKET)")
    })?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    if let Some(body) = text.strip_prefix("OK\n") {
        return Ok(body.to_owned());
    }
    let message = text.strip_prefix("Error\n").unwrap_or(&text).trim_end();
    Err(if message.is_empty() {
        "the daemon closed the management connection without a reply".into()
    } else {
        message.to_owned()
    })
}

/// The management socket of `-p`, or the default.
pub(crate) fn socket_of(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(|| PathBuf::from(DEFAULT_LOCAL_SOCKET_FILE))
}

fn say(line: &str) {
    let mut out = io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `--wait`: follows `pair status` until every node votes over TLS.
fn wait(socket: &Path) -> Result<(), String> {
    let mut last = String::new();
    loop {
        let body = request(socket, "pair status\n")?;
        let get = |k| parse_kv(&body, k).unwrap_or("");
        if get("window") == "none" {
            return Err("the pairing window was closed".into());
        }
        let (nodes, signed, tls) = (get("nodes"), get("signed"), get("tls_nodes"));
        let line = format!(
            "cluster {}: {signed} of {} certificate(s) signed, {tls} node(s) voting over TLS",
            if get("cluster").is_empty() {
                "(not yet known)"
            } else {
                get("cluster")
            },
            if nodes.is_empty() { "?" } else { nodes }
        );
        if line != last {
            say(&line);
            last = line;
        }
        if !nodes.is_empty() && signed == nodes && tls.parse::<u64>().ok() >= nodes.parse().ok() {
            say("paired: every node votes over TLS");
            return Ok(());
        }
        if get("window") != "open" && signed != nodes {
            return Err("the pairing window closed or expired before every node was paired".into());
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// Runs `qnetd pair`.
pub fn run(program: &str, args: Vec<OsString>) -> ExitCode {
    let o = match parse(program, args) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(io::stderr(), "{e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = socket_of(o.socket.clone());
    let body = match request(&socket, &open_request(&o)) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(io::stderr(), "{program}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (Some(command), Some(id)) = (parse_kv(&body, "command"), parse_kv(&body, "id")) else {
        let _ = writeln!(io::stderr(), "{program}: the daemon's reply has no command");
        return ExitCode::FAILURE;
    };
    let minutes = parse_kv(&body, "expires_in")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |s| s.div_ceil(60));
    say(&format!(
        "Pairing window {id} is open for {minutes} min. Run this as root on one Proxmox VE node \
         (on every node of a plain Corosync cluster):"
    ));
    say(command);
    if o.wait
        && let Err(e) = wait(&socket)
    {
        let _ = writeln!(io::stderr(), "{program}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_request_line() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let o = parse(
            "qnetd pair",
            args(&[
                "--nodes",
                "2",
                "--cluster",
                "c 1",
                "--ttl",
                "10m",
                "--address",
                "::1",
                "--replace",
                "-p",
                "/s",
            ]),
        )
        .unwrap();
        assert_eq!(o.ttl_secs, Some(600));
        assert_eq!(
            open_request(&o),
            "pair open nodes=2 cluster=\"c 1\" ttl=600 address=\"::1\" replace=1\n"
        );
        assert_eq!(
            crate::mgmt::Command::parse(open_request(&o).as_bytes()),
            crate::mgmt::Command::Pair(crate::mgmt::pair::PairCommand::Open(
                crate::mgmt::pair::OpenParams {
                    nodes: Some(2),
                    cluster: Some("c 1".into()),
                    ttl_secs: Some(600),
                    address: Some("::1".into()),
                    replace: true,
                }
            ))
        );
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("1h"), Some(3600));
        for bad in ["", "0", "m", "-1s", "1d", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert!(parse("p", args(&["--nodes", "0"])).is_err());
        assert!(parse("p", args(&["--ttl", "x"])).is_err());
        assert!(parse("p", args(&["--bogus"])).is_err());
    }
}
