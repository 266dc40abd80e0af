//! The pairing connections: one HTTPS exchange each. A connection is
//! adopted from the loop after its first bytes ([`Pairing::adopt`]), read
//! until `WouldBlock`, answered once its request is complete (by the
//! sans-IO [`crate::pair::http`], signing through the [`super::ledger`]),
//! flushed, and closed once the reply is out, on any error, or at its
//! deadline ([`DEADLINE_MS`]).

use std::io::{self, Read as _};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::{DEADLINE_MS, FIRST_CONN, LAST_CONN, MAX_CONNS, Pairing};
use crate::core::{PeerAddr, Timestamp};
use crate::net::READ_CHUNK;
use crate::net::conn::write_out;
use crate::net::tls::TlsSession;
use crate::net::{interrupted, would_block};
use crate::pair::http::{self, Context, Parse};
use crate::pair::token::Token as PairToken;
use crate::panel::feed::Event;

/// Plaintext buffered for one request: the largest head and body.
const MAX_REQUEST: usize = http::MAX_HEAD + crate::pair::corosync_conf::MAX_CONF_LEN + READ_CHUNK;

/// One pairing connection.
pub(super) struct Conn {
    stream: TcpStream,
    addr: PeerAddr,
    tls: TlsSession,
    rx: Vec<u8>,
    pub(super) deadline: Timestamp,
    answered: bool,
}

