//! The survey of the [`Session`]: which retained topics the broker holds
//! under [`SessionConfig::survey`] (our own configs of an earlier run).
//!
//! Contract:
//! - Every accepted CONNACK is followed by a SUBSCRIBE (QoS 0) to that
//!   filter (beyond the queue cap on purpose, like a PINGREQ: one small
//!   packet per connection). Retained PUBLISHes (retain flag set: sent
//!   because of the new subscription) with a payload are collected, at most
//!   [`SessionConfig::max_survey_topics`] topics, from then until the
//!   UNSUBACK; the UNSUBSCRIBE goes [`SessionConfig::survey_window`] after
//!   the SUBACK (a broker sends the retained messages right after it).
//!   Then [`Event::Surveyed`] reports the topics, once per connection; a
//!   refused subscription gives [`Event::SurveyRefused`].
//! - Other PUBLISHes are ignored; one with QoS 1 or 2 (more than was asked
//!   for) is a protocol error; a PUBLISH above [`MAX_INCOMING_PACKET`] is
//!   dropped unread as it streams in (see the codec glue).
//! - A SUBACK or UNSUBACK one keepalive late means the broker is dead
//!   ([`CloseReason::BrokerTimeout`], decided by the session's timers).
//! - Every closed connection forgets the survey in progress.

use std::time::{Duration, Instant};

use mqttbytes_ng::QoS;
use mqttbytes_ng::v4::{Packet, Publish, Subscribe, SubscribeReasonCode, Unsubscribe};

use super::{CloseReason, Event, Session};
#[cfg(doc)]
use super::{MAX_INCOMING_PACKET, SessionConfig};

/// Where the survey of the current connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Survey {
    /// None configured, or done for this connection.
    Idle,
    /// SUBSCRIBE sent with this packet id at `sent`.
    Subscribing { pkid: u16, sent: Instant },
    /// SUBACK received; UNSUBSCRIBE at `until`.
    Collecting { until: Instant },
    /// UNSUBSCRIBE sent with this packet id at `sent`.
    Unsubscribing { pkid: u16, sent: Instant },
}

impl Survey {
    /// The packet id of an outstanding SUBSCRIBE or UNSUBSCRIBE.
    pub(super) const fn pkid(self) -> Option<u16> {
        match self {
            Self::Subscribing { pkid, .. } | Self::Unsubscribing { pkid, .. } => Some(pkid),
            Self::Idle | Self::Collecting { .. } => None,
        }
    }

    /// When the outstanding SUBACK or UNSUBACK is one keepalive `ka` late.
    pub(super) fn ack_deadline(self, ka: Duration) -> Option<Instant> {
        match self {
            Self::Subscribing { sent, .. } | Self::Unsubscribing { sent, .. } => Some(sent + ka),
            Self::Idle | Self::Collecting { .. } => None,
        }
    }

    /// The survey's next deadline: the end of the window, or a late
    /// acknowledgement.
    pub(super) fn deadline(self, ka: Duration) -> Option<Instant> {
        match self {
            Self::Collecting { until } => Some(until),
            other => other.ack_deadline(ka),
        }
    }
}

impl Session {
    /// After a CONNACK: SUBSCRIBE to the survey's filter (beyond the queue
    /// cap on purpose, like a PINGREQ: one small packet per connection).
    pub(super) fn subscribe_survey(&mut self, now: Instant) {
        let Some(filter) = self.cfg.survey.clone() else {
            return;
        };
        let pkid = self.next_packet_id();
        let subscribe = Subscribe {
            pkid,
            ..Subscribe::new(filter, QoS::AtMostOnce)
        };
        self.write_packet(&Packet::Subscribe(subscribe), now);
        self.survey = Survey::Subscribing { pkid, sent: now };
    }

    /// The survey's SUBACK: collect until the window ends, or report the
    /// refusal.
    pub(super) fn survey_suback(&mut self, return_codes: &[SubscribeReasonCode], now: Instant) {
        if matches!(return_codes, [SubscribeReasonCode::Success(_)]) {
            self.survey = Survey::Collecting {
                until: now + self.cfg.survey_window,
            };
        } else {
            self.reset_survey();
            self.events.push_back(Event::SurveyRefused);
        }
    }

    /// A PUBLISH while a survey is configured: a retained one with a
    /// payload is collected while the survey's subscription stands; any
    /// other QoS 0 one is ignored. False when the connection was closed.
    pub(super) fn survey_publish(&mut self, p: Publish, now: Instant) -> bool {
        if p.qos != QoS::AtMostOnce {
            self.close_connection(
                CloseReason::ProtocolError("PUBLISH above the QoS 0 subscribed".into()),
                now,
            );
            return false;
        }
        if self.survey != Survey::Idle && p.retain && !p.payload.is_empty() {
            if self.surveyed.len() < self.cfg.max_survey_topics {
                self.surveyed.push(p.topic);
            } else {
                self.survey_truncated = true;
            }
        }
        true
    }

    /// The survey's window is over: UNSUBSCRIBE.
    pub(super) fn unsubscribe_survey(&mut self, now: Instant) {
        let Some(filter) = self.cfg.survey.clone() else {
            return;
        };
        let pkid = self.next_packet_id();
        let unsubscribe = Unsubscribe {
            pkid,
            ..Unsubscribe::new(filter)
        };
        self.write_packet(&Packet::Unsubscribe(unsubscribe), now);
        self.survey = Survey::Unsubscribing { pkid, sent: now };
    }

    /// The survey's UNSUBACK: report what was collected.
    pub(super) fn survey_unsuback(&mut self) {
        let topics = std::mem::take(&mut self.surveyed);
        let truncated = self.survey_truncated;
        self.reset_survey();
        self.events.push_back(Event::Surveyed { topics, truncated });
    }

    /// Forgets the survey of this connection.
    pub(super) fn reset_survey(&mut self) {
        self.survey = Survey::Idle;
        self.surveyed = Vec::new();
        self.survey_truncated = false;
        self.skip = 0;
    }
}
