//! The status panel's HTTP listener in the mio loop (add-on Ingress port
//! or `--http`): accepts, reads request heads, writes answers and keeps
//! the event streams fed. Every decision is the sans-IO
//! [`crate::panel`]'s; this file only moves bytes and keeps time.
//!
//! * A connection from a source other than the allowed one gets `403` (a
//!   best-effort write) and is closed at once; past the connection limit,
//!   `503`.
//! * Bounded per connection: the request head ([`MAX_REQUEST`]), the
//!   time to send it and to take the answer (the request deadline; only
//!   an event stream outlives it), and an event stream's backlog
//!   ([`MAX_BACKLOG`]; a reader that falls behind is dropped). Nothing here
//!   blocks, so a slow client cannot delay the vote.
//! * Pairing requests go to the daemon's `Pairing` ([`Pairing::command`],
//!   as the management socket's `pair` verbs); an unpair hands the clients
//!   to disconnect back to the loop.
//! * [`Http::mark_dirty`] (the loop calls it after client activity or
//!   engine timers) makes the next [`Http::tick`] rebuild the `--json`
//!   Report, at most every [`REFRESH_MS`]; a change goes to every event
//!   stream. [`Http::note`] adds the pairing steps the loop takes from
//!   `Pairing` to the same event list, with its paired clusters (the
//!   snapshot's `paired`); they go out with the next rebuild.
//!   Streams get a keepalive comment every [`KEEPALIVE_MS`].

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::IpAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::pair::Pairing;
use super::{interrupted, would_block};
use crate::config::Config;
use crate::core::{ClientId, Timestamp};
use crate::error::Error;
use crate::mgmt::json::{self, Report};
use crate::mgmt::pair::PairCommand;
use crate::mgmt::{PAIR_NEEDS_TLS, ServerView};
use crate::panel::feed::Event;
use crate::panel::{self, Feed, MAX_BODY, MAX_REQUEST, Parsed, Route};

/// Token of the listening socket; connections follow it. The range sits
/// between the TCP clients' and the management socket's.
const LISTENER: Token = Token(1 << (usize::BITS - 3));
const FIRST_CONN: usize = LISTENER.0 + 1;
const END: usize = 1 << (usize::BITS - 2);

/// Least time between two Report rebuilds, ms.
pub(super) const REFRESH_MS: u64 = 200;
/// Time between keepalive comments on event streams, ms.
pub(super) const KEEPALIVE_MS: u64 = 15_000;
/// Largest pairing reply taken from [`Pairing::command`].
const MAX_PAIR_REPLY: usize = 16 * 1024;
/// Bytes an event stream may have unsent before it is dropped.
const MAX_BACKLOG: usize = 256 * 1024;

/// Whether `token` belongs to the panel's listener or connections.
pub(super) fn owns(token: Token) -> bool {
    (LISTENER.0..END).contains(&token.0)
}

struct Conn {
    stream: TcpStream,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Until the answer is out (`None` for an event stream).
    deadline: Option<u64>,
    /// The head was answered: no more parsing.
    answered: bool,
    streaming: bool,
}

/// The listener, its connections and the feed.
pub(super) struct Http {
    listener: TcpListener,
    allow: Option<IpAddr>,
    timeout_ms: u64,
    max_conns: usize,
    conns: Vec<Option<Conn>>,
    feed: Feed,
    dirty: bool,
    /// Events were noted since the last frame went out.
    noted: bool,
    next_refresh: u64,
    next_keepalive: u64,
    listen_addr: Option<String>,
    port: u16,
    /// The address pairing windows tell the nodes (add-on
    /// `pairing_address`); `None`: the listen address.
    pair_address: Option<String>,
}

