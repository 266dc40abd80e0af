//! The MQTT shell: moves the bytes of the sans-IO [`Session`] over one
//! non-blocking mio `TcpStream` to the broker, and feeds the status
//! document to [`Discovery`] when the engine's state changed.
//!
//! Contract:
//! - Never delays qdevice traffic. The socket is non-blocking; the session
//!   bounds its output queue and drops the connection when the broker
//!   does not keep up ([`crate::mqtt::session::CloseReason::QueueFull`]),
//!   then retries with backoff and jitter. Reads are bounded per wake-up.
//! - The broker's name is resolved at each (re)connect with std's resolver.
//!   An IP literal or `localhost` (the usual `--mqtt` values, and the
//!   Supervisor hands out `core-mosquitto`, answered by Docker's local DNS)
//!   does not block; a slow DNS server can stall the loop for that one
//!   lookup, at most once per backoff period. This is the accepted cost of
//!   having no resolver thread in a single-threaded daemon.
//! - After each (re)connect the session surveys this instance's retained
//!   discovery configs ([`Discovery::config_filter`]); the topics go to
//!   [`Discovery::learn`], so that entities of clusters and nodes an
//!   earlier run published and that are not connected now are removed
//!   after the away time (one log line when there are any).
//! - The status is rebuilt ([`Report::new`], the same path as `--json`)
//!   only when [`Instance::status_generation`] moved (connects,
//!   disconnects, votes, node lists; never a heartbeat), or when a removal
//!   delay of [`Discovery`] expires.
//! - `mqtts://`: TLS with rustls (the same `rustls-ring` provider as the
//!   server side), the broker's certificate checked against the CA file
//!   of `--mqtt-ca-file`, else the system bundle [`DEFAULT_CA_FILE`] (no
//!   compiled-in roots: the binary stays small). MQTT starts once the
//!   handshake is done. Without a usable CA file, `--mqtt` stops the daemon
//!   with one line naming `--mqtt-ca-file`; a Supervisor broker stays off,
//!   logged.
//! - Add-on mode: [`supervisor_broker`] asks the Supervisor's services API
//!   once, at start-up, with a blocking HTTP/1.1 GET bounded by short
//!   timeouts. Without a broker MQTT stays off with one log line.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientSide, Connection, RootCertStore, Tcp, VecInput};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::config::{ConfigError, DEFAULT_CA_FILE, MqttBroker, MqttConfig};
use crate::core::Instance;
use crate::mgmt::ServerView;
use crate::mgmt::json::Report;
use crate::mqtt::discovery::{Discovery, Message};
use crate::mqtt::session::{Event, Session, SessionConfig, client_id};
use crate::mqtt::url::{BrokerSettings, SupervisorMqtt, from_supervisor};

/// The broker connection's token.
pub(super) const TOKEN: Token = Token(3);

/// Bytes read from the broker per wake-up (acknowledgements, and the
/// retained configs of the survey after a connect).
const READ_BUDGET: usize = 16 * 1024;

/// Base URL of the Supervisor; `QNETD_SUPERVISOR_URL` overrides it (tests).
const SUPERVISOR_URL: &str = "http://supervisor";
/// Time allowed for each step of the Supervisor request.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest Supervisor answer read.
const SUPERVISOR_MAX_RESPONSE: usize = 64 * 1024;

/// The MQTT client of the loop.
pub(super) struct Mqtt {
    session: Session,
    discovery: Discovery,
    broker: BrokerSettings,
    /// Set for `mqtts://`.
    tls_config: Option<Arc<ClientConfig>>,
    stream: Option<TcpStream>,
    /// The non-blocking connect is still in progress.
    connecting: bool,
    /// TLS of the current connection (`mqtts://`).
    tls: Option<Box<BrokerTls>>,
    /// The [`Instance::status_generation`] last published.
    published: Option<u64>,
    listen_addr: Option<String>,
    port: u16,
}

/// The monotonic clock of this shell.
#[allow(clippy::disallowed_methods, reason = "the clock lives in the shell")]
fn now() -> Instant {
    Instant::now()
}

