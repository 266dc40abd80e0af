//! TLS for client connections after STARTTLS: a rustls server configuration
//! built from the [certificate store](crate::certstore), and [`TlsSession`],
//! a sans-IO byte pipe that the event loop drives.
//!
//! `TlsSession` never touches a socket or a clock. The loop reads TLS bytes from
//! the socket into the session, takes decrypted plaintext out, hands plaintext
//! in, and writes the TLS bytes the session produces back to the socket:
//!
//! ```text
//!   socket ──read_tls_from / feed──▶ ┌────────────┐ ──plaintext / take_plaintext──▶ core
//!                                    │ TlsSession │
//!   socket ◀──pending_ciphertext───  └────────────┘ ◀──────send_plaintext────────── core
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
//! 2. On readable: loop
//!    `match session.read_tls_from(&mut socket)`:
//!    `Ok(0)` is EOF (close); `Ok(_)` → call [`TlsSession::process`] at once
//!    (it runs the handshake, or decrypts records, as far as the buffered
//!    bytes allow); `WouldBlock` → stop; `Interrupted` → retry. (Or read into
//!    your own buffer and call [`TlsSession::feed`], which does both.)
//!    After each `process`, move [`TlsSession::plaintext`] into the receive
//!    buffer of the core and [`TlsSession::consume_plaintext`] what was taken;
//!    stop reading the socket while [`TlsSession::wants_read`] is false.
//! 3. Whatever the core answers goes in through [`TlsSession::send_plaintext`]
//!    (queued if the handshake is still running).
//! 4. Then, and after every call above, write: while
//!    [`TlsSession::pending_ciphertext`] is not empty, `socket.write` it and
//!    [`TlsSession::consume_ciphertext`] the count written; register for
//!    writable while [`TlsSession::wants_write`] is true.
//! 5. An error from `feed`/`process`/`send_plaintext` is fatal: write out
//!    `pending_ciphertext` (it may hold the alert telling the client why), best
//!    effort, then close the socket. To close cleanly, call
//!    [`TlsSession::send_close_notify`] and flush.
//! 6. After the handshake, [`TlsSession::peer_names`] gives the names of the
//!    client certificate for the cluster-name check
//!    ([`crate::certname::cluster_name_matches`]) at INIT.
//!
//! `process` always runs the handshake as far as the buffered input allows,
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
//! is bounded by [`MAX_BUFFERED_INPUT`].

use std::io;
use std::mem;
use std::path::PathBuf;
use std::sync::Arc;
use std::{error, fmt};

use rustls::crypto::cipher::OutboundPlain;
use rustls::crypto::{CipherSuite, Identity};
use rustls::enums::ProtocolVersion;
use rustls::server::{
    InvalidSniPolicy, NoServerSessionStorage, ServerHandshake, Tls13Tickets, VerifierBuilderError,
    WebPkiClientVerifier,
};
use rustls::split::{ReceiveTraffic, ReceiveTrafficState, SendTraffic, SplitConnection};
use rustls::{
    Connection, NeedsInput, RootCertStore, ServerConfig, ServerSide, Tcp, TlsInputBuffer,
};

use crate::certname::{CertNameError, PeerNames};
use crate::certstore::{CA_CERT_FILE, CertStore, CertStoreError, SERVER_CERT_FILE};

#[cfg(test)]
mod testkit;

/// Most TLS bytes buffered without forming a complete record or handshake
/// message. Above it the peer is misbehaving and the session fails. (A TLS
/// record is at most 16 KiB plus overhead; rustls's own reader allows 64 KiB.)
pub const MAX_BUFFERED_INPUT: usize = 0x1_0000 + 0x4000;

/// Bytes read from the socket per [`TlsSession::read_tls_from`] call.
const READ_CHUNK: usize = 4096;

/// Buffers that drain completely are freed when they hold more than this.
const KEEP_CAPACITY: usize = 512;

/// [`TlsSession::wants_read`] turns false above this much undelivered plaintext.
const PLAINTEXT_HIGH_WATER: usize = 64 * 1024;

