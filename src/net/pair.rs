//! The pairing endpoint in the loop: HTTPS on the qdevice port, and the
//! daemon's pairing state (one window, the revoked serials).
//!
//! * A new TCP connection whose first byte is 0x16 (a TLS handshake; the
//!   qdevice protocol starts with 0x00) is handed here by the loop
//!   ([`Pairing::adopt`]) and leaves the qdevice engine. It gets its own
//!   small rustls configuration ([`super::tls::pairing_server_config`]: the
//!   server certificate, no client certificate, ALPN `http/1.1`).
//! * One request per connection, parsed and answered by the sans-IO
//!   [`crate::pair::http`]; every path but the pairing ones answers 404.
//!   Limits: [`MAX_CONNS`] connections at once (more are closed at once),
//!   the request size limits of [`crate::pair::http`], and a [`DEADLINE`]
//!   per connection for the whole exchange: a slow client is closed.
//! * The window is opened, read and closed through the management socket
//!   ([`crate::mgmt::pair`]) and the status panel (`net/http.rs`), both by
//!   [`Pairing::command`]. Certificates are signed by the store's CA
//!   for the window's cluster ([`CertStore::sign_and_record`]: the index
//!   of issued certificates), with one audit line each. Logs name the
//!   token id, never the secret.
//! * `unpair NAME` revokes the cluster's certificates in the index; their
//!   serials join [`RevokedSerials`], which the client-certificate verifier
//!   consults, and the loop disconnects the cluster's clients and removes
//!   its MQTT entities.
//! * Every pairing step is also an event for the status panel's list
//!   ([`crate::panel::feed::Event`]): window opened, certificate signed
//!   (the audit line's facts), request refused (by token id and address),
//!   window closed (completed, expired, locked out, closed, replaced,
//!   unpaired; each window once), cluster unpaired. They queue here until
//!   the loop takes them ([`Pairing::take_steps`]) for the panel and MQTT.
//!   A window's end by time is found by [`Pairing::handle_timeout`], whose
//!   deadline [`Pairing::poll_timeout`] includes; with no step, nothing is
//!   allocated.
//! * The paired clusters (those with live certificates in the index) are
//!   kept in memory for the panel ([`Pairing::paired`]): read from the
//!   index once at start, then a signing adds its cluster and an unpair
//!   removes it. A certificate signed or revoked by another process while
//!   the daemon runs (`certutil -s`, a hand edit) shows after a restart;
//!   the pairing decisions themselves always read the index.

use std::collections::BTreeSet;
use std::io::{self, Read as _};
use std::net::IpAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ServerConfig;

use super::tls::{TlsSession, pairing_server_config};
use super::{READ_CHUNK, interrupted, would_block, write_out};
use crate::cert::index::{CertState, live_clusters};
use crate::cert::policy::RevokedSerials;
use crate::cert::store::CertStore;
use crate::config::Config;
use crate::core::{ClientId, Instance, PeerAddr, Timestamp};
use crate::error::Error;
use crate::mgmt::pair::{OpenParams, PairCommand, kv};
use crate::mgmt::{error_reply, ok_reply};
use crate::pair::http::{self, Context, Parse};
use crate::pair::pin::spki_pin;
use crate::pair::script::node_command;
use crate::pair::token::{PairingWindow, Token as PairToken, WindowParams};
use crate::panel::feed::Event;

/// Tokens of pairing connections: above the TCP clients', below the status
/// panel's (`1 << (BITS - 3)`) and the management socket's (`1 << (BITS - 2)`).
const FIRST_CONN: usize = 1 << (usize::BITS - 4);
const LAST_CONN: usize = 1 << (usize::BITS - 3);

/// Pairing connections open at once; more are closed at once.
pub(super) const MAX_CONNS: usize = 16;

/// Time allowed for a whole pairing exchange (handshake, request, reply).
pub(super) const DEADLINE_MS: u64 = 10_000;

/// Plaintext buffered for one request: the largest head and body.
const MAX_REQUEST: usize = http::MAX_HEAD + crate::pair::corosync_conf::MAX_CONF_LEN + READ_CHUNK;

/// Whether `token` belongs to a pairing connection.
pub(super) fn owns(token: Token) -> bool {
    (FIRST_CONN..LAST_CONN).contains(&token.0)
}

