//! Pairing windows and their tokens: who may have certificates signed, for
//! which cluster, how many, until when.
//!
//! A pairing [`Token`] is `ID.SECRET`: [`ID_LEN`] lowercase hex digits of
//! public id (safe to log, names the window) and [`SECRET_LEN`] lowercase hex
//! digits of secret (128 bits). Both are URL- and shell-safe by construction;
//! [`Token::parse`] accepts nothing else. The caller supplies the randomness
//! ([`Token::from_random`]); [`Token::generate`] is the thin constructor over
//! the system generator.
//!
//! A [`PairingWindow`] keeps only the id and the SHA-256 of the secret, and
//! compares a presented secret's digest in constant time. It is:
//! * bound to one cluster name, given at [`PairingWindow::open`] or fixed by
//!   the first [`Authorized::bind_cluster`];
//! * bound to at most N certificates: `--nodes N`, or the node count of the
//!   cluster at the first bind ([`MAX_NODES`] at most);
//! * valid for a lifetime ([`DEFAULT_TTL_MS`], 30 minutes, by default);
//! * closed for good after [`MAX_FAILED_ATTEMPTS`] presentations of its id
//!   with a wrong secret (presentations of another id are not counted: they
//!   cannot be guesses at this window's secret).
//!
//! [`PairingWindow::end`] says whether and why a window is done (complete,
//! expired, locked out, closed), so the caller can report it once.
//!
//! The name-collision rule ([`check_name_collision`]) is a pure decision: a
//! cluster name that already has live certificates is refused unless the
//! window was opened with `--replace`. The caller answers "does this name have
//! live certificates" with a closure over its certificate index.
//!
//! Time is an input ([`Timestamp`]); nothing here reads a clock, does I/O or
//! logs. Every operation that needs the secret goes through
//! [`PairingWindow::authenticate`], which returns the [`Authorized`] handle
//! the other operations hang off, so an unauthenticated caller cannot bind a
//! name or count a certificate.

use core::fmt;

use ring::digest;

use crate::core::time::Timestamp;

/// Hex digits of the public token id.
pub const ID_LEN: usize = 8;
/// Hex digits of the token secret (128 bits).
pub const SECRET_LEN: usize = 32;
/// Random bytes a token is made from: [`ID_LEN`] / 2 + [`SECRET_LEN`] / 2.
pub const RANDOM_LEN: usize = (ID_LEN + SECRET_LEN) / 2;
/// Lifetime of a window when none is given: 30 minutes.
pub const DEFAULT_TTL_MS: u64 = 30 * 60 * 1000;
/// Wrong secrets for a window's id before the window closes.
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// Upper bound on the certificates of one window (and on `--nodes`).
pub const MAX_NODES: u32 = 64;
/// Longest cluster name a window binds to.
pub const MAX_CLUSTER_NAME_LEN: usize = 64;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The public id of a token: [`ID_LEN`] lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId([u8; ID_LEN]);

impl TokenId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ever built from HEX digits.
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.as_str())
    }
}

/// A full token, `ID.SECRET`. Only the printed node command carries it;
/// `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    id: TokenId,
    secret: [u8; SECRET_LEN],
}

/// Why a token string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenParseError {
    /// Not `ID.SECRET` with exactly one dot and the right lengths.
    Shape,
    /// A character other than `0-9a-f`.
    Character,
}

impl fmt::Display for TokenParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "a pairing token is ID.SECRET (8 and 32 hex digits)",
            Self::Character => "a pairing token has only the characters 0-9 a-f and one dot",
        })
    }
}

impl std::error::Error for TokenParseError {}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

impl Token {
    /// The token made from `random` (which must come from a CSPRNG).
    #[must_use]
    pub fn from_random(random: &[u8; RANDOM_LEN]) -> Self {
        let (id_bytes, secret_bytes) = random.split_at(ID_LEN / 2);
        let mut id = [0u8; ID_LEN];
        let mut secret = [0u8; SECRET_LEN];
        hex_into(id_bytes, &mut id);
        hex_into(secret_bytes, &mut secret);
        Self {
            id: TokenId(id),
            secret,
        }
    }