/// Why the server configuration cannot be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The certificate store cannot provide the identity or the CA.
    Store(CertStoreError),
    /// A CA certificate cannot be a trust anchor.
    CaCertificate {
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client-certificate verifier cannot be built.
    ClientVerifier(VerifierBuilderError),
    /// The server certificate and key do not make an identity (e.g. they do
    /// not match).
    ServerIdentity {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::CaCertificate { path, source } => {
                write!(f, "{}: unusable CA certificate: {source}", path.display())
            }
            Self::ClientVerifier(e) => write!(f, "client certificate verifier: {e}"),
            Self::ServerIdentity { path, source } => {
                write!(f, "{}: unusable server identity: {source}", path.display())
            }
        }
    }
}

impl error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::CaCertificate { source, .. } | Self::ServerIdentity { source, .. } => {
                Some(source)
            }
            Self::ClientVerifier(e) => Some(e),
        }
    }
}

impl From<CertStoreError> for TlsConfigError {
    fn from(e: CertStoreError) -> Self {
        Self::Store(e)
    }
}

/// Builds the server configuration for all TLS clients.
///
/// - *ring* provider (`rustls_ring::DEFAULT_PROVIDER`): TLS 1.2 and 1.3 with
///   its default suites and key-exchange groups.
/// - An invalid SNI is ignored ([`InvalidSniPolicy::IgnoreAll`]): the NSS client
///   sends "Qnetd Server", which is not a DNS name.
/// - With `client_cert_required` (`-c on` of the reference), a certificate
///   chaining to the store's CA is requested and required; the
///   CertificateRequest names the CA. Otherwise none is requested.
/// - No session resumption.
///
/// Build it once and share it: client certificates signed later by
/// `certutil -s` are accepted without rebuilding, because only the CA is
/// loaded here.
///
/// # Errors
///
/// [`TlsConfigError`] if the store has no usable server identity or CA.
pub fn server_config(
    store: &CertStore,
    client_cert_required: bool,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls_ring::DEFAULT_PROVIDER);
    let identity = store.load_server_identity()?;
    let builder = ServerConfig::builder(Arc::clone(&provider));
    let builder = if client_cert_required {
        let mut roots = RootCertStore::empty();
        for ca in store.load_ca_certs()? {
            roots
                .add(ca)
                .map_err(|source| TlsConfigError::CaCertificate {
                    path: store.dir().join(CA_CERT_FILE),
                    source,
                })?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots), &provider)
            .build()
            .map_err(TlsConfigError::ClientVerifier)?;
        builder.with_client_cert_verifier(crate::cert_policy::strict(
            Arc::new(verifier),
            store.load_ca_certs()?,
        ))
    } else {
        builder.with_no_client_auth()
    };
    let cert_path = store.dir().join(SERVER_CERT_FILE);
    let identity_err = |source: rustls::Error| TlsConfigError::ServerIdentity {
        path: cert_path.clone(),
        source,
    };
    let chain =
        Identity::from_cert_chain(identity.cert_chain).map_err(|e| identity_err(e.into()))?;
    let mut config = builder
        .with_single_cert(Arc::new(chain), identity.key)
        .map_err(identity_err)?;
    config.invalid_sni_policy = InvalidSniPolicy::IgnoreAll;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = Tls13Tickets { default: 0, max: 0 };
    Ok(Arc::new(config))
}

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

enum State {
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
/// See the [module docs](self) for the call sequence.
pub struct TlsSession {
    state: State,
    input: InputBuf,
    tls_out: Vec<u8>,
    plaintext: Vec<u8>,
    /// Plaintext sent before the handshake completed.
    queued: Vec<u8>,
    peer_names: Option<PeerNames>,
    protocol: Option<ProtocolVersion>,
    suite: Option<CipherSuite>,
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

    /// Buffers TLS bytes from the client and [processes](Self::process) them.
    ///
    /// # Errors
    ///
    /// A fatal [`TlsError`]; see [`Self::process`].
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<(), TlsError> {
        self.check_alive()?;
        self.input.extend(ciphertext);
        self.process()
    }

    /// Reads up to 4 KiB of TLS bytes from `rd` into the session's buffer,
    /// without processing them; call [`Self::process`] next. `Ok(0)` means
    /// end of file. I/O errors (`WouldBlock` included) are returned as they are.
    ///
    /// # Errors
    ///
    /// The error of `rd.read`.
    pub fn read_tls_from(&mut self, rd: &mut dyn io::Read) -> io::Result<usize> {
        self.input.read_from(rd)
    }

