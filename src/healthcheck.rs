//! `qnetd healthcheck`: the probe behind the container's `HEALTHCHECK`.
//!
//! A `FROM scratch` image has no shell, `nc` or `corosync-qnetd-tool`, so
//! the probe lives in the same binary. This is the minimal version, until
//! the management socket lands: it connects to the daemon's TCP port on
//! loopback, sends a PREINIT and waits for the PREINIT_REPLY. A reply
//! proves that the event loop itself runs, not only that the kernel
//! completes handshakes into the listen backlog. The probe never sends
//! INIT, so the daemon logs it at debug level only and no cluster state
//! is created.
//!
//! ```text
//! qnetd healthcheck [-l ADDR] [-p PORT] [-t SECONDS]
//! ```
//!
//! Without `-l` it tries `127.0.0.1`, then `::1`. Exit status 0 means
//! healthy; otherwise one line on stderr says why, and the status is 1.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::{ConfigError, parse_int};
use crate::limits;
use crate::proto::{Frame, Msg, MsgType, Status, TlsSupported};

/// Cluster name the probe sends in its PREINIT.
pub const PROBE_CLUSTER_NAME: &[u8] = b"qnetd-healthcheck";
/// Default time allowed for connect + reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply read before giving up.
const MAX_REPLY: usize = 64 * 1024;

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Addresses tried in order; the first that answers wins.
    pub addrs: Vec<SocketAddr>,
    /// Time allowed per address.
    pub timeout: Duration,
}

impl Probe {
    /// Parses the subcommand's arguments (after `healthcheck`).
    ///
    /// # Errors
    /// An unknown flag or an invalid value.
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Self, ConfigError> {
        use lexopt::prelude::*;
        let mut port = limits::DEFAULT_PORT;
        let mut addr: Option<IpAddr> = None;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut parser = lexopt::Parser::from_args(args);
        let bad = |e: lexopt::Error| ConfigError::new(e.to_string());
        while let Some(arg) = parser.next().map_err(bad)? {
            match arg {
                Short('p') => {
                    let v = parser.value().map_err(bad)?.string().map_err(bad)?;
                    port = parse_int(&v, 1, i128::from(u16::MAX))
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| ConfigError::new("host port must be in range 1-65535"))?;
                }
                Short('l') => {
                    let v = parser.value().map_err(bad)?.string().map_err(bad)?;
                    addr = Some(v.parse().map_err(|_| {
                        ConfigError::new(format!("healthcheck: -l {v}: not an IP address"))
                    })?);
                }
                Short('t') => {
                    let v = parser.value().map_err(bad)?.string().map_err(bad)?;
                    let secs = parse_int(&v, 1, 3600)
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| {
                            ConfigError::new(format!("healthcheck: -t {v}: expected 1..3600"))
                        })?;
                    timeout = Duration::from_secs(secs);
                }
                other => {
                    return Err(ConfigError::new(format!(
                        "healthcheck: {}; usage: healthcheck [-l ADDR] [-p PORT] [-t SECONDS]",
                        other.unexpected()
                    )));
                }
            }
        }
        let addrs = match addr {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            ],
        };
        Ok(Self { addrs, timeout })
    }

    /// Runs the probe against each address until one answers.
    ///
    /// # Errors
    /// The failure of the last address tried, as one line.
    pub fn run(&self) -> Result<SocketAddr, String> {
        let mut last = String::from("no address to probe");
        for addr in &self.addrs {
            match probe(*addr, self.timeout) {
                Ok(()) => return Ok(*addr),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    }
}

/// One PREINIT → PREINIT_REPLY round trip with `addr`.
///
/// # Errors
/// Connect, I/O or timeout failures, or a reply that is not a
/// PREINIT_REPLY.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("set timeout: {e}"))?;
    let mut msg = Msg::new(MsgType::Preinit);
    msg.seq = Some(1);
    msg.cluster_name = Some(PROBE_CLUSTER_NAME);
    let mut out = [0u8; 128];
    let n = msg
        .emit(&mut out)
        .map_err(|e| format!("encode PREINIT: {e}"))?;
    stream
        .write_all(out.get(..n).unwrap_or_default())
        .map_err(|e| format!("send PREINIT: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let len = loop {
        if let Status::Complete(len) = Frame::<&[u8]>::check(&buf) {
            break len;
        }
        if buf.len() >= MAX_REPLY {
            return Err("reply too long".to_string());
        }
        let got = stream
            .read(&mut chunk)
            .map_err(|e| format!("read reply: {e}"))?;
        if got == 0 {
            return Err("connection closed before the PREINIT reply".to_string());
        }
        buf.extend_from_slice(chunk.get(..got).unwrap_or_default());
    };
    let reply =
        Msg::parse(buf.get(..len).unwrap_or_default()).map_err(|e| format!("bad reply: {e:?}"))?;
    match (reply.msg_type, reply.tls_supported) {
        (MsgType::PreinitReply, Some(TlsSupported::Unknown(v))) => {
            Err(format!("PREINIT reply with unknown TLS mode {v}"))
        }
        (MsgType::PreinitReply, _) => Ok(()),
        (other, _) => Err(format!("expected a PREINIT reply, got {}", other.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Probe, String> {
        Probe::from_args(a.iter().map(OsString::from)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_try_both_loopbacks() {
        let p = args(&[]).unwrap();
        assert_eq!(
            p.addrs,
            vec![
                "127.0.0.1:5403".parse().unwrap(),
                "[::1]:5403".parse().unwrap()
            ]
        );
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        let p = args(&["-l", "::1", "-p", "5404", "-t", "2"]).unwrap();
        assert_eq!(p.addrs, vec!["[::1]:5404".parse().unwrap()]);
        assert_eq!(p.timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(
            args(&["-p", "0"]).unwrap_err(),
            "host port must be in range 1-65535"
        );
        assert!(
            args(&["-l", "localhost"])
                .unwrap_err()
                .contains("not an IP")
        );
        assert!(args(&["-x"]).unwrap_err().contains("usage:"));
    }

    #[test]
    fn closed_port_fails_with_one_line() {
        // Bind then drop, so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = args(&["-l", "127.0.0.1", "-p", &port.to_string(), "-t", "1"]).unwrap();
        let e = p.run().unwrap_err();
        assert!(e.starts_with(&format!("127.0.0.1:{port}: connect:")), "{e}");
        assert!(!e.contains('\n'));
    }
}
