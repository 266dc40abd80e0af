//! Per-connection state (`struct qnetd_client` of the reference, minus what
//! moves into the cluster [`crate::algo::Member`] after INIT).

use core::fmt;
use core::net::SocketAddr;

use super::certname::PeerNames;
use super::timers::TimerSlot;
use crate::proto::{
    DecisionAlgorithm, HEADER_LEN, Header, ReplyErrorCode, RingId, TieBreaker, TieBreakerMode,
};

/// The handle of a client connection. `core` hands it out on
/// [`Instance::accept`](super::Instance::accept); a cluster
/// [`Member`](crate::algo::Member) carries it so that `core` finds the
/// connection of a node, and the algorithms never read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    index: u32,
    generation: u32,
}

impl ClientId {
    /// A handle for slot `index`, in its `generation`.
    #[must_use]
    pub const fn new(index: u32, generation: u32) -> Self {
        Self { index, generation }
    }

    /// The slot index.
    #[must_use]
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot generation (bumped each time the slot is reused).
    #[must_use]
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

/// Displays a peer address as the reference does: `a.b.c.d:port`, or the
/// IPv6 text without brackets followed by `:port` (e.g. `::1:55256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.ip(), self.0.port())
    }
}

/// A message being skipped: its type was unknown or it was too long. Its
/// body is consumed without being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Skip {
    /// Reply code of the SERVER_ERROR sent once the body is consumed.
    pub(crate) reason: ReplyErrorCode,
    /// Body bytes still to consume.
    pub(crate) remaining: u64,
}

/// Outgoing bytes of one client: whole messages, written in order.
///
/// `msgs` counts messages not completely written (the one in flight
/// included), which is what `max_client_send_buffers` limits.
#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    /// Messages not completely written.
    msgs: usize,
    /// End offset of the first message not completely written.
    first_end: usize,
}

impl TxQueue {
    pub(crate) fn pending(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn messages(&self) -> usize {
        self.msgs
    }

    /// Appends one complete message written by `write` into `len` bytes.
    pub(crate) fn push_with(&mut self, len: usize, write: impl FnOnce(&mut [u8]) -> bool) -> bool {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.first_end = 0;
        } else if self.pos >= 4096 && self.pos * 2 >= self.buf.len() {
            // Compact: drop what has been written (a memmove, no allocation).
            self.buf.drain(..self.pos);
            self.first_end -= self.pos;
            self.pos = 0;
        }
        let start = self.buf.len();
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        self.buf.resize(end, 0);
        let ok = self.buf.get_mut(start..end).is_some_and(write);
        if !ok {
            self.buf.truncate(start);
            return false;
        }
        if self.msgs == 0 {
            self.first_end = end;
        }
        self.msgs += 1;
        true
    }

    /// Marks `n` pending bytes as written.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
        while self.msgs > 0 && self.pos >= self.first_end {
            self.msgs -= 1;
            if self.msgs > 0 {
                let next_len = self
                    .buf
                    .get(self.first_end..)
                    .and_then(Header::parse)
                    .and_then(|h| h.total_len())
                    .unwrap_or(HEADER_LEN);
                self.first_end = self.first_end.saturating_add(next_len);
            }
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.first_end = 0;
            self.msgs = 0;
        }
    }
}

