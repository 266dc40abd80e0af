//! One client connection of the loop: its socket and, after STARTTLS, its
//! TLS session; one read path and one flush for both, and the switch to
//! TLS. The loop in `net` owns the connections and calls these.

use std::io::{self, Write};
use std::sync::Arc;

use mio::net::TcpStream;

use super::tls::TlsSession;
use super::{interrupted, would_block};
use crate::core::{ClientId, Instance, PeerAddr, Timestamp};

/// One client connection: the socket, and TLS once STARTTLS switched it.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) id: ClientId,
    pub(super) addr: PeerAddr,
    pub(super) tls: Option<Box<TlsSession>>,
    /// The instance was told the handshake finished.
    pub(super) tls_announced: bool,
    /// INIT has not succeeded yet ([`admission`] counts the connection).
    pub(super) pre_init: bool,
    /// No byte read yet: the first one tells pairing HTTPS (0x16) from
    /// the qdevice protocol.
    pub(super) fresh: bool,
}

/// Whether `id` is a live connection that has not finished INIT.
pub(super) fn is_pre_init(conns: &[Option<Conn>], id: ClientId) -> bool {
    usize::try_from(id.index())
        .ok()
        .and_then(|i| conns.get(i))
        .and_then(Option::as_ref)
        .is_some_and(|c| c.id == id && c.pre_init)
}

/// Bytes waiting for a socket: the instance's output for a client in clear,
/// or the TLS bytes of its session.
pub(super) trait Outgoing {
    fn pending(&self) -> &[u8];
    fn consume(&mut self, n: usize);
}

impl Outgoing for TlsSession {
    fn pending(&self) -> &[u8] {
        self.pending_ciphertext()
    }

    fn consume(&mut self, n: usize) {
        self.consume_ciphertext(n);
    }
}

/// The instance's output for one client, written in clear.
struct Plain<'a>(&'a mut Instance, ClientId);

impl Outgoing for Plain<'_> {
    fn pending(&self) -> &[u8] {
        self.0.outgoing(self.1)
    }

    fn consume(&mut self, n: usize) {
        self.0.consume_outgoing(self.1, n);
    }
}

/// Writes `out` to the socket until it is empty or the socket would block.
pub(super) fn write_out(stream: &mut TcpStream, out: &mut impl Outgoing) -> io::Result<()> {
    loop {
        let pending = out.pending();
        if pending.is_empty() {
            return Ok(());
        }
        match stream.write(pending) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.consume(n),
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

impl Conn {
    /// Hands bytes read from the socket to the instance: through TLS once
    /// it started, in clear before. `None` if the client must go, else
    /// whether an accepted STARTTLS switched the connection to TLS.
    pub(super) fn receive(
        &mut self,
        now: Timestamp,
        instance: &mut Instance,
        tls_config: Option<&Arc<rustls::ServerConfig>>,
        data: &[u8],
    ) -> Option<bool> {
        if let Some(tls) = self.tls.as_deref_mut() {
            if let Err(e) = tls.feed(data) {
                log::warn!(
                    "TLS error with client {}: {e}. Disconnecting client",
                    self.addr
                );
                let _ = write_out(&mut self.stream, tls);
                return None;
            }
            return after_tls_input(now, instance, self).then_some(false);
        }
        let input = instance.handle_input(now, self.id, data);
        if !input.start_tls {
            return Some(false);
        }
        let leftover = data.get(input.consumed..).unwrap_or_default();
        start_tls(now, instance, self, tls_config, leftover).then_some(true)
    }

    /// Writes the instance's pending output for this client until done or
    /// `WouldBlock`: in clear, or through TLS.
    pub(super) fn flush(&mut self, instance: &mut Instance) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return write_out(&mut self.stream, &mut Plain(instance, self.id));
        };
        // Plaintext goes into the session only while its buffered output
        // is below the cap; the rest waits in the instance's bounded send
        // queue, whose overflow drops a client that never reads.
        loop {
            let out = instance.outgoing(self.id);
            let n = out.len().min(tls.output_room());
            if let Some(chunk) = out.get(..n).filter(|c| !c.is_empty()) {
                tls.send_plaintext(chunk).map_err(io::Error::other)?;
                instance.consume_outgoing(self.id, n);
            }
            write_out(&mut self.stream, tls)?;
            // On while the socket took everything and more plaintext waits.
            if n == 0
                || !tls.pending_ciphertext().is_empty()
                || instance.outgoing(self.id).is_empty()
            {
                return Ok(());
            }
        }
    }
}

/// After TLS input was processed: tells the instance once the handshake is
/// done (with the client certificate's names), hands it the plaintext, and
/// writes what TLS wants to send. Returns false if the client must go.
pub(super) fn after_tls_input(now: Timestamp, instance: &mut Instance, conn: &mut Conn) -> bool {
    let Some(tls) = conn.tls.as_deref_mut() else {
        return false;
    };
    if !conn.tls_announced && !tls.is_handshaking() {
        conn.tls_announced = true;
        log::debug!(
            "TLS established with client {}: {:?} {:?}",
            conn.addr,
            tls.protocol_version(),
            tls.cipher_suite()
        );
        instance.tls_established(conn.id, tls.peer_names().cloned());
    }
    let plaintext = tls.plaintext();
    if !plaintext.is_empty() {
        let input = instance.handle_input(now, conn.id, plaintext);
        tls.consume_plaintext(input.consumed);
    }
    if let Err(e) = write_out(&mut conn.stream, tls) {
        log::debug!("Unhandled error when sending message to client ({e})");
        return false;
    }
    !tls.peer_closed()
}

/// Switches a connection to TLS after an accepted STARTTLS. Replies queued
/// before it go out in clear first; `leftover` (bytes read after the
/// STARTTLS message) starts the handshake. Returns false if the client
/// must go.
pub(super) fn start_tls(
    now: Timestamp,
    instance: &mut Instance,
    conn: &mut Conn,
    config: Option<&Arc<rustls::ServerConfig>>,
    leftover: &[u8],
) -> bool {
    let Some(config) = config else {
        log::error!("Can't start TLS. Disconnecting client.");
        return false;
    };
    if write_out(&mut conn.stream, &mut Plain(instance, conn.id)).is_err()
        || !instance.outgoing(conn.id).is_empty()
    {
        log::error!("Can't start TLS: clear-text replies still pending. Disconnecting client.");
        return false;
    }
    match TlsSession::new(Arc::clone(config), leftover) {
        Ok(session) => {
            conn.tls = Some(Box::new(session));
            after_tls_input(now, instance, conn)
        }
        Err(e) => {
            log::warn!(
                "TLS error with client {}: {e}. Disconnecting client",
                conn.addr
            );
            let _ = conn.stream.write_all(&e.alert);
            false
        }
    }
}
