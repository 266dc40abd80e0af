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
//! Beside the qdevice clients and the management socket (`ipc`), the
//! loop drives the optional MQTT client (`mqtt`): one token, its timers
//! in the poll timeout, and one call after each round of engine events.
//! The status panel (`http`) and the pairing endpoint (`pair`) have their
//! own token ranges; once per round the pairing steps (`pair`) go to the
//! panel's event list and an unpaired cluster to MQTT.

mod admission;
mod conn;
mod http;
mod ipc;
mod listen;
mod lock;
mod mqtt;
mod pair;
pub mod tls;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use self::admission::{Admission, Refusal};
use self::conn::{Conn, is_pre_init};
use crate::cert::store::{CertStore, InitOutcome};
use crate::config::Config;
use crate::core::ClientId;
use crate::core::{Event, Instance, InstanceConfig, PeerAddr, Timestamp};
use crate::error::Error;
use crate::proto::TlsSupported;

pub use lock::LockFile;

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

/// Runs the server until SIGTERM/SIGINT.
///
/// # Errors
/// Startup failures (lock file, listen address, signals); once running,
/// client errors only ever affect that client.
pub fn run(config: &Config) -> Result<(), Error> {
    config.validate()?;
    log::info!(
        "qnetd {} starting (protocol of corosync-qnetd {})",
        env!("CARGO_PKG_VERSION"),
        crate::REFERENCE_VERSION
    );
    // Handlers first: a SIGTERM during start-up (key generation can take a
    // while on a small board) is then served by the loop, not the default
    // action.
    let signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| Error::io("install signal handlers", e))?;
    let _lock = LockFile::acquire(&config.advanced.lock_file)?;
    let revoked = crate::cert::policy::RevokedSerials::default();
    let tls_config = tls_setup(config, &revoked)?;
    let pairing = match tls_config {
        Some(_) => Some(pair::Pairing::new(config, revoked)?),
        None => None,
    };
    log::debug!("Initializing local socket");
    let ipc = ipc::Ipc::bind(config)?;
    log::debug!("Creating listening socket");
    let listener = listen::bind(config)?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("read listen address", e))?;
    let http = http::Http::bind(config)?;
    let mut server = Server::new(config, listener, ipc, tls_config, signals, http)?;
    if let Some(reason) = config.unauthenticated_reason() {
        log::warn!("{reason}");
    }
    if let (Some(h), Some(p)) = (server.http.as_mut(), pairing.as_ref()) {
        h.note(server.clock.now().as_millis(), Vec::new(), p.paired());
    }
    server.pairing = pairing;
    log::info!(
        "QNetd ready to provide service: listening on {local} (tls={}, client certificate required={})",
        tls_name(config),
        config.client_cert_required
    );
    server.mqtt = mqtt::Mqtt::setup(&config.mqtt, config.listen_addr.as_deref(), config.port)
        .map_err(Error::Config)?;
    if let Some(h) = server.http.as_ref() {
        h.log_ready();
    }
    if let (Some(auto), Some(p)) = (&config.auto_pair, server.pairing.as_mut()) {
        p.auto_open(auto.address.clone(), server.clock.now());
    }
    crate::sys::notify::ready();
    let outcome = server.run();
    crate::sys::notify::stopping();
    outcome
}

/// Opens the certificate store (creating it on first start) and builds the
/// TLS server configuration, unless TLS is off.
fn tls_setup(
    config: &Config,
    revoked: &crate::cert::policy::RevokedSerials,
) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
    if config.tls == TlsSupported::Unsupported {
        return Ok(None);
    }
    let dir = &config.advanced.nss_db_dir;
    let store = CertStore::open(dir);
    match store.ensure_initialized() {
        Ok(InitOutcome::Created) => log::info!(
            "Created a new certificate store in {}; copy the CA certificate {} to the cluster nodes",
            dir.display(),
            store.ca_cert_path().display()
        ),
        Ok(InitOutcome::AlreadyExists) => {
            log::debug!("Using the certificate store in {}", dir.display());
        }
        Err(e) => return Err(Error::Tls(e.into())),
    }
    let cfg = tls::server_config_revocable(&store, config.client_cert_required, revoked)?;
    Ok(Some(cfg))
}

/// The earlier of two optional deadlines (`None` is "no deadline").
fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn tls_name(config: &Config) -> &'static str {
    match config.tls {
        TlsSupported::Unsupported => "off",
        TlsSupported::Supported => "on",
        TlsSupported::Required | TlsSupported::Unknown(_) => "req",
    }
}