/// One TCP connection.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: ClientId,
    pub(crate) addr: PeerAddr,
    pub(crate) preinit_received: bool,
    pub(crate) init_received: bool,
    pub(crate) tls_started: bool,
    pub(crate) tls_peer_verified: bool,
    pub(crate) peer_names: Option<Box<PeerNames>>,
    /// Cluster name from the last PREINIT.
    pub(crate) cluster_name: Vec<u8>,
    // Values from INIT, kept on the connection (the reference stores them
    // even when INIT fails); copied into the cluster member on success.
    pub(crate) node_id: u32,
    pub(crate) ring_id: RingId,
    pub(crate) tie_breaker: TieBreaker,
    pub(crate) algorithm: DecisionAlgorithm,
    /// Heartbeat interval in ms (120000 before INIT).
    pub(crate) heartbeat_interval: u32,
    /// Slot of the cluster this client is a member of (after INIT).
    pub(crate) cluster: Option<usize>,
    /// Partial message (header and/or body) waiting for more bytes.
    pub(crate) rx: Vec<u8>,
    /// The header of the message in `rx`, parsed once its 6 bytes are in.
    pub(crate) rx_header: Option<Header>,
    pub(crate) skip: Option<Skip>,
    pub(crate) tx: TxQueue,
    pub(crate) dpd: TimerSlot,
    /// DPD interval in ms.
    pub(crate) dpd_interval: u64,
    pub(crate) algo_timer: TimerSlot,
    /// Waiting for the shell to close the socket.
    pub(crate) closing: bool,
    /// Queued in the instance's list of clients with new output.
    pub(crate) dirty: bool,
}

impl Client {
    pub(crate) fn new(id: ClientId, addr: SocketAddr, heartbeat_interval: u32) -> Self {
        Self {
            id,
            addr: PeerAddr(addr),
            preinit_received: false,
            init_received: false,
            tls_started: false,
            tls_peer_verified: false,
            peer_names: None,
            cluster_name: Vec::new(),
            node_id: 0,
            ring_id: RingId::default(),
            tie_breaker: TieBreaker {
                mode: TieBreakerMode::Lowest,
                node_id: 0,
            },
            algorithm: DecisionAlgorithm::Test,
            heartbeat_interval,
            cluster: None,
            rx: Vec::new(),
            rx_header: None,
            skip: None,
            tx: TxQueue::default(),
            dpd: TimerSlot::default(),
            dpd_interval: 0,
            algo_timer: TimerSlot::default(),
            closing: false,
            dirty: false,
        }
    }

    /// The cluster name for logs: `(null)` before PREINIT, like the
    /// reference.
    pub(crate) fn name(&self) -> NameOrNull<'_> {
        NameOrNull(
            self.preinit_received
                .then_some(self.cluster_name.as_slice()),
        )
    }
}

/// Displays a cluster name, or `(null)` when there is none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameOrNull<'a>(Option<&'a [u8]>);

impl fmt::Display for NameOrNull<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => crate::algo::model::NameDisplay(n).fmt(f),
            None => f.write_str("(null)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len_payload: u8) -> Vec<u8> {
        let mut v = vec![0, 9, 0, 0, 0, len_payload];
        v.extend(std::iter::repeat_n(7, usize::from(len_payload)));
        v
    }

    #[test]
    fn tx_counts_messages_across_partial_writes() {
        let mut q = TxQueue::default();
        for n in [8u8, 2, 0] {
            let m = msg(n);
            assert!(q.push_with(m.len(), |b| {
                b.copy_from_slice(&m);
                true
            }));
        }
        assert_eq!(q.messages(), 3);
        assert_eq!(q.pending().len(), 14 + 8 + 6);
        q.consume(5);
        assert_eq!(q.messages(), 3, "first message only partly written");
        q.consume(9);
        assert_eq!(q.messages(), 2);
        q.consume(8);
        assert_eq!(q.messages(), 1);
        q.consume(6);
        assert_eq!(q.messages(), 0);
        assert!(q.pending().is_empty());
    }

    #[test]
    fn peer_addr_format() {
        let v4: SocketAddr = "127.0.0.1:55098".parse().unwrap();
        assert_eq!(PeerAddr(v4).to_string(), "127.0.0.1:55098");
        let v6: SocketAddr = "[::1]:55256".parse().unwrap();
        assert_eq!(PeerAddr(v6).to_string(), "::1:55256");
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:52000".parse().unwrap();
        assert_eq!(PeerAddr(mapped).to_string(), "::ffff:192.0.2.1:52000");
    }
}
