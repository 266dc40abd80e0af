//! Per-client deadlines in one min-heap with lazy deletion.
//!
//! Each client has a few deadlines ([`TimerKind`]). Moving a deadline later,
//! which happens on every received message (the dead-peer timer restarts),
//! costs nothing: the heap entry fires early, sees the real deadline and is
//! pushed again. Moving it earlier pushes a second entry; the stale one is
//! recognised when it pops. The heap therefore holds about one entry per
//! client and timer, and the work per event does not grow with the number
//! of clients.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::client::ClientId;
use super::time::Timestamp;

/// Which deadline of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// Dead peer detection.
    Dpd,
    /// The decision algorithm's timer (lms).
    Algo,
}

/// One deadline of a client and the earliest heap entry standing for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerSlot {
    /// When the timer fires, if armed.
    pub deadline: Option<Timestamp>,
    /// The earliest entry in the heap for this slot.
    scheduled: Option<Timestamp>,
}

impl TimerSlot {
    /// Whether the timer is armed.
    #[must_use]
    pub const fn is_armed(&self) -> bool {
        self.deadline.is_some()
    }
}

/// The heap of pending deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Timestamp, ClientId, TimerKind)>>,
}

impl Timers {
    /// Reserves room for `n` more entries (called at accept, off the hot path).
    pub fn reserve(&mut self, n: usize) {
        self.heap.reserve(n);
    }

    /// Arms (`Some`) or disarms (`None`) a client's timer.
    pub fn set(
        &mut self,
        id: ClientId,
        kind: TimerKind,
        slot: &mut TimerSlot,
        deadline: Option<Timestamp>,
    ) {
        slot.deadline = deadline;
        if let Some(d) = deadline
            && slot.scheduled.is_none_or(|s| d < s)
        {
            self.heap.push(Reverse((d, id, kind)));
            slot.scheduled = Some(d);
        }
    }

    /// The earliest entry, which may be stale (a wake-up that finds nothing
    /// to do is harmless).
    #[must_use]
    pub fn next(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, ClientId, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Resolves a popped entry against its slot. Returns whether the timer
    /// fired; if its deadline moved later, a new entry is pushed.
    pub fn resolve(
        &mut self,
        entry: (Timestamp, ClientId, TimerKind),
        now: Timestamp,
        slot: &mut TimerSlot,
    ) -> bool {
        let (t, id, kind) = entry;
        if slot.scheduled != Some(t) {
            return false;
        }
        slot.scheduled = None;
        match slot.deadline {
            None => false,
            Some(d) if d <= now => {
                slot.deadline = None;
                true
            }
            Some(d) => {
                self.heap.push(Reverse((d, id, kind)));
                slot.scheduled = Some(d);
                false
            }
        }
    }

    /// Number of entries (for tests and statistics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// Fires everything due at `now` for one slot.
    fn fire(timers: &mut Timers, now: Timestamp, slot: &mut TimerSlot) -> usize {
        let mut fired = 0;
        while let Some(e) = timers.pop_due(now) {
            if timers.resolve(e, now, slot) {
                fired += 1;
            }
        }
        fired
    }

    #[test]
    fn later_deadline_reuses_the_entry() {
        let id = ClientId::new(0, 0);
        let mut timers = Timers::default();
        let mut slot = TimerSlot::default();
        timers.set(id, TimerKind::Dpd, &mut slot, Some(t(100)));
        for now in [50, 90, 120] {
            timers.set(id, TimerKind::Dpd, &mut slot, Some(t(now + 100)));
        }
        assert_eq!(timers.len(), 1, "moving later must not push");
        assert_eq!(fire(&mut timers, t(150), &mut slot), 0);
        assert_eq!(timers.len(), 1, "re-pushed at the real deadline");
        assert_eq!(fire(&mut timers, t(220), &mut slot), 1);
        assert!(!slot.is_armed());
    }

    #[test]
    fn earlier_deadline_and_disarm() {
        let id = ClientId::new(3, 1);
        let mut timers = Timers::default();
        let mut slot = TimerSlot::default();
        timers.set(id, TimerKind::Dpd, &mut slot, Some(t(180_000)));
        timers.set(id, TimerKind::Dpd, &mut slot, Some(t(12_000)));
        assert_eq!(timers.next(), Some(t(12_000)));
        assert_eq!(fire(&mut timers, t(12_000), &mut slot), 1);
        // The stale 180 s entry does nothing.
        assert_eq!(fire(&mut timers, t(200_000), &mut slot), 0);
        timers.set(id, TimerKind::Dpd, &mut slot, Some(t(300_000)));
        timers.set(id, TimerKind::Dpd, &mut slot, None);
        assert_eq!(fire(&mut timers, t(400_000), &mut slot), 0);
        assert!(timers.is_empty());
    }
}