    /// Runs the handshake, or decrypts records, as far as the buffered input
    /// allows. Decrypted bytes are appended to [`Self::plaintext`]; TLS bytes
    /// to send to [`Self::pending_ciphertext`].
    ///
    /// # Errors
    ///
    /// A fatal [`TlsError`]: the handshake failed (wrong CA, no client
    /// certificate, not TLS at all...), a record was bad, the client sent an
    /// alert, or too much input is buffered. Send the pending ciphertext (the
    /// alert), then close.
    pub fn process(&mut self) -> Result<(), TlsError> {
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

    /// Marks the first `n` bytes of [`Self::pending_ciphertext`] as written.
    pub fn consume_ciphertext(&mut self, n: usize) {
        consume(&mut self.tls_out, n);
    }

    /// Writes [`Self::pending_ciphertext`] to `wr` once (one `write` call) and
    /// consumes what was written.
    ///
    /// # Errors
    ///
    /// The error of `wr.write`, `WouldBlock` included.
    pub fn write_tls_to(&mut self, wr: &mut dyn io::Write) -> io::Result<usize> {
        if self.tls_out.is_empty() {
            return Ok(0);
        }
        let n = wr.write(&self.tls_out)?;
        self.consume_ciphertext(n);
        Ok(n)
    }

    /// Whether TLS bytes wait to be written.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        !self.tls_out.is_empty()
    }

    /// Whether reading more from the socket is useful: the session is alive,
    /// the client has not closed, and the undelivered plaintext is below the
    /// high-water mark (backpressure).
    #[must_use]
    pub fn wants_read(&self) -> bool {
        let open = match &self.state {
            State::Handshaking(_) => true,
            State::Traffic { receive, .. } => receive.is_some(),
            State::Failed(_) | State::Poisoned => false,
        };
        open && self.plaintext.len() < PLAINTEXT_HIGH_WATER
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

    /// Moves all decrypted bytes to the end of `out`.
    pub fn take_plaintext(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.plaintext);
        consume(&mut self.plaintext, usize::MAX);
    }

    /// Copies decrypted bytes into `buf` and consumes them; returns the count.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plaintext.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.plaintext.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume_plaintext(n);
        n
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

    /// The session's fatal error, if it had one.
    #[must_use]
    pub fn error(&self) -> Option<&TlsError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
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
            match PeerNames::from_cert_der(&chain.end_entity) {
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

/// The receive buffer handed to rustls: bytes from the socket, with a
/// consumed prefix that is dropped lazily.
#[derive(Debug, Default)]
struct InputBuf {
    buf: Vec<u8>,
    /// Bytes at the front already consumed by rustls.
    start: usize,
    eof: bool,
    close_notify: bool,
}

impl InputBuf {
    fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Moves the unconsumed bytes to the front. rustls only requires that the
    /// content of `slice_mut()` is preserved, not its address.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
        }
    }

