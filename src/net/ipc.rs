//! The management socket in the mio loop (`qdevices/qnetd-ipc.c`,
//! `unix-socket-ipc.c`, `unix-socket-client.c`): a Unix stream socket that
//! answers one request line per connection with [`crate::mgmt::respond`].
//!
//! * Bind: the directory is created if missing (mode 0770; the reference
//!   leaves that to systemd's `RuntimeDirectory`), a stale file at the path
//!   is unlinked, the socket is bound, its mode is cut to 0660 or tighter
//!   whatever the umask (the reference keeps the umask's mode), and only
//!   then does it listen with `local_socket_backlog`. It is bound after the
//!   lock file is taken, so a second instance refused by the lock never
//!   touches the first's socket.
//! * Accept until `WouldBlock`, noting the peer's uid (`SO_PEERCRED`).
//!   Past `ipc_max_clients` (0 = unlimited) the oldest connection that has
//!   not sent its request line yet is closed to make room (the reference
//!   closes the new one, so 10 idle connections locked out the health
//!   check); if every connection is busy replying, the new one is closed.
//! * Every connection has [`IPC_CONN_TIMEOUT_MS`] from accept to the end
//!   of its reply; then it is closed without a reply.
//! * `shutdown` is obeyed only from root or the server's effective uid;
//!   anyone else gets an `Error` reply and a warning in the log.
//! * Read in 256-byte chunks (as the reference) until a chunk holds an LF;
//!   more than `ipc_max_receive_size` bytes before that closes the
//!   connection without a reply, and so does EOF. Bytes after the LF are
//!   never read.
//! * Write the reply (partial writes resume on the next writable edge),
//!   then close. After the reply to `shutdown` the caller shuts the server
//!   down.
//! * [`Ipc::close`] (shutdown) and dropping a bound [`Ipc`] remove the
//!   socket file.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use socket2::{Domain, SockAddr, Socket, Type};

use super::pair::Pairing;
use super::{interrupted, would_block};
use crate::config::Config;
use crate::core::{ClientId, Instance, Timestamp};
use crate::error::Error;
use crate::mgmt::{Command, ServerView, respond, shutdown_refused};

/// What a management event asks of the loop.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// A `shutdown` request was answered: stop now.
    pub(super) shutdown: bool,
    /// Clients to disconnect (`unpair`).
    pub(super) disconnect: Vec<ClientId>,
}

/// Token of the listening socket.
pub(super) const LISTENER: Token = Token(2);

/// Tokens of management connections start here, far above the TCP
/// clients' (`FIRST_CLIENT + slot index`).
const FIRST_CONN: usize = 1 << (usize::BITS - 2);

/// Bytes per read, as the reference (`UNIX_SOCKET_CLIENT_BUFFER`). It
/// decides how much of a pipelined request counts against
/// `ipc_max_receive_size`, so it is part of the observable behaviour.
const UNIX_SOCKET_CLIENT_BUFFER: usize = 256;

/// Time a management connection has from accept until its reply is
/// written. The tool sends its line at once and reads the reply in full, so
/// only idle or stuck peers ever meet it.
pub(super) const IPC_CONN_TIMEOUT_MS: u64 = 3000;

/// Whether `token` belongs to the management socket or its connections.
pub(super) fn owns(token: Token) -> bool {
    token == LISTENER || token.0 >= FIRST_CONN
}

/// One management connection.
struct Conn {
    stream: UnixStream,
    /// The request so far.
    rx: Vec<u8>,
    /// The reply and how much of it is written, once the line is in.
    tx: Option<(Vec<u8>, usize)>,
    /// Stop the server after the reply.
    shutdown: bool,
    /// The peer's uid (`SO_PEERCRED`), if the kernel told us.
    peer_uid: Option<u32>,
    /// Closed without a reply if not done by then.
    deadline: Timestamp,
}

/// What reading a request produced.
enum Request {
    /// Wait for more.
    Pending,
    /// A chunk with an LF arrived.
    Line,
    /// EOF, error or too long: close without a reply.
    Closed,
}

/// What writing a reply produced.
enum Sent {
    /// Wait for the next writable edge.
    Pending,
    /// All of it.
    Done,
    /// The peer is gone.
    Failed,
}

/// The management socket and its connections.
pub(super) struct Ipc {
    listener: Option<UnixListener>,
    path: PathBuf,
    conns: Vec<Option<Conn>>,
    open: usize,
    max_clients: usize,
    max_receive: usize,
    max_send: usize,
    listen_addr: Option<String>,
    port: u16,
}