    /// A new token from the system's random generator.
    ///
    /// # Errors
    ///
    /// When the system generator fails.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let random: [u8; RANDOM_LEN] =
            ring::rand::generate(&ring::rand::SystemRandom::new())?.expose();
        Ok(Self::from_random(&random))
    }

    /// Parses `ID.SECRET`. Anything but exactly [`ID_LEN`] hex digits, one
    /// dot and [`SECRET_LEN`] hex digits (lowercase) is refused.
    ///
    /// # Errors
    ///
    /// [`TokenParseError`] naming the first problem.
    pub fn parse(s: &str) -> Result<Self, TokenParseError> {
        let b = s.as_bytes();
        if b.len() != ID_LEN + 1 + SECRET_LEN || b[ID_LEN] != b'.' {
            return Err(TokenParseError::Shape);
        }
        let (id, secret) = (&b[..ID_LEN], &b[ID_LEN + 1..]);
        if !id.iter().chain(secret).all(|c| HEX.contains(c)) {
            return Err(TokenParseError::Character);
        }
        let mut token = Self {
            id: TokenId([0; ID_LEN]),
            secret: [0; SECRET_LEN],
        };
        token.id.0.copy_from_slice(id);
        token.secret.copy_from_slice(secret);
        Ok(token)
    }

    /// The public id.
    #[must_use]
    pub fn id(&self) -> TokenId {
        self.id
    }

    fn secret_digest(&self) -> [u8; 32] {
        sha256(&self.secret)
    }
}

impl fmt::Display for Token {
    /// The full `ID.SECRET`: use only where the secret must appear (the
    /// printed node command).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = core::str::from_utf8(&self.secret).unwrap_or("");
        write!(f, "{}.{secret}", self.id)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}.<secret>)", self.id)
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// `a == b` in time independent of where they differ.
#[must_use]
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Whether `name` may be the cluster name of a window: 1 to
/// [`MAX_CLUSTER_NAME_LEN`] characters `A-Z a-z 0-9 . _ -`, not starting with
/// `.` or `-`. (Proxmox allows `A-Za-z0-9-`, 15 at most; corosync itself
/// allows more, but the name lands in file names, URLs and shell commands.)
#[must_use]
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Why a pairing operation was refused. `Display` is the one line the client
/// is shown; none carries the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The presented token is not a token.
    Malformed(TokenParseError),
    /// No open window has this id.
    UnknownId,
    /// Right id, wrong secret; `remaining` more tries before lock-out.
    BadSecret {
        /// Wrong secrets still accepted before the window closes.
        remaining: u32,
    },
    /// Closed after too many wrong secrets.
    LockedOut,
    /// The lifetime is over.
    Expired,
    /// Closed by the operator or after completion.
    Closed,
    /// The window is bound to another cluster.
    ClusterMismatch {
        /// The name the window is bound to.
        bound: String,
        /// The name that was asked for.
        requested: String,
    },
    /// The name already has live certificates and the window was not opened
    /// with `--replace`.
    NameTaken(String),
    /// The cluster name is not acceptable ([`valid_cluster_name`]).
    BadClusterName(String),
    /// The cluster has more nodes than the window's `--nodes`.
    TooManyNodes {
        /// Nodes in the cluster.
        nodes: u32,
        /// Certificates the window allows.
        max: u32,
    },
    /// No cluster bound yet: the corosync.conf step must come first.
    NotBound,
    /// Every certificate this window allows has been signed.
    CertLimit(u32),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed pairing token: {e}"),
            Self::UnknownId => f.write_str("no open pairing window has this token"),
            Self::BadSecret { remaining } => write!(
                f,
                "wrong pairing token secret ({remaining} more tries before the window closes)"
            ),
            Self::LockedOut => f.write_str(
                "the pairing window was closed after too many wrong tokens: open a new one with `qnetd pair`",
            ),
            Self::Expired => f.write_str(
                "the pairing window has expired: open a new one with `qnetd pair`",
            ),
            Self::Closed => f.write_str("the pairing window is closed: open a new one with `qnetd pair`"),
            Self::ClusterMismatch { bound, requested } => write!(
                f,
                "this pairing window is for cluster '{bound}', not '{requested}'"
            ),
            Self::NameTaken(name) => write!(
                f,
                "cluster name '{name}' already has certificates on this qnetd: \
                 run `qnetd unpair {name}` first, or open the window with `qnetd pair --replace`"
            ),
            Self::BadClusterName(name) => write!(
                f,
                "cluster name '{}' is not supported for pairing (1 to {MAX_CLUSTER_NAME_LEN} of A-Z a-z 0-9 . _ -)",
                name.escape_debug()
            ),
            Self::TooManyNodes { nodes, max } => write!(
                f,
                "the cluster has {nodes} nodes but the pairing window allows {max} certificates: \
                 open a new one with `qnetd pair --nodes {nodes}`"
            ),
            Self::NotBound => f.write_str(
                "send corosync.conf before certificate requests (the window is not bound to a cluster yet)",
            ),
            Self::CertLimit(max) => write!(
                f,
                "this pairing window has already signed its {max} certificates"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// A short stable word for the refusal (the status panel's event list):
    /// `malformed`, `unknown_token`, `bad_secret`, `locked_out`, `expired`,
    /// `closed`, `wrong_cluster`, `name_taken`, `bad_cluster_name`,
    /// `too_many_nodes`, `not_bound`, `all_signed`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownId => "unknown_token",
            Self::BadSecret { .. } => "bad_secret",
            Self::LockedOut => "locked_out",
            Self::Expired => "expired",
            Self::Closed => "closed",
            Self::ClusterMismatch { .. } => "wrong_cluster",
            Self::NameTaken(_) => "name_taken",
            Self::BadClusterName(_) => "bad_cluster_name",
            Self::TooManyNodes { .. } => "too_many_nodes",
            Self::NotBound => "not_bound",
            Self::CertLimit(_) => "all_signed",
        }
    }
}

