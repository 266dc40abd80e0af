//! TLS for client connections after STARTTLS: a rustls server configuration
//! built from the [certificate store](crate::cert::store), and [`TlsSession`],
//! a sans-IO byte pipe that the event loop drives.
//!
//! ```text
//!   config.rs   server_config(): the rustls ServerConfig for every client
//!   session.rs  TlsSession: handshake, then records, as a byte pipe
//!   input.rs    the receive buffer handed to rustls
//! ```
//!
//! `TlsSession` never touches a socket or a clock. The loop reads the socket
//! into its own buffer and feeds the session, takes decrypted plaintext out,
//! hands plaintext in, and writes the TLS bytes the session produces back to
//! the socket:
//!
//! ```text
//!   socket ──────────feed──────────▶ ┌────────────┐ ──plaintext / consume_plaintext──▶ core
//!                                    │ TlsSession │
//!   socket ◀──pending_ciphertext───  └────────────┘ ◀──────send_plaintext────────────── core
//!               consume_ciphertext
//! ```
//!
//! # Driving a session from a non-blocking socket
//!
//! 1. On STARTTLS (the server answers nothing, §5.3 of the protocol notes),
//!    create the session with any bytes already read *after* the STARTTLS
//!    message: `TlsSession::new(cfg, &rx[consumed..])`. They are the start of
//!    the ClientHello and must not be lost. If they already break the
//!    handshake, `new` fails with a [`StartError`] whose `alert` is to be
//!    written before closing; otherwise continue with step 4 (the ServerHello
//!    may be pending already).
//! 2. On readable: read the socket until `WouldBlock` and give every chunk to
//!    [`TlsSession::feed`], which runs the handshake, or decrypts records, as
//!    far as the buffered bytes allow. Then move [`TlsSession::plaintext`]
//!    into the core and [`TlsSession::consume_plaintext`] what it took.
//! 3. Whatever the core answers goes in through [`TlsSession::send_plaintext`]
//!    (queued if the handshake is still running).
//! 4. Then, and after every call above, write: while
//!    [`TlsSession::pending_ciphertext`] is not empty, `socket.write` it and
//!    [`TlsSession::consume_ciphertext`] the count written.
//! 5. An error from `feed`/`send_plaintext` is fatal: write out
//!    `pending_ciphertext` (it may hold the alert telling the client why), best
//!    effort, then close the socket. To close cleanly, call
//!    [`TlsSession::send_close_notify`] and flush.
//! 6. When [`TlsSession::is_handshaking`] turns false,
//!    [`TlsSession::peer_names`] gives the names of the client certificate
//!    for the cluster-name check ([`crate::cert::name::cluster_name_matches`])
//!    at INIT. [`TlsSession::peer_closed`] tells that the client sent
//!    close_notify.
//!
//! `feed` always runs the handshake as far as the buffered input allows,
//! including the step after the client certificate is verified: a TLS 1.2
//! client sends Certificate, ClientKeyExchange, CertificateVerify,
//! ChangeCipherSpec and Finished in one flight, and the part after the
//! certificate is already in the buffer when the verification ends. Stopping
//! there and waiting for the socket would stall the handshake.
//!
//! # Memory
//!
//! Session resumption is off (no session cache, no TLS 1.3 tickets): a
//! qdevice reconnects rarely, and a full handshake verifies its certificate
//! again. The session's own buffers are released when they drain, so an idle
//! established session holds only rustls's connection state. Buffered input
//! is bounded by [`MAX_BUFFERED_INPUT`]; the loop hands a session plaintext
//! only while [`TlsSession::output_room`] allows, so buffered output is
//! bounded by [`MAX_BUFFERED_OUTPUT`] plus one call's worth of record
//! overhead, and the rest stays in the instance's bounded send queue.

mod config;
mod input;
mod session;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use config::{TlsConfigError, pairing_server_config, server_config, server_config_revocable};
pub use session::{MAX_BUFFERED_INPUT, MAX_BUFFERED_OUTPUT, StartError, TlsError, TlsSession};