/// A seed for the backoff jitter: the clock and the PID.
#[allow(clippy::disallowed_methods, reason = "a seed, read in the shell")]
fn jitter_source() -> crate::mqtt::session::JitterSource {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
    let mut seed = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    Box::new(move || {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    })
}

impl Mqtt {
    /// The client for `config`, or `None` (logged once) when MQTT is off.
    ///
    /// # Errors
    /// `--mqtt mqtts://...` without a usable CA file: one line naming the
    /// option (the daemon exits). From the Supervisor, MQTT stays off.
    pub(super) fn setup(
        config: &MqttConfig,
        listen_addr: Option<&str>,
        port: u16,
    ) -> Result<Option<Self>, ConfigError> {
        let broker = match &config.broker {
            MqttBroker::Off => return Ok(None),
            MqttBroker::Url(b) => b.clone(),
            MqttBroker::Supervisor => match supervisor_broker() {
                Some(b) => b,
                None => return Ok(None),
            },
        };
        let tls_config = if broker.tls {
            let ca = config
                .ca_file
                .as_deref()
                .unwrap_or_else(|| Path::new(DEFAULT_CA_FILE));
            match client_config(ca) {
                Ok(c) => Some(c),
                Err(e) if matches!(config.broker, MqttBroker::Url(_)) => {
                    return Err(ConfigError::new(format!("--mqtt-ca-file: {e}")));
                }
                Err(e) => {
                    log::error!("MQTT off: TLS to {}: {e}", broker.authority());
                    return Ok(None);
                }
            }
        } else {
            None
        };
        let d = &config.discovery;
        let discovery = Discovery::new(d.clone());
        let mut cfg = SessionConfig::new(client_id(&d.topic_prefix), d.availability_topic());
        cfg.survey = Some(discovery.config_filter());
        cfg.login = broker
            .username
            .clone()
            .map(|u| (u, broker.password.clone().unwrap_or_default()));
        log::info!(
            "MQTT: publishing Home Assistant entities through {} (discovery prefix {}, topic prefix {})",
            broker.authority(),
            d.discovery_prefix,
            d.topic_prefix
        );
        Ok(Some(Self {
            session: Session::new(cfg, jitter_source(), now()),
            discovery,
            broker,
            tls_config,
            stream: None,
            connecting: false,
            tls: None,
            published: None,
            listen_addr: listen_addr.map(str::to_string),
            port,
        }))
    }

    /// When [`Mqtt::after_events`] must run next.
    pub(super) fn poll_timeout(&self) -> Option<Duration> {
        if self.published.is_none() {
            return Some(Duration::ZERO); // the first run: the session's first Connect
        }
        let at = match (self.session.poll_timeout(), self.discovery.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(at.saturating_duration_since(now()))
    }

    /// A readiness event on [`TOKEN`].
    pub(super) fn handle_event(&mut self, event: &mio::event::Event) {
        let t = now();
        if self.connecting && (event.is_writable() || event.is_error()) {
            self.finish_connect(t);
        }
        if !self.connecting && (event.is_readable() || event.is_read_closed() || event.is_error()) {
            self.read(t);
        }
    }

    /// Runs after every loop iteration: timers, the status mirror, the
    /// session's requests, and writing.
    pub(super) fn after_events(&mut self, registry: &Registry, instance: &Instance) {
        let t = now();
        if self.session.poll_timeout().is_some_and(|d| d <= t) {
            self.session.handle_timeout(t);
        }
        let removal_due = self.discovery.poll_timeout().is_some_and(|d| d <= t);
        let generation = instance.status_generation();
        if removal_due || self.published != Some(generation) {
            self.published = Some(generation);
            let view = ServerView {
                instance,
                listen_addr: self.listen_addr.as_deref(),
                port: self.port,
            };
            let report = Report::new(&view, None);
            let messages = self.discovery.update(&report, t);
            self.publish(messages, t);
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Connect => self.connect(registry, t),
                Event::Online => log::info!("MQTT: connected to {}", self.broker.authority()),
                Event::Closed { reason, retry_at } => {
                    log::warn!(
                        "MQTT: connection to {} closed ({reason}); retrying in {} s",
                        self.broker.authority(),
                        retry_at.saturating_duration_since(t).as_secs()
                    );
                    self.drop_stream(registry);
                }
                Event::Surveyed { topics, truncated } => {
                    let learned = self.discovery.learn(&topics, t);
                    if learned.away > 0 || learned.over_cap > 0 || truncated {
                        log::info!(
                            "MQTT: {} clusters and nodes of an earlier run are not connected; their entities go after {} s unless they connect{}",
                            learned.away,
                            self.discovery.remove_after().as_secs(),
                            if learned.over_cap > 0 || truncated {
                                " (more were found than are tracked)"
                            } else {
                                ""
                            }
                        );
                    }
                    self.publish(learned.messages, t);
                }
                Event::SurveyRefused => log::warn!(
                    "MQTT: the broker refused a subscription to this instance's discovery configs; entities of an earlier run stay until removed by hand"
                ),
            }
        }
        self.write(t);
    }