    fn extend(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    fn read_from(&mut self, rd: &mut dyn io::Read) -> io::Result<usize> {
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let result = match self.buf.get_mut(old..) {
            Some(spare) => rd.read(spare),
            None => Ok(0),
        };
        let n = result.as_ref().map_or(0, |&n| n.min(READ_CHUNK));
        self.buf.truncate(old + n);
        if matches!(result, Ok(0)) {
            self.eof = true;
        }
        self.release_if_empty();
        result
    }

    fn discard_all(&mut self) {
        self.start = self.buf.len();
        self.release_if_empty();
    }

    fn release_if_empty(&mut self) {
        if self.pending() == 0 {
            self.start = 0;
            self.buf.clear();
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
    }
}

impl TlsInputBuffer for InputBuf {
    fn slice_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or_default()
    }

    fn discard(&mut self, num_bytes: usize) {
        self.start = self.start.saturating_add(num_bytes).min(self.buf.len());
    }

    fn received_close_notify(&mut self) {
        self.close_notify = true;
    }

    fn has_seen_eof(&self) -> bool {
        self.eof
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::testkit::{Client, client_config, make_request};
    use super::*;
    use crate::certname::cluster_name_matches;

    const VERSIONS: [(&str, CryptoProvider, ProtocolVersion); 2] = [
        (
            "TLS 1.3",
            rustls_ring::DEFAULT_TLS13_PROVIDER,
            ProtocolVersion::TLSv1_3,
        ),
        (
            "TLS 1.2",
            rustls_ring::DEFAULT_TLS12_PROVIDER,
            ProtocolVersion::TLSv1_2,
        ),
    ];

    type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

    struct Fixture {
        _tmp: tempfile::TempDir,
        store: CertStore,
        ca: CertificateDer<'static>,
        client: ClientIdentity,
    }

    fn clone_identity(id: &ClientIdentity) -> ClientIdentity {
        (id.0.clone(), id.1.clone_key())
    }

    /// A new store and a client certificate for `CN=cluster` signed by it.
    fn fixture(cluster: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let store = CertStore::open(tmp.path().join("nssdb"));
        store.init().unwrap();
        let (csr, key) = make_request(cluster);
        let cert = fs::read(store.sign_request(&csr, cluster).unwrap()).unwrap();
        let ca = store.load_ca_certs().unwrap().remove(0);
        Fixture {
            _tmp: tmp,
            store,
            ca,
            client: (vec![CertificateDer::from(cert)], key),
        }
    }

    #[derive(Debug)]
    enum PumpError {
        Server(TlsError),
        #[allow(dead_code, reason = "read through Debug in failure messages")]
        Client(rustls::Error),
    }

    /// Moves bytes both ways until neither side has anything to send. On a
    /// server error its pending alert is still delivered to the client.
    fn pump(server: &mut TlsSession, client: &mut Client) -> Result<(), PumpError> {
        for _ in 0..50 {
            let to_server = client.take_output();
            let server_result = match to_server.is_empty() {
                true => Ok(()),
                false => server.feed(&to_server),
            };
            let to_client = server.pending_ciphertext().to_vec();
            server.consume_ciphertext(to_client.len());
            let client_result = match to_client.is_empty() {
                true => Ok(()),
                false => client.receive(&to_client),
            };
            server_result.map_err(PumpError::Server)?;
            client_result.map_err(PumpError::Client)?;
            if to_server.is_empty() && to_client.is_empty() {
                return Ok(());
            }
        }
        panic!("pump did not settle");
    }

    fn connect(
        fx: &Fixture,
        provider: CryptoProvider,
        required: bool,
        with_cert: bool,
    ) -> (TlsSession, Client, Result<(), PumpError>) {
        let cfg = server_config(&fx.store, required).unwrap();
        let client_id = with_cert.then(|| clone_identity(&fx.client));
        let mut client = Client::new(&client_config(provider, &fx.ca, client_id));
        let mut server = TlsSession::new(cfg, &[]).unwrap();
        let result = pump(&mut server, &mut client);
        (server, client, result)
    }

    #[test]
    fn session_size() {
        eprintln!(
            "TlsSession {} B, State {} B, ReceiveTraffic {} B, NeedsInput {} B",
            size_of::<TlsSession>(),
            size_of::<State>(),
            size_of::<ReceiveTraffic<ServerSide>>(),
            size_of::<NeedsInput<ServerSide>>()
        );
        assert!(
            size_of::<TlsSession>() <= 512,
            "{}",
            size_of::<TlsSession>()
        );
    }

    #[test]
    fn handshake_and_traffic_both_versions() {
        let fx = fixture("testcluster");
        for (name, provider, version) in VERSIONS {
            let (mut server, mut client, result) = connect(&fx, provider, true, true);
            result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(
                !server.is_handshaking() && !client.is_handshaking(),
                "{name}"
            );
            assert_eq!(server.protocol_version(), Some(version), "{name}");
            assert!(server.cipher_suite().is_some());
            let names = server.peer_names().expect("client certificate names");
            assert_eq!(names.common_name.as_deref(), Some("testcluster"), "{name}");
            assert!(cluster_name_matches(b"TestCluster", names));

            // Client to server, including messages larger than one record.
            let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
            client.send(b"INIT").unwrap();
            client.send(&big).unwrap();
            pump(&mut server, &mut client).unwrap();
            let mut got = Vec::new();
            server.take_plaintext(&mut got);
            assert_eq!(&got[..4], b"INIT", "{name}");
            assert_eq!(&got[4..], &big[..], "{name}");
            assert!(server.plaintext().is_empty());

            // Server to client.
            server.send_plaintext(b"INIT_REPLY").unwrap();
            server.send_plaintext(&big).unwrap();
            pump(&mut server, &mut client).unwrap();
            assert_eq!(&client.plaintext[..10], b"INIT_REPLY");
            assert_eq!(&client.plaintext[10..], &big[..]);

            // Idle: every buffer of the session is released.
            assert_eq!(server.input.buf.capacity(), 0, "{name}");
            assert_eq!(server.tls_out.capacity(), 0, "{name}");
            assert_eq!(server.plaintext.capacity(), 0, "{name}");
        }
    }

    #[test]
    fn bytes_after_starttls_are_not_lost_and_chunking_does_not_matter() {
        let fx = fixture("testcluster");
        for (name, provider, _) in VERSIONS {
            let cfg = server_config(&fx.store, true).unwrap();
            let mut client = Client::new(&client_config(
                provider,
                &fx.ca,
                Some(clone_identity(&fx.client)),
            ));
            // The ClientHello arrived in the same read as STARTTLS.
            let hello = client.take_output();
            let mut server = TlsSession::new(cfg, &hello).unwrap();
            assert!(server.wants_write(), "{name}: ServerHello expected");
            // From here on, one byte at a time in both directions.
            for _ in 0..20_000 {
                let to_client = server.pending_ciphertext().to_vec();
                server.consume_ciphertext(to_client.len());
                for b in &to_client {
                    client.receive(std::slice::from_ref(b)).unwrap();
                }
                let to_server = client.take_output();
                for b in &to_server {
                    server.feed(std::slice::from_ref(b)).unwrap();
                }
                if to_client.is_empty() && to_server.is_empty() {
                    break;
                }
            }
            assert!(!server.is_handshaking(), "{name}");
            client.send(b"after").unwrap();
            for b in client.take_output() {
                server.feed(&[b]).unwrap();
            }
            assert_eq!(server.plaintext(), b"after", "{name}");
        }
    }

    #[test]
    fn socket_style_io_with_read_tls_from_and_write_tls_to() {
        let fx = fixture("testcluster");
        let cfg = server_config(&fx.store, true).unwrap();
        let mut client = Client::new(&client_config(
            rustls_ring::DEFAULT_PROVIDER,
            &fx.ca,
            Some(clone_identity(&fx.client)),
        ));
        let mut server = TlsSession::new(cfg, &[]).unwrap();
        for _ in 0..20 {
            // Readable: drain the "socket" until WouldBlock, processing as we go.
            loop {
                match server.read_tls_from(&mut client) {
                    Ok(0) => panic!("unexpected EOF"),
                    Ok(_) => server.process().unwrap(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls_to(&mut wire).unwrap();
            }
            client.receive(&wire).unwrap();
        }
        assert!(!server.is_handshaking());
        assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        client.send(b"ping").unwrap();
        while server.read_tls_from(&mut client).is_ok() {
            server.process().unwrap();
        }
        let mut buf = [0u8; 3];
        assert_eq!(server.read_plaintext(&mut buf), 3);
        assert_eq!(&buf, b"pin");
        assert_eq!(server.plaintext(), b"g");
        assert!(server.wants_read());
    }

    fn assert_alert_pending(server: &TlsSession, name: &str) {
        let out = server.pending_ciphertext();
        assert!(!out.is_empty(), "{name}: no alert queued");
    }

    #[test]
    fn client_certificate_from_another_ca_is_refused() {
        let fx = fixture("testcluster");
        let other = fixture("testcluster");
        for (name, provider, _) in VERSIONS {
            let cfg = server_config(&fx.store, true).unwrap();
            // Trusts our server, but presents a certificate of another CA.
            let mut client = Client::new(&client_config(
                provider,
                &fx.ca,
                Some(clone_identity(&other.client)),
            ));
            let mut server = TlsSession::new(cfg, &[]).unwrap();
            let err = loop {
                let to_server = client.take_output();
                assert!(!to_server.is_empty(), "{name}: stalled");
                match server.feed(&to_server) {
                    Ok(()) => {
                        let out = server.pending_ciphertext().to_vec();
                        server.consume_ciphertext(out.len());
                        client.receive(&out).unwrap();
                    }
                    Err(e) => break e,
                }
            };
            // Same issuer name, other key: the signature does not verify.
            assert!(
                matches!(
                    err,
                    TlsError::Tls(rustls::Error::InvalidCertificate(
                        rustls::error::CertificateError::BadSignature
                            | rustls::error::CertificateError::UnknownIssuer
                    ))
                ),
                "{name}: {err:?}"
            );
            assert_alert_pending(&server, name);
            assert_eq!(server.error(), Some(&err));
            assert_eq!(
                server.feed(b"more"),
                Err(err.clone()),
                "{name}: stays failed"
            );
            assert!(!server.wants_read());
            // The client learns why.
            let alert = server.pending_ciphertext().to_vec();
            let client_err = client.receive(&alert).unwrap_err();
            assert!(
                matches!(client_err, rustls::Error::AlertReceived(_)),
                "{name}: {client_err:?}"
            );
        }
    }

    #[test]
    fn missing_client_certificate_is_refused_when_required() {
        let fx = fixture("testcluster");
        for (name, provider, _) in VERSIONS {
            let (server, _client, result) = connect(&fx, provider, true, false);
            let Err(PumpError::Server(err)) = result else {
                panic!("{name}: {result:?}");
            };
            assert!(
                matches!(
                    err,
                    TlsError::Tls(rustls::Error::PeerMisbehaved(
                        rustls::error::PeerMisbehaved::NoCertificatesPresented
                    ))
                ),
                "{name}: {err:?}"
            );
            assert!(server.error().is_some());
        }
    }

    #[test]
    fn no_client_auth_when_not_required() {
        let fx = fixture("testcluster");
        for (name, provider, _) in VERSIONS {
            // Even a client that has a certificate is not asked for it.
            let (server, _client, result) = connect(&fx, provider, false, true);
            result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(server.peer_names().is_none(), "{name}");
        }
    }

    #[test]
    fn plain_bytes_after_starttls_get_an_alert() {
        let fx = fixture("testcluster");
        let cfg = server_config(&fx.store, true).unwrap();
        // A qnetd INIT header where a ClientHello should be.
        let init = [0, 3, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 3];
        let start = TlsSession::new(Arc::clone(&cfg), &init).unwrap_err();
        assert!(matches!(start.error, TlsError::Tls(_)), "{start:?}");
        assert_eq!(start.alert.first(), Some(&0x15), "alert returned by new");
        let mut server = TlsSession::new(cfg, &[]).unwrap();
        let err = server.feed(&init).unwrap_err();
        assert!(matches!(err, TlsError::Tls(_)), "{err:?}");
        let alert = server.pending_ciphertext();
        // One alert record: type 21, length 2, level fatal (rustls says
        // decode_error, `15 03 03 00 02 02 32`; NSS said unexpected_message).
        assert_eq!(alert.first(), Some(&0x15), "{alert:02x?}");
        assert_eq!(alert.get(3..6), Some(&[0u8, 2, 2][..]), "{alert:02x?}");
    }

    /// Replaces the SNI of a ClientHello, keeping its length.
    fn patch_sni(hello: &mut [u8], from: &[u8], to: &[u8]) {
        let pos = hello
            .windows(from.len())
            .position(|w| w == from)
            .expect("SNI in ClientHello");
        hello[pos..pos + to.len()].copy_from_slice(to);
    }

    #[test]
    fn sni_qnetd_server_from_nss_is_ignored() {
        let fx = fixture("testcluster");
        let cfg = server_config(&fx.store, true).unwrap();
        let mut client = Client::new(&client_config(
            rustls_ring::DEFAULT_PROVIDER,
            &fx.ca,
            Some(clone_identity(&fx.client)),
        ));
        let mut hello = client.take_output();
        patch_sni(&mut hello, testkit::SERVER_NAME.as_bytes(), b"Qnetd Server");

        let server = TlsSession::new(Arc::clone(&cfg), &hello).unwrap();
        assert_eq!(
            server.pending_ciphertext().first(),
            Some(&0x16),
            "ServerHello expected"
        );

        // Control: rustls's default policy refuses the same ClientHello.
        let mut strict = (*cfg).clone();
        strict.invalid_sni_policy = InvalidSniPolicy::default();
        let err = TlsSession::new(Arc::new(strict), &hello).unwrap_err();
        assert!(
            matches!(err.error, TlsError::Tls(rustls::Error::PeerMisbehaved(_))),
            "{err:?}"
        );
        assert!(!err.alert.is_empty());
    }

    #[test]
    fn certificate_request_names_the_ca() {
        let fx = fixture("testcluster");
        let cfg = server_config(&fx.store, true).unwrap();
        // TLS 1.2: the CertificateRequest travels in clear.
        let mut client = Client::new(&client_config(
            rustls_ring::DEFAULT_TLS12_PROVIDER,
            &fx.ca,
            Some(clone_identity(&fx.client)),
        ));
        let server = TlsSession::new(cfg, &client.take_output()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&fx.ca).unwrap();
        let dn = ca.subject().as_raw();
        assert!(
            server
                .pending_ciphertext()
                .windows(dn.len())
                .any(|w| w == dn),
            "CA name not in the server's flight"
        );
    }

    #[test]
    fn close_notify_both_ways() {
        let fx = fixture("testcluster");
        let (mut server, mut client, result) =
            connect(&fx, rustls_ring::DEFAULT_PROVIDER, true, true);
        result.unwrap();

        // The client's last message and close_notify; anything after is ignored.
        client.send(b"last").unwrap();
        client.close().unwrap();
        server.feed(&client.take_output()).unwrap();
        assert_eq!(server.plaintext(), b"last");
        assert!(server.peer_closed());
        assert!(!server.wants_read());
        server.feed(b"ignored after close_notify").unwrap();
        assert_eq!(server.plaintext(), b"last");

        // The server can still answer, then closes its side.
        server.send_plaintext(b"bye").unwrap();
        server.send_close_notify().unwrap();
        server.send_close_notify().unwrap();
        assert_eq!(server.send_plaintext(b"x"), Err(TlsError::SendClosed));
        let out = server.pending_ciphertext().to_vec();
        server.consume_ciphertext(out.len());
        assert!(!server.wants_write());
        client.receive(&out).unwrap();
        assert_eq!(client.plaintext, b"bye");
        assert!(client.peer_closed());
    }

    #[test]
    fn real_node_request_and_key_work_end_to_end() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/reference");
        let node_key =
            PrivateKeyDer::from_pem_slice(&fs::read(dir.join("qdevice-net-node.key")).unwrap())
                .unwrap();
        let csr = fs::read(dir.join("qdevice-net-node.crq")).unwrap();

        // Our store signs the RSA request of corosync-qdevice-net-certutil.
        let fx = fixture("unused");
        let ours = fs::read(fx.store.sign_request(&csr, "testcluster").unwrap()).unwrap();

        // A store migrated from the reference (RSA CA, RSA server key), and the
        // certificate the reference signed.
        let tmp = tempfile::tempdir().unwrap();
        let migrated = CertStore::open(tmp.path());
        for name in [
            CA_CERT_FILE,
            crate::certstore::CA_KEY_FILE,
            SERVER_CERT_FILE,
            crate::certstore::SERVER_KEY_FILE,
        ] {
            fs::copy(dir.join(name), tmp.path().join(name)).unwrap();
        }
        let theirs = fs::read(dir.join("cluster-testcluster.crt")).unwrap();
        let their_ca = migrated.load_ca_certs().unwrap().remove(0);

        let cases = [
            ("our store", &fx.store, &fx.ca, ours),
            ("migrated store", &migrated, &their_ca, theirs),
        ];
        for (store_name, store, ca, cert) in cases {
            for (name, provider, version) in VERSIONS {
                let cfg = server_config(store, true).unwrap();
                let id = (
                    vec![CertificateDer::from(cert.clone())],
                    node_key.clone_key(),
                );
                let mut client = Client::new(&client_config(provider, ca, Some(id)));
                let mut server = TlsSession::new(cfg, &[]).unwrap();
                pump(&mut server, &mut client)
                    .unwrap_or_else(|e| panic!("{store_name} {name}: {e:?}"));
                assert_eq!(server.protocol_version(), Some(version));
                let names = server.peer_names().unwrap();
                assert!(cluster_name_matches(b"testcluster", names), "{store_name}");
            }
        }
    }
}
