//! The MQTT 3.1.1 client session, sans-IO: bytes and time in; bytes,
//! events and a deadline out (the shape of `quinn-proto` and `rustls`).
//!
//! Contract:
//! - The shell owns the socket and the clock. It calls [`Session::poll_event`]
//!   and acts: [`Event::Connect`] = open a TCP (and TLS) connection to the
//!   broker, then call [`Session::connected`]; [`Event::Closed`] = close
//!   that connection (the session already forgot it and waits until
//!   `retry_at`). Bytes read go to [`Session::handle_input`]; EOF or a
//!   socket error to [`Session::connection_lost`]. Bytes to write come from
//!   [`Session::poll_transmit`], and [`Session::advance_transmit`] says how
//!   many the socket took. [`Session::poll_timeout`] is the next deadline,
//!   [`Session::handle_timeout`] is called when it passed.
//! - CONNECT: the configured client id (stable across restarts, see
//!   [`client_id`]), clean session, optional login, keepalive, and a last
//!   will `offline` (QoS 1, retained) on the availability topic. After an
//!   accepted CONNACK the session publishes `online` there (retained), then
//!   every retained message it holds: a broker that restarted without
//!   persistence gets the whole state back. A refused CONNACK (codes 1..5)
//!   closes the connection and retries with backoff.
//! - Survey: with [`SessionConfig::survey`] set, every accepted CONNACK is
//!   followed by a survey of the retained topics under that filter, reported
//!   once per connection as [`Event::Surveyed`] (the details are in
//!   `session/survey.rs`). Without a survey any PUBLISH from the broker is
//!   a protocol error.
//! - [`Session::publish`]: retained messages (discovery configs, states)
//!   go with QoS 1 and are kept, latest payload per topic; a message that
//!   cannot be sent now (offline, queue or in-flight window full) is sent
//!   later, and an unacknowledged one again after a reconnect. An empty
//!   retained payload deletes the topic at the broker and is forgotten once
//!   acknowledged. Non-retained messages (events) go with QoS 0 and only
//!   when online; they are dropped otherwise.
//! - Bounded, never blocking: the output queue holds at most
//!   `max_queued_bytes` (+ a 2-byte PINGREQ). Retained messages only enter
//!   it when they fit, and at most `max_inflight` await their PUBACK. An
//!   event that does not fit means the broker does not keep up: the
//!   connection is dropped ([`CloseReason::QueueFull`]) and retried later,
//!   so the daemon never waits for the broker. Input is framed with a cap
//!   of [`MAX_INCOMING_PACKET`] bytes; anything malformed, oversized or
//!   unexpected from the broker closes the connection.
//! - Liveness: a PINGREQ when nothing was sent for one keepalive; the
//!   broker is declared dead ([`CloseReason::BrokerTimeout`]) when the
//!   PINGRESP, the oldest PUBACK, or the survey's SUBACK or UNSUBACK is
//!   one keepalive late. Opening the
//!   connection plus the CONNACK must take less than `connect_timeout`.
//! - Reconnect: exponential backoff from `backoff_min`, doubling per
//!   failed attempt up to `backoff_max`, with "equal jitter" (a delay
//!   uniformly in [base/2, base]) from an injected random source. The
//!   attempt counter starts over only after a connection stayed up for
//!   `backoff_max`, so a broker that accepts and drops at once is not
//!   hammered.
//! - No clock, no socket, no thread: deterministic for a given input and
//!   jitter sequence.
//!
//! Layout: this file holds the connection's life (connect, timers,
//! backoff); `session/codec.rs` frames the broker's bytes and dispatches
//! its packets, `session/publish.rs` keeps the retained messages and
//! delivers them, and `session/survey.rs` runs the survey.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqttbytes_ng::QoS;
use mqttbytes_ng::v4::{Connect, Disconnect, LastWill, Login, Packet, PingReq, Publish};

pub use publish::PublishError;
use publish::{Delivery, Retained};
use survey::Survey;

/// Payload of the availability topic while connected.
pub const ONLINE: &str = "online";
/// Payload of the availability topic otherwise (the last will).
pub const OFFLINE: &str = "offline";
/// Largest packet decoded from the broker: CONNACK, PUBACK, PINGRESP,
/// SUBACK and UNSUBACK are a few bytes, and a retained discovery config of
/// the survey is at most about 2 KiB (a larger PUBLISH is not one of ours,
/// and is dropped).
pub const MAX_INCOMING_PACKET: usize = 8 * 1024;

