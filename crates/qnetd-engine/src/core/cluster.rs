//! The cluster table (`qdevices/qnetd-cluster-list.c`).
//!
//! Clusters are keyed by the exact cluster-name bytes (case-sensitive),
//! created by the first successful INIT and deleted with their last member.
//! Slots are stable while a cluster exists, so a client can refer to its
//! cluster by index; the creation sequence gives the listing order.

use crate::algo::Cluster;

#[derive(Debug)]
struct Entry {
    created: u64,
    cluster: Cluster,
}

/// All clusters.
#[derive(Debug, Default)]
pub(crate) struct ClusterTable {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    next_seq: u64,
    len: usize,
}

impl ClusterTable {
    /// Slot of the cluster named `name`.
    pub(crate) fn find(&self, name: &[u8]) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|e| &*e.cluster.name == name))
    }

    /// Creates an empty cluster and returns its slot.
    pub(crate) fn create(&mut self, name: &[u8]) -> usize {
        let entry = Entry {
            created: self.next_seq,
            cluster: Cluster::new(name),
        };
        self.next_seq += 1;
        self.len += 1;
        if let Some(slot) = self.free.pop()
            && let Some(s) = self.slots.get_mut(slot)
        {
            *s = Some(entry);
            return slot;
        }
        self.slots.push(Some(entry));
        self.slots.len() - 1
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&Cluster> {
        self.slots.get(slot)?.as_ref().map(|e| &e.cluster)
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Cluster> {
        self.slots.get_mut(slot)?.as_mut().map(|e| &mut e.cluster)
    }

    /// Deletes the cluster in `slot`.
    pub(crate) fn remove(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot)
            && s.take().is_some()
        {
            self.free.push(slot);
            self.len -= 1;
        }
    }

    /// Number of clusters.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Clusters in creation order (cold path: allocates the ordering).
    pub(crate) fn in_creation_order(&self) -> Vec<&Cluster> {
        let mut v: Vec<&Entry> = self.slots.iter().flatten().collect();
        v.sort_by_key(|e| e.created);
        v.into_iter().map(|e| &e.cluster).collect()
    }
}
