//! The instance and its public API (`qdevices/qnetd-instance.c`): the
//! client slots, accepting and removing connections, the output and event
//! queues the shell polls, and the timers.

use core::net::SocketAddr;
use std::collections::VecDeque;

use super::certname::PeerNames;
use super::client::{Client, ClientId, PeerAddr};
use super::cluster::ClusterTable;
use super::settings::{InstanceConfig, PRE_INIT_HEARTBEAT_INTERVAL, TIMER_MAX_INTERVAL_MS};
use super::time::Timestamp;
use super::timers::{TimerKind, Timers};
use crate::algo::{self, Cluster};
use crate::proto::NodeList;

/// Something the shell must act on (besides STARTTLS, which
/// [`Instance::handle_input`] reports in its [`Input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Close the client's socket without sending anything more, then call
    /// [`Instance::disconnect`].
    Close(ClientId),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// `-m max_clients` reached.
    MaxClients,
    /// The pre-INIT dead-peer timer is out of the timer range
    /// (`dpd_interval_coefficient` × 120 s above 5 h): the reference closes
    /// every connection at once.
    DpdTimer,
}

/// What [`Instance::handle_input`] did with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// Bytes consumed; all of them unless `start_tls`.
    pub consumed: usize,
    /// An accepted STARTTLS ended the plain-text part: wrap the socket in
    /// TLS now and give it the bytes after `consumed`.
    pub start_tls: bool,
}

impl Input {
    pub(super) const fn all(n: usize) -> Self {
        Self {
            consumed: n,
            start_tls: false,
        }
    }