struct Conn {
    stream: TcpStream,
    addr: PeerAddr,
    tls: TlsSession,
    rx: Vec<u8>,
    deadline: Timestamp,
    answered: bool,
}

/// The open window and the address it tells the nodes.
struct Window {
    window: PairingWindow,
    host: String,
    /// Its end was reported ([`Event::PairClosed`]).
    ended: bool,
}

impl Window {
    /// The event of this window's end for `reason`.
    fn closed(&self, reason: &'static str) -> Event {
        Event::PairClosed {
            token: self.window.id().to_string(),
            cluster: self.window.cluster().map(str::to_owned),
            reason,
        }
    }
}

/// What pairing did that others read: the steps for the loop and the
/// paired clusters.
#[derive(Default)]
struct Ledger {
    /// Pairing steps since the loop last asked ([`Pairing::take_steps`]).
    steps: Vec<Event>,
    /// The clusters with live certificates ([`Pairing::paired`]).
    paired: BTreeSet<String>,
}

impl Ledger {
    /// Signs `csr` for `cluster` and `node` ([`CertStore::sign_and_record`])
    /// on behalf of the window `token` (`-` for none) and the requester
    /// `addr`: the audit line, the step, the cluster paired. The
    /// certificate (DER) or the error's words.
    fn sign(
        &mut self,
        store: &CertStore,
        csr: &[u8],
        cluster: &str,
        node: &str,
        token: &str,
        addr: PeerAddr,
    ) -> Result<Vec<u8>, String> {
        let s = store
            .sign_and_record(csr, cluster, node)
            .map_err(|e| e.to_string())?;
        log::info!(
            "pairing: signed certificate cluster={cluster} node={node} serial={} addr={addr} token={token}",
            s.serial,
        );
        self.steps.push(Event::PairSigned {
            token: token.to_owned(),
            cluster: cluster.to_owned(),
            node: node.to_owned(),
            serial: s.serial,
            address: addr.to_string(),
        });
        if !self.paired.contains(cluster) {
            self.paired.insert(cluster.to_owned());
        }
        Ok(s.der)
    }
}

/// The pairing state and connections.
pub(super) struct Pairing {
    store: CertStore,
    config: Arc<ServerConfig>,
    pin: String,
    ca_der: Vec<u8>,
    port: u16,
    listen_addr: Option<String>,
    window: Option<Window>,
    conns: Vec<Option<Conn>>,
    revoked: RevokedSerials,
    buf: Box<[u8]>,
    ledger: Ledger,
}

impl Pairing {
    /// The pairing state for a server with TLS on, sharing `revoked` with
    /// the qdevice TLS configuration's verifier.
    pub(super) fn new(config: &Config, revoked: RevokedSerials) -> Result<Self, Error> {
        let store = CertStore::open(&config.advanced.nss_db_dir);
        let tls = pairing_server_config(&store)?;
        let identity = store
            .load_server_identity()
            .map_err(|e| Error::Tls(e.into()))?;
        let leaf = identity.cert_chain.first().map(|c| c.as_ref().to_vec());
        let pin = leaf
            .as_deref()
            .map(spki_pin)
            .transpose()
            .map_err(|e| Error::io("pin of the server certificate", io::Error::other(e)))?
            .unwrap_or_default();
        let ca_der = store
            .load_ca_certs()
            .map_err(|e| Error::Tls(e.into()))?
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        let issued = store.issued().map_err(|e| Error::Tls(e.into()))?;
        revoked.extend(
            issued
                .iter()
                .filter(|e| e.state == CertState::Revoked)
                .map(|e| e.serial),
        );
        let ledger = Ledger {
            steps: Vec::new(),
            paired: live_clusters(&issued).map(str::to_owned).collect(),
        };
        Ok(Self {
            store,
            config: tls,
            pin,
            ca_der,
            port: config.port,
            listen_addr: config.listen_addr.clone(),
            window: None,
            conns: Vec::new(),
            revoked,
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            ledger,
        })
    }

