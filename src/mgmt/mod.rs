//! The local management interface (`corosync-qnetd-tool`'s protocol), cold
//! path: allocation is fine here.
//!
//! One request line comes in, one reply goes out, then the connection is
//! closed (the shell in `net` does the socket part). This module is the pure
//! part: [`Lexer`] splits the line (`qdevices/dynar-simple-lex.c`),
//! [`Command::parse`] reads it (`qdevices/qnetd-ipc.c:
//! qnetd_ipc_parse_line`), [`report`] renders the reference's text
//! (`qdevices/qnetd-ipc-cmd.c`) and [`json`] our JSON document, all from a
//! read-only [`ServerView`] of the [`Instance`]. [`respond`] ties them
//! together and applies the reference's reply-size rules, so the bytes of a
//! reply are the reference's, error cases included.
//!
//! ```text
//! request  = line ending in LF (only the first line counts)
//! reply    = "OK\n" body | "Error\n" message "\n" | nothing (connection closed)
//! commands = status [verbose] | list [verbose] [cluster NAME] ... | shutdown
//!          | json [cluster NAME]                                 (our extension)
//!          | pair open|status|close ... | unpair NAME              (our extension, [`pair`])
//! ```

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod json;
pub mod lex;
pub mod pair;
pub mod report;

pub use lex::{Lexer, c_str, quote};

use crate::core::Instance;

/// The refusal of every pairing request with TLS off (management socket
/// and panel alike).
pub const PAIR_NEEDS_TLS: &str =
    "pairing needs TLS, and this server runs with -s off: restart it with -s on";

/// The longest request line the reference tool ever sends, NUL included
/// (`QNETD_DEFAULT_IPC_MAX_RECEIVE_SIZE`).
pub const TOOL_MAX_REQUEST: usize = 4096;

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing before the end of the line.
    Empty,
    /// A first word that is no command (the word as the reference prints
    /// it: cut at the first NUL).
    Unknown(Vec<u8>),
    /// `status [verbose]`; further tokens are ignored.
    Status {
        /// Add the limits.
        verbose: bool,
    },
    /// `list [verbose] [cluster NAME] ...`: tokens are read left to right
    /// until an empty or unknown one; a later `cluster` replaces an earlier
    /// one.
    List {
        /// Add per-node details.
        verbose: bool,
        /// Only the cluster with exactly this name; `None` or empty: all.
        cluster: Option<Vec<u8>>,
    },
    /// `json [verbose] [cluster NAME] ...` (our extension), read like `list`;
    /// the document is always complete, so `verbose` changes nothing.
    Json {
        /// Only the cluster with exactly this name; `None` or empty: all.
        cluster: Option<Vec<u8>>,
    },
    /// `shutdown`: reply, then stop the server.
    Shutdown,
    /// `pair ...` / `unpair NAME` (our extension): carried out by the
    /// daemon's pairing state, not by [`respond`].
    Pair(pair::PairCommand),
}

/// Reads the `[verbose] [cluster NAME]` tail of `list` and `json`.
fn list_options(lex: &mut Lexer<'_>) -> (bool, Option<Vec<u8>>) {
    let mut verbose = false;
    let mut cluster = None;
    loop {
        let token = lex.next_token();
        let word = c_str(&token);
        if word.is_empty() {
            break;
        }
        if word.eq_ignore_ascii_case(b"verbose") {
            verbose = true;
        } else if word.eq_ignore_ascii_case(b"cluster") {
            cluster = Some(c_str(&lex.next_token()).to_vec());
        } else {
            break;
        }
    }
    (verbose, cluster)
}

impl Command {
    /// Parses a request as the reference does: keywords are
    /// case-insensitive, every token is read as a C string.
    #[must_use]
    pub fn parse(line: &[u8]) -> Self {
        let mut lex = Lexer::new(line);
        let first = lex.next_token();
        let word = c_str(&first);
        if word.is_empty() {
            Self::Empty
        } else if word.eq_ignore_ascii_case(b"shutdown") {
            Self::Shutdown
        } else if word.eq_ignore_ascii_case(b"status") {
            let next = lex.next_token();
            Self::Status {
                verbose: c_str(&next).eq_ignore_ascii_case(b"verbose"),
            }
        } else if word.eq_ignore_ascii_case(b"list") {
            let (verbose, cluster) = list_options(&mut lex);
            Self::List { verbose, cluster }
        } else if word.eq_ignore_ascii_case(b"pair") {
            Self::Pair(pair::parse_pair(&mut lex))
        } else if word.eq_ignore_ascii_case(b"unpair") {
            Self::Pair(pair::parse_unpair(&mut lex))
        } else if word.eq_ignore_ascii_case(b"json") {
            let (_, cluster) = list_options(&mut lex);
            Self::Json { cluster }
        } else {
            Self::Unknown(word.to_vec())
        }
    }
}

