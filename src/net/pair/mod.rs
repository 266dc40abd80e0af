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
//!   the request size limits of [`crate::pair::http`], and a [`DEADLINE_MS`]
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
//!
//! The files: this one holds the state, the window and the management
//! commands; `conn` the HTTPS connections; `ledger` the steps and the
//! paired set ([`Ledger`]).

mod conn;
mod ledger;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use mio::{Registry, Token};
use rustls::ServerConfig;

use self::conn::Conn;
use self::ledger::Ledger;
use super::READ_CHUNK;
use super::tls::pairing_server_config;
use crate::cert::index::{CertState, live_clusters};
use crate::cert::policy::RevokedSerials;
use crate::cert::store::CertStore;
use crate::config::Config;
use crate::core::{ClientId, Instance, Timestamp};
use crate::error::Error;
use crate::mgmt::pair::{OpenParams, PairCommand, kv};
use crate::mgmt::{error_reply, ok_reply};
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

/// Whether `token` belongs to a pairing connection.
pub(super) fn owns(token: Token) -> bool {
    (FIRST_CONN..LAST_CONN).contains(&token.0)
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
        self.close_late(registry, now);
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