    /// Add-on mode at start: when no certificate was ever issued, opens a
    /// window and logs the node command with one line of explanation.
    pub(super) fn auto_open(&mut self, address: Option<String>, now: Timestamp) {
        if !self.store.issued().is_ok_and(|i| i.is_empty()) {
            return;
        }
        if address.is_none() {
            log::info!(
                "No cluster is paired yet. Set the add-on option pairing_address to the address your cluster nodes reach this server at and restart: the log then shows the one-line pairing command"
            );
            return;
        }
        let params = OpenParams {
            address,
            ..OpenParams::default()
        };
        match self.open(params, now) {
            Ok(body) => log::info!(
                "No cluster is paired yet. To pair one, run this line as root on one Proxmox VE node (on every node of a plain Corosync cluster) within 30 minutes (restart the add-on for a new one): {}",
                crate::mgmt::pair::parse_kv(&body, "command").unwrap_or("")
            ),
            Err(e) => log::warn!("pairing: cannot open a window at start: {e}"),
        }
    }

    /// Takes over a new connection whose first bytes `first` start a TLS
    /// handshake.
    pub(super) fn adopt(
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
    pub(super) fn handle_event(&mut self, registry: &Registry, token: Token, now: Timestamp) {
        if let Some(index) = token.0.checked_sub(FIRST_CONN) {
            self.serve(registry, index, now);
        }
    }

    /// The earliest connection deadline, or the open window's expiry.
    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        let expiry = self
            .window
            .as_ref()
            .filter(|w| !w.ended)
            .map(|w| w.window.expires());
        self.conns
            .iter()
            .flatten()
            .map(|c| c.deadline)
            .chain(expiry)
            .min()
    }

