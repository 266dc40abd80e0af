//! [`TlsSession`]: one client's TLS connection as a sans-IO byte pipe over
//! the rustls typestate API (handshake, then the split connection).

use std::sync::Arc;
use std::{error, fmt, mem};

use rustls::crypto::CipherSuite;
use rustls::crypto::Identity;
use rustls::crypto::cipher::OutboundPlain;
use rustls::enums::ProtocolVersion;
use rustls::server::ServerHandshake;
use rustls::split::{ReceiveTraffic, ReceiveTrafficState, SendTraffic, SplitConnection};
use rustls::{Connection, NeedsInput, ServerConfig, ServerSide, Tcp};

use super::input::{InputBuf, KEEP_CAPACITY};
use crate::cert::name::{CertNameError, PeerNames};

/// Most TLS bytes buffered without forming a complete record or handshake
/// message. Above it the peer is misbehaving and the session fails. (A TLS
/// record is at most 16 KiB plus overhead; rustls's own reader allows 64 KiB.)
pub const MAX_BUFFERED_INPUT: usize = 0x1_0000 + 0x4000;

/// Most TLS output buffered for the socket before the loop stops handing
/// the session plaintext. The rest of a client's output then waits in the
/// instance's send queue, which `max_client_send_buffers` and
/// `max_client_send_size` bound: a TLS client that never reads overflows it
/// and is dropped, as a clear-text one is. Four full records.
pub const MAX_BUFFERED_OUTPUT: usize = 4 * 0x4000;

/// Above this much undelivered plaintext the session stops asking for input
/// (backpressure; see the tests' `wants_read`).
#[cfg(test)]
const PLAINTEXT_HIGH_WATER: usize = 64 * 1024;

/// A fatal error of a [`TlsSession`]. After one, every call returns it again.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TlsError {
    /// The TLS layer failed: a bad handshake, a refused certificate, a record
    /// that does not decrypt, an alert from the client. An alert for the
    /// client may be waiting in [`TlsSession::pending_ciphertext`].
    Tls(rustls::Error),
    /// The client's certificate was accepted by the verifier but its names
    /// cannot be read.
    PeerCertificate(CertNameError),
    /// More than [`MAX_BUFFERED_INPUT`] bytes of incomplete TLS data.
    InputTooLarge {
        /// Bytes buffered.
        buffered: usize,
    },
    /// Plaintext was sent after [`TlsSession::send_close_notify`].
    SendClosed,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::PeerCertificate(e) => e.fmt(f),
            Self::InputTooLarge { buffered } => {
                write!(
                    f,
                    "TLS: {buffered} bytes buffered without a complete record"
                )
            }
            Self::SendClosed => f.write_str("TLS: send after close_notify"),
        }
    }
}

impl error::Error for TlsError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Tls(e) => Some(e),
            Self::PeerCertificate(e) => Some(e),
            Self::InputTooLarge { .. } | Self::SendClosed => None,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Tls(e)
    }
}

/// Why [`TlsSession::new`] failed, with the alert to send the client.
#[derive(Clone, Debug, PartialEq)]
pub struct StartError {
    /// What went wrong.
    pub error: TlsError,
    /// TLS bytes to write to the client before closing (an alert), possibly
    /// empty.
    pub alert: Vec<u8>,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl error::Error for StartError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        Some(&self.error)
    }
}

pub(super) enum State {
    /// The rustls handshake typestate, waiting for input. Boxed: it is
    /// large and lives only during the handshake.
    Handshaking(Box<NeedsInput<ServerSide>>),
    /// The split connection. `send` is `None` after our close_notify,
    /// `receive` after the client's.
    Traffic {
        send: Option<SendTraffic>,
        receive: Option<ReceiveTraffic<ServerSide>>,
    },
    Failed(TlsError),
    /// Only seen if a transition panicked half-way.
    Poisoned,
}