impl Pairing {
    /// Takes over a new connection whose first bytes `first` start a TLS
    /// handshake.
    pub(in crate::net) fn adopt(
        &mut self,
        registry: &Registry,
        mut stream: TcpStream,
        addr: PeerAddr,
        first: &[u8],
        now: Timestamp,
    ) {
        if self.conns.iter().flatten().count() >= MAX_CONNS {
            log::warn!("pairing: too many pairing connections, closing the one from {addr}");
            let _ = registry.deregister(&mut stream);
            return;
        }
        let index = self
            .conns
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.conns.len());
        if index >= LAST_CONN - FIRST_CONN {
            return;
        }
        if let Err(e) = registry.reregister(
            &mut stream,
            Token(FIRST_CONN + index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("pairing: can't add connection to the poll loop: {e}");
            return;
        }
        let tls = match TlsSession::new(Arc::clone(&self.config), first) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("pairing: TLS error with {addr}: {e}");
                let _ = io::Write::write_all(&mut stream, &e.alert);
                let _ = registry.deregister(&mut stream);
                return;
            }
        };
        if self.conns.len() <= index {
            self.conns.resize_with(index + 1, || None);
        }
        if let Some(slot) = self.conns.get_mut(index) {
            *slot = Some(Conn {
                stream,
                addr,
                tls,
                rx: Vec::new(),
                deadline: now.add_millis(DEADLINE_MS),
                answered: false,
            });
        }
        self.after_input(registry, index, now);
        self.serve(registry, index, now);
    }

    /// Handles readiness of a pairing connection.
    pub(in crate::net) fn handle_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Timestamp,
    ) {
        if let Some(index) = token.0.checked_sub(FIRST_CONN) {
            self.serve(registry, index, now);
        }
    }

    /// Closes connections past their deadline.
    pub(super) fn close_late(&mut self, registry: &Registry, now: Timestamp) {
        for index in 0..self.conns.len() {
            if let Some(c) = self.conns.get(index).and_then(Option::as_ref)
                && now >= c.deadline
            {
                log::warn!(
                    "pairing: connection from {} closed: no complete request within {} s",
                    c.addr,
                    DEADLINE_MS / 1000
                );
                self.drop_conn(registry, index);
            }
        }
    }

    fn drop_conn(&mut self, registry: &Registry, index: usize) {
        if let Some(mut c) = self.conns.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// Reads until `WouldBlock`, answers once a request is complete, writes.
    fn serve(&mut self, registry: &Registry, index: usize, now: Timestamp) {
        loop {
            let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                return;
            };
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => {
                    self.drop_conn(registry, index);
                    return;
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => continue,
                Err(_) => {
                    self.drop_conn(registry, index);
                    return;
                }
            };
            if conn.answered {
                continue; // the reply is out or going; input is ignored
            }
            if let Err(e) = conn.tls.feed(self.buf.get(..n).unwrap_or_default()) {
                log::warn!("pairing: TLS error with {}: {e}", conn.addr);
                let _ = write_out(&mut conn.stream, &mut conn.tls);
                self.drop_conn(registry, index);
                return;
            }
            if !self.after_input(registry, index, now) {
                return;
            }
        }
        self.flush(registry, index);
    }

    /// Moves plaintext into the request buffer and answers a complete
    /// request. Returns false if the connection was dropped.
    fn after_input(&mut self, registry: &Registry, index: usize, now: Timestamp) -> bool {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return false;
        };
        let plain = conn.tls.plaintext();
        if conn.rx.len() + plain.len() > MAX_REQUEST {
            log::warn!("pairing: request from {} too large", conn.addr);
            self.drop_conn(registry, index);
            return false;
        }
        conn.rx.extend_from_slice(plain);
        let n = plain.len();
        conn.tls.consume_plaintext(n);
        if conn.answered || conn.rx.is_empty() {
            return self.flush(registry, index);
        }
        let response = match http::parse(&conn.rx) {
            Parse::Incomplete => return self.flush(registry, index),
            Parse::Reject(r) => r,
            Parse::Request(req, _) => {
                let addr = conn.addr;
                let (store, pin, ca_der, port) = (&self.store, &self.pin, &self.ca_der, self.port);
                let ledger = &mut self.ledger;
                let (window, host) = match self.window.as_mut() {
                    Some(w) => (Some(&mut w.window), w.host.as_str()),
                    None => (None, ""),
                };
                let has_window = window.is_some();
                let id = window.as_ref().map(|w| w.id().to_string());
                let has_live = |name: &str| store.has_live_certs(name).unwrap_or(true);
                let mut sign = |csr: &[u8], cluster: &str, node: &str| {
                    let token = id.as_deref().unwrap_or("-");
                    ledger.sign(store, csr, cluster, node, token, addr)
                };
                let mut ctx = Context {
                    host,
                    port,
                    pin,
                    ca_der,
                    has_live_certs: &has_live,
                    sign: &mut sign,
                };
                let r = http::handle(&req, window, &mut ctx, now);
                if r.status() != 200 {
                    log::warn!(
                        "pairing: request from {addr} refused with {} (window {}): {}",
                        r.status(),
                        id.as_deref().unwrap_or("none"),
                        String::from_utf8_lossy(r.body()).trim_end()
                    );
                    let reason = match (r.refusal(), r.status()) {
                        (Some(refusal), _) => refusal.kind(),
                        (None, _) if !has_window => "no_window",
                        (None, 400) => "bad_request",
                        (None, 409) => "conflict",
                        (None, _) => "error",
                    };
                    self.ledger.steps.push(Event::PairRefused {
                        token: PairToken::parse(&req.token)
                            .ok()
                            .map(|t| t.id().to_string()),
                        address: addr.to_string(),
                        reason,
                        status: r.status(),
                    });
                }
                self.note_end(now);
                r
            }
        };
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return false;
        };
        conn.answered = true;
        conn.rx = Vec::new();
        if conn.tls.send_plaintext(&response.to_bytes()).is_err()
            || conn.tls.send_close_notify().is_err()
        {
            self.drop_conn(registry, index);
            return false;
        }
        self.flush(registry, index)
    }

    /// Writes pending TLS bytes; closes once an answered connection's reply
    /// is out. Returns false if the connection was dropped.
    fn flush(&mut self, registry: &Registry, index: usize) -> bool {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return false;
        };
        let ok = write_out(&mut conn.stream, &mut conn.tls).is_ok();
        if !ok || (conn.answered && conn.tls.pending_ciphertext().is_empty()) {
            self.drop_conn(registry, index);
            return false;
        }
        true
    }
}