    pub(super) const fn tls(n: usize) -> Self {
        Self {
            consumed: n,
            start_tls: true,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    client: Option<Client>,
}

/// The protocol engine for all clients and clusters.
#[derive(Debug)]
pub struct Instance {
    pub(super) cfg: InstanceConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    clients: usize,
    pub(super) clusters: ClusterTable,
    pub(super) timers: Timers,
    pub(super) events: VecDeque<Event>,
    pub(super) dirty: VecDeque<ClientId>,
    /// The algorithms' actions and buffers, shared by every cluster.
    pub(super) algo_buffers: algo::Buffers,
    /// Where received node lists are decoded (fixed capacity, on the heap
    /// once). `None` only while a node list is being handled.
    pub(super) node_scratch: Option<Box<NodeList>>,
    /// See [`Instance::status_generation`].
    pub(super) status_generation: u64,
}

impl Instance {
    /// An instance with no clients.
    #[must_use]
    pub fn new(cfg: InstanceConfig) -> Self {
        Self {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            clients: 0,
            clusters: ClusterTable::default(),
            timers: Timers::default(),
            events: VecDeque::new(),
            dirty: VecDeque::new(),
            algo_buffers: algo::Buffers::default(),
            node_scratch: Some(Box::new(NodeList::new())),
            status_generation: 0,
        }
    }

    /// A counter that changes whenever what the status reports may have
    /// changed: a connect or disconnect, any message but an echo request
    /// (heartbeat), an algorithm timer. A shell that mirrors the status
    /// elsewhere (MQTT) compares it instead of rebuilding the status on
    /// every wake-up; heartbeats never move it.
    #[must_use]
    pub fn status_generation(&self) -> u64 {
        self.status_generation
    }

    /// Marks the status as possibly changed.
    pub(super) fn status_changed(&mut self) {
        self.status_generation = self.status_generation.wrapping_add(1);
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// The client behind a handle, if it is still connected.
    pub(super) fn client(&self, id: ClientId) -> Option<&Client> {
        let slot = self.slots.get(usize::try_from(id.index()).ok()?)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.client.as_ref()
    }

    pub(super) fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        let slot = self.slots.get_mut(usize::try_from(id.index()).ok()?)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.client.as_mut()
    }

    pub(super) fn client_mut_split(&mut self, id: ClientId) -> Option<(&mut Client, &mut Timers)> {
        let slot = self.slots.get_mut(usize::try_from(id.index()).ok()?)?;
        if slot.generation != id.generation() {
            return None;
        }
        Some((slot.client.as_mut()?, &mut self.timers))
    }

    /// DPD interval for a heartbeat, or `None` if the timer facility would
    /// refuse it (`timer_list_entry_set_interval`: 1 ms .. 5 h).
    pub(super) fn dpd_interval(&self, heartbeat: u32) -> Option<u64> {
        let ms = self.cfg.dpd_interval_coefficient * f64::from(heartbeat);
        // Truncation toward zero as the C cast does; the range check makes
        // the conversion exact.
        let ms = ms.trunc();
        if !(1.0..=TIMER_MAX_INTERVAL_MS as f64).contains(&ms) {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "range-checked above"
        )]
        Some(ms as u64)
    }

    /// Registers a new TCP connection.
    ///
    /// # Errors
    /// [`AcceptError::MaxClients`] when `-m` is reached; the shell then
    /// closes the socket without sending anything (the reference logs
    /// `Maximum clients reached. Not accepting connection`).
    pub fn accept(&mut self, now: Timestamp, addr: SocketAddr) -> Result<ClientId, AcceptError> {
        if self.cfg.max_clients != 0 && self.clients >= self.cfg.max_clients {
            log::error!("Maximum clients reached. Not accepting connection");
            return Err(AcceptError::MaxClients);
        }
        let dpd = if self.cfg.dpd_enabled {
            let Some(interval) = self.dpd_interval(PRE_INIT_HEARTBEAT_INTERVAL) else {
                log::error!("Can't initialize dpd timer for client {}", PeerAddr(addr));
                return Err(AcceptError::DpdTimer);
            };
            Some(interval)
        } else {
            None
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let Some(slot) = self
            .slots
            .get_mut(usize::try_from(index).unwrap_or(usize::MAX))
        else {
            return Err(AcceptError::MaxClients);
        };
        slot.generation = slot.generation.wrapping_add(1);
        let id = ClientId::new(index, slot.generation);
        let mut client = Client::new(id, addr, PRE_INIT_HEARTBEAT_INTERVAL);
        self.timers.reserve(2);
        self.dirty.reserve(1);
        if let Some(interval) = dpd {
            client.dpd_interval = interval;
            self.timers.set(
                id,
                TimerKind::Dpd,
                &mut client.dpd,
                Some(now.add_millis(interval)),
            );
        }
        slot.client = Some(client);
        self.clients += 1;
        self.status_changed();
        log::debug!("Client {} connected", PeerAddr(addr));
        Ok(id)
    }

    /// Number of connections (initialised or not).
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.clients
    }

    /// Number of clusters.
    #[must_use]
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// Clusters in creation order (cold path, allocates).
    #[must_use]
    pub fn clusters(&self) -> Vec<&Cluster> {
        self.clusters.in_creation_order()
    }

    /// Facts about one connection, for reports.
    #[must_use]
    pub fn client_info(&self, id: ClientId) -> Option<ClientInfo> {
        let c = self.client(id)?;
        Some(ClientInfo {
            addr: c.addr,
            heartbeat_interval: c.heartbeat_interval,
            tls_started: c.tls_started,
            tls_peer_verified: c.tls_peer_verified,
            init_received: c.init_received,
        })
    }

    /// Records the client certificate after the TLS handshake (names used
    /// to check the cluster name on the next message).
    pub fn tls_established(&mut self, id: ClientId, peer: Option<PeerNames>) {
        if let Some(client) = self.client_mut(id) {
            client.peer_names = peer.map(Box::new);
        }
    }

    /// Bytes waiting to be written to the client.
    #[must_use]
    pub fn outgoing(&self, id: ClientId) -> &[u8] {
        self.client(id).map_or(&[], |c| c.tx.pending())
    }

    /// Marks `n` bytes of [`Instance::outgoing`] as written.
    pub fn consume_outgoing(&mut self, id: ClientId, n: usize) {
        if let Some(c) = self.client_mut(id) {
            c.tx.consume(n);
        }
    }

    /// The next event for the shell.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next client with output queued since the last call.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<ClientId> {
        while let Some(id) = self.dirty.pop_front() {
            if let Some(c) = self.client_mut(id) {
                c.dirty = false;
                return Some(id);
            }
        }
        None
    }