/// One client's TLS connection as a byte pipe, independent of sockets.
/// See the [module docs](super) for the call sequence.
pub struct TlsSession {
    pub(super) state: State,
    pub(super) input: InputBuf,
    pub(super) tls_out: Vec<u8>,
    pub(super) plaintext: Vec<u8>,
    /// Plaintext sent before the handshake completed.
    pub(super) queued: Vec<u8>,
    pub(super) peer_names: Option<PeerNames>,
    pub(super) protocol: Option<ProtocolVersion>,
    pub(super) suite: Option<CipherSuite>,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.is_handshaking())
            .field("buffered_input", &self.input.pending())
            .field("pending_ciphertext", &self.tls_out.len())
            .field("plaintext", &self.plaintext.len())
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// Starts the server side of a handshake. `initial_ciphertext` holds the
    /// bytes that arrived after the STARTTLS message (may be empty); they are
    /// processed at once.
    ///
    /// # Errors
    ///
    /// [`StartError`] if `config` is unusable, or if `initial_ciphertext`
    /// already breaks the handshake (plain text after STARTTLS, say); then
    /// [`StartError::alert`] holds the alert to write before closing.
    pub fn new(config: Arc<ServerConfig>, initial_ciphertext: &[u8]) -> Result<Self, StartError> {
        let start_err = |error: TlsError| StartError {
            error,
            alert: Vec::new(),
        };
        let conn = Connection::<ServerSide, Tcp>::new(config).map_err(|e| start_err(e.into()))?;
        let state = match ServerHandshake::try_from(conn) {
            Ok(ServerHandshake::NeedsInput(hs)) => State::Handshaking(Box::new(hs)),
            Ok(_) => {
                return Err(start_err(TlsError::Tls(rustls::Error::General(
                    "server handshake did not start by waiting for input".into(),
                ))));
            }
            Err(e) => return Err(start_err(e.into())),
        };
        let mut session = Self {
            state,
            input: InputBuf::default(),
            tls_out: Vec::new(),
            plaintext: Vec::new(),
            queued: Vec::new(),
            peer_names: None,
            protocol: None,
            suite: None,
        };
        if !initial_ciphertext.is_empty()
            && let Err(error) = session.feed(initial_ciphertext)
        {
            return Err(StartError {
                error,
                alert: mem::take(&mut session.tls_out),
            });
        }
        Ok(session)
    }

    /// Buffers TLS bytes from the client and runs the handshake, or decrypts
    /// records, as far as the buffered input allows. Decrypted bytes are
    /// appended to [`Self::plaintext`]; TLS bytes to send to
    /// [`Self::pending_ciphertext`].
    ///
    /// # Errors
    ///
    /// A fatal [`TlsError`]: the handshake failed (wrong CA, no client
    /// certificate, not TLS at all...), a record was bad, the client sent an
    /// alert, or too much input is buffered. Send the pending ciphertext (the
    /// alert), then close.
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<(), TlsError> {
        self.check_alive()?;
        self.input.extend(ciphertext);
        self.process()
    }

    /// [`Self::feed`] without new input: processes what is buffered.
    pub(super) fn process(&mut self) -> Result<(), TlsError> {
        let result = self.process_buffered();
        self.input.release_if_empty();
        result?;
        let buffered = self.input.pending();
        if buffered > MAX_BUFFERED_INPUT {
            return Err(self.fail(TlsError::InputTooLarge { buffered }));
        }
        Ok(())
    }

    /// Encrypts `data` for the client. Before the handshake completes the
    /// data is queued and sent as soon as it does.
    ///
    /// # Errors
    ///
    /// [`TlsError::SendClosed`] after [`Self::send_close_notify`], or the
    /// session's fatal error.
    pub fn send_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        let result = match &mut self.state {
            State::Handshaking(_) => {
                self.queued.extend_from_slice(data);
                return Ok(());
            }
            State::Traffic {
                send: Some(send), ..
            } => send.write(data.into(), &mut self.tls_out),
            State::Traffic { send: None, .. } => return Err(TlsError::SendClosed),
            State::Failed(e) => return Err(e.clone()),
            State::Poisoned => return Err(poisoned()),
        };
        result.map_err(|e| self.fail(e.into()))
    }

    /// Queues a close_notify alert, after which nothing more can be sent.
    /// Does nothing during the handshake or if already closed.
    ///
    /// # Errors
    ///
    /// The session's fatal error.
    pub fn send_close_notify(&mut self) -> Result<(), TlsError> {
        match &mut self.state {
            State::Traffic { send, .. } => match send.take() {
                Some(send) => send
                    .close(&mut self.tls_out)
                    .map_err(|e| self.fail(e.into())),
                None => Ok(()),
            },
            State::Handshaking(_) => Ok(()),
            State::Failed(e) => Err(e.clone()),
            State::Poisoned => Err(poisoned()),
        }
    }

    /// TLS bytes to write to the socket.
    #[must_use]
    pub fn pending_ciphertext(&self) -> &[u8] {
        &self.tls_out
    }

    /// Room for more plaintext before the output buffered in the session
    /// (TLS bytes not yet written, plaintext queued during the handshake)
    /// reaches [`MAX_BUFFERED_OUTPUT`].
    #[must_use]
    pub fn output_room(&self) -> usize {
        MAX_BUFFERED_OUTPUT.saturating_sub(self.tls_out.len() + self.queued.len())
    }

    /// Marks the first `n` bytes of [`Self::pending_ciphertext`] as written.
    pub fn consume_ciphertext(&mut self, n: usize) {
        consume(&mut self.tls_out, n);
    }

    /// Decrypted bytes not yet consumed.
    #[must_use]
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// Marks the first `n` bytes of [`Self::plaintext`] as consumed.
    pub fn consume_plaintext(&mut self, n: usize) {
        consume(&mut self.plaintext, n);
    }

    /// Whether the handshake is still running (false after a failure too).
    #[must_use]
    pub fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Handshaking(_))
    }

    /// Whether the client sent close_notify: it will send nothing more.
    #[must_use]
    pub fn peer_closed(&self) -> bool {
        matches!(self.state, State::Traffic { receive: None, .. })
    }

    /// The names in the client's certificate, once the handshake is complete;
    /// `None` without client authentication.
    #[must_use]
    pub fn peer_names(&self) -> Option<&PeerNames> {
        self.peer_names.as_ref()
    }

    /// The negotiated protocol version, once the handshake is complete.
    #[must_use]
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.protocol
    }

    /// The negotiated cipher suite, once the handshake is complete.
    #[must_use]
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.suite
    }

    fn check_alive(&self) -> Result<(), TlsError> {
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::Poisoned => Err(poisoned()),
            _ => Ok(()),
        }
    }

    fn fail(&mut self, e: TlsError) -> TlsError {
        self.state = State::Failed(e.clone());
        e
    }

    fn process_buffered(&mut self) -> Result<(), TlsError> {
        loop {
            match mem::replace(&mut self.state, State::Poisoned) {
                State::Handshaking(hs) => {
                    if !self.drive_handshake(*hs)? {
                        return Ok(());
                    }
                    // Complete: records after the client's Finished may be
                    // buffered already (TLS 1.3 clients send INIT right away).
                }
                State::Traffic {
                    send,
                    receive: Some(receive),
                } => return self.read_records(send, receive),
                state @ State::Traffic { receive: None, .. } => {
                    // The client closed; anything after close_notify is ignored.
                    self.input.discard_all();
                    self.state = state;
                    return Ok(());
                }
                State::Failed(e) => {
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
                State::Poisoned => return Err(poisoned()),
            }
        }
    }

    /// Runs the handshake typestate until it needs more input (`Ok(false)`)
    /// or completes (`Ok(true)`).
    fn drive_handshake(&mut self, hs: NeedsInput<ServerSide>) -> Result<bool, TlsError> {
        let mut step = hs.process(&mut self.input, &mut self.tls_out);
        let mut from_process = true;
        loop {
            let hs = match step {
                Ok(hs) => hs,
                Err(e) => return Err(self.fail(e.into())),
            };
            match hs {
                ServerHandshake::NeedsInput(next) if from_process => {
                    self.state = State::Handshaking(Box::new(next));
                    return Ok(false);
                }
                ServerHandshake::NeedsInput(next) => {
                    // Just after verification: the rest of the client's flight
                    // may already be buffered. Process it before waiting.
                    step = next.process(&mut self.input, &mut self.tls_out);
                    from_process = true;
                }
                ServerHandshake::VerifyClientIdentity(verify) => {
                    step = verify.with_config(&mut self.tls_out);
                    from_process = false;
                }
                ServerHandshake::Complete(split) => {
                    self.on_complete(split)?;
                    return Ok(true);
                }
                _ => {
                    let e = rustls::Error::General("unexpected server handshake state".into());
                    return Err(self.fail(e.into()));
                }
            }
        }
    }

    fn on_complete(&mut self, split: SplitConnection<ServerSide>) -> Result<(), TlsError> {
        let SplitConnection {
            mut send,
            receive,
            outputs,
            side_outputs: _,
        } = split;
        self.protocol = outputs.protocol_version();
        self.suite = outputs.negotiated_cipher_suite().map(|s| s.suite());
        if let Some(peer) = outputs.peer_identity()
            && let Identity::X509(chain) = peer.identity()
        {
            match crate::cert::name::from_cert_der(&chain.end_entity) {
                Ok(names) => self.peer_names = Some(names),
                Err(e) => return Err(self.fail(TlsError::PeerCertificate(e))),
            }
        }
        if !self.queued.is_empty() {
            let queued = mem::take(&mut self.queued);
            if let Err(e) = send.write(queued.as_slice().into(), &mut self.tls_out) {
                return Err(self.fail(e.into()));
            }
        }
        self.state = State::Traffic {
            send: Some(send),
            receive: Some(receive),
        };
        Ok(())
    }

    /// Decrypts every complete record in the input buffer.
    fn read_records(
        &mut self,
        mut send: Option<SendTraffic>,
        mut receive: ReceiveTraffic<ServerSide>,
    ) -> Result<(), TlsError> {
        loop {
            let mut step = match receive.read(&mut self.input) {
                Ok(ReceiveTrafficState::ReadMore(rt)) => {
                    // `read` itself found no complete record: done for now.
                    self.state = State::Traffic {
                        send,
                        receive: Some(rt),
                    };
                    return Ok(());
                }
                Ok(state) => receive_step(state, &mut self.plaintext, &mut self.tls_out, &mut send),
                Err(e) => Err(e),
            };
            loop {
                step = match step {
                    Ok(ReceiveStep::Next(state)) => {
                        receive_step(state, &mut self.plaintext, &mut self.tls_out, &mut send)
                    }
                    Ok(ReceiveStep::ReadMore(rt)) => {
                        // More records may follow in the buffer: read again.
                        receive = rt;
                        break;
                    }
                    Ok(ReceiveStep::Closed) => {
                        self.input.discard_all();
                        self.state = State::Traffic {
                            send,
                            receive: None,
                        };
                        return Ok(());
                    }
                    Err(e) => {
                        // An alert for the client may wait in the send half.
                        if let Some(send) = send.as_mut() {
                            let _ = send.write(OutboundPlain::new_empty(), &mut self.tls_out);
                        }
                        return Err(self.fail(e.into()));
                    }
                };
            }
        }
    }
}

