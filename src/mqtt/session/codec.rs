//! The codec glue of the [`Session`]: broker bytes framed into packets
//! (capped at [`MAX_INCOMING_PACKET`]; a larger PUBLISH is dropped while
//! surveying) and dispatched to the state machine, and packets serialised
//! into the output queue.

use std::time::Instant;

use bytes::Buf as _;
use mqttbytes_ng::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, SubAck, UnsubAck};

use super::{CloseReason, Delivery, Event, MAX_INCOMING_PACKET, ONLINE, Session, State, Survey};

impl Session {
    /// Bytes read from the connection.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if !matches!(
            self.state,
            State::AwaitConnack { .. } | State::Online { .. }
        ) {
            return;
        }
        self.input.extend_from_slice(data);
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.input.len());
                self.input.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return;
                }
            }
            match Packet::read(&mut self.input, MAX_INCOMING_PACKET) {
                Ok(packet) => {
                    if !self.handle_packet(packet, now) {
                        return;
                    }
                }
                Err(mqttbytes_ng::Error::InsufficientBytes(_)) => return,
                Err(mqttbytes_ng::Error::PayloadSizeLimitExceeded(len))
                    if self.cfg.survey.is_some()
                        && matches!(self.state, State::Online { .. })
                        && self.input.first().is_some_and(|b| b >> 4 == 3) =>
                {
                    // A PUBLISH too large to be one of ours: dropped as it
                    // streams in. Its header is 1 byte and 1..=4 length
                    // bytes (the last one without the continuation bit).
                    let length_bytes = self
                        .input
                        .iter()
                        .skip(1)
                        .take(4)
                        .position(|b| b & 0x80 == 0)
                        .map_or(4, |p| p + 1);
                    self.skip = 1 + length_bytes + len;
                }
                Err(e) => {
                    self.close_connection(CloseReason::ProtocolError(e.to_string()), now);
                    return;
                }
            }
        }
    }

    /// One packet from the broker; false when the connection was closed.
    fn handle_packet(&mut self, packet: Packet, now: Instant) -> bool {
        match (self.state, packet) {
            (State::AwaitConnack { .. }, Packet::ConnAck(ConnAck { code, .. })) => {
                if code == ConnectReturnCode::Success {
                    self.state = State::Online {
                        since: now,
                        last_tx: now,
                        ping_sent: None,
                    };
                    self.events.push_back(Event::Online);
                    self.queue_availability(ONLINE);
                    self.requeue_all_retained();
                    self.subscribe_survey(now);
                    true
                } else {
                    self.close_connection(CloseReason::Refused(code as u8), now);
                    false
                }
            }
            (State::Online { .. }, Packet::PubAck(PubAck { pkid })) => {
                if let Some((topic, _)) = self.inflight.remove(&pkid)
                    && let Some(r) = self.retained.get_mut(&topic)
                    && r.delivery == Delivery::Inflight(pkid)
                {
                    if r.payload.is_empty() {
                        self.retained.remove(&topic);
                    } else {
                        r.delivery = Delivery::Done;
                    }
                }
                true
            }
            (State::Online { .. }, Packet::Publish(p)) if self.cfg.survey.is_some() => {
                self.survey_publish(p, now)
            }
            (State::Online { .. }, Packet::SubAck(SubAck { pkid, return_codes })) if matches!(self.survey, Survey::Subscribing { pkid: p, .. } if p == pkid) =>
            {
                self.survey_suback(&return_codes, now);
                true
            }
            (State::Online { .. }, Packet::UnsubAck(UnsubAck { pkid })) if matches!(self.survey, Survey::Unsubscribing { pkid: p, .. } if p == pkid) =>
            {
                self.survey_unsuback();
                true
            }
            (State::Online { since, last_tx, .. }, Packet::PingResp) => {
                self.state = State::Online {
                    since,
                    last_tx,
                    ping_sent: None,
                };
                true
            }
            (_, other) => {
                self.close_connection(
                    CloseReason::ProtocolError(format!("unexpected {}", packet_name(&other))),
                    now,
                );
                false
            }
        }
    }

    pub(super) fn write_packet(&mut self, packet: &Packet, now: Instant) {
        // Sizes were checked by the caller; a write error cannot happen
        // with an unlimited max size and a growable buffer.
        let _ = packet.write(&mut self.out, usize::MAX);
        if let State::Online {
            since, ping_sent, ..
        } = self.state
        {
            self.state = State::Online {
                since,
                last_tx: now,
                ping_sent,
            };
        }
    }
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}