/// What the reports need: the instance, plus the two facts about the
/// listener that only the command line knows.
#[derive(Debug, Clone, Copy)]
pub struct ServerView<'a> {
    /// The protocol engine (clients, clusters, settings).
    pub instance: &'a Instance,
    /// `-l` exactly as given; `None` prints `*`.
    pub listen_addr: Option<&'a str>,
    /// The TCP port (`-p`).
    pub port: u16,
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The bytes to write before closing; `None`: close without a reply
    /// (the reference does so when even the error does not fit).
    pub reply: Option<Vec<u8>>,
    /// Stop the server once the reply is written.
    pub shutdown: bool,
}

/// An `Error\n<message>\n` reply, if it fits in `max_send` bytes
/// (`qnetd_ipc_send_error`: the message needs room for its NUL as well).
pub fn error_reply(message: &[u8], max_send: usize) -> Option<Vec<u8>> {
    let len = b"Error\n".len() + message.len() + 1;
    if message.is_empty() || len > max_send {
        log::error!("Can't send ipc error to client (buffer too small)");
        return None;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"Error\n");
    out.extend_from_slice(message);
    out.push(b'\n');
    Some(out)
}

/// An `OK\n<body>` reply under the reference's size rules: every piece of
/// the body is written with room for a NUL (so `body + 1` must fit, else
/// `failure`), then `OK\n` is prepended (so `body + 3` must fit, else
/// "Internal IPC buffer too small").
pub fn ok_reply(body: &[u8], failure: &str, max_send: usize) -> Option<Vec<u8>> {
    if body.len() + 1 > max_send {
        return error_reply(failure.as_bytes(), max_send);
    }
    if body.len() + 3 > max_send {
        log::error!("Can't send ipc message to client (buffer too small)");
        return error_reply(b"Internal IPC buffer too small", max_send);
    }
    let mut out = Vec::with_capacity(body.len() + 3);
    out.extend_from_slice(b"OK\n");
    out.extend_from_slice(body);
    Some(out)
}

/// Answers one request line (`qnetd_ipc_parse_line`). `max_send` is
/// `ipc_max_send_size`.
#[must_use]
pub fn respond(line: &[u8], view: &ServerView<'_>, max_send: usize) -> Response {
    let mut shutdown = false;
    let reply = match Command::parse(line) {
        Command::Empty => {
            log::debug!("IPC client doesn't send command");
            error_reply(b"No command specified", max_send)
        }
        Command::Unknown(word) => {
            log::debug!("IPC client sent unknown command");
            let mut message = b"Unknown command '".to_vec();
            message.extend_from_slice(&word);
            message.push(b'\'');
            error_reply(&message, max_send)
        }
        Command::Shutdown => {
            log::debug!("IPC client requested shutdown");
            shutdown = true;
            ok_reply(b"", "", max_send)
        }
        Command::Status { verbose } => ok_reply(
            &report::status(view, verbose),
            "Can't get QNetd status",
            max_send,
        ),
        Command::List { verbose, cluster } => ok_reply(
            &report::list(view, verbose, cluster.as_deref()),
            "Can't get QNetd cluster list",
            max_send,
        ),
        Command::Pair(_) => error_reply(PAIR_NEEDS_TLS.as_bytes(), max_send),
        Command::Json { cluster } => ok_reply(
            &json::render(view, cluster.as_deref()),
            "Can't get QNetd status as JSON",
            max_send,
        ),
    };
    Response { reply, shutdown }
}

/// The reply to a `shutdown` from a peer that is neither root nor the
/// server's user (the socket layer checks `SO_PEERCRED`): an `Error` reply
/// in the reference's style, and the server keeps running.
#[must_use]
pub fn shutdown_refused(max_send: usize) -> Response {
    Response {
        reply: error_reply(
            b"Shutdown is allowed only for root and the server's user",
            max_send,
        ),
        shutdown: false,
    }
}