/// Why a window no longer pairs anything ([`PairingWindow::end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowEnd {
    /// Every certificate it allows is signed.
    Completed,
    /// Its lifetime is over.
    Expired,
    /// Closed after [`MAX_FAILED_ATTEMPTS`] wrong secrets.
    LockedOut,
    /// Closed by the operator.
    Closed,
}

impl WindowEnd {
    /// `completed`, `expired`, `locked_out` or `closed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::LockedOut => "locked_out",
            Self::Closed => "closed",
        }
    }
}

/// The name-collision guard: `name` may be bound unless it already has live
/// certificates and `replace` was not asked for.
///
/// # Errors
///
/// [`Refusal::NameTaken`].
pub fn check_name_collision(
    name: &str,
    has_live_certs: bool,
    replace: bool,
) -> Result<(), Refusal> {
    if has_live_certs && !replace {
        Err(Refusal::NameTaken(name.to_owned()))
    } else {
        Ok(())
    }
}

/// What `qnetd pair` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowParams {
    /// `--cluster NAME`; `None`: fixed at the first bind.
    pub cluster: Option<String>,
    /// `--nodes N`; `None`: the node count at the first bind.
    pub nodes: Option<u32>,
    /// `--ttl`, milliseconds.
    pub ttl_ms: u64,
    /// `--replace`: a name with live certificates may be bound.
    pub replace: bool,
}

impl Default for WindowParams {
    fn default() -> Self {
        Self {
            cluster: None,
            nodes: None,
            ttl_ms: DEFAULT_TTL_MS,
            replace: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    LockedOut,
    ByOperator,
}

/// One pairing window. Holds no secret, only its digest.
#[derive(Debug, Clone)]
pub struct PairingWindow {
    id: TokenId,
    secret_digest: [u8; 32],
    cluster: Option<String>,
    max_certs: Option<u32>,
    issued: u32,
    expires: Timestamp,
    failures: u32,
    closed: Option<Closed>,
    replace: bool,
}

impl PairingWindow {
    /// Opens a window for `token` at `now`. `has_live_certs` answers for
    /// the given cluster name (the collision guard).
    ///
    /// # Errors
    ///
    /// [`Refusal::BadClusterName`], [`Refusal::NameTaken`], or
    /// [`Refusal::TooManyNodes`] when `--nodes` is 0 or above [`MAX_NODES`].
    pub fn open(
        params: WindowParams,
        token: &Token,
        now: Timestamp,
        has_live_certs: impl Fn(&str) -> bool,
    ) -> Result<Self, Refusal> {
        if let Some(name) = &params.cluster {
            if !valid_cluster_name(name) {
                return Err(Refusal::BadClusterName(name.clone()));
            }
            check_name_collision(name, has_live_certs(name), params.replace)?;
        }
        if let Some(n) = params.nodes
            && !(1..=MAX_NODES).contains(&n)
        {
            return Err(Refusal::TooManyNodes {
                nodes: n,
                max: MAX_NODES,
            });
        }
        Ok(Self {
            id: token.id,
            secret_digest: token.secret_digest(),
            cluster: params.cluster,
            max_certs: params.nodes,
            issued: 0,
            expires: now.add_millis(params.ttl_ms),
            failures: 0,
            closed: None,
            replace: params.replace,
        })
    }

    /// The public id.
    #[must_use]
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The bound cluster name, if any yet.
    #[must_use]
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Certificates signed so far.
    #[must_use]
    pub fn issued(&self) -> u32 {
        self.issued
    }

    /// Certificates allowed, if fixed yet.
    #[must_use]
    pub fn max_certs(&self) -> Option<u32> {
        self.max_certs
    }

    /// When the window expires.
    #[must_use]
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    /// Whether the window still accepts its token at `now`.
    #[must_use]
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.closed.is_none() && now < self.expires
    }

    /// Whether and why the window is done at `now`: closed (lock-out
    /// first), expired, or complete (every certificate it allows signed;
    /// it still serves the script and status until it expires, and refuses
    /// more signatures).
    #[must_use]
    pub fn end(&self, now: Timestamp) -> Option<WindowEnd> {
        match self.closed {
            Some(Closed::LockedOut) => Some(WindowEnd::LockedOut),
            Some(Closed::ByOperator) => Some(WindowEnd::Closed),
            None if self.max_certs.is_some_and(|m| self.issued >= m) => Some(WindowEnd::Completed),
            None if now >= self.expires => Some(WindowEnd::Expired),
            None => None,
        }
    }

    /// Closes the window (`qnetd pair` cancelled, or pairing complete).
    pub fn close(&mut self) {
        self.closed.get_or_insert(Closed::ByOperator);
    }

    /// Checks a presented `ID.SECRET` at `now`. A wrong secret for this
    /// window's id counts as a failed attempt; the last allowed one closes
    /// the window.
    ///
    /// # Errors
    ///
    /// [`Refusal::Malformed`], [`Refusal::UnknownId`], [`Refusal::LockedOut`],
    /// [`Refusal::Closed`], [`Refusal::Expired`], [`Refusal::BadSecret`].
    pub fn authenticate(
        &mut self,
        presented: &str,
        now: Timestamp,
    ) -> Result<Authorized<'_>, Refusal> {
        let token = Token::parse(presented).map_err(Refusal::Malformed)?;
        if token.id != self.id {
            return Err(Refusal::UnknownId);
        }
        match self.closed {
            Some(Closed::LockedOut) => return Err(Refusal::LockedOut),
            Some(Closed::ByOperator) => return Err(Refusal::Closed),
            None => {}
        }
        if now >= self.expires {
            return Err(Refusal::Expired);
        }
        if !constant_time_eq(&token.secret_digest(), &self.secret_digest) {
            self.failures += 1;
            if self.failures >= MAX_FAILED_ATTEMPTS {
                self.closed = Some(Closed::LockedOut);
                return Err(Refusal::LockedOut);
            }
            return Err(Refusal::BadSecret {
                remaining: MAX_FAILED_ATTEMPTS - self.failures,
            });
        }
        Ok(Authorized { window: self })
    }
}

