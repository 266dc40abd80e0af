//! The shell: one single-threaded `mio` loop that owns every socket, the
//! clock and the signals, and drives the sans-IO [`Instance`].
//!
//! Discipline (mio's "draining readiness" and "spurious events" rules):
//! accept and read until `WouldBlock`, retry `Interrupted`, treat every
//! event as a hint. Client sockets are registered once for both readable
//! and writable edges. Work per client per wake-up is bounded
//! ([`READ_BUDGET`]); a client cut off by the budget goes on a ready list
//! served before the next blocking poll. Connections that have not finished
//! INIT are admitted, timed out and pushed out first by `admission`.
//!
//! The files: this one holds the loop itself (poll, dispatch by token, the
//! read and write paths, closing); `start` everything before the first poll
//! ([`run`]: signals, lock file, TLS and the certificate store, binding and
//! registering the sockets); `accept` new qdevice connections and those
//! still before INIT (admission, eviction under `-m`, the INIT timeout);
//! `conn` one qdevice connection.
//!
//! Beside the qdevice clients and the management socket (`ipc`), the
//! loop drives the optional MQTT client (`mqtt`): one token, its timers
//! in the poll timeout, and one call after each round of engine events.
//! The status panel (`http`) and the pairing endpoint (`pair`) have their
//! own token ranges; once per round the pairing steps (`pair`) go to the
//! panel's event list and an unpaired cluster to MQTT.

mod accept;
mod admission;
mod conn;
mod http;
mod ipc;
mod listen;
mod lock;
mod mqtt;
mod pair;
mod start;
pub mod tls;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use signal_hook_mio::v1_0::Signals;

use self::admission::Admission;
use self::conn::Conn;
use crate::core::ClientId;
use crate::core::{Event, Instance, Timestamp};
use crate::error::Error;

pub use lock::LockFile;
pub use start::run;

/// Bytes read from a client socket per read call (one buffer for all
/// clients, plain and TLS).
pub(crate) const READ_CHUNK: usize = 16 * 1024;

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CLIENT: usize = 16;

/// First byte of a TLS handshake record: a pairing connection (the qdevice
/// protocol starts with 0x00).
const TLS_HANDSHAKE: u8 = 0x16;

/// How soon a failed `accept` is retried.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Bytes read from one client per wake-up before others get their turn
/// (four reads). Below the receive buffer Linux grows for a fast sender
/// (about 256 KiB on loopback), so a client that keeps its socket full is
/// served in rounds with everyone else; a heartbeat is a few dozen bytes.
pub const READ_BUDGET: usize = 64 * 1024;

/// The monotonic clock, as the core's [`Timestamp`].
struct Clock(Instant);