impl Http {
    /// Binds `--http` (or the Ingress port), if configured.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub(super) fn bind(config: &Config) -> Result<Option<Self>, Error> {
        let Some(addr) = config.http else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("listen for the status panel on {addr}"), e))?;
        Ok(Some(Self {
            listener,
            allow: config.http_allow,
            timeout_ms: config.http_request_timeout_ms,
            max_conns: panel::DEFAULT_MAX_CONNS,
            conns: Vec::new(),
            feed: Feed::default(),
            dirty: true,
            noted: false,
            next_refresh: 0,
            next_keepalive: KEEPALIVE_MS,
            listen_addr: config.listen_addr.clone(),
            port: config.port,
            pair_address: config.auto_pair.as_ref().and_then(|a| a.address.clone()),
        }))
    }

    /// Logs where the panel is (after the ready line).
    pub(super) fn log_ready(&self) {
        let local = self
            .listener
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string());
        log::info!(
            "Status panel on http://{local}/ (answering {})",
            self.allow
                .map_or_else(|| "any source".to_string(), |a| a.to_string())
        );
    }

    pub(super) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, LISTENER, Interest::READABLE)
    }

    /// The engine's state may have changed.
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Pairing steps at `now` and the paired clusters after them
    /// ([`Pairing::paired`]): into the snapshot, out with the next frame.
    pub(super) fn note(&mut self, now: u64, steps: Vec<Event>, paired: &BTreeSet<String>) {
        for step in steps {
            self.feed.note(now, step);
        }
        self.feed.set_paired(paired);
        self.noted = true;
        self.dirty = true;
    }

    fn view<'a>(&'a self, instance: &'a crate::core::Instance) -> ServerView<'a> {
        ServerView {
            instance,
            listen_addr: self.listen_addr.as_deref(),
            port: self.port,
        }
    }

    /// Handles an event for a token [`owns`] accepted; returns the clients
    /// to disconnect (an unpair). Pairing requests go to `pairing` (`None`
    /// with TLS off).
    pub(super) fn handle_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now: u64,
        instance: &crate::core::Instance,
        pairing: Option<&mut Pairing>,
    ) -> Vec<ClientId> {
        if token == LISTENER {
            self.accept(registry, now);
            return Vec::new();
        }
        let index = token.0 - FIRST_CONN;
        let (keep, disconnect) = self.serve(index, now, instance, pairing);
        if !keep {
            self.drop_conn(registry, index);
        }
        disconnect
    }

    fn accept(&mut self, registry: &Registry, now: u64) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("Can't accept status panel connection: {e}");
                    return;
                }
            };
            if !panel::source_allowed(self.allow, peer.ip()) {
                log::debug!("Status panel: refused {peer} (not the allowed source)");
                let _ = stream.write(&panel::answer(403, "Forbidden source address"));
                continue;
            }
            let open = self.conns.iter().flatten().count();
            if open >= self.max_conns {
                log::debug!("Status panel: too many connections, refused {peer}");
                let _ = stream.write(&panel::answer(503, "Too many connections"));
                continue;
            }
            let index = self
                .conns
                .iter()
                .position(Option::is_none)
                .unwrap_or(self.conns.len());
            let token = Token(FIRST_CONN + index);
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            if index == self.conns.len() {
                self.conns.push(None);
            }
            if let Some(slot) = self.conns.get_mut(index) {
                *slot = Some(Conn {
                    stream,
                    rx: Vec::new(),
                    tx: Vec::new(),
                    deadline: Some(now + self.timeout_ms),
                    answered: false,
                    streaming: false,
                });
            }
        }
    }

    /// Reads, answers, writes; false if the connection must go. Also the
    /// clients an unpair disconnects.
    fn serve(
        &mut self,
        index: usize,
        now: u64,
        instance: &crate::core::Instance,
        pairing: Option<&mut Pairing>,
    ) -> (bool, Vec<ClientId>) {
        let mut disconnect = Vec::new();
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return (true, disconnect);
        };
        let mut buf = [0u8; 1024];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => return (false, disconnect),
                Ok(n) => {
                    // After the head only a small body may follow; more is
                    // a misbehaving client.
                    conn.rx.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if conn.answered {
                        if conn.rx.len() > MAX_REQUEST {
                            return (false, disconnect);
                        }
                    } else if conn.rx.len() > MAX_REQUEST + MAX_BODY {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(_) => return (false, disconnect),
            }
        }
        if !conn.answered {
            match panel::parse(&conn.rx) {
                Parsed::Partial => {}
                Parsed::Done(route) => {
                    conn.answered = true;
                    conn.rx = Vec::new();
                    let streaming = route == Route::Events;
                    if streaming || matches!(route, Route::Page { .. }) {
                        self.refresh(now, instance);
                    }
                    let reply = match route {
                        Route::Pair(cmd) => {
                            let (reply, clients) = self.pair(cmd, now, instance, pairing);
                            disconnect = clients;
                            if !disconnect.is_empty() {
                                self.dirty = true;
                            }
                            reply
                        }
                        route => self.reply(&route, now, instance),
                    };
                    let Some(Some(conn)) = self.conns.get_mut(index) else {
                        return (true, disconnect);
                    };
                    conn.tx = reply;
                    if streaming {
                        conn.streaming = true;
                        conn.deadline = None;
                    }
                }
            }
        }
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return (true, disconnect);
        };
        (flush(conn), disconnect)
    }

    /// Carries out a pairing request with the management verbs' own
    /// [`Pairing::command`]; the answer and the clients to disconnect.
    fn pair(
        &self,
        mut cmd: PairCommand,
        now: u64,
        instance: &crate::core::Instance,
        pairing: Option<&mut Pairing>,
    ) -> (Vec<u8>, Vec<ClientId>) {
        let Some(pairing) = pairing else {
            return (panel::answer(409, PAIR_NEEDS_TLS), Vec::new());
        };
        if let PairCommand::Bad(m) = &cmd {
            return (panel::answer(400, m), Vec::new());
        }
        if let PairCommand::Open(p) = &mut cmd {
            p.address = p.address.take().or_else(|| self.pair_address.clone());
        }
        let (reply, clients) =
            pairing.command(cmd, instance, Timestamp::from_millis(now), MAX_PAIR_REPLY);
        let reply = reply.map_or_else(
            || panel::answer(500, "reply too large"),
            |r| panel::pair_reply(&r),
        );
        (reply, clients)
    }

    fn reply(&self, route: &Route, now: u64, instance: &crate::core::Instance) -> Vec<u8> {
        match route {
            Route::Page { base } => panel::page(base, &self.feed.snapshot(now)),
            Route::Status => panel::response(
                200,
                "application/json",
                &format!("X-Qnetd-Uptime-Ms: {now}\r\n"),
                &json::render(&self.view(instance), None),
            ),
            Route::Events => {
                let mut out = panel::events_head();
                out.extend_from_slice(&self.feed.frame(now));
                out
            }
            Route::Answer(code, message) => panel::answer(*code, message),
            Route::Pair(_) => panel::answer(500, "pairing request out of place"),
        }
    }

    /// Rebuilds the Report; sends it to the streams if it changed.
    fn refresh(&mut self, now: u64, instance: &crate::core::Instance) {
        self.dirty = false;
        self.next_refresh = now + REFRESH_MS;
        let report = Report::new(&self.view(instance), None);
        if self.feed.update(now, report) | std::mem::take(&mut self.noted) {
            let frame = self.feed.frame(now);
            self.broadcast(&frame);
        }
    }

    fn broadcast(&mut self, bytes: &[u8]) {
        for conn in self.conns.iter_mut().flatten().filter(|c| c.streaming) {
            conn.tx.extend_from_slice(bytes);
        }
    }

    /// Timers: refresh, keepalives, deadlines; then writes.
    pub(super) fn tick(&mut self, registry: &Registry, now: u64, instance: &crate::core::Instance) {
        if self.dirty && now >= self.next_refresh {
            self.refresh(now, instance);
        }
        if now >= self.next_keepalive {
            self.next_keepalive = now + KEEPALIVE_MS;
            self.broadcast(panel::feed::KEEPALIVE);
        }
        for index in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            let expired = conn.deadline.is_some_and(|d| now >= d);
            if expired {
                log::debug!("Status panel: request deadline passed, closing");
            }
            if expired || !flush(conn) {
                self.drop_conn(registry, index);
            }
        }
    }

    /// When [`Http::tick`] must run next, ms.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        let conns = self.conns.iter().flatten();
        let streaming = conns.clone().any(|c| c.streaming);
        [
            self.dirty.then_some(self.next_refresh),
            streaming.then_some(self.next_keepalive),
            conns.filter_map(|c| c.deadline).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn drop_conn(&mut self, registry: &Registry, index: usize) {
        if let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
        }
    }

    /// Closes everything (server shutdown).
    pub(super) fn close(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        for index in 0..self.conns.len() {
            self.drop_conn(registry, index);
        }
    }
}

/// Writes what is pending; false if the connection must go (error, a
/// non-stream answer fully written, or a stream too far behind).
fn flush(conn: &mut Conn) -> bool {
    while !conn.tx.is_empty() {
        match conn.stream.write(&conn.tx) {
            Ok(0) => return false,
            Ok(n) => {
                conn.tx.drain(..n);
            }
            Err(e) if would_block(&e) => break,
            Err(e) if interrupted(&e) => {}
            Err(_) => return false,
        }
    }
    if conn.streaming {
        return conn.tx.len() <= MAX_BACKLOG;
    }
    !(conn.answered && conn.tx.is_empty())
}
