//! `qnetd healthcheck`: is the daemon alive and serving? For a Docker
//! `HEALTHCHECK` (`["/qnetd", "healthcheck"]`) in an image without a shell.
//!
//! ```text
//! qnetd healthcheck [-p SOCKET] [--port N] [--addr HOST] [--options FILE]
//! ```
//!
//! Healthy (exit 0) when both hold:
//!
//! 1. the management socket (default
//!    `/var/run/corosync-qnetd/corosync-qnetd.sock`, `-p` overrides) answers
//!    `status` with `OK`, and
//! 2. a TCP connection to the daemon's port succeeds. Address and port come
//!    from that status reply (`QNetd address:`), so the daemon's own `-l`
//!    and `-p` are used without repeating them here; a wildcard listener is
//!    tried on 127.0.0.1, then on ::1. `--addr` and `--port` override them.
//!
//! Otherwise unhealthy (exit 1). The healthy line goes to stdout; the
//! unhealthy one, like every error, to stderr as `PROGRAM: unhealthy: ...`.
//! `-h`/`--help` and `--version` print to stdout and exit 0; a usage error
//! exits 1 ([`crate::cmd`]). The
//! whole check is bounded by [`BUDGET`] (well under a second), whatever the
//! daemon does. `--options FILE` reads a JSON object (the add-on's
//! `/data/options.json`) and takes `local_socket_file` (string) and `port`
//! (number) from it when present and not given on the command line; other
//! keys are ignored. Works against the reference `corosync-qnetd` too.

use std::ffi::OsString;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::config::DEFAULT_LOCAL_SOCKET_FILE;

/// Time allowed for the whole check.
pub const BUDGET: Duration = Duration::from_millis(800);

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Target {
    socket: Option<PathBuf>,
    port: Option<u16>,
    addr: Option<String>,
    options: Option<PathBuf>,
}

#[allow(
    clippy::disallowed_methods,
    reason = "a client with a deadline reads the clock; this is not the sans-IO core"
)]
pub(crate) fn now() -> Instant {
    Instant::now()
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "timed out".to_string())
}

fn usage(program: &str) -> String {
    format!(
        "usage: {program} [-p socket_path] [--port N] [--addr HOST] [--options FILE]\n{:7}{program} --help | --version",
        ""
    )
}

/// What the command line asks for.
enum Parsed {
    Check(Target),
    /// Print this to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

fn parse(program: &str, args: Vec<OsString>) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut t = Target::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('p') | Long("socket") => {
                t.socket = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            Long("port") => {
                let v = super::text_value(&mut parser)?;
                t.port = Some(
                    v.parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| format!("invalid port '{v}'"))?,
                );
            }
            Long("addr") => t.addr = Some(super::text_value(&mut parser)?),
            Long("options") => {
                t.options = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            Short('h') | Long("help") => return Ok(Parsed::Print(usage(program))),
            Long("version") => return Ok(Parsed::Print(super::version_line())),
            other => {
                return Err(format!(
                    "{}\nTry '{program} --help' for more information.",
                    other.unexpected()
                ));
            }
        }
    }
    Ok(Parsed::Check(t))
}