/// Settings of a [`Session`].
#[derive(Clone)]
pub struct SessionConfig {
    /// MQTT client id, see [`client_id`].
    pub client_id: String,
    /// User name and password, if the broker wants a login.
    pub login: Option<(String, String)>,
    /// Keepalive; whole seconds, 1..=65535 (clamped).
    pub keep_alive: Duration,
    /// The availability topic (`PREFIX/status`), the last will's topic.
    pub availability_topic: String,
    /// Cap of the output queue, bytes.
    pub max_queued_bytes: usize,
    /// QoS 1 messages awaiting their PUBACK, at most (at least 1).
    pub max_inflight: usize,
    /// Time to open the connection and get the CONNACK.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Topic filter surveyed after each CONNACK (see the module
    /// documentation); `None`: no survey.
    pub survey: Option<String>,
    /// Time from the SUBACK to the UNSUBSCRIBE of the survey.
    pub survey_window: Duration,
    /// Topics one survey reports at most.
    pub max_survey_topics: usize,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("client_id", &self.client_id)
            .field(
                "login",
                &self.login.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .field("keep_alive", &self.keep_alive)
            .field("availability_topic", &self.availability_topic)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("max_inflight", &self.max_inflight)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("survey", &self.survey)
            .field("survey_window", &self.survey_window)
            .field("max_survey_topics", &self.max_survey_topics)
            .finish()
    }
}

impl SessionConfig {
    /// Defaults for the daemon: keepalive 30 s, 64 KiB queue, 32 messages
    /// in flight, 10 s to connect, backoff 1 s .. 5 min; no survey (2 s
    /// window and 4096 topics when one is set).
    #[must_use]
    pub fn new(client_id: String, availability_topic: String) -> Self {
        Self {
            client_id,
            login: None,
            keep_alive: Duration::from_secs(30),
            availability_topic,
            max_queued_bytes: 64 * 1024,
            max_inflight: 32,
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            survey: None,
            survey_window: Duration::from_secs(2),
            max_survey_topics: 4096,
        }
    }
}

/// A stable MQTT client id: `qnetd-` and a hash of `seed` (e.g. the topic
/// prefix), 22 characters of `[0-9a-z-]`, within the 23 every MQTT 3.1.1
/// broker must accept. The same seed gives the same id after a restart,
/// so a broker drops a half-dead old connection when the new one arrives.
#[must_use]
pub fn client_id(seed: &str) -> String {
    // FNV-1a, 64 bit: stable across builds and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("qnetd-{h:016x}")
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Opening the connection or the CONNACK took too long.
    ConnectTimeout,
    /// CONNACK refused it, with this return code (1..=5).
    Refused(u8),
    /// No PINGRESP or PUBACK within a keepalive.
    BrokerTimeout,
    /// The broker sent something malformed or unexpected.
    ProtocolError(String),
    /// An event did not fit into the output queue: the broker is too slow.
    QueueFull,
    /// The shell saw EOF or a socket error.
    ConnectionLost,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectTimeout => f.write_str("connect timeout"),
            Self::Refused(code) => write!(f, "refused: {}", refused_text(*code)),
            Self::BrokerTimeout => f.write_str("broker not answering"),
            Self::ProtocolError(e) => write!(f, "protocol error: {e}"),
            Self::QueueFull => f.write_str("output queue full (broker too slow)"),
            Self::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

/// The text of a CONNACK return code (MQTT 3.1.1, 3.2.2.3).
#[must_use]
pub const fn refused_text(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown return code",
    }
}

/// What the shell must do or may log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Open a connection to the broker now; then call [`Session::connected`].
    Connect,
    /// The broker accepted the session; the retained state is on its way.
    Online,
    /// Close the connection; the next [`Event::Connect`] comes at `retry_at`.
    Closed {
        /// Why.
        reason: CloseReason,
        /// When the session tries again.
        retry_at: Instant,
    },
    /// The survey of this connection is done.
    Surveyed {
        /// Topics with a retained message under [`SessionConfig::survey`].
        topics: Vec<String>,
        /// More than [`SessionConfig::max_survey_topics`] were there.
        truncated: bool,
    },
    /// The broker refused the survey's subscription.
    SurveyRefused,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Backoff; connect at `until`.
    Waiting { until: Instant },
    /// [`Event::Connect`] emitted; waiting for [`Session::connected`].
    Opening { deadline: Instant },
    /// CONNECT queued, waiting for the CONNACK.
    AwaitConnack { deadline: Instant },
    /// Accepted.
    Online {
        since: Instant,
        last_tx: Instant,
        ping_sent: Option<Instant>,
    },
    /// [`Session::close`] was called: no more connections.
    Shutdown,
}