    /// A cluster was unpaired: its entities go at once (empty retained
    /// configs), not after `remove_after`.
    pub(super) fn forget(&mut self, cluster_name: &str) {
        let t = now();
        let messages = self.discovery.forget(cluster_name);
        self.publish(messages, t);
    }

    fn publish(&mut self, messages: Vec<Message>, t: Instant) {
        for m in messages {
            if let Err(e) = self.session.publish(&m.topic, &m.payload, m.retain, t) {
                log::warn!("MQTT: not publishing {}: {e}", m.topic);
            }
        }
    }

    /// Daemon shutdown: `offline` and DISCONNECT, written if the socket
    /// takes them now (never waits).
    pub(super) fn shutdown(&mut self, registry: &Registry) {
        let t = now();
        self.session.close(t);
        self.write(t);
        self.drop_stream(registry);
    }

    fn connect(&mut self, registry: &Registry, t: Instant) {
        self.drop_stream(registry);
        let addr = match resolve(&self.broker) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("MQTT: can't resolve {}: {e}", self.broker.host);
                self.session.connection_lost(t);
                return;
            }
        };
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("MQTT: can't connect to {addr}: {e}");
                self.session.connection_lost(t);
                return;
            }
        };
        if let Err(e) =
            registry.register(&mut stream, TOKEN, Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("MQTT: can't add the broker connection to the poll loop: {e}");
            self.session.connection_lost(t);
            return;
        }
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        self.connecting = true;
    }

    /// The non-blocking connect reported writable: done or failed.
    fn finish_connect(&mut self, t: Instant) {
        let Some(stream) = &self.stream else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                log::debug!("MQTT: connect failed: {e}");
                self.session.connection_lost(t);
                return;
            }
        }
        match stream.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                match &self.tls_config {
                    None => self.session.connected(t),
                    Some(config) => match BrokerTls::new(config, &self.broker.host) {
                        Ok(tls) => self.tls = Some(Box::new(tls)),
                        Err(e) => {
                            log::warn!("MQTT: TLS: {e}");
                            self.session.connection_lost(t);
                        }
                    },
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {} // not yet
            Err(e) => {
                log::debug!("MQTT: connect failed: {e}");
                self.session.connection_lost(t);
            }
        }
    }

    fn read(&mut self, t: Instant) {
        let Some(stream) = &mut self.stream else {
            return;
        };
        if let Some(tls) = self.tls.as_deref_mut() {
            if let Err(e) = tls.receive(stream) {
                log::debug!("MQTT: {e}");
                self.session.connection_lost(t);
                return;
            }
            if !tls.announced && !tls.conn.is_handshaking() {
                tls.announced = true;
                self.session.connected(t);
            }
            if !tls.plaintext.is_empty() {
                self.session.handle_input(&tls.plaintext, t);
                tls.plaintext.clear();
            }
            if tls.peer_closed {
                self.session.connection_lost(t);
            }
            return;
        }
        let mut buf = [0u8; 2048];
        let mut budget = READ_BUDGET;
        while budget > 0 {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.session.connection_lost(t);
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.session
                        .handle_input(buf.get(..n).unwrap_or_default(), t);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("MQTT: read error: {e}");
                    self.session.connection_lost(t);
                    return;
                }
            }
        }
    }

    /// Writes what the session has until done or `WouldBlock`; the
    /// writable edge brings the rest.
    fn write(&mut self, t: Instant) {
        if self.connecting {
            return;
        }
        let Some(stream) = &mut self.stream else {
            return;
        };
        if let Some(tls) = self.tls.as_deref_mut() {
            let result = tls.send(stream, &mut self.session, t);
            if let Err(e) = result {
                log::debug!("MQTT: {e}");
                self.session.connection_lost(t);
            }
            return;
        }
        while let Some(out) = self.session.poll_transmit(t) {
            match stream.write(out) {
                Ok(0) => {
                    self.session.connection_lost(t);
                    return;
                }
                Ok(n) => self.session.advance_transmit(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("MQTT: write error: {e}");
                    self.session.connection_lost(t);
                    return;
                }
            }
        }
    }

    fn drop_stream(&mut self, registry: &Registry) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.connecting = false;
        self.tls = None;
    }
}