    /// Closes connections past their deadline; reports a window that
    /// expired.
    pub(super) fn handle_timeout(&mut self, registry: &Registry, now: Timestamp) {
        self.note_end(now);
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

    /// Reports the window's end (once) if it is done at `now`.
    fn note_end(&mut self, now: Timestamp) {
        let Some(w) = self.window.as_mut().filter(|w| !w.ended) else {
            return;
        };
        let Some(end) = w.window.end(now) else {
            return;
        };
        w.ended = true;
        log::info!("pairing: window {} closed: {}", w.window.id(), end.as_str());
        let event = w.closed(end.as_str());
        self.ledger.steps.push(event);
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

    /// Carries out a management request; returns the reply and the clients
    /// to disconnect (`unpair`).
    pub(super) fn command(
        &mut self,
        cmd: PairCommand,
        instance: &Instance,
        now: Timestamp,
        max_send: usize,
    ) -> (Option<Vec<u8>>, Vec<ClientId>) {
        let err = |m: &str| (error_reply(m.as_bytes(), max_send), Vec::new());
        let ok = |body: String| {
            (
                ok_reply(body.as_bytes(), "reply too large", max_send),
                Vec::new(),
            )
        };
        match cmd {
            PairCommand::Bad(m) => err(&m),
            PairCommand::Open(p) => match self.open(p, now) {
                Ok(body) => ok(body),
                Err(m) => err(&m),
            },
            PairCommand::Status => ok(self.status(instance, now)),
            PairCommand::Close => match self.window.take() {
                Some(w) => {
                    log::info!("pairing: window {} closed", w.window.id());
                    if !w.ended {
                        self.ledger.steps.push(w.closed("closed"));
                    }
                    ok(String::new())
                }
                None => err("no pairing window is open"),
            },
            PairCommand::Unpair(name) => {
                let serials = match self.store.revoke_cluster(&name) {
                    Ok(s) => s,
                    Err(e) => return err(&e.to_string()),
                };
                // Nothing live in the index (any more): not paired.
                self.ledger.paired.remove(&name);
                if serials.is_empty() {
                    return err(&format!(
                        "cluster '{name}' has no live certificates on this qnetd"
                    ));
                }
                self.revoked.extend(serials.iter().copied());
                if self.window.as_ref().and_then(|w| w.window.cluster()) == Some(name.as_str())
                    && let Some(w) = self.window.take()
                    && !w.ended
                {
                    self.ledger.steps.push(w.closed("unpaired"));
                }
                let clients: Vec<ClientId> = instance
                    .clusters()
                    .into_iter()
                    .filter(|c| &*c.name == name.as_bytes())
                    .flat_map(|c| c.members.iter().map(|m| m.client))
                    .collect();
                log::info!(
                    "pairing: cluster {name} unpaired: {} certificate(s) revoked (serials {serials:?}), {} client(s) disconnected",
                    serials.len(),
                    clients.len()
                );
                let body = kv("revoked", serials.len()) + &kv("disconnected", clients.len());
                self.ledger.steps.push(Event::Unpair {
                    cluster: name,
                    revoked: serials.len(),
                    disconnected: clients.len(),
                });
                (
                    ok_reply(body.as_bytes(), "reply too large", max_send),
                    clients,
                )
            }
        }
    }

    /// The pairing steps since the last call, oldest first (for the panel's
    /// event list, and for MQTT to remove an unpaired cluster's entities at
    /// once). Allocates nothing when there is none.
    pub(super) fn take_steps(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.ledger.steps)
    }

    /// The clusters with live certificates in the index, as this daemon
    /// signed and unpaired them (see the module documentation).
    pub(super) fn paired(&self) -> &BTreeSet<String> {
        &self.ledger.paired
    }

    /// Opens a window (replacing any open one); the reply body.
    fn open(&mut self, p: OpenParams, now: Timestamp) -> Result<String, String> {
        let wildcard = |a: &String| a.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
        let Some(host) = p
            .address
            .or_else(|| self.listen_addr.clone().filter(|a| !wildcard(a)))
        else {
            return Err(
                "the server listens on a wildcard address: give the address the nodes reach it at with --address HOST"
                    .into(),
            );
        };
        let token = PairToken::generate().map_err(|_| "no randomness for the token".to_string())?;
        let command =
            node_command(&host, self.port, &self.pin, &token).map_err(|e| e.to_string())?;
        let params = WindowParams {
            cluster: p.cluster,
            nodes: p.nodes,
            ttl_ms: p
                .ttl_secs
                .map_or(WindowParams::default().ttl_ms, |s| s.saturating_mul(1000)),
            replace: p.replace,
        };
        let store = &self.store;
        let window = PairingWindow::open(params, &token, now, |name| {
            store.has_live_certs(name).unwrap_or(true)
        })
        .map_err(|r| r.to_string())?;
        if let Some(old) = self.window.take() {
            log::info!("pairing: window {} replaced", old.window.id());
            if !old.ended {
                self.ledger.steps.push(old.closed("replaced"));
            }
        }
        log::info!(
            "pairing: window {} opened for {} (cluster {}, {} certificate(s), {} s)",
            window.id(),
            host,
            window.cluster().unwrap_or("from the first node"),
            window
                .max_certs()
                .map_or_else(|| "node count".to_string(), |n| n.to_string()),
            window.expires().millis_since(now) / 1000
        );
        self.ledger.steps.push(Event::PairOpen {
            token: window.id().to_string(),
            cluster: window.cluster().map(str::to_owned),
            nodes: window.max_certs(),
            expires_at_ms: window.expires().as_millis(),
        });
        let mut body = kv("id", window.id());
        body += &kv("expires_in", window.expires().millis_since(now) / 1000);
        body += &kv("command", &command);
        self.window = Some(Window {
            window,
            host,
            ended: false,
        });
        Ok(body)
    }

    /// The `pair status` body.
    fn status(&self, instance: &Instance, now: Timestamp) -> String {
        let Some(w) = &self.window else {
            return kv("window", "none");
        };
        let win = &w.window;
        let cluster = win.cluster().unwrap_or("");
        let tls_nodes = instance
            .clusters()
            .into_iter()
            .filter(|c| !cluster.is_empty() && &*c.name == cluster.as_bytes())
            .flat_map(|c| c.members.iter())
            .filter(|m| {
                instance
                    .client_info(m.client)
                    .is_some_and(|i| i.tls_started && i.tls_peer_verified)
            })
            .count();
        let mut body = kv("window", if win.is_open(now) { "open" } else { "closed" });
        body += &kv("id", win.id());
        body += &kv("cluster", cluster);
        body += &kv(
            "nodes",
            win.max_certs().map_or(String::new(), |n| n.to_string()),
        );
        body += &kv("signed", win.issued());
        body += &kv("expires_in", win.expires().millis_since(now) / 1000);
        body += &kv("tls_nodes", tls_nodes);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::InstanceConfig;
    use crate::mgmt::pair::parse_kv;

    fn pairing(listen: Option<&str>) -> (tempfile::TempDir, Pairing) {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.advanced.nss_db_dir = tmp.path().join("store");
        config.listen_addr = listen.map(str::to_owned);
        CertStore::open(&config.advanced.nss_db_dir).init().unwrap();
        let p = Pairing::new(&config, RevokedSerials::default()).unwrap();
        (tmp, p)
    }

    fn reply(p: &mut Pairing, line: &[u8]) -> String {
        let instance = Instance::new(InstanceConfig::default());
        let crate::mgmt::Command::Pair(cmd) = crate::mgmt::Command::parse(line) else {
            panic!("not a pair command");
        };
        let (r, clients) = p.command(cmd, &instance, Timestamp::from_millis(0), 1 << 20);
        assert!(clients.is_empty());
        String::from_utf8(r.unwrap()).unwrap()
    }

    #[test]
    fn the_address_defaults_to_a_specific_listen_address_only() {
        for wildcard in [None, Some("0.0.0.0"), Some("::")] {
            let (_t, mut p) = pairing(wildcard);
            let r = reply(&mut p, b"pair open\n");
            assert!(
                r.starts_with("Error\n") && r.contains("--address"),
                "{wildcard:?}: {r}"
            );
            let r = reply(&mut p, b"pair open address=192.0.2.1\n");
            assert!(r.contains("https://192.0.2.1:5403/pair/"), "{r}");
        }
        let (_t, mut p) = pairing(Some("192.0.2.9"));
        let r = reply(&mut p, b"pair open nodes=2 ttl=60\n");
        let body = r.strip_prefix("OK\n").unwrap();
        assert!(
            parse_kv(body, "command")
                .unwrap()
                .contains("https://192.0.2.9:5403/")
        );
        assert_eq!(parse_kv(body, "expires_in"), Some("60"));
        let status = reply(&mut p, b"pair status\n");
        assert!(
            status.contains("window=open\n") && status.contains("nodes=2\n"),
            "{status}"
        );
        // The secret is only in the command, never in the status.
        let secret = parse_kv(body, "command")
            .unwrap()
            .split('.')
            .next_back()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        assert!(!status.contains(&secret));
        assert_eq!(reply(&mut p, b"pair close\n"), "OK\n");
        assert_eq!(reply(&mut p, b"pair status\n"), "OK\nwindow=none\n");
        assert!(reply(&mut p, b"pair close\n").starts_with("Error\n"));
        let r = reply(&mut p, b"unpair nosuch\n");
        assert!(r.contains("no live certificates"), "{r}");
        let r = reply(&mut p, b"pair open address=192.0.2.1 cluster=-bad\n");
        assert!(
            r.starts_with("Error\n") && r.contains("not supported"),
            "{r}"
        );
    }

    #[test]
    fn the_paired_set_starts_from_the_index_then_signing_adds_and_unpair_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.advanced.nss_db_dir = tmp.path().join("store");
        config.listen_addr = Some("192.0.2.9".into());
        let store = CertStore::open(&config.advanced.nss_db_dir);
        store.init().unwrap();
        // In the index before the start: c0 live (twice), c1 revoked.
        for cluster in ["c0", "c0", "c1"] {
            let (csr, _key) = crate::net::tls::testkit::make_request(cluster);
            store.sign_request(&csr, cluster).unwrap();
        }
        store.revoke_cluster("c1").unwrap();
        let mut p = Pairing::new(&config, RevokedSerials::default()).unwrap();
        let names = |p: &Pairing| p.paired().iter().cloned().collect::<Vec<_>>();
        assert_eq!(names(&p), ["c0"]);

        // A signing pairs its cluster, with its step; a failed one nothing.
        let addr = PeerAddr("192.0.2.7:40000".parse().unwrap());
        let (csr, _key) = crate::net::tls::testkit::make_request("c2");
        let der = p.ledger.sign(&p.store, &csr, "c2", "n1", "ab12", addr);
        assert!(der.is_ok_and(|d| !d.is_empty()));
        assert_eq!(names(&p), ["c0", "c2"]);
        let garbage = p
            .ledger
            .sign(&p.store, b"not a request", "c3", "n1", "-", addr);
        assert!(garbage.is_err());
        assert_eq!(names(&p), ["c0", "c2"]);
        let steps = p.take_steps();
        assert!(
            matches!(&steps[..], [Event::PairSigned { cluster, node, token, .. }]
                if cluster == "c2" && node == "n1" && token == "ab12"),
            "{steps:?}"
        );
        // The set is the index's live clusters.
        let live: BTreeSet<String> = live_clusters(&store.issued().unwrap())
            .map(str::to_owned)
            .collect();
        assert_eq!(&live, p.paired());

        // Unpairing removes; an unknown cluster changes nothing.
        assert!(reply(&mut p, b"unpair c0\n").contains("revoked=2\n"));
        assert_eq!(names(&p), ["c2"]);
        assert!(reply(&mut p, b"unpair c0\n").starts_with("Error\n"));
        assert!(reply(&mut p, b"unpair nosuch\n").starts_with("Error\n"));
        assert_eq!(names(&p), ["c2"]);
        assert!(reply(&mut p, b"unpair c2\n").contains("revoked=1\n"));
        assert!(p.paired().is_empty());
    }

    #[test]
    fn an_unpair_is_one_step_once() {
        let (tmp, mut p) = pairing(Some("192.0.2.9"));
        assert!(reply(&mut p, b"unpair c1\n").starts_with("Error\n"));
        assert!(p.take_steps().is_empty(), "a failed unpair removes nothing");
        let (csr, _key) = crate::net::tls::testkit::make_request("c1");
        CertStore::open(tmp.path().join("store"))
            .sign_request(&csr, "c1")
            .unwrap();
        // A window for c1 goes with it.
        reply(&mut p, b"pair open cluster=c1 replace=1\n");
        assert!(reply(&mut p, b"unpair c1\n").contains("revoked=1\n"));
        let steps = p.take_steps();
        assert!(matches!(&steps[0], Event::PairOpen { cluster: Some(c), .. } if c == "c1"));
        assert!(matches!(
            &steps[1],
            Event::PairClosed {
                reason: "unpaired",
                ..
            }
        ));
        assert_eq!(
            steps[2],
            Event::Unpair {
                cluster: "c1".into(),
                revoked: 1,
                disconnected: 0
            }
        );
        assert_eq!(steps.len(), 3);
        assert!(p.take_steps().is_empty());
    }

    #[test]
    fn window_steps_open_replace_expire_and_close_once_each() {
        let (_t, mut p) = pairing(Some("192.0.2.9"));
        let poll = mio::Poll::new().unwrap();
        let first = reply(&mut p, b"pair open nodes=2 ttl=60\n");
        let first_id = parse_kv(first.strip_prefix("OK\n").unwrap(), "id")
            .unwrap()
            .to_owned();
        reply(&mut p, b"pair open ttl=60\n");
        let steps = p.take_steps();
        assert_eq!(
            steps[0],
            Event::PairOpen {
                token: first_id.clone(),
                cluster: None,
                nodes: Some(2),
                expires_at_ms: 60_000
            }
        );
        assert_eq!(
            steps[1],
            Event::PairClosed {
                token: first_id.clone(),
                cluster: None,
                reason: "replaced"
            }
        );
        assert!(
            matches!(&steps[2], Event::PairOpen { token, nodes: None, .. } if *token != first_id)
        );
        assert_eq!(steps.len(), 3);
        // The loop wakes for the expiry, which is reported once.
        assert_eq!(p.poll_timeout(), Some(Timestamp::from_millis(60_000)));
        p.handle_timeout(poll.registry(), Timestamp::from_millis(59_999));
        assert!(p.take_steps().is_empty());
        p.handle_timeout(poll.registry(), Timestamp::from_millis(60_000));
        let steps = p.take_steps();
        assert!(
            matches!(
                &steps[..],
                [Event::PairClosed {
                    reason: "expired",
                    ..
                }]
            ),
            "{steps:?}"
        );
        assert_eq!(p.poll_timeout(), None);
        p.handle_timeout(poll.registry(), Timestamp::from_millis(70_000));
        assert!(p.take_steps().is_empty());
        // Closing an expired window reports nothing more; an open one, once.
        assert_eq!(reply(&mut p, b"pair close\n"), "OK\n");
        assert!(p.take_steps().is_empty());
        reply(&mut p, b"pair open\n");
        assert_eq!(reply(&mut p, b"pair close\n"), "OK\n");
        let steps = p.take_steps();
        assert!(
            matches!(
                &steps[..],
                [
                    Event::PairOpen { .. },
                    Event::PairClosed {
                        reason: "closed",
                        ..
                    }
                ]
            ),
            "{steps:?}"
        );
        // Neither the steps nor anything else carry the secret.
        let out = reply(&mut p, b"pair open\n");
        let secret = out
            .rsplit_once('.')
            .unwrap()
            .1
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let json = serde_json::to_string(&p.take_steps()).unwrap();
        assert!(!json.contains(&secret[..16]), "{json}");
    }
}