/// What one receive state leads to, free of the input buffer's borrow.
enum ReceiveStep {
    Next(ReceiveTrafficState<'static, ServerSide>),
    ReadMore(ReceiveTraffic<ServerSide>),
    Closed,
}

/// Handles one receive state: delivers plaintext, flushes the send half when
/// receiving produced something to send (a key update, an alert).
fn receive_step(
    state: ReceiveTrafficState<'_, ServerSide>,
    plaintext: &mut Vec<u8>,
    tls_out: &mut Vec<u8>,
    send: &mut Option<SendTraffic>,
) -> Result<ReceiveStep, rustls::Error> {
    Ok(match state {
        ReceiveTrafficState::Available(mut data) => {
            plaintext.extend_from_slice(data.data());
            ReceiveStep::Next(data.into_next())
        }
        ReceiveTrafficState::FlushSender(flush) => {
            if let Some(send) = send.as_mut() {
                send.write(OutboundPlain::new_empty(), tls_out)?;
            }
            ReceiveStep::Next(flush.into_next())
        }
        ReceiveTrafficState::ReadMore(rt) => ReceiveStep::ReadMore(rt),
        ReceiveTrafficState::CloseNotify => ReceiveStep::Closed,
    })
}

fn poisoned() -> TlsError {
    TlsError::Tls(rustls::Error::General(
        "TLS session poisoned by a panic".into(),
    ))
}

/// Drops the first `n` bytes of `buf`, and its allocation once it is empty
/// and larger than [`KEEP_CAPACITY`].
fn consume(buf: &mut Vec<u8>, n: usize) {
    if n >= buf.len() {
        buf.clear();
        if buf.capacity() > KEEP_CAPACITY {
            *buf = Vec::new();
        }
    } else {
        buf.drain(..n);
    }
}

/// What only the tests use: driving a session from a blocking reader and
/// writer, and inspecting it. The event loop does not need these.
#[cfg(test)]
impl TlsSession {
    /// Reads up to 4 KiB of TLS bytes from `rd` into the session's buffer,
    /// without processing them; call `process` next. `Ok(0)` means
    /// end of file. I/O errors (`WouldBlock` included) are returned as they are.
    ///
    /// # Errors
    ///
    /// The error of `rd.read`.
    pub(crate) fn read_tls_from(&mut self, rd: &mut dyn std::io::Read) -> std::io::Result<usize> {
        self.input.read_from(rd)
    }

