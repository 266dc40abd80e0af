//! The sans-IO protocol engine: [`Instance`] (cf. `qdevices/qnetd-instance.c`).
//!
//! The instance owns every client's protocol state, the cluster table and
//! the timers, and nothing else: no socket, no TLS, no clock. The shell
//! pushes bytes and time in, and pulls bytes, events and deadlines out:
//!
//! ```text
//!   accept(now, addr) -> ClientId
//!   handle_input(now, id, bytes) -> Input        (stops after STARTTLS)
//!   tls_established(id, peer names)
//!   disconnect(now, id)                          (EOF, error, or after Event::Close)
//!   handle_timeout(now)
//!        |
//!   poll_event() -> Event::Close
//!   poll_transmit() -> ClientId with new output
//!   outgoing(id) -> &[u8];  consume_outgoing(id, n)
//!   poll_timeout() -> next deadline
//! ```
//!
//! One file per C source it mirrors, each with its own `impl Instance`:
//!
//! | file              | reference                         | what                          |
//! |-------------------|-----------------------------------|-------------------------------|
//! | `instance.rs`     | `qnetd-instance.c`                | the instance and its API      |
//! | `msgio.rs`        | `msgio.c`, `qnetd-client-send.c`  | reassembly, skip, send queue  |
//! | `msg_received.rs` | `qnetd-client-msg-received.c`     | the message handlers (INIT in `msg_received/init.rs`) |
//! | `algorithm.rs`    | `qnetd-algorithm.c`               | running the algorithms        |
//! | `client.rs`       | `qnetd-client.c`                  | one connection                |
//! | `cluster.rs`      | `qnetd-cluster-list.c`            | the cluster table             |
//! | `timers.rs`       | `timer-list.c`                    | the deadlines                 |
//! | `certname.rs`     | NSS `CERT_VerifyCertName`         | the cluster-name check        |
//! | `settings.rs`     | `qnet-config.h`                   | the settings and defaults     |
//!
//! Replies are byte-identical to the reference's. After warm-up (buffers
//! grown to their working size) the heartbeat and node-list paths do not
//! allocate; `tests/no_alloc.rs` proves it.

mod algorithm;
pub mod certname;
mod client;
mod cluster;
mod instance;
mod msg_received;
mod msgio;
pub mod settings;
pub mod time;
pub mod timers;

pub use client::{ClientId, PeerAddr};
pub use instance::{AcceptError, ClientInfo, Event, Input, Instance};
pub use settings::InstanceConfig;
pub use time::Timestamp;