impl std::fmt::Debug for Ipc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipc")
            .field("path", &self.path)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Ipc {
    /// Creates the socket at `local_socket_file`.
    ///
    /// # Errors
    /// The path cannot be bound (too long, no such directory, permissions).
    pub(super) fn bind(config: &Config) -> Result<Self, Error> {
        let a = &config.advanced;
        let path = a.local_socket_file.clone();
        let fail = |e| Error::io(format!("create local socket {}", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o770)
                .create(dir);
        }
        let addr = SockAddr::unix(&path).map_err(fail)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
        // Like the reference, whatever is at the path goes: a stale socket
        // of a crashed instance would make bind fail.
        let _ = std::fs::remove_file(&path);
        socket.bind(&addr).map_err(fail)?;
        let listener = restrict_mode(&path)
            .and_then(|()| socket.set_nonblocking(true))
            .and_then(|()| socket.listen(a.local_socket_backlog))
            .map(|()| {
                UnixListener::from_std(std::os::unix::net::UnixListener::from(OwnedFd::from(
                    socket,
                )))
            });
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(fail(e));
            }
        };
        Ok(Self {
            listener: Some(listener),
            path,
            conns: Vec::new(),
            open: 0,
            max_clients: a.ipc_max_clients,
            max_receive: a.ipc_max_receive_size,
            max_send: a.ipc_max_send_size,
            listen_addr: config.listen_addr.clone(),
            port: config.port,
        })
    }

    /// Registers the listening socket.
    ///
    /// # Errors
    /// From the registry.
    pub(super) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match self.listener.as_mut() {
            Some(l) => registry.register(l, LISTENER, Interest::READABLE),
            None => Ok(()),
        }
    }

    /// Handles an event for a token [`owns`] accepted: what the loop must
    /// do next (stop after `shutdown`, disconnect after `unpair`). Pairing
    /// requests go to `pairing` (`None` with TLS off).
    #[must_use]
    pub(super) fn handle_event(
        &mut self,
        registry: &Registry,
        token: Token,
        instance: &Instance,
        pairing: Option<&mut Pairing>,
        now: Timestamp,
    ) -> Outcome {
        if token == LISTENER {
            self.accept(registry, now);
            return Outcome::default();
        }
        let Some(index) = token.0.checked_sub(FIRST_CONN) else {
            return Outcome::default();
        };
        self.serve(registry, index, instance, pairing, now)
    }

    /// The earliest connection deadline, if any connection is open.
    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        // Checked on every wake-up of the loop: nothing to scan when idle.
        if self.open == 0 {
            return None;
        }
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Closes the connections whose deadline has passed.
    pub(super) fn handle_timeout(&mut self, registry: &Registry, now: Timestamp) {
        if self.open == 0 {
            return;
        }
        for index in 0..self.conns.len() {
            let expired = self
                .conns
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.deadline <= now);
            if expired {
                log::warn!(
                    "IPC client did not finish within {IPC_CONN_TIMEOUT_MS} ms. Disconnecting client"
                );
                self.drop_conn(registry, index);
            }
        }
    }

    /// At `ipc_max_clients`: closes the oldest connection still waiting
    /// for its request line. Returns whether there is room now.
    fn make_room(&mut self, registry: &Registry) -> bool {
        let oldest = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.as_ref()
                    .filter(|c| c.tx.is_none())
                    .map(|c| (c.deadline, i))
            })
            .min();
        let Some((_, index)) = oldest else {
            return false;
        };
        log::warn!(
            "Maximum IPC clients reached. Closing the oldest idle IPC connection to accept a new one"
        );
        self.drop_conn(registry, index);
        true
    }

    fn accept(&mut self, registry: &Registry, now: Timestamp) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::error!("Can't accept local IPC connection ({e})");
                    return;
                }
            };
            if self.max_clients != 0 && self.open >= self.max_clients && !self.make_room(registry) {
                log::error!("Maximum IPC clients reached. Not accepting connection");
                continue; // dropping the stream closes it
            }
            let peer_uid = rustix::net::sockopt::socket_peercred(&stream)
                .ok()
                .map(|cred| cred.uid.as_raw());
            let index = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            let token = Token(FIRST_CONN + index);
            if let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                log::error!("Can't add IPC client socket to main poll loop ({e})");
                continue;
            }
            if let Some(slot) = self.conns.get_mut(index) {
                *slot = Some(Conn {
                    stream,
                    rx: Vec::new(),
                    tx: None,
                    shutdown: false,
                    peer_uid,
                    deadline: now.add_millis(IPC_CONN_TIMEOUT_MS),
                });
                self.open += 1;
            }
        }
    }

    /// Reads, answers and writes for connection `index`.
    fn serve(
        &mut self,
        registry: &Registry,
        index: usize,
        instance: &Instance,
        pairing: Option<&mut Pairing>,
        now: Timestamp,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let (max_receive, max_send) = (self.max_receive, self.max_send);
        let view = ServerView {
            instance,
            listen_addr: self.listen_addr.as_deref(),
            port: self.port,
        };
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return outcome;
        };
        if conn.tx.is_none() {
            match read_request(conn, max_receive) {
                Request::Pending => return outcome,
                Request::Closed => {
                    self.drop_conn(registry, index);
                    return outcome;
                }
                Request::Line => {
                    let (reply, shutdown) = match (Command::parse(&conn.rx), pairing) {
                        (Command::Pair(cmd), Some(pairing)) => {
                            let (reply, clients) = pairing.command(cmd, instance, now, max_send);
                            outcome.disconnect = clients;
                            (reply, false)
                        }
                        _ => {
                            let mut response = respond(&conn.rx, &view, max_send);
                            if response.shutdown && !may_shut_down(conn.peer_uid) {
                                log::warn!(
                                    "IPC client with uid {} may not shut the server down. Refusing",
                                    conn.peer_uid
                                        .map_or_else(|| "unknown".into(), |u| u.to_string())
                                );
                                response = shutdown_refused(max_send);
                            }
                            (response.reply, response.shutdown)
                        }
                    };
                    let Some(reply) = reply else {
                        self.drop_conn(registry, index);
                        return outcome;
                    };
                    conn.tx = Some((reply, 0));
                    conn.shutdown = shutdown;
                }
            }
        }
        match write_reply(conn) {
            Sent::Pending => {}
            Sent::Failed => self.drop_conn(registry, index),
            Sent::Done => {
                outcome.shutdown = conn.shutdown;
                self.drop_conn(registry, index);
            }
        }
        outcome
    }

    fn drop_conn(&mut self, registry: &Registry, index: usize) {
        if let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
            self.open = self.open.saturating_sub(1);
        }
    }

    /// Closes the socket, removes its file and drops every connection
    /// (server shutdown; idempotent).
    pub(super) fn close(&mut self, registry: &Registry) {
        if let Some(mut listener) = self.listener.take() {
            log::debug!("Closing server IPC socket");
            let _ = registry.deregister(&mut listener);
            drop(listener);
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!("Can't close local IPC ({e})");
            }
        }
        for index in 0..self.conns.len() {
            self.drop_conn(registry, index);
        }
    }
}