/// Random numbers for the backoff jitter.
pub type JitterSource = Box<dyn FnMut() -> u64>;

/// The client state machine; see the module documentation.
pub struct Session {
    cfg: SessionConfig,
    jitter: JitterSource,
    state: State,
    /// Consecutive failed attempts, for the backoff.
    attempt: u32,
    events: VecDeque<Event>,
    out: BytesMut,
    input: BytesMut,
    retained: BTreeMap<String, Retained>,
    /// Topics whose retained message is [`Delivery::Pending`], in order.
    pending: VecDeque<String>,
    /// Packet id → (topic, sent at).
    inflight: HashMap<u16, (String, Instant)>,
    next_pkid: u16,
    survey: Survey,
    /// Topics found by the survey so far, and whether some did not fit.
    surveyed: Vec<String>,
    survey_truncated: bool,
    /// Bytes of an oversized PUBLISH still to be dropped from the input.
    skip: usize,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("cfg", &self.cfg)
            .field("state", &self.state)
            .field("attempt", &self.attempt)
            .field("queued", &self.out.len())
            .field("retained", &self.retained.len())
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that asks for its first connection at once.
    #[must_use]
    pub fn new(cfg: SessionConfig, jitter: JitterSource, now: Instant) -> Self {
        let mut s = Self {
            cfg,
            jitter,
            state: State::Waiting { until: now },
            attempt: 0,
            events: VecDeque::new(),
            out: BytesMut::new(),
            input: BytesMut::new(),
            retained: BTreeMap::new(),
            pending: VecDeque::new(),
            inflight: HashMap::new(),
            next_pkid: 0,
            survey: Survey::Idle,
            surveyed: Vec::new(),
            survey_truncated: false,
            skip: 0,
        };
        s.handle_timeout(now);
        s
    }

    /// Whether the broker accepted the current connection.
    #[must_use]
    pub const fn is_online(&self) -> bool {
        matches!(self.state, State::Online { .. })
    }

    /// The next thing the shell must do or may log.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The connection asked for by [`Event::Connect`] is open: queue CONNECT.
    pub fn connected(&mut self, now: Instant) {
        let State::Opening { deadline } = self.state else {
            return;
        };
        let mut connect = Connect::new(self.cfg.client_id.clone());
        connect.keep_alive = self.keep_alive_secs();
        connect.clean_session = true;
        connect.last_will = Some(LastWill::new(
            self.cfg.availability_topic.clone(),
            OFFLINE,
            QoS::AtLeastOnce,
            true,
        ));
        connect.login = self
            .cfg
            .login
            .as_ref()
            .map(|(user, pass)| Login::new(user.clone(), pass.clone()));
        self.out.clear();
        self.input.clear();
        if let Err(e) = connect.write(&mut self.out) {
            // Only an over-long client id or login can get here.
            self.close_connection(CloseReason::ProtocolError(format!("CONNECT: {e}")), now);
            return;
        }
        self.state = State::AwaitConnack { deadline };
    }

    /// The shell saw EOF or a socket error on the connection.
    pub fn connection_lost(&mut self, now: Instant) {
        if matches!(
            self.state,
            State::Opening { .. } | State::AwaitConnack { .. } | State::Online { .. }
        ) {
            self.close_connection(CloseReason::ConnectionLost, now);
        }
    }

