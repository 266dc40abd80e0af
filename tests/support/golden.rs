//! Reader for `tests/vectors/golden_traces.txt` (see its README).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

/// Direction of a traced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

/// One line of a traced session.
#[derive(Debug, Clone)]
pub enum Step {
    /// A message of client `client` (`""` when the scenario has one client).
    Msg {
        client: String,
        dir: Dir,
        name: String,
        bytes: Vec<u8>,
    },
    /// A `--- phase ... ---` line or another free-text line.
    Note(String),
}

/// A scenario (or an error case inside the `errors` scenario).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<Step>,
}

fn unhex(s: &str) -> Vec<u8> {
    // The one truncated dump (case #11) may end in half a byte.
    let s = &s[..s.len() & !1];
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Parses the whole trace file into scenarios. The `errors` scenario is
/// split into one scenario per `CASE:`.
pub fn load() -> Vec<Scenario> {
    let text = include_str!("../vectors/golden_traces.txt");
    let mut out: Vec<Scenario> = Vec::new();
    let mut pending: Option<(String, Dir, String, usize)> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("# SCENARIO: ") {
            out.push(Scenario {
                name: name.to_string(),
                steps: Vec::new(),
            });
            continue;
        }
        if let Some(name) = t.strip_prefix("CASE: ") {
            out.push(Scenario {
                name: format!("errors {name}"),
                steps: Vec::new(),
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if let Some(hex) = t.strip_prefix("hex: ") {
            let (client, dir, name, total) = pending.take().expect("hex line without message line");
            // Case #11's dump ends in "... [line truncated, N chars]".
            let hex = hex.split_whitespace().next().unwrap_or("");
            let mut bytes = unhex(hex);
            // Case #11 shows only the start of a 40006-byte message of zeros.
            assert!(bytes.len() <= total, "hex longer than declared");
            bytes.resize(total, 0);
            cur.steps.push(Step::Msg {
                client,
                dir,
                name,
                bytes,
            });
            continue;
        }
        let (client, rest) = match t.strip_prefix('[') {
            Some(r) => match r.split_once("] ") {
                Some((c, rest)) => (c.to_string(), rest),
                None => (String::new(), t),
            },
            None => (String::new(), t),
        };
        let dir = if rest.starts_with(">>> C->S ") {
            Some(Dir::ToServer)
        } else if rest.starts_with("<<< S->C ") {
            Some(Dir::ToClient)
        } else {
            None
        };
        if let Some(dir) = dir {
            let name = rest[9..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let total: usize = rest
                .rsplit_once("total ")
                .and_then(|(_, n)| n.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .expect("total length");
            pending = Some((client, dir, name, total));
        } else if t.starts_with("---") || t.starts_with("TLS established") {
            cur.steps.push(Step::Note(t.to_string()));
        }
    }
    out
}