/// Whether a cluster named `name` passes the `cluster NAME` filter: no
/// filter or an empty one passes everything, otherwise the names must be
/// equal as C strings (case-sensitive).
#[must_use]
pub fn cluster_matches(filter: Option<&[u8]>, name: &[u8]) -> bool {
    match filter.map(c_str) {
        None | Some([]) => true,
        Some(f) => f == c_str(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::InstanceConfig;

    #[test]
    fn commands() {
        let cases: &[(&[u8], Command)] = &[
            (b"\n", Command::Empty),
            (b"\r\n", Command::Empty),
            (b"\0status\n", Command::Empty),
            (b"bogus\n", Command::Unknown(b"bogus".to_vec())),
            (b"bog\0us\n", Command::Unknown(b"bog".to_vec())),
            (b"\xff\xfe\n", Command::Unknown(b"\xff\xfe".to_vec())),
            (b"STATUS\n", Command::Status { verbose: false }),
            (b"status \n", Command::Status { verbose: false }),
            (b"status VERBOSE extra\n", Command::Status { verbose: true }),
            (
                b"status extra verbose\n",
                Command::Status { verbose: false },
            ),
            (b"status\x0cverbose\n", Command::Status { verbose: true }),
            (b"status\0x\n", Command::Status { verbose: false }),
            (b"\"sta\"tus\n", Command::Status { verbose: false }),
            (b"shutdown \n", Command::Shutdown),
            (b"ShutDown now\n", Command::Shutdown),
            (
                b"list \n",
                Command::List {
                    verbose: false,
                    cluster: None,
                },
            ),
            (
                b"list verbose cluster \"test\\\"c\" \n",
                Command::List {
                    verbose: true,
                    cluster: Some(b"test\"c".to_vec()),
                },
            ),
            (
                b"lisT Verbose cluster nosuch\n",
                Command::List {
                    verbose: true,
                    cluster: Some(b"nosuch".to_vec()),
                },
            ),
            (
                b"list bogus verbose\n",
                Command::List {
                    verbose: false,
                    cluster: None,
                },
            ),
            (
                b"list cluster\n",
                Command::List {
                    verbose: false,
                    cluster: Some(Vec::new()),
                },
            ),
            (
                b"list cluster a cluster b\n",
                Command::List {
                    verbose: false,
                    cluster: Some(b"b".to_vec()),
                },
            ),
            (
                b"list \"\" verbose\n",
                Command::List {
                    verbose: false,
                    cluster: None,
                },
            ),
            (
                b"list\x0bverbose\n",
                Command::List {
                    verbose: true,
                    cluster: None,
                },
            ),
            (
                b"json cluster x\n",
                Command::Json {
                    cluster: Some(b"x".to_vec()),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&Command::parse(line), want, "{line:?}");
        }
    }

    #[test]
    fn cluster_filter() {
        assert!(cluster_matches(None, b"a"));
        assert!(cluster_matches(Some(b""), b"a"));
        assert!(cluster_matches(Some(b"\0x"), b"a"));
        assert!(cluster_matches(Some(b"a"), b"a"));
        assert!(!cluster_matches(Some(b"A"), b"a"));
        assert!(!cluster_matches(Some(b"ab"), b"a"));
    }

    fn view(instance: &Instance) -> ServerView<'_> {
        ServerView {
            instance,
            listen_addr: Some("127.0.0.1"),
            port: 15403,
        }
    }

    #[test]
    fn replies_and_size_rules() {
        let instance = Instance::new(InstanceConfig::default());
        let v = view(&instance);
        let r = respond(b"\n", &v, 1024);
        assert_eq!(
            r.reply.as_deref(),
            Some(&b"Error\nNo command specified\n"[..])
        );
        assert!(!r.shutdown);
        let r = respond(b"bogus\n", &v, 1024);
        assert_eq!(
            r.reply.as_deref(),
            Some(&b"Error\nUnknown command 'bogus'\n"[..])
        );
        let r = respond(b"shutdown \n", &v, 1024);
        assert_eq!(r.reply.as_deref(), Some(&b"OK\n"[..]));
        assert!(r.shutdown);
        assert_eq!(
            respond(b"list \n", &v, 1024).reply.as_deref(),
            Some(&b"OK\n"[..])
        );

        // An unknown word whose error does not fit: closed without reply.
        // "Error\n" + "Unknown command ''" + word + NUL must fit.
        let fits = vec![b'x'; 1024 - 6 - 18 - 1];
        let mut line = fits.clone();
        line.push(b'\n');
        assert_eq!(respond(&line, &v, 1024).reply.map(|r| r.len()), Some(1024));
        let mut line = fits;
        line.extend(b"x\n");
        assert_eq!(respond(&line, &v, 1024).reply, None);

        // Status body sizes around the limit.
        let body = report::status(&v, true);
        let n = body.len();
        let ok = respond(b"status verbose\n", &v, n + 3).reply.unwrap();
        assert!(ok.starts_with(b"OK\n"));
        for max in [n + 1, n + 2] {
            assert_eq!(
                respond(b"status verbose\n", &v, max).reply.as_deref(),
                Some(&b"Error\nInternal IPC buffer too small\n"[..]),
                "{max}"
            );
        }
        assert_eq!(
            respond(b"status verbose\n", &v, n).reply.as_deref(),
            Some(&b"Error\nCan't get QNetd status\n"[..])
        );
    }
}

#[cfg(test)]
mod golden;