/// A window whose token was just presented correctly.
#[derive(Debug)]
pub struct Authorized<'w> {
    window: &'w mut PairingWindow,
}

impl Authorized<'_> {
    /// The window.
    #[must_use]
    pub fn window(&self) -> &PairingWindow {
        self.window
    }

    /// Binds the window to `name` with `nodes` nodes (from the cluster's
    /// corosync.conf), or checks that it is already bound to `name`. At the
    /// first bind the collision guard runs and, without `--nodes`, the
    /// certificate count is fixed to `nodes`.
    ///
    /// # Errors
    ///
    /// [`Refusal::BadClusterName`], [`Refusal::ClusterMismatch`],
    /// [`Refusal::NameTaken`], [`Refusal::TooManyNodes`].
    pub fn bind_cluster(
        &mut self,
        name: &str,
        nodes: u32,
        has_live_certs: impl Fn(&str) -> bool,
    ) -> Result<(), Refusal> {
        if !valid_cluster_name(name) {
            return Err(Refusal::BadClusterName(name.to_owned()));
        }
        let w = &mut *self.window;
        if let Some(bound) = w.cluster.as_ref().filter(|b| *b != name) {
            return Err(Refusal::ClusterMismatch {
                bound: bound.clone(),
                requested: name.to_owned(),
            });
        }
        let max = w.max_certs.unwrap_or(MAX_NODES);
        if nodes > max {
            return Err(Refusal::TooManyNodes { nodes, max });
        }
        match &w.cluster {
            Some(_) if w.issued > 0 => {}
            // The guard runs until the first certificate is signed: a name
            // given at `open` may have gained certificates since.
            _ => check_name_collision(name, has_live_certs(name), w.replace)?,
        }
        w.cluster = Some(name.to_owned());
        w.max_certs.get_or_insert(nodes.max(1));
        Ok(())
    }

    /// Whether one more certificate may be signed; returns the bound
    /// cluster name, the only name the certificate may carry.
    ///
    /// # Errors
    ///
    /// [`Refusal::NotBound`], [`Refusal::CertLimit`].
    pub fn check_sign(&self) -> Result<&str, Refusal> {
        let w = &*self.window;
        let (Some(name), Some(max)) = (&w.cluster, w.max_certs) else {
            return Err(Refusal::NotBound);
        };
        if w.issued >= max {
            return Err(Refusal::CertLimit(max));
        }
        Ok(name)
    }

    /// Counts a certificate the caller signed after [`Self::check_sign`].
    ///
    /// # Errors
    ///
    /// The refusal of [`Self::check_sign`]: nothing is counted then.
    pub fn record_signed(&mut self) -> Result<(), Refusal> {
        self.check_sign()?;
        self.window.issued += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
