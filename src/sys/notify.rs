//! `sd_notify(3)` without libsystemd: one datagram with `READY=1` once the
//! daemon serves, `STOPPING=1` when it shuts down, sent to the Unix datagram
//! socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). Without the variable (not started by systemd with
//! `Type=notify`) nothing is sent. Failures are reported, never fatal: the
//! service manager times out the start on its own if `READY=1` is lost.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The address `$NOTIFY_SOCKET` names: `@name` is the abstract socket
/// `name`, anything else a path.
///
/// # Errors
/// An empty name, or a name too long for `sockaddr_un`.
pub fn socket_addr(name: &str) -> io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        _ if name.is_empty() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty socket name",
        )),
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(name),
    }
}

/// Sends `state` (e.g. `READY=1`) to the socket `name`.
///
/// # Errors
/// The socket cannot be created, the name is invalid, or the send fails.
pub fn notify_to(name: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &socket_addr(name)?)?;
    if sent == state.len() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"))
    }
}

/// Sends `state` to `$NOTIFY_SOCKET` if it is set; logs a failure.
pub fn notify(state: &str) {
    let Some(name) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let Some(name) = name.to_str() else {
        log::warn!("{NOTIFY_SOCKET} is not valid UTF-8; not sending {state}");
        return;
    };
    if let Err(e) = notify_to(name, state) {
        log::warn!("Can't send {state} to {NOTIFY_SOCKET}={name}: {e}");
    }
}

/// `READY=1`: start-up is complete and the port is open.
pub fn ready() {
    notify("READY=1");
}

/// `STOPPING=1`: the daemon is shutting down.
pub fn stopping() {
    notify("STOPPING=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_names() {
        let dir = std::env::temp_dir().join(format!("qnetd-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("qnetd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(socket_addr("").is_err());
        assert!(socket_addr(&"x".repeat(200)).is_err());
        assert!(notify_to("/nonexistent/qnetd/notify.sock", "READY=1").is_err());
    }
}