impl Drop for Ipc {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Cuts the socket file's mode to 0660 or tighter: group and others lose
/// execute, others lose everything. Connecting needs write permission, so
/// only the owner and the group can reach the server.
fn restrict_mode(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o660;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Whether a peer with `uid` may stop the server: root or our own
/// effective uid.
fn may_shut_down(uid: Option<u32>) -> bool {
    uid.is_some_and(|uid| uid == 0 || uid == rustix::process::geteuid().as_raw())
}

fn read_request(conn: &mut Conn, max_receive: usize) -> Request {
    let mut buf = [0u8; UNIX_SOCKET_CLIENT_BUFFER];
    loop {
        let n = match conn.stream.read(&mut buf) {
            Ok(0) => {
                log::debug!("IPC client closed connection");
                return Request::Closed;
            }
            Ok(n) => n,
            Err(e) if would_block(&e) => return Request::Pending,
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                log::error!("Can't receive message from IPC client. Disconnecting client. ({e})");
                return Request::Closed;
            }
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if conn.rx.len() + n > max_receive {
            log::error!("Can't store message from IPC client. Disconnecting client.");
            return Request::Closed;
        }
        conn.rx.extend_from_slice(chunk);
        if chunk.contains(&b'\n') {
            return Request::Line;
        }
    }
}

fn write_reply(conn: &mut Conn) -> Sent {
    let Some((reply, written)) = conn.tx.as_mut() else {
        return Sent::Failed;
    };
    loop {
        let Some(rest) = reply.get(*written..).filter(|r| !r.is_empty()) else {
            return Sent::Done;
        };
        match conn.stream.write(rest) {
            Ok(0) => return Sent::Failed,
            Ok(n) => *written += n,
            Err(e) if would_block(&e) => return Sent::Pending,
            Err(e) if interrupted(&e) => {}
            Err(e) => {
                log::error!("Can't send message to IPC client. Disconnecting client ({e})");
                return Sent::Failed;
            }
        }
    }
}
