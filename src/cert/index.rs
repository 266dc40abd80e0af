//! The index of issued certificates, `index.txt` in the store: one line per
//! certificate the CA signed (by `certutil -s` or by pairing), tab-separated:
//!
//! ```text
//! SERIAL <TAB> CLUSTER <TAB> NODE <TAB> ISSUED (unix seconds) <TAB> live|revoked
//! ```
//!
//! `NODE` is `-` when unknown (`certutil -s`). The file is rewritten
//! atomically under the store's lock by [`super::store::CertStore`]; this
//! module is the pure format. Lines that do not parse are kept as they are
//! and otherwise ignored, so a hand edit never loses entries.

use std::fmt;

/// Whether an issued certificate still admits its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertState {
    /// Admitted.
    Live,
    /// Revoked by `qnetd unpair`: TLS handshakes with it are refused.
    Revoked,
}

impl CertState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Revoked => "revoked",
        }
    }
}

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The serial number.
    pub serial: u64,
    /// The cluster name the certificate carries.
    pub cluster: String,
    /// The node it was signed for (`-` if unknown).
    pub node: String,
    /// Signing time, unix seconds.
    pub issued: u64,
    /// Live or revoked.
    pub state: CertState,
}

impl fmt::Display for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}",
            self.serial,
            self.cluster,
            self.node,
            self.issued,
            self.state.as_str()
        )
    }
}

/// A field as written: tabs, line breaks and empty values cannot break the
/// format.
pub(super) fn field(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

impl Issued {
    /// Parses one line; `None` if it is not an entry.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let mut f = line.split('\t');
        let serial = f.next()?.parse().ok()?;
        let cluster = f.next()?.to_owned();
        let node = f.next()?.to_owned();
        let issued = f.next()?.parse().ok()?;
        let state = match f.next()? {
            "live" => CertState::Live,
            "revoked" => CertState::Revoked,
            _ => return None,
        };
        f.next().is_none().then_some(Self {
            serial,
            cluster,
            node,
            issued,
            state,
        })
    }
}

/// The entries of an index file's text.
#[must_use]
pub fn parse(text: &str) -> Vec<Issued> {
    text.lines().filter_map(Issued::parse).collect()
}

/// The clusters that have a live certificate among `entries` (a cluster
/// with several appears once per live entry).
pub fn live_clusters(entries: &[Issued]) -> impl Iterator<Item = &str> {
    entries
        .iter()
        .filter(|e| e.state == CertState::Live)
        .map(|e| e.cluster.as_str())
}

/// `text` with every live certificate of `cluster` revoked; also returns
/// their serials.
#[must_use]
pub fn revoke(text: &str, cluster: &str) -> (String, Vec<u64>) {
    let mut out = String::with_capacity(text.len());
    let mut serials = Vec::new();
    for line in text.lines() {
        match Issued::parse(line) {
            Some(mut e) if e.cluster == cluster && e.state == CertState::Live => {
                e.state = CertState::Revoked;
                serials.push(e.serial);
                out.push_str(&e.to_string());
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    (out, serials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_revoke_and_hostile_lines() {
        let a = Issued {
            serial: 103,
            cluster: "alpha".into(),
            node: field(""),
            issued: 1_700_000_000,
            state: CertState::Live,
        };
        let b = Issued {
            serial: 104,
            cluster: "beta".into(),
            node: field("pve\t1\n"),
            issued: 1_700_000_001,
            state: CertState::Live,
        };
        assert_eq!(b.node, "pve?1?");
        let text = format!("{a}\n# comment\ngarbage\t1\n{b}\n");
        assert_eq!(parse(&text), vec![a.clone(), b.clone()]);
        let (after, serials) = revoke(&text, "alpha");
        assert_eq!(serials, vec![103]);
        let entries = parse(&after);
        assert_eq!(entries[0].state, CertState::Revoked);
        assert_eq!(entries[1], b);
        assert_eq!(live_clusters(&entries).collect::<Vec<_>>(), ["beta"]);
        assert!(after.contains("# comment\ngarbage\t1\n"));
        // Revoking again finds nothing live.
        assert!(revoke(&after, "alpha").1.is_empty());
        assert_eq!(Issued::parse("1\ta\tb\t2\tlive\textra"), None);
        assert_eq!(Issued::parse("x\ta\tb\t2\tlive"), None);
    }
}