/// The client configuration of `mqtts://`: the CA certificates of `ca`
/// (PEM), the ring provider, no client certificate.
fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let pem = std::fs::read(ca).map_err(|e| format!("can't read CA file {}: {e}", ca.display()))?;
    let mut roots = RootCertStore::empty();
    let mut bad = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        if cert
            .map_err(|_| ())
            .and_then(|c| roots.add(c).map_err(|_| ()))
            .is_err()
        {
            bad += 1;
        }
    }
    if roots.is_empty() {
        return Err(format!("no CA certificate in {}", ca.display()));
    }
    if bad > 0 {
        log::debug!("MQTT: {bad} unusable certificates in {}", ca.display());
    }
    ClientConfig::builder(Arc::new(rustls_ring::DEFAULT_PROVIDER))
        .with_root_certificates(roots)
        .with_no_client_auth()
        .map(Arc::new)
        .map_err(|e| format!("TLS configuration: {e}"))
}

/// The TLS layer of one broker connection.
struct BrokerTls {
    conn: Connection<ClientSide, Tcp>,
    input: VecInput,
    /// TLS bytes for the broker; plaintext enters only when it is empty,
    /// so it holds at most one flight.
    out: Vec<u8>,
    /// Decrypted bytes for the session.
    plaintext: Vec<u8>,
    /// The session was told the connection is up.
    announced: bool,
    peer_closed: bool,
}