impl Server {
    fn new(
        config: &Config,
        mut listener: mio::net::TcpListener,
        mut ipc: ipc::Ipc,
        tls_config: Option<Arc<rustls::ServerConfig>>,
        mut signals: Signals,
        mut http: Option<http::Http>,
    ) -> Result<Self, Error> {
        let poll = Poll::new().map_err(|e| Error::io("create poll", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("register listener", e))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Error::io("register signals", e))?;
        ipc.register(poll.registry())
            .map_err(|e| Error::io("register local socket", e))?;
        if let Some(h) = http.as_mut() {
            h.register(poll.registry())
                .map_err(|e| Error::io("register status panel", e))?;
        }
        Ok(Self {
            poll,
            listener,
            signals,
            ipc,
            instance: Instance::new(InstanceConfig::from(config)),
            conns: Vec::new(),
            ready: VecDeque::new(),
            admission: Admission::new(config),
            clock: Clock::new(),
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            tls_config,
            http,
            pairing: None,
            accept_failed: false,
            mqtt: None,
        })
    }

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

    /// Closes the connections that did not finish INIT in `init_timeout`.
    fn expire_pre_init(&mut self, now: Timestamp) {
        loop {
            let conns = &self.conns;
            let Some(id) = self.admission.pop_expired(now, |id| is_pre_init(conns, id)) else {
                return;
            };
            if let Some(conn) = self.conn(id) {
                log::warn!(
                    "Client {} did not finish INIT in time. Disconnecting",
                    conn.addr
                );
            }
            self.close(now, id);
        }
    }

    /// Makes room under `-m` by closing the oldest connection that has not
    /// finished INIT. Returns false if there is none.
    fn evict_pre_init(&mut self, now: Timestamp) -> bool {
        let conns = &self.conns;
        let Some(id) = self.admission.evict_oldest(|id| is_pre_init(conns, id)) else {
            return false;
        };
        if let Some(conn) = self.conn(id) {
            log::warn!(
                "Maximum clients reached. Disconnecting client {} that has not finished INIT",
                conn.addr
            );
        }
        self.close(now, id);
        true
    }

    /// After input: a connection that just finished INIT leaves admission.
    fn note_init(&mut self, id: ClientId) {
        // The shell's own flag first: after INIT (every heartbeat) this is
        // one load, and the engine is asked only before.
        if !self.conn(id).is_some_and(|conn| conn.pre_init) {
            return;
        }
        let initialised = self
            .instance
            .client_info(id)
            .is_some_and(|info| info.init_received);
        if let Some(conn) = self.conn(id).filter(|_| initialised) {
            conn.pre_init = false;
            let ip = conn.addr.0.ip();
            self.admission.left(ip);
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

    fn accept(&mut self, now: Timestamp) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => {
                    self.accept_failed = false;
                    return;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // E.g. EMFILE: keep serving the clients we have, and try
                    // again shortly (no new edge may come for the backlog).
                    if !self.accept_failed {
                        log::error!("Can't accept connection: {e}");
                    }
                    self.accept_failed = true;
                    return;
                }
            };
            if self.admission.admit(addr.ip()) == Err(Refusal::PerAddress) {
                log::warn!(
                    "Too many connections from {} that have not finished INIT. Not accepting connection",
                    addr.ip()
                );
                continue;
            }
            if self.admission.full(self.instance.client_count()) {
                self.evict_pre_init(now);
            }
            let Ok(id) = self.instance.accept(now, addr) else {
                continue; // max clients: dropping the stream closes it
            };
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("Can't set TCP_NODELAY: {e}");
            }
            let Ok(index) = usize::try_from(id.index()) else {
                continue;
            };
            let token = Token(FIRST_CLIENT + index);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("Can't add client to main poll loop: {e}");
                self.instance.disconnect(now, id);
                continue;
            }
            if self.conns.len() <= index {
                self.conns.resize_with(index + 1, || None);
            }
            if let Some(slot) = self.conns.get_mut(index) {
                *slot = Some(Conn {
                    stream,
                    id,
                    addr: PeerAddr(addr),
                    tls: None,
                    tls_announced: false,
                    pre_init: true,
                    fresh: true,
                });
                self.admission.accepted(now, id, addr.ip());
            }
        }
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