    /// Bytes to write to the connection, if any; moves pending retained
    /// messages into the queue as far as the caps allow.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        self.fill_from_pending(now);
        (!self.out.is_empty()).then_some(&self.out[..])
    }

    /// The socket took `n` bytes of what [`Session::poll_transmit`] gave.
    pub fn advance_transmit(&mut self, n: usize) {
        let n = n.min(self.out.len());
        let _ = self.out.split_to(n);
    }

    /// The next deadline, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Opening { deadline } | State::AwaitConnack { deadline } => Some(deadline),
            State::Online {
                last_tx, ping_sent, ..
            } => {
                let ka = self.keep_alive();
                let ping = match ping_sent {
                    Some(sent) => sent + ka,
                    None => last_tx + ka,
                };
                let ack = self.inflight.values().map(|(_, sent)| *sent + ka).min();
                let survey = self.survey.deadline(ka);
                Some([ack, survey].into_iter().flatten().fold(ping, Instant::min))
            }
            State::Shutdown => None,
        }
    }

    /// Time passed: connect, time out, or ping.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting { until } if now >= until => {
                self.state = State::Opening {
                    deadline: now + self.cfg.connect_timeout,
                };
                self.events.push_back(Event::Connect);
            }
            State::Opening { deadline } | State::AwaitConnack { deadline } if now >= deadline => {
                self.close_connection(CloseReason::ConnectTimeout, now);
            }
            State::Online { ping_sent, .. } => {
                let ka = self.keep_alive();
                let ack_late = self.inflight.values().any(|(_, sent)| now >= *sent + ka);
                let survey_late = self.survey.ack_deadline(ka).is_some_and(|late| now >= late);
                if ack_late || survey_late || ping_sent.is_some_and(|sent| now >= sent + ka) {
                    self.close_connection(CloseReason::BrokerTimeout, now);
                    return;
                }
                if let Survey::Collecting { until } = self.survey
                    && now >= until
                {
                    self.unsubscribe_survey(now);
                }
                if let State::Online {
                    since,
                    last_tx,
                    ping_sent,
                } = self.state
                    && ping_sent.is_none()
                    && now >= last_tx + ka
                {
                    // Beyond the cap on purpose: 2 bytes, at most one outstanding.
                    let _ = PingReq.write(&mut self.out);
                    self.state = State::Online {
                        since,
                        last_tx: now,
                        ping_sent: Some(now),
                    };
                }
            }
            _ => {}
        }
    }

    /// Ends the session for good (daemon shutdown): when online, queues
    /// `offline` on the availability topic (a clean DISCONNECT suppresses
    /// the will) and a DISCONNECT; the shell flushes
    /// [`Session::poll_transmit`] and closes. No reconnect follows.
    pub fn close(&mut self, now: Instant) {
        if self.is_online() {
            let publish = Publish {
                retain: true,
                ..Publish::new(
                    self.cfg.availability_topic.clone(),
                    QoS::AtMostOnce,
                    OFFLINE,
                )
            };
            self.write_packet(&Packet::Publish(publish), now);
            let _ = Disconnect.write(&mut self.out);
        } else {
            self.out.clear();
        }
        self.pending.clear();
        self.reset_survey();
        self.state = State::Shutdown;
    }

    /// The keepalive in whole seconds, 1..=65535 (what CONNECT carries).
    fn keep_alive_secs(&self) -> u16 {
        u16::try_from(self.cfg.keep_alive.as_secs().max(1)).unwrap_or(u16::MAX)
    }

    /// The keepalive the timers use: the one the broker was told.
    fn keep_alive(&self) -> Duration {
        Duration::from_secs(u64::from(self.keep_alive_secs()))
    }

    /// Queues the availability message (retained, QoS 0: the will takes
    /// over if it is lost).
    fn queue_availability(&mut self, payload: &str) {
        let publish = Publish {
            retain: true,
            ..Publish::new(
                self.cfg.availability_topic.clone(),
                QoS::AtMostOnce,
                payload,
            )
        };
        let _ = Packet::Publish(publish).write(&mut self.out, usize::MAX);
    }

    fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid != 0
                && !self.inflight.contains_key(&self.next_pkid)
                && self.survey.pkid() != Some(self.next_pkid)
            {
                return self.next_pkid;
            }
        }
    }

    fn close_connection(&mut self, reason: CloseReason, now: Instant) {
        if let State::Online { since, .. } = self.state
            && now.saturating_duration_since(since) >= self.cfg.backoff_max
        {
            self.attempt = 0;
        }
        let delay = self.backoff_delay();
        self.attempt = self.attempt.saturating_add(1);
        let retry_at = now + delay;
        self.state = State::Waiting { until: retry_at };
        self.out.clear();
        self.input.clear();
        self.reset_survey();
        for (_, (topic, _)) in self.inflight.drain() {
            if let Some(r) = self.retained.get_mut(&topic)
                && matches!(r.delivery, Delivery::Inflight(_))
            {
                r.delivery = Delivery::Pending;
                self.pending.push_back(topic);
            }
        }
        self.events.push_back(Event::Closed { reason, retry_at });
    }

    /// Base `backoff_min * 2^attempt` capped at `backoff_max`; the delay is
    /// uniformly in [base/2, base] ("equal jitter").
    fn backoff_delay(&mut self) -> Duration {
        let min = self.cfg.backoff_min.as_millis();
        let max = self.cfg.backoff_max.as_millis().max(min);
        let base = min
            .checked_shl(self.attempt.min(64))
            .filter(|b| *b <= max && self.attempt < 64)
            .unwrap_or(max);
        let half = base / 2;
        let jitter = u128::from((self.jitter)()) % (base - half + 1);
        Duration::from_millis(u64::try_from(half + jitter).unwrap_or(u64::MAX))
    }
}

mod codec;
mod publish;
mod survey;
#[cfg(test)]
mod tests;