impl BrokerTls {
    fn new(config: &Arc<ClientConfig>, host: &str) -> Result<Self, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host}: not a TLS server name ({e})"))?;
        let mut out = Vec::new();
        let conn = config
            .connect(name)
            .build(&mut out)
            .map_err(|e| format!("TLS start: {e}"))?;
        Ok(Self {
            conn,
            input: VecInput::default(),
            out,
            plaintext: Vec::new(),
            announced: false,
            peer_closed: false,
        })
    }

    /// Reads and decrypts what the socket has (bounded by [`READ_BUDGET`]).
    fn receive(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let mut budget = READ_BUDGET;
        while budget > 0 {
            match self.input.read(stream) {
                Ok(0) => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
            let state = self
                .conn
                .read_tls(&mut self.input, &mut self.out)
                .handle_all(&mut self.plaintext)
                .map_err(|e| format!("TLS: {e}"))?;
            self.peer_closed |= state.peer_has_closed();
            if self.plaintext.len() > READ_BUDGET {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Encrypts the session's output (once the handshake is done) and
    /// writes until done or `WouldBlock`.
    fn send(
        &mut self,
        stream: &mut TcpStream,
        session: &mut Session,
        t: Instant,
    ) -> Result<(), String> {
        loop {
            while !self.out.is_empty() {
                match stream.write(&self.out) {
                    Ok(0) => return Err("write: connection closed".into()),
                    Ok(n) => {
                        self.out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            if !self.announced {
                return Ok(());
            }
            let Some(plain) = session.poll_transmit(t) else {
                return Ok(());
            };
            let n = plain.len();
            self.conn
                .write(plain.into(), &mut self.out)
                .map_err(|e| format!("TLS: {e}"))?;
            session.advance_transmit(n);
        }
    }
}

/// The broker's first address (see the module documentation on blocking).
fn resolve(b: &BrokerSettings) -> io::Result<SocketAddr> {
    (b.host.as_str(), b.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

/// Add-on mode: the broker the Supervisor names, or `None` with one log
/// line (no Supervisor, no broker add-on, or an unusable answer).
fn supervisor_broker() -> Option<BrokerSettings> {
    let Some(token) = std::env::var("SUPERVISOR_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    else {
        log::info!(
            "MQTT off: not running under the Home Assistant Supervisor (no SUPERVISOR_TOKEN)"
        );
        return None;
    };
    let base = std::env::var("QNETD_SUPERVISOR_URL").unwrap_or_else(|_| SUPERVISOR_URL.into());
    let body = match http_get(&base, "/services/mqtt", &token) {
        Ok(b) => b,
        Err(e) => {
            log::info!("MQTT off: can't ask the Supervisor for a broker ({e})");
            return None;
        }
    };
    match from_supervisor(&body) {
        Ok(SupervisorMqtt::Available(b)) => Some(b),
        Ok(SupervisorMqtt::Unavailable(why)) => {
            log::info!("MQTT off: no MQTT broker add-on ({why})");
            None
        }
        Err(e) => {
            log::info!("MQTT off: {e}");
            None
        }
    }
}

/// A blocking `GET base+path` with a bearer token, over plain HTTP/1.1;
/// the body of a 2xx-5xx answer (the Supervisor explains errors in JSON).
fn http_get(base: &str, path: &str, token: &str) -> Result<Vec<u8>, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// is supported"))?
        .trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || p.is_empty() => (
            h,
            p.parse::<u16>().map_err(|_| format!("{base}: bad port"))?,
        ),
        _ => (authority, 80),
    };
    let addr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, SUPERVISOR_TIMEOUT)
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(SUPERVISOR_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(SUPERVISOR_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut raw = Vec::new();
    s.take(u64::try_from(SUPERVISOR_MAX_RESPONSE).unwrap_or(u64::MAX))
        .read_to_end(&mut raw)
        .map_err(|e| format!("{addr}: {e}"))?;
    response_body(&raw)
}

/// The body of an HTTP/1.1 response read to EOF (`Connection: close`).
fn response_body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("truncated HTTP answer".into()),
        Err(e) => return Err(format!("bad HTTP answer: {e}")),
    };
    let code = response.code.unwrap_or(0);
    let chunked = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
    });
    if !(200..600).contains(&code) {
        return Err(format!("HTTP status {code}"));
    }
    let body = raw.get(head_len..).unwrap_or_default();
    if chunked {
        return dechunk(body);
    }
    Ok(body.to_vec())
}

/// Decodes a chunked body (sizes in hex, extensions ignored).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "bad chunked body".to_string();
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let line = std::str::from_utf8(body.get(..line_end).ok_or_else(bad)?).map_err(|_| bad())?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        body = body.get(line_end + 2..).ok_or_else(bad)?;
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or_else(bad)?);
        body = body.get(size + 2..).ok_or_else(bad)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(response_body(plain).unwrap(), b"{\"a\":1}");
        let chunked =
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3;x=y\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(response_body(chunked).unwrap(), b"{\"a\":1}");
        assert!(response_body(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(response_body(b"garbage\r\n\r\n").is_err());
        assert!(
            response_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(
            response_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab")
                .is_err()
        );
    }
}