    /// Writes [`Self::pending_ciphertext`] to `wr` once (one `write` call) and
    /// consumes what was written.
    ///
    /// # Errors
    ///
    /// The error of `wr.write`, `WouldBlock` included.
    pub(crate) fn write_tls_to(&mut self, wr: &mut dyn std::io::Write) -> std::io::Result<usize> {
        if self.tls_out.is_empty() {
            return Ok(0);
        }
        let n = wr.write(&self.tls_out)?;
        self.consume_ciphertext(n);
        Ok(n)
    }

    /// Whether TLS bytes wait to be written.
    #[must_use]
    pub(crate) fn wants_write(&self) -> bool {
        !self.tls_out.is_empty()
    }

    /// Whether reading more from the socket is useful: the session is alive,
    /// the client has not closed, and the undelivered plaintext is below the
    /// high-water mark (backpressure).
    #[must_use]
    pub(crate) fn wants_read(&self) -> bool {
        let open = match &self.state {
            State::Handshaking(_) => true,
            State::Traffic { receive, .. } => receive.is_some(),
            State::Failed(_) | State::Poisoned => false,
        };
        open && self.plaintext.len() < PLAINTEXT_HIGH_WATER
    }

    /// Moves all decrypted bytes to the end of `out`.
    pub(crate) fn take_plaintext(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.plaintext);
        consume(&mut self.plaintext, usize::MAX);
    }

    /// Copies decrypted bytes into `buf` and consumes them; returns the count.
    pub(crate) fn read_plaintext(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plaintext.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.plaintext.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume_plaintext(n);
        n
    }

    /// The session's fatal error, if it had one.
    #[must_use]
    pub(crate) fn error(&self) -> Option<&TlsError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }
}
