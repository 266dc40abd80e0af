//! The pairing verbs of the management socket (our extension, used by
//! `qnetd pair` and `qnetd unpair`):
//!
//! ```text
//! pair open [nodes=N] [cluster=NAME] [ttl=SECONDS] [address=HOST] [replace=0|1]
//! pair status
//! pair close
//! unpair NAME
//! ```
//!
//! Replies are the usual `OK\n` or `Error\n<line>\n`; an `OK` body is
//! `key=value` lines ([`kv`], read back with [`parse_kv`]). The daemon's
//! `net` layer carries them out (it owns the window and the store).

use super::lex::{Lexer, c_str};

/// A parsed pairing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairCommand {
    /// `pair open ...`.
    Open(OpenParams),
    /// `pair status`.
    Status,
    /// `pair close`.
    Close,
    /// `unpair NAME`.
    Unpair(String),
    /// A pairing request that does not parse: the error line.
    Bad(String),
}

/// The options of `pair open`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenParams {
    /// Certificates allowed (`None`: the node count at the first bind).
    pub nodes: Option<u32>,
    /// The cluster name (`None`: fixed at the first bind).
    pub cluster: Option<String>,
    /// Lifetime in seconds (`None`: the default).
    pub ttl_secs: Option<u64>,
    /// The address the nodes reach this server at (`None`: the listen
    /// address, unless it is a wildcard).
    pub address: Option<String>,
    /// A name with live certificates may be bound.
    pub replace: bool,
}

fn word(lex: &mut Lexer<'_>) -> String {
    String::from_utf8_lossy(c_str(&lex.next_token())).into_owned()
}

/// Parses the words after `pair`; `None` for the `unpair` verb is handled
/// by [`parse_unpair`].
#[must_use]
pub fn parse_pair(lex: &mut Lexer<'_>) -> PairCommand {
    match word(lex).to_ascii_lowercase().as_str() {
        "open" => {}
        "status" => return PairCommand::Status,
        "close" => return PairCommand::Close,
        other => return PairCommand::Bad(format!("unknown pair verb '{other}'")),
    }
    let mut p = OpenParams::default();
    loop {
        let token = word(lex);
        if token.is_empty() {
            return PairCommand::Open(p);
        }
        let Some((key, value)) = token.split_once('=') else {
            return PairCommand::Bad(format!("expected key=value, got '{token}'"));
        };
        let bad = || PairCommand::Bad(format!("invalid value '{value}' for '{key}'"));
        match key {
            "nodes" => match value.parse() {
                Ok(n) => p.nodes = Some(n),
                Err(_) => return bad(),
            },
            "ttl" => match value.parse() {
                Ok(n) if n > 0 => p.ttl_secs = Some(n),
                _ => return bad(),
            },
            "cluster" if !value.is_empty() => p.cluster = Some(value.to_owned()),
            "address" if !value.is_empty() => p.address = Some(value.to_owned()),
            "replace" => match value {
                "0" => p.replace = false,
                "1" => p.replace = true,
                _ => return bad(),
            },
            "cluster" | "address" => return bad(),
            _ => return PairCommand::Bad(format!("unknown pair option '{key}'")),
        }
    }
}

/// Parses the words after `unpair`.
#[must_use]
pub fn parse_unpair(lex: &mut Lexer<'_>) -> PairCommand {
    let name = word(lex);
    if name.is_empty() {
        PairCommand::Bad("unpair needs a cluster name".into())
    } else {
        PairCommand::Unpair(name)
    }
}

/// One `key=value` line (values never hold a line break).
#[must_use]
pub fn kv(key: &str, value: impl std::fmt::Display) -> String {
    let value = value.to_string().replace(['\n', '\r'], " ");
    format!("{key}={value}\n")
}

/// The value of `key` in an `OK` body of `key=value` lines.
#[must_use]
pub fn parse_kv<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mgmt::Command;

    #[test]
    fn verbs_and_options() {
        let parse = |line: &[u8]| match Command::parse(line) {
            Command::Pair(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parse(b"pair open nodes=3 cluster=c1 ttl=60 address=10.0.0.1 replace=1\n"),
            PairCommand::Open(OpenParams {
                nodes: Some(3),
                cluster: Some("c1".into()),
                ttl_secs: Some(60),
                address: Some("10.0.0.1".into()),
                replace: true,
            })
        );
        assert_eq!(
            parse(b"pair open\n"),
            PairCommand::Open(OpenParams::default())
        );
        assert_eq!(parse(b"PAIR status\n"), PairCommand::Status);
        assert_eq!(parse(b"pair close\n"), PairCommand::Close);
        assert_eq!(parse(b"unpair c1\n"), PairCommand::Unpair("c1".into()));
        for bad in [
            &b"pair open nodes=x\n"[..],
            b"pair open ttl=0\n",
            b"pair open bogus=1\n",
            b"pair open replace=2\n",
            b"pair open nodes\n",
            b"pair\n",
            b"unpair\n",
        ] {
            assert!(matches!(parse(bad), PairCommand::Bad(_)), "{bad:?}");
        }
        let body = format!("{}{}", kv("a", 1), kv("command", "x\ny"));
        assert_eq!(parse_kv(&body, "a"), Some("1"));
        assert_eq!(parse_kv(&body, "command"), Some("x y"));
        assert_eq!(parse_kv(&body, "b"), None);
    }
}
