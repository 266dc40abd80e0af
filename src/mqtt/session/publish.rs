//! The publishing side of the [`Session`]: the store of retained messages
//! and their QoS 1 delivery, and the QoS 0 events.
//!
//! Contract: retained messages are kept, latest payload per topic, each
//! [`Delivery::Pending`] until it enters the output queue (only when online,
//! when it fits under `max_queued_bytes` and fewer than `max_inflight` await
//! their PUBACK), then in flight until its PUBACK, and pending again after
//! a reconnect; an acknowledged empty payload (a deletion) is forgotten.
//! Events go at once with QoS 0 when online (dropped otherwise); one that
//! does not fit closes the connection ([`CloseReason::QueueFull`]).

use std::fmt;
use std::time::Instant;

use mqttbytes_ng::QoS;
use mqttbytes_ng::v4::{Packet, Publish};

use super::{CloseReason, Session};

/// A message [`Session::publish`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// Empty, longer than 65535 bytes, or with `+`, `#` or NUL.
    InvalidTopic,
    /// Larger than half the output queue: it could never be sent.
    TooLarge,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTopic => f.write_str("invalid MQTT topic"),
            Self::TooLarge => f.write_str("message larger than half the output queue"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Where a retained message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Must be (re)sent.
    Pending,
    /// Sent with this packet id, PUBACK outstanding.
    Inflight(u16),
    /// Acknowledged by the broker.
    Done,
}

#[derive(Debug)]
pub(super) struct Retained {
    pub(super) payload: Vec<u8>,
    pub(super) delivery: Delivery,
}

impl Session {
    /// Publishes `payload` on `topic`; see the module documentation for
    /// retained (QoS 1, kept) and non-retained (QoS 0, only when online).
    ///
    /// # Errors
    /// An invalid topic, or a message too large to ever be sent.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        now: Instant,
    ) -> Result<(), PublishError> {
        if topic.is_empty()
            || topic.len() > usize::from(u16::MAX)
            || topic.contains(['+', '#', '\0'])
        {
            return Err(PublishError::InvalidTopic);
        }
        if publish_size(topic, payload) > self.cfg.max_queued_bytes / 2 {
            return Err(PublishError::TooLarge);
        }
        if retain {
            match self.retained.get_mut(topic) {
                // Already sent, in flight or queued with this payload.
                Some(r) if r.payload == payload => {}
                Some(r) => {
                    payload.clone_into(&mut r.payload);
                    if r.delivery != Delivery::Pending {
                        r.delivery = Delivery::Pending;
                        self.pending.push_back(topic.to_string());
                    }
                }
                None => {
                    self.retained.insert(
                        topic.to_string(),
                        Retained {
                            payload: payload.to_vec(),
                            delivery: Delivery::Pending,
                        },
                    );
                    self.pending.push_back(topic.to_string());
                }
            }
            return Ok(());
        }
        if !self.is_online() {
            return Ok(());
        }
        if self.out.len() + publish_size(topic, payload) > self.cfg.max_queued_bytes {
            self.close_connection(CloseReason::QueueFull, now);
            return Ok(());
        }
        let publish = Publish::new(topic, QoS::AtMostOnce, payload);
        self.write_packet(&Packet::Publish(publish), now);
        Ok(())
    }

    /// After a CONNACK: every retained message is sent again.
    pub(super) fn requeue_all_retained(&mut self) {
        self.pending.clear();
        for (topic, r) in &mut self.retained {
            r.delivery = Delivery::Pending;
            self.pending.push_back(topic.clone());
        }
    }

    pub(super) fn fill_from_pending(&mut self, now: Instant) {
        if !self.is_online() {
            return;
        }
        while self.inflight.len() < self.cfg.max_inflight.max(1) {
            let Some(topic) = self.pending.front() else {
                return;
            };
            let Some(r) = self.retained.get(topic) else {
                self.pending.pop_front();
                continue;
            };
            if r.delivery != Delivery::Pending {
                self.pending.pop_front();
                continue;
            }
            if self.out.len() + publish_size(topic, &r.payload) > self.cfg.max_queued_bytes {
                return;
            }
            let publish = Publish::new(topic.clone(), QoS::AtLeastOnce, r.payload.clone());
            let Some(topic) = self.pending.pop_front() else {
                return;
            };
            let pkid = self.next_packet_id();
            let publish = Publish {
                retain: true,
                pkid,
                ..publish
            };
            self.write_packet(&Packet::Publish(publish), now);
            if let Some(r) = self.retained.get_mut(&topic) {
                r.delivery = Delivery::Inflight(pkid);
            }
            self.inflight.insert(pkid, (topic, now));
        }
    }
}

/// Bytes of a PUBLISH with a packet id (an upper bound for QoS 0).
pub(super) fn publish_size(topic: &str, payload: &[u8]) -> usize {
    // fixed header (1 + up to 4 length bytes) + topic length + topic + packet id + payload
    5 + 2 + topic.len() + 2 + payload.len()
}