impl Clock {
    #[allow(clippy::disallowed_methods, reason = "the clock lives in the shell")]
    fn new() -> Self {
        Self(Instant::now())
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// What reading a client produced.
enum ReadOutcome {
    /// Drained to `WouldBlock`.
    Drained,
    /// Budget used up: read again before sleeping.
    More,
    /// EOF or error: the client is gone.
    Closed,
    /// The first `n` bytes in the read buffer start a TLS handshake: a
    /// pairing connection.
    Pairing(usize),
}

/// The running server.
struct Server {
    poll: Poll,
    listener: mio::net::TcpListener,
    signals: Signals,
    ipc: ipc::Ipc,
    instance: Instance,
    conns: Vec<Option<Conn>>,
    ready: VecDeque<ClientId>,
    admission: Admission,
    clock: Clock,
    buf: Box<[u8]>,
    /// Set when TLS is on or required.
    tls_config: Option<Arc<rustls::ServerConfig>>,
    /// The status panel, when `--http` or add-on mode asks for it.
    http: Option<http::Http>,
    /// The pairing endpoint and state, when TLS is on.
    pairing: Option<pair::Pairing>,
    /// `accept` failed (e.g. out of file descriptors): connections may be
    /// waiting in the backlog without a new edge to announce them, so the
    /// loop retries on a short timer.
    accept_failed: bool,
    /// Home Assistant over MQTT, when configured ([`mqtt`]).
    mqtt: Option<mqtt::Mqtt>,
}

/// The earlier of two optional deadlines (`None` is "no deadline").
fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Server {
    fn run(&mut self) -> Result<(), Error> {
        let mut events = Events::with_capacity(1024);
        log::debug!("Running QNetd main loop");
        loop {
            let timeout = if self.ready.is_empty() {
                self.wait()
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if interrupted(&e) {
                    continue;
                }
                return Err(Error::io("poll", e));
            }
            let now = self.clock.now();
            // Client traffic or engine timers may change what the panel shows.
            let mut activity = events.is_empty();
            for event in &events {
                match event.token() {
                    LISTENER => {
                        activity = true;
                        self.accept(now);
                    }
                    mqtt::TOKEN => {
                        if let Some(m) = &mut self.mqtt {
                            m.handle_event(event);
                        }
                    }
                    SIGNALS => {
                        if self.signals.pending().next().is_some() {
                            log::info!("Signal received - shutting down");
                            self.shutdown(now);
                            return Ok(());
                        }
                    }
                    token if ipc::owns(token) => {
                        let outcome = self.ipc.handle_event(
                            self.poll.registry(),
                            token,
                            &self.instance,
                            self.pairing.as_mut(),
                            now,
                        );
                        for id in outcome.disconnect {
                            self.close(now, id);
                        }
                        if outcome.shutdown {
                            log::info!("Shutdown requested through the local socket");
                            self.shutdown(now);
                            return Ok(());
                        }
                    }
                    token if http::owns(token) => {
                        let disconnect = match self.http.as_mut() {
                            Some(h) => h.handle_event(
                                self.poll.registry(),
                                token,
                                now.as_millis(),
                                &self.instance,
                                self.pairing.as_mut(),
                            ),
                            None => Vec::new(),
                        };
                        for id in disconnect {
                            self.close(now, id);
                        }
                    }
                    token if pair::owns(token) => {
                        if let Some(p) = self.pairing.as_mut() {
                            p.handle_event(self.poll.registry(), token, now);
                        }
                    }
                    token => {
                        activity = true;
                        let Some(id) = self.id_of(token) else {
                            continue;
                        };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(now, id);
                        }
                        if event.is_writable() {
                            self.flush(now, id);
                        }
                    }
                }
            }
            if self.accept_failed {
                self.accept(now);
            }
            // Clients cut off by the read budget.
            for _ in 0..self.ready.len() {
                if let Some(id) = self.ready.pop_front() {
                    self.on_readable(now, id);
                }
            }
            self.instance.handle_timeout(now);
            self.expire_pre_init(now);
            self.ipc.handle_timeout(self.poll.registry(), now);
            if let Some(p) = self.pairing.as_mut() {
                p.handle_timeout(self.poll.registry(), now);
            }
            self.route_pair_steps(now);
            self.process_outputs(now);
            if let Some(m) = &mut self.mqtt {
                m.after_events(self.poll.registry(), &self.instance);
            }
            if let Some(h) = self.http.as_mut() {
                if activity {
                    h.mark_dirty();
                }
                h.tick(self.poll.registry(), now.as_millis(), &self.instance);
            }
        }
    }

    /// Hands the pairing steps since the last call to the panel's event
    /// list, and an unpaired cluster to MQTT (its entities go at once).
    /// Without a step (every heartbeat) nothing is allocated.
    fn route_pair_steps(&mut self, now: Timestamp) {
        let Some(pairing) = self.pairing.as_mut() else {
            return;
        };
        let steps = pairing.take_steps();
        if steps.is_empty() {
            return;
        }
        if let Some(m) = &mut self.mqtt {
            for step in &steps {
                if let crate::panel::feed::Event::Unpair { cluster, .. } = step {
                    m.forget(cluster);
                }
            }
        }
        if let Some(h) = self.http.as_mut() {
            h.note(now.as_millis(), steps, pairing.paired());
        }
    }

    /// How long the loop may sleep: until the earliest deadline of the
    /// engine, the side protocols and an accept retry. Runs on every
    /// wake-up, so it is straight-line code with one clock read.
    fn wait(&self) -> Option<Duration> {
        let now = self.clock.now();
        let at = earliest(
            earliest(self.instance.poll_timeout(), self.ipc.poll_timeout()),
            earliest(
                self.admission.next_deadline(),
                self.pairing.as_ref().and_then(pair::Pairing::poll_timeout),
            ),
        );
        let http = self.http.as_ref().and_then(http::Http::next_deadline);
        let wait = earliest(
            at.map(|t| t.millis_since(now)),
            http.map(|t| t.saturating_sub(now.as_millis())),
        )
        .map(Duration::from_millis);
        let retry = self.accept_failed.then_some(ACCEPT_RETRY);
        let mqtt = self.mqtt.as_ref().and_then(mqtt::Mqtt::poll_timeout);
        earliest(wait, earliest(retry, mqtt))
    }

    fn id_of(&self, token: Token) -> Option<ClientId> {
        let index = token.0.checked_sub(FIRST_CLIENT)?;
        self.conns.get(index)?.as_ref().map(|c| c.id)
    }

    fn conn(&mut self, id: ClientId) -> Option<&mut Conn> {
        let index = usize::try_from(id.index()).ok()?;
        self.conns.get_mut(index)?.as_mut().filter(|c| c.id == id)
    }

    fn on_readable(&mut self, now: Timestamp, id: ClientId) {
        match self.read(now, id) {
            ReadOutcome::Drained => self.note_init(id),
            ReadOutcome::More => {
                self.note_init(id);
                self.ready.push_back(id);
            }
            ReadOutcome::Closed => self.close(now, id),
            ReadOutcome::Pairing(n) => self.hand_to_pairing(now, id, n),
        }
        self.process_outputs(now);
    }

    fn read(&mut self, now: Timestamp, id: ClientId) -> ReadOutcome {
        let pairing = self.pairing.is_some();
        let Self {
            conns,
            instance,
            buf,
            tls_config,
            ..
        } = self;
        let Some(Some(conn)) = usize::try_from(id.index())
            .ok()
            .and_then(|i| conns.get_mut(i))
        else {
            return ReadOutcome::Closed;
        };
        if conn.id != id {
            return ReadOutcome::Closed;
        }
        let mut budget = READ_BUDGET;
        loop {
            let n = match conn.stream.read(buf) {
                Ok(0) => {
                    log::debug!("Client closed connection");
                    return ReadOutcome::Closed;
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => return ReadOutcome::Drained,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::error!(
                        "Unhandled error when reading from client. Disconnecting client ({e})"
                    );
                    return ReadOutcome::Closed;
                }
            };
            budget = budget.saturating_sub(n);
            if std::mem::take(&mut conn.fresh) && buf.first() == Some(&TLS_HANDSHAKE) && pairing {
                return ReadOutcome::Pairing(n);
            }
            // Plain or TLS, the bytes go through the one shared buffer: a
            // TLS session keeps no large buffer between messages.
            let Some(started_tls) = conn.receive(
                now,
                instance,
                tls_config.as_ref(),
                buf.get(..n).unwrap_or_default(),
            ) else {
                return ReadOutcome::Closed;
            };
            // A short read leaves the socket buffer empty; data arriving
            // later raises a new edge, so skip the read that would only say
            // WouldBlock (one syscall less per message). After STARTTLS the
            // handshake may already be waiting: read on.
            if n < buf.len() && !started_tls {
                return ReadOutcome::Drained;
            }
            if budget == 0 {
                return ReadOutcome::More;
            }
        }
    }

    /// Hands a connection whose first `n` bytes (in the read buffer) start
    /// a TLS handshake to the pairing endpoint; it leaves the instance.
    fn hand_to_pairing(&mut self, now: Timestamp, id: ClientId, n: usize) {
        let index = usize::try_from(id.index()).unwrap_or(usize::MAX);
        let Some(conn) = self.conns.get_mut(index).and_then(Option::take) else {
            return;
        };
        self.instance.disconnect(now, id);
        if let Some(p) = self.pairing.as_mut() {
            let first = self.buf.get(..n).unwrap_or_default();
            p.adopt(self.poll.registry(), conn.stream, conn.addr, first, now);
        }
    }

    /// Writes a client's pending output until done or `WouldBlock`: in
    /// clear, or through TLS.
    fn flush(&mut self, now: Timestamp, id: ClientId) {
        let Self {
            conns, instance, ..
        } = self;
        let Some(Some(conn)) = usize::try_from(id.index())
            .ok()
            .and_then(|i| conns.get_mut(i))
        else {
            return;
        };
        if conn.id != id {
            return;
        }
        let ok = conn.flush(instance).is_ok();
        if !ok {
            log::debug!("Unhandled error when sending message to client");
            self.close(now, id);
        }
    }

    /// Carries out the instance's requests: closes, then writes.
    fn process_outputs(&mut self, now: Timestamp) {
        loop {
            let mut progressed = false;
            while let Some(Event::Close(id)) = self.instance.poll_event() {
                self.close(now, id);
                progressed = true;
            }
            while let Some(id) = self.instance.poll_transmit() {
                self.flush(now, id);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    /// Closes a client's socket and removes it from the instance.
    fn close(&mut self, now: Timestamp, id: ClientId) {
        if self.conn(id).is_some() {
            let index = usize::try_from(id.index()).unwrap_or(usize::MAX);
            if let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) {
                let _ = self.poll.registry().deregister(&mut conn.stream);
                if conn.pre_init {
                    self.admission.left(conn.addr.0.ip());
                }
            }
        }
        self.instance.disconnect(now, id);
    }

    fn shutdown(&mut self, now: Timestamp) {
        self.ipc.close(self.poll.registry());
        if let Some(m) = &mut self.mqtt {
            m.shutdown(self.poll.registry());
        }
        if let Some(h) = self.http.as_mut() {
            h.close(self.poll.registry());
        }
        for id in self.instance.shutdown(now) {
            if let Some(slot) = usize::try_from(id.index())
                .ok()
                .and_then(|i| self.conns.get_mut(i))
            {
                *slot = None;
            }
        }
        log::debug!("Closing server socket");
    }
}