/// Fills what `--options` provides and the command line did not.
fn apply_options(t: &mut Target) -> Result<(), String> {
    let Some(path) = &t.options else {
        return Ok(());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("can't read {}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("can't parse {}: {e}", path.display()))?;
    if t.socket.is_none()
        && let Some(s) = v
            .get("local_socket_file")
            .and_then(serde_json::Value::as_str)
    {
        t.socket = Some(PathBuf::from(s));
    }
    if t.port.is_none()
        && let Some(p) = v.get("port").and_then(serde_json::Value::as_u64)
    {
        t.port = u16::try_from(p).ok().filter(|&p| p != 0);
    }
    Ok(())
}

/// Sends `status` and returns the reply.
fn ask_status(path: &std::path::Path, deadline: Instant) -> Result<Vec<u8>, String> {
    ask(path, b"status \n", deadline)
}

/// Sends one request line to the management socket at `path` and returns
/// the whole reply, all within `deadline`.
pub(crate) fn ask(
    path: &std::path::Path,
    request: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let fail = |e: io::Error| format!("local socket {}: {e}", path.display());
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
    // Non-blocking connect: a full backlog fails at once instead of waiting.
    socket.set_nonblocking(true).map_err(fail)?;
    socket
        .connect(&SockAddr::unix(path).map_err(fail)?)
        .map_err(fail)?;
    socket.set_nonblocking(false).map_err(fail)?;
    let mut stream = UnixStream::from(std::os::fd::OwnedFd::from(socket));
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(fail)?;
    stream.write_all(request).map_err(fail)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(fail)?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(reply),
            Ok(n) => reply.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
}

/// The listen address and port of a `status` reply.
fn listen_of(reply: &[u8]) -> Result<(String, u16), String> {
    let text = String::from_utf8_lossy(reply);
    let Some(body) = text.strip_prefix("OK\n") else {
        let first = text.lines().next().unwrap_or("");
        return Err(format!("status request failed: '{first}'"));
    };
    body.lines()
        .find_map(|l| l.strip_prefix("QNetd address:"))
        .map(|v| v.trim_start_matches('\t'))
        .and_then(|v| v.rsplit_once(':'))
        .and_then(|(a, p)| Some((a.to_string(), p.parse().ok()?)))
        .ok_or_else(|| "status reply has no 'QNetd address' line".to_string())
}

/// Resolves `host` without waiting past the deadline.
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, String> {
    if host == "*" {
        return Ok(vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::from((ip, port))]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::spawn(move || {
        let r = (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect::<Vec<_>>);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(remaining(deadline)?) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(format!("{host}: no address")),
        Ok(Err(e)) => Err(format!("{host}: {e}")),
        Err(_) => Err(format!("{host}: name resolution timed out")),
    }
}

fn check(t: &Target, deadline: Instant) -> Result<String, String> {
    let socket = t
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCAL_SOCKET_FILE));
    let reply = ask_status(&socket, deadline)?;
    let (listen, listen_port) = listen_of(&reply)?;
    let host = t.addr.clone().unwrap_or(listen);
    let port = t.port.unwrap_or(listen_port);
    let mut last = String::new();
    for addr in resolve(&host, port, deadline)? {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(_) => {
                return Ok(format!(
                    "healthy: {} answers and {addr} accepts connections",
                    socket.display()
                ));
            }
            Err(e) => last = format!("TCP {addr}: {e}"),
        }
    }
    Err(last)
}

/// Runs the check; `program` names it in messages (e.g. "qnetd healthcheck").
#[must_use]
pub fn run(program: &str, args: Vec<OsString>) -> ExitCode {
    let deadline = now() + BUDGET;
    let result = parse(program, args).and_then(|parsed| match parsed {
        Parsed::Print(text) => Ok(text),
        Parsed::Check(mut t) => {
            apply_options(&mut t)?;
            check(&t, deadline).map_err(|e| format!("unhealthy: {e}"))
        }
    });
    match result {
        Ok(line) => {
            let _ = writeln!(io::stdout(), "{line}");
            ExitCode::from(super::EXIT_OK)
        }
        Err(line) => {
            let _ = writeln!(io::stderr(), "{program}: {line}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_from_status() {
        let ok = b"OK\nQNetd address:\t\t\t127.0.0.1:15403\nTLS:\t\t\t\tUnsupported\n";
        assert_eq!(listen_of(ok), Ok(("127.0.0.1".to_string(), 15403)));
        let wild = b"OK\nQNetd address:\t\t\t*:5403\n";
        assert_eq!(listen_of(wild), Ok(("*".to_string(), 5403)));
        let v6 = b"OK\nQNetd address:\t\t\t:::5403\n";
        assert_eq!(listen_of(v6), Ok(("::".to_string(), 5403)));
        assert!(listen_of(b"Error\nUnknown command 'status'\n").is_err());
        assert!(listen_of(b"").is_err());
    }

    #[test]
    fn arguments_and_options_file() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let check = |a: &[&str]| match parse("qnetd healthcheck", args(a)) {
            Ok(Parsed::Check(t)) => Ok(t),
            Ok(Parsed::Print(text)) => Err(text),
            Err(e) => Err(e),
        };
        let t = check(&["-p", "/x.sock", "--port", "5404"]).unwrap();
        assert_eq!(t.socket, Some(PathBuf::from("/x.sock")));
        assert_eq!(t.port, Some(5404));
        assert!(check(&["--port", "0"]).is_err());
        assert!(check(&["--bogus"]).unwrap_err().contains("--help"));
        assert!(
            check(&["--help"])
                .unwrap_err()
                .starts_with("usage: qnetd healthcheck ")
        );
        assert_eq!(
            check(&["--version"]).unwrap_err(),
            crate::cmd::version_line()
        );

        let dir = std::env::temp_dir().join(format!("qnetd-hc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("options.json");
        std::fs::write(
            &file,
            r#"{"log_level":"info","local_socket_file":"/run/q.sock","port":15403}"#,
        )
        .unwrap();
        let mut t = check(&["--options", file.to_str().unwrap()]).unwrap();
        apply_options(&mut t).unwrap();
        assert_eq!(t.socket, Some(PathBuf::from("/run/q.sock")));
        assert_eq!(t.port, Some(15403));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_daemon_fails_fast() {
        let start = now();
        let t = Target {
            socket: Some(PathBuf::from("/nonexistent/qnetd.sock")),
            ..Target::default()
        };
        let e = check(&t, start + BUDGET).unwrap_err();
        assert!(e.contains("/nonexistent/qnetd.sock"), "{e}");
        assert!(now() - start < BUDGET);
    }
}
