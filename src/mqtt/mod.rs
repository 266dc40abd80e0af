//! Home Assistant over MQTT: the pure, sans-IO part (issue 15).
//!
//! Contract: nothing in this folder opens a socket, reads a file or the
//! clock, or spawns anything. Time is an argument, randomness is injected,
//! and the shell in the mio loop moves the bytes. Allocation is fine: this
//! is a cold path beside the qdevice engine, and it is bounded (see
//! [`session`]).
//!
//! - [`url`]: where the broker is (`--mqtt mqtt[s]://user:pass@host:port`,
//!   or the Supervisor's `services/mqtt` answer) → [`url::BrokerSettings`].
//! - [`session`]: the MQTT 3.1.1 client state machine (CONNECT with a last
//!   will, keepalive, QoS 0/1 publishing, retained state republished after
//!   every reconnect, bounded queue, backoff with jitter, and a survey of
//!   retained topics after each connect).
//! - [`discovery`]: Home Assistant entities derived from the `--json`
//!   status document ([`crate::mgmt::json::Report`]): what to publish when
//!   the status changed, and what to delete when a cluster or node is gone.
//!
//! The shell's loop, in short: feed every [`discovery::Message`] of
//! [`discovery::Discovery::update`] to [`session::Session::publish`]; act on
//! [`session::Session::poll_event`] (hand the topics of
//! [`session::Event::Surveyed`] to [`discovery::Discovery::learn`]; the
//! survey's filter is [`discovery::Discovery::config_filter`]); write what
//! [`session::Session::poll_transmit`] gives (register the socket for
//! writing only then); call [`session::Session::handle_timeout`] at
//! `min(session.poll_timeout(), discovery.poll_timeout())`.
//!
//! ## Codec choice
//!
//! The packet codec is [`mqttbytes_ng`] (its `v4` module, MQTT 3.1.1),
//! with default features off (no tokio, no `std` feature; it needs only
//! `alloc`). Compared in December 2026:
//!
//! | crate | last release | state | decoding of hostile bytes | allocation | deps (no default features) |
//! |---|---|---|---|---|---|
//! | `mqttbytes` 0.6.0 | 2021 | abandoned: the code moved into `rumqttc` (rumqtt issue #1055 asks to restore it) | bounds-checked | `BytesMut`/`Bytes`, `String` topics | `bytes` |
//! | `mqttbytes-ng` 0.7.1 | 2026 | maintained fork of that same codec (the one `rumqttc` runs on), MQTT 3.1.1 and 5 | bounds-checked, `max_size` cap before buffering a frame | same | `bytes`, `thiserror` |
//! | `mqttrs` 0.4.1 | May 2021 | unmaintained (fixes merged in 2022, never released) | **panics**: `[0x20, 0x00]` (a CONNACK without body) indexes past the buffer; decoding does not say how many bytes it used | zero-copy `&str`/`&[u8]` | `heapless` 0.7 |
//! | `mqtt-tiny` 0.4.0 | 2025 | maintained, no_std | **wrong on the wire**: the Remaining Length is written and read most-significant group first (MQTT 3.1.1 §2.2.3 is least-significant first), so every packet over 127 bytes (any discovery config) is garbage to a broker | `Vec`, `heapless` or `arrayvec` | none |
//! | `mqtt-protocol-core` 0.7.9 | 2026 | maintained, a whole sans-IO client (v3.1.1 + v5) | - | - | `serde_json`, `indexmap`, `strum`, `derive_builder`, `num_enum`, ... (too heavy for a 3 MiB image) |
//!
//! `mqttbytes-ng` is the only candidate that is maintained, correct on the
//! wire and safe on hostile input; the session needs only its CONNECT,
//! PUBLISH, PUBACK, SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP
//! and DISCONNECT.
//!
//! Size (x86_64 release, LTO, `opt-level = "s"`, stripped), with every
//! public function of this folder reachable from `main`: 1,949,232 →
//! 2,099,744 bytes, +147 KiB, of which the codec, [`session`] and [`url`]
//! are about 82 KiB and [`discovery`] (JSON configs through
//! `serde_json::Value`) about 65 KiB. The static add-on image stays far below 3 MiB.

pub mod discovery;
pub mod session;
pub mod url;