    /// When [`Instance::handle_timeout`] should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// Fires every timer due at `now`: DPD expiries close clients, the
    /// algorithm timer may send VOTE_INFOs.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(entry) = self.timers.pop_due(now) {
            let (_, id, kind) = entry;
            let fired = match self.client_mut_split(id) {
                Some((client, timers)) => {
                    let slot = match kind {
                        TimerKind::Dpd => &mut client.dpd,
                        TimerKind::Algo => &mut client.algo_timer,
                    };
                    timers.resolve(entry, now, slot)
                }
                None => false,
            };
            if !fired {
                continue;
            }
            match kind {
                TimerKind::Dpd => self.on_dpd_expired(id),
                TimerKind::Algo => {
                    self.status_changed();
                    self.on_algo_timer(now, id);
                }
            }
        }
    }

    fn on_dpd_expired(&mut self, id: ClientId) {
        if let Some(c) = self.client(id) {
            log::warn!(
                "Client {} doesn't sent any message during {}ms. Disconnecting",
                c.addr,
                c.dpd_interval
            );
        }
        self.close(id);
    }

    /// Removes a client whose socket is closed: runs the algorithm's
    /// disconnect callback (which may send VOTE_INFOs to the rest of the
    /// cluster), leaves the cluster (deleting it when empty) and frees the
    /// slot (`qnetd_instance_client_disconnect`).
    pub fn disconnect(&mut self, now: Timestamp, id: ClientId) {
        self.disconnect_inner(now, id, false);
    }

    fn disconnect_inner(&mut self, now: Timestamp, id: ClientId, server_going_down: bool) {
        if self.client(id).is_none() {
            return;
        }
        self.status_changed();
        let Some(client) = self.client(id) else {
            return;
        };
        log::debug!(
            "Client {} (init_received {}, cluster {}, node_id {}) disconnect{}",
            client.addr,
            u8::from(client.init_received),
            client.name(),
            client.node_id,
            if server_going_down {
                " (server is going down)"
            } else {
                ""
            }
        );
        if client.init_received {
            log::info!(
                "client disconnected addr={} cluster={} node_id={}",
                client.addr,
                client.name(),
                client.node_id
            );
        }
        let init = client.init_received;
        if let (true, Some((slot, idx))) = (init, self.member_of(id)) {
            let _ = self.run_algorithm(
                now,
                slot,
                idx,
                algo::Event::Disconnect { server_going_down },
            );
            if let Some(cluster) = self.clusters.get_mut(slot) {
                if idx < cluster.members.len() {
                    cluster.members.remove(idx);
                }
                if cluster.members.is_empty() {
                    self.clusters.remove(slot);
                }
            }
        }
        if let Some((client, timers)) = self.client_mut_split(id) {
            timers.set(id, TimerKind::Dpd, &mut client.dpd, None);
            timers.set(id, TimerKind::Algo, &mut client.algo_timer, None);
        }
        if let Some(slot) = self
            .slots
            .get_mut(usize::try_from(id.index()).unwrap_or(usize::MAX))
            && slot.client.take().is_some()
        {
            self.free.push(id.index());
            self.clients -= 1;
        }
    }

    /// Server shutdown: every client is dropped without a message; the
    /// algorithms are told the server is going down (ffsplit then sends
    /// nothing). Returns the clients whose sockets the shell must close.
    pub fn shutdown(&mut self, now: Timestamp) -> Vec<ClientId> {
        let ids: Vec<ClientId> = self
            .slots
            .iter()
            .filter_map(|s| s.client.as_ref().map(|c| c.id))
            .collect();
        for &id in &ids {
            self.disconnect_inner(now, id, true);
        }
        self.events.clear();
        self.dirty.clear();
        ids
    }
}

/// Read-only facts about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// Peer address.
    pub addr: PeerAddr,
    /// Heartbeat interval in ms.
    pub heartbeat_interval: u32,
    /// TLS started on this connection.
    pub tls_started: bool,
    /// Client certificate checked against the cluster name.
    pub tls_peer_verified: bool,
    /// INIT succeeded.
    pub init_received: bool,
}
