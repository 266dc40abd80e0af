//! Value types carried in TLVs.

use core::fmt;

use super::enums::{NodeState, TieBreakerMode, TlvType};
use super::tlv::TlvIter;

/// A corosync node id (u32 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A message sequence number (u32 on the wire). The server never checks
/// client sequence numbers; it only echoes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SeqNum(pub u32);

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A totem ring id: the node id that formed the ring and its sequence.
///
/// Printed as `<node id hex>.<seq hex>` (`UTILS_PRI_RING_ID`), e.g. `1.4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RingId {
    /// Node id of the ring's representative.
    pub node_id: u32,
    /// Ring sequence number.
    pub seq: u64,
}

impl fmt::Display for RingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}", self.node_id, self.seq)
    }
}

/// The tie-breaker of a cluster (`struct tlv_tie_breaker`).
///
/// The node id is meaningful only for [`TieBreakerMode::NodeId`]; for the
/// other modes the decoder stores 0 and the encoder writes 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TieBreaker {
    /// The mode.
    pub mode: TieBreakerMode,
    /// The preferred node for [`TieBreakerMode::NodeId`], else 0.
    pub node_id: u32,
}

impl TieBreaker {
    /// Equality as the reference defines it (`tlv_tie_breaker_eq`): same
    /// mode, and for mode "node id" the same node id.
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        self.mode == other.mode
            && (self.mode != TieBreakerMode::NodeId || self.node_id == other.node_id)
    }
}

impl fmt::Display for TieBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            TieBreakerMode::NodeId => write!(f, "Node with node ID {}", self.node_id),
            mode => f.write_str(mode.as_str()),
        }
    }
}

/// One entry of a node list (`struct tlv_node_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node id, never 0 once decoded.
    pub node_id: u32,
    /// Data center id, 0 when not set.
    pub data_center_id: u32,
    /// Node state, [`NodeState::NotSet`] when absent.
    pub node_state: NodeState,
}

impl NodeInfo {
    /// A node info with only a node id.
    #[must_use]
    pub const fn new(node_id: u32) -> Self {
        Self {
            node_id,
            data_center_id: 0,
            node_state: NodeState::NotSet,
        }
    }
}

/// Largest number of nodes in a corosync cluster (`PROCESSOR_COUNT_MAX` in
/// corosync's `totem.h`): the most NODE_INFOs a message may carry, and the
/// most members a cluster may have. The reference accepts longer lists (as
/// many as fit in a message, 2,730 by default); refusing them bounds the
/// work per message (issue 11, finding 3; an intended difference).
pub const MAX_NODES: usize = 384;

/// Largest number of nodes decoded from one node list: [`MAX_NODES`]; a
/// message with more NODE_INFOs is refused while it is decoded.
pub const MAX_DECODED_NODES: usize = MAX_NODES;

/// A decoded node list in a fixed-capacity buffer: every NODE_INFO of one
/// message, in order, with duplicates kept. [`MAX_DECODED_NODES`] bounds
/// every list the decoder accepts, so every decoded list fits.
pub type NodeList = heapless::Vec<NodeInfo, MAX_DECODED_NODES>;

/// The NODE_INFO options of a message: a validated view over the received
/// payload, or node infos (or bare node ids) to emit. Copy, no allocation.
#[derive(Clone, Copy)]
pub struct Nodes<'a>(NodesRepr<'a>);

#[derive(Clone, Copy)]
enum NodesRepr<'a> {
    /// Node infos to emit.
    Slice(&'a [NodeInfo]),
    /// Node ids, all with the same state, to emit.
    Ids(&'a [u32], NodeState),
    /// A payload whose NODE_INFOs were validated by the decoder.
    Wire { payload: &'a [u8], count: usize },
}

impl<'a> Nodes<'a> {
    /// No nodes.
    pub const EMPTY: Nodes<'static> = Nodes(NodesRepr::Slice(&[]));

    /// Nodes from node infos.
    #[must_use]
    pub const fn from_slice(nodes: &'a [NodeInfo]) -> Self {
        Self(NodesRepr::Slice(nodes))
    }

    /// Nodes from bare node ids, each with `state` (NotSet: no state).
    #[must_use]
    pub const fn from_ids(ids: &'a [u32], state: NodeState) -> Self {
        Self(NodesRepr::Ids(ids, state))
    }

    /// A view over a payload whose `count` NODE_INFOs all decode (the
    /// decoder checked them).
    pub(crate) const fn wire(payload: &'a [u8], count: usize) -> Self {
        Self(NodesRepr::Wire { payload, count })
    }

    /// Number of nodes (duplicates counted).
    #[must_use]
    pub const fn len(&self) -> usize {
        match self.0 {
            NodesRepr::Slice(s) => s.len(),
            NodesRepr::Ids(s, _) => s.len(),
            NodesRepr::Wire { count, .. } => count,
        }
    }

    /// Whether there are no nodes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The nodes in order.
    pub fn iter(&self) -> impl Iterator<Item = NodeInfo> + 'a {
        let (slice, ids, wire) = match self.0 {
            NodesRepr::Slice(s) => (Some(s), None, None),
            NodesRepr::Ids(ids, state) => (None, Some((ids, state)), None),
            NodesRepr::Wire { payload, .. } => (None, None, Some(payload)),
        };
        let slice = slice.into_iter().flatten().copied();
        let ids = ids.into_iter().flat_map(|(ids, node_state)| {
            ids.iter().map(move |&node_id| NodeInfo {
                node_state,
                ..NodeInfo::new(node_id)
            })
        });
        let wire = wire.into_iter().flat_map(|payload| {
            TlvIter::new(payload)
                .map_while(Result::ok)
                .filter(|t| t.ty == TlvType::NodeInfo)
                .filter_map(|t| super::msg::decode_node_info(t.value).ok())
        });
        slice.chain(ids).chain(wire)
    }

    /// Copies the nodes into a fixed-capacity list.
    ///
    /// # Errors
    /// Returns the number of nodes if they do not fit.
    pub fn decode_into(&self, out: &mut NodeList) -> Result<(), usize> {
        out.clear();
        for n in self.iter() {
            out.push(n).map_err(|_| self.len())?;
        }
        Ok(())
    }
}

impl PartialEq for Nodes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Nodes<'_> {}

impl fmt::Debug for Nodes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for Nodes<'_> {
    fn default() -> Self {
        Self::from_slice(&[])
    }
}

/// Whether `node_id` appears in `list` (`node_list_find_node_id`).
#[must_use]
pub fn list_contains(list: &[NodeInfo], node_id: u32) -> bool {
    list.iter().any(|n| n.node_id == node_id)
}

/// A borrowed array of big-endian u16 values (supported messages, options
/// or algorithms). The length in bytes is always even.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct U16Array<'a>(&'a [u8]);

impl<'a> U16Array<'a> {
    /// Wraps big-endian bytes. Returns `None` for an odd length.
    #[must_use]
    pub const fn from_be_bytes(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len().is_multiple_of(2) {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// The raw big-endian bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Number of values.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether there are no values.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
    }
}

impl fmt::Debug for U16Array<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Big-endian bytes of a u16 array known at compile time.
#[must_use]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "meant for const evaluation, where an out-of-range index is a compile error"
)]
pub const fn u16_array_bytes<const N: usize, const B: usize>(values: [u16; N]) -> [u8; B] {
    assert!(B == 2 * N, "byte length must be twice the value count");
    let mut out = [0u8; B];
    let mut i = 0;
    while i < N {
        let [hi, lo] = values[i].to_be_bytes();
        out[2 * i] = hi;
        out[2 * i + 1] = lo;
        i += 1;
    }
    out
}
