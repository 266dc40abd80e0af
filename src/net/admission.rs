//! Admission of client connections until they finish INIT: the limits that
//! keep idle sockets and half-open TLS handshakes from pushing out real
//! clients. Not in the reference, which only has `-m` (see the README's
//! reliability section).
//!
//! * `init_timeout`: a connection that has not finished INIT this long
//!   after it was accepted is closed (a silent socket, a TLS handshake that
//!   never completes, a client that drips bytes).
//! * `max_preinit_clients_per_addr`: connections from one source address
//!   that have not finished INIT; past it a new one is closed at once.
//! * `-m max_clients`: at the limit, a new connection closes the oldest
//!   connection that has not finished INIT; clients past INIT are never
//!   pushed out.
//!
//! Bookkeeping only: the loop asks [`Admission::admit`] before it accepts a
//! connection, reports the accept, the INIT and the close, and closes what
//! [`Admission::evict_oldest`] and [`Admission::pop_expired`] return.
//! Pending connections are kept in accept order, which is also deadline
//! order (one timeout for all); entries of connections that finished INIT
//! or closed are skipped lazily.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::config::Config;
use crate::core::{ClientId, Timestamp};

/// Why a new connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `max_preinit_clients_per_addr` connections of this address are
    /// still before INIT.
    PerAddress,
}

/// The pre-INIT connections and their per-address counts.
#[derive(Debug)]
pub(super) struct Admission {
    max_clients: usize,
    per_addr_limit: usize,
    timeout_ms: u64,
    /// Connections accepted and not yet past INIT (or stale), oldest first,
    /// with their deadline.
    pending: VecDeque<(ClientId, Timestamp)>,
    /// Live pre-INIT connections per source address.
    live: HashMap<IpAddr, usize>,
}

impl Admission {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            max_clients: config.max_clients,
            per_addr_limit: config.advanced.max_preinit_clients_per_addr,
            timeout_ms: u64::from(config.advanced.init_timeout),
            pending: VecDeque::new(),
            live: HashMap::new(),
        }
    }

    /// Whether a connection from `ip` may be accepted.
    pub(super) fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        let live = self.live.get(&ip).copied().unwrap_or(0);
        if self.per_addr_limit != 0 && live >= self.per_addr_limit {
            return Err(Refusal::PerAddress);
        }
        Ok(())
    }

    /// Whether `clients` connections fill `-m`.
    pub(super) fn full(&self, clients: usize) -> bool {
        self.max_clients != 0 && clients >= self.max_clients
    }

    /// Records an accepted connection from `ip`.
    pub(super) fn accepted(&mut self, now: Timestamp, id: ClientId, ip: IpAddr) {
        *self.live.entry(ip).or_insert(0) += 1;
        self.pending
            .push_back((id, now.add_millis(self.timeout_ms)));
    }

    /// Records that a pre-INIT connection from `ip` finished INIT or
    /// closed.
    pub(super) fn left(&mut self, ip: IpAddr) {
        if let Some(n) = self.live.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.live.remove(&ip);
            }
        }
        if self.live.is_empty() {
            // Every entry is stale.
            self.pending.clear();
        }
    }

    /// The oldest connection still before INIT, to close for room; `pending`
    /// says whether an id is still pre-INIT.
    pub(super) fn evict_oldest(
        &mut self,
        mut pending: impl FnMut(ClientId) -> bool,
    ) -> Option<ClientId> {
        while let Some((id, _)) = self.pending.pop_front() {
            if pending(id) {
                return Some(id);
            }
        }
        None
    }

    /// A connection whose INIT deadline passed at `now`; call until `None`.
    pub(super) fn pop_expired(
        &mut self,
        now: Timestamp,
        mut pending: impl FnMut(ClientId) -> bool,
    ) -> Option<ClientId> {
        while let Some(&(id, deadline)) = self.pending.front() {
            if pending(id) {
                if deadline > now {
                    return None;
                }
                self.pending.pop_front();
                return Some(id);
            }
            self.pending.pop_front();
        }
        None
    }

    /// The next INIT deadline, if any connection is before INIT.
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        if self.live.is_empty() {
            return None;
        }
        self.pending.front().map(|&(_, deadline)| deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_clients: usize, per_addr: usize, timeout: u32) -> Admission {
        let mut config = Config {
            max_clients,
            ..Config::default()
        };
        config.advanced.max_preinit_clients_per_addr = per_addr;
        config.advanced.init_timeout = timeout;
        Admission::new(&config)
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

    #[test]
    fn per_address_counts_only_connections_before_init() {
        let mut adm = admission(0, 2, 100);
        let t = Timestamp::from_millis(0);
        adm.accepted(t, ClientId::new(0, 1), A);
        adm.accepted(t, ClientId::new(1, 1), A);
        assert_eq!(adm.admit(A), Err(Refusal::PerAddress));
        assert_eq!(adm.admit(B), Ok(()));
        adm.left(A);
        assert_eq!(adm.admit(A), Ok(()));
        assert!(!adm.full(1_000_000), "-m 0 is unlimited");
    }

    #[test]
    fn deadlines_and_eviction_skip_connections_past_init() {
        let mut adm = admission(2, 0, 100);
        let (a, b, c) = (
            ClientId::new(0, 1),
            ClientId::new(1, 1),
            ClientId::new(2, 1),
        );
        adm.accepted(Timestamp::from_millis(0), a, A);
        adm.accepted(Timestamp::from_millis(10), b, A);
        adm.accepted(Timestamp::from_millis(20), c, B);
        assert!(adm.full(2));
        // a finished INIT: b is the oldest before INIT.
        adm.left(A);
        let pre_init = |id: ClientId| id != a;
        assert_eq!(adm.next_deadline(), Some(Timestamp::from_millis(100)));
        assert_eq!(adm.pop_expired(Timestamp::from_millis(109), pre_init), None);
        assert_eq!(adm.evict_oldest(pre_init), Some(b));
        assert_eq!(adm.pop_expired(Timestamp::from_millis(119), pre_init), None);
        assert_eq!(
            adm.pop_expired(Timestamp::from_millis(120), pre_init),
            Some(c)
        );
    }
}
