//! The corosync.conf editor of pairing: add or remove `quorum.device`,
//! leaving every other byte of the file as it was.
//!
//! # Syntax
//!
//! [`CorosyncConf::parse`] reads the file line by line the way corosync's own
//! parser (`exec/coroparse.c`) does, and keeps every line's bytes, so
//! [`CorosyncConf::to_text`] gives the input back unchanged:
//! * blank lines, and comment lines whose first non-blank character is `#`;
//! * `NAME {` opens a section (a `# comment` may follow the brace);
//! * `key: value`: the key is before the first `:`, the value is the rest,
//!   trimmed (so `host: fd00::1` is `host` = `fd00::1`; a `#` after a value
//!   is part of the value, as for corosync; quotes are not special, as for
//!   corosync);
//! * `}` closes the innermost section (a `# comment` may follow).
//!
//! Lines end in `\n` or `\r\n`, the last one maybe in nothing; indentation is
//! spaces or tabs. Anything else is refused with its line number rather than
//! guessed at. The input is bounded ([`MAX_CONF_LEN`] bytes, nesting
//! [`MAX_DEPTH`]) because it comes from the network.
//!
//! # Edits
//!
//! [`add_device`] is what `pvecm qdevice setup` writes, plus what Proxmox
//! leaves to the user:
//! * refuses when `quorum.device` exists ([`ConfError::AlreadyConfigured`])
//!   unless `force`, which replaces it;
//! * appends to the `quorum` section (whose `provider` must be
//!   `corosync_votequorum`)
//!   `device { model: net  votes: 1  net { tls: on  host: H  port: P
//!   algorithm: A } }`: `ffsplit` with `votes: 1` for an even number of
//!   `nodelist.node` entries, `lms` without `votes` for an odd one; `port`
//!   only when it is not 5403;
//! * removes `two_node`, `auto_tie_breaker` (and `auto_tie_breaker_node`),
//!   `last_man_standing` (and `last_man_standing_window`) from `quorum`, one
//!   warning each; `wait_for_all` and `expected_votes` stay;
//! * raises `totem.config_version` by one, or adds `config_version: 1` to
//!   `totem` when there is none (corosync's default is 0).
//!
//! New lines follow the file: the indentation of the section's other lines
//! (else the file's first indented line, else a tab), and the file's line
//! ending. [`remove_device`] is the inverse (`quorum.device` out, version
//! raised); [`raise_config_version`] makes the undo file of a plain Corosync
//! node (the original content, with a version above the paired one).
//!
//! # Differences from Proxmox's `PVE::Corosync` (`parse_conf`/`write_conf`)
//!
//! Proxmox's writer re-serialises the whole file: it drops comments, sorts
//! keys, re-indents with two spaces and keys the nodelist by name. This
//! editor changes only the lines it must, so on a file Proxmox wrote (sorted,
//! two spaces) the result differs from pvecm's only in the position of the
//! `device` block inside `quorum` (last here, sorted there) and in the order
//! of keys inside it; corosync reads both the same (the tests compare the
//! keys and values with `pvecm`'s output for the Proxmox files of the corpus,
//! `*.pvecm`). Proxmox refuses a file
//! without `config_version`; we add one. Proxmox removes none of the
//! incompatible quorum options (it never writes them itself); we do, as pcs
//! does. Proxmox never writes `port`; we write it when it is not 5403.

use core::fmt;
use core::ops::Range;

/// Largest corosync.conf accepted.
pub const MAX_CONF_LEN: usize = 256 * 1024;
/// Deepest section nesting accepted.
pub const MAX_DEPTH: usize = 16;
/// The qnetd port corosync-qdevice uses when `port` is not given.
pub const DEFAULT_PORT: u16 = 5403;

/// Quorum options incompatible with a quorum device, removed by
/// [`add_device`], with the reason shown in the warning.
pub const REMOVED_QUORUM_KEYS: &[(&str, &str)] = &[
    (
        "two_node",
        "corosync refuses two_node together with a quorum device",
    ),
    ("auto_tie_breaker", "the quorum device breaks ties instead"),
    ("auto_tie_breaker_node", "only used with auto_tie_breaker"),
    (
        "last_man_standing",
        "not used together with a quorum device",
    ),
    (
        "last_man_standing_window",
        "only used with last_man_standing",
    ),
];

/// Why a file could not be read or edited. `Display` is one line for the
/// user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfError {
    /// Longer than [`MAX_CONF_LEN`].
    TooLarge(usize),
    /// Not UTF-8.
    NotUtf8,
    /// A line that is none of the accepted forms.
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Sections nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// 1-based line number.
        line: usize,
    },
    /// A `}` without an open section.
    UnexpectedClose {
        /// 1-based line number.
        line: usize,
    },
    /// A section still open at the end of the file.
    Unclosed {
        /// The section's name.
        name: String,
        /// 1-based line number of its opening line.
        line: usize,
    },
    /// A section the edit needs is missing.
    MissingSection(&'static str),
    /// A section the edit needs appears twice.
    Duplicate(&'static str),
    /// The nodelist has no node.
    NoNodes,
    /// `quorum.provider` is not `corosync_votequorum`.
    NotVotequorum,
    /// `quorum.device` exists and `force` was not given.
    AlreadyConfigured,
    /// [`remove_device`] on a file without `quorum.device`.
    NoDevice,
    /// `totem.config_version` is not a number that can be raised.
    BadConfigVersion(String),
    /// The qnetd host cannot be written into the file.
    BadHost(String),
    /// Port 0.
    BadPort,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(n) => write!(
                f,
                "corosync.conf is {n} bytes, more than the {MAX_CONF_LEN} accepted"
            ),
            Self::NotUtf8 => f.write_str("corosync.conf is not UTF-8 text"),
            Self::Syntax { line, reason } => write!(f, "corosync.conf line {line}: {reason}"),
            Self::TooDeep { line } => write!(
                f,
                "corosync.conf line {line}: sections nested deeper than {MAX_DEPTH}"
            ),
            Self::UnexpectedClose { line } => {
                write!(f, "corosync.conf line {line}: '}}' without an open section")
            }
            Self::Unclosed { name, line } => write!(
                f,
                "corosync.conf: section '{name}' opened on line {line} is never closed"
            ),
            Self::MissingSection(s) => write!(f, "corosync.conf has no '{s}' section"),
            Self::Duplicate(s) => write!(f, "corosync.conf has more than one '{s}' section"),
            Self::NoNodes => f.write_str("corosync.conf has no node in its nodelist"),
            Self::NotVotequorum => f.write_str(
                "corosync.conf: quorum.provider is not corosync_votequorum, which a quorum device needs",
            ),
            Self::AlreadyConfigured => f.write_str(
                "a quorum device is already configured in corosync.conf (remove it first, or use --force to replace it)",
            ),
            Self::NoDevice => f.write_str("no quorum device is configured in corosync.conf"),
            Self::BadConfigVersion(v) => write!(
                f,
                "corosync.conf: totem.config_version '{}' is not a number that can be raised",
                v.escape_debug()
            ),
            Self::BadHost(h) => write!(
                f,
                "'{}' cannot be the qnetd host in corosync.conf (a host name or IP address)",
                h.escape_debug()
            ),
            Self::BadPort => f.write_str("the qnetd port must be 1 to 65535"),
        }
    }
}

impl std::error::Error for ConfError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Blank,
    Comment,
    Open {
        name: Range<usize>,
        close: usize,
    },
    Close,
    Pair {
        key: Range<usize>,
        value: Range<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// The line without its ending.
    text: String,
    /// `""`, `"\n"` or `"\r\n"`.
    eol: &'static str,
    kind: Kind,
}

impl Line {
    fn indent(&self) -> &str {
        let n = self.text.len() - self.text.trim_start_matches([' ', '\t']).len();
        &self.text[..n]
    }
}

/// A parsed corosync.conf that prints back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorosyncConf {
    lines: Vec<Line>,
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// `text[r]` trimmed of blanks, as a range of `text`.
fn trimmed(text: &str, r: Range<usize>) -> Range<usize> {
    let s = &text[r.clone()];
    let start = r.start + (s.len() - s.trim_start_matches(is_blank).len());
    let end = r.end - (s.len() - s.trim_end_matches(is_blank).len());
    start..end.max(start)
}

fn only_comment_after(text: &str, from: usize) -> bool {
    let rest = text[from..].trim_start_matches(is_blank);
    rest.is_empty() || rest.starts_with('#')
}

fn classify(text: &str) -> Result<Kind, &'static str> {
    let all = trimmed(text, 0..text.len());
    let t = &text[all.clone()];
    if t.is_empty() {
        return Ok(Kind::Blank);
    }
    if t.starts_with('#') {
        return Ok(Kind::Comment);
    }
    // The order of coroparse: a brace opens, else a colon is a pair, else a
    // closing brace closes.
    if let Some(brace) = text.find('{') {
        let name = trimmed(text, 0..brace);
        let n = &text[name.clone()];
        if n.is_empty() {
            return Err("'{' without a section name");
        }
        if n.contains(|c: char| is_blank(c) || matches!(c, ':' | '}' | '#')) {
            return Err("a section name is one word followed by '{'");
        }
        if !only_comment_after(text, brace + 1) {
            return Err("text after '{' (put each entry on its own line)");
        }
        return Ok(Kind::Open { name, close: 0 });
    }
    if let Some(colon) = text.find(':') {
        let key = trimmed(text, 0..colon);
        let k = &text[key.clone()];
        if k.is_empty() {
            return Err("':' without a key");
        }
        if k.contains(|c: char| is_blank(c) || matches!(c, '}' | '#')) {
            return Err("a key is one word followed by ':'");
        }
        let value = trimmed(text, colon + 1..text.len());
        return Ok(Kind::Pair { key, value });
    }
    if t.starts_with('}') {
        if !only_comment_after(text, all.start + 1) {
            return Err("text after '}'");
        }
        return Ok(Kind::Close);
    }
    Err("neither 'key: value', 'section {', '}' nor a comment")
}

impl CorosyncConf {
    /// Parses `input`.
    ///
    /// # Errors
    ///
    /// [`ConfError::TooLarge`], [`ConfError::NotUtf8`], [`ConfError::Syntax`],
    /// [`ConfError::TooDeep`], [`ConfError::UnexpectedClose`],
    /// [`ConfError::Unclosed`].
    pub fn parse(input: &[u8]) -> Result<Self, ConfError> {
        if input.len() > MAX_CONF_LEN {
            return Err(ConfError::TooLarge(input.len()));
        }
        let text = core::str::from_utf8(input).map_err(|_| ConfError::NotUtf8)?;
        Self::parse_text(text)
    }

    /// [`Self::parse`] without the size limit, for the file after an edit
    /// (which may grow past it by the lines the edit adds).
    fn parse_text(text: &str) -> Result<Self, ConfError> {
        let mut lines: Vec<Line> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (body, eol, next) = match rest.find('\n') {
                Some(i) if i > 0 && rest.as_bytes()[i - 1] == b'\r' => {
                    (&rest[..i - 1], "\r\n", &rest[i + 1..])
                }
                Some(i) => (&rest[..i], "\n", &rest[i + 1..]),
                None => (rest, "", ""),
            };
            rest = next;
            let number = lines.len() + 1;
            let kind = classify(body).map_err(|reason| ConfError::Syntax {
                line: number,
                reason,
            })?;
            match kind {
                Kind::Open { .. } => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ConfError::TooDeep { line: number });
                    }
                    stack.push(lines.len());
                }
                Kind::Close => {
                    let open = stack
                        .pop()
                        .ok_or(ConfError::UnexpectedClose { line: number })?;
                    let here = lines.len();
                    if let Kind::Open { close, .. } = &mut lines[open].kind {
                        *close = here;
                    }
                }
                _ => {}
            }
            lines.push(Line {
                text: body.to_owned(),
                eol,
                kind,
            });
        }
        if let Some(&open) = stack.last() {
            let Kind::Open { name, .. } = &lines[open].kind else {
                unreachable!("the stack holds opening lines")
            };
            return Err(ConfError::Unclosed {
                name: lines[open].text[name.clone()].to_owned(),
                line: open + 1,
            });
        }
        Ok(Self { lines })
    }

    /// The file, byte for byte as parsed (plus any edits).
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.lines.iter().map(|l| l.text.len() + 2).sum());
        for l in &self.lines {
            out.push_str(&l.text);
            out.push_str(l.eol);
        }
        out
    }

    /// The direct children of the section opened on line `open`
    /// (`None`: the top level), as line indexes.
    fn children(&self, open: Option<usize>) -> impl Iterator<Item = usize> + '_ {
        let (mut i, end) = match open {
            Some(o) => match self.lines[o].kind {
                Kind::Open { close, .. } => (o + 1, close),
                _ => (0, 0),
            },
            None => (0, self.lines.len()),
        };
        core::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let here = i;
            i = match self.lines[here].kind {
                Kind::Open { close, .. } => close + 1,
                _ => here + 1,
            };
            Some(here)
        })
    }

    fn sections<'a>(
        &'a self,
        parent: Option<usize>,
        name: &'a str,
    ) -> impl Iterator<Item = usize> + 'a {
        self.children(parent)
            .filter(move |&i| match &self.lines[i].kind {
                Kind::Open { name: n, .. } => &self.lines[i].text[n.clone()] == name,
                _ => false,
            })
    }

    /// The one section `name` under `parent`; an error if there are two.
    fn section(
        &self,
        parent: Option<usize>,
        name: &'static str,
    ) -> Result<Option<usize>, ConfError> {
        let mut it = self.sections(parent, name);
        let first = it.next();
        if it.next().is_some() {
            return Err(ConfError::Duplicate(name));
        }
        Ok(first)
    }

    fn pair(&self, section: usize, key: &str) -> Option<usize> {
        self.children(Some(section))
            .find(|&i| match &self.lines[i].kind {
                Kind::Pair { key: k, .. } => &self.lines[i].text[k.clone()] == key,
                _ => false,
            })
    }

    fn value(&self, line: usize) -> &str {
        match &self.lines[line].kind {
            Kind::Pair { value, .. } => &self.lines[line].text[value.clone()],
            _ => "",
        }
    }

    /// The value at a dotted path such as `totem.cluster_name` (the first
    /// section of each name along the path), as corosync reads it.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&str> {
        let mut parts = path.split('.').peekable();
        let mut at = None;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                return at.and_then(|s| self.pair(s, part)).map(|l| self.value(l));
            }
            at = Some(self.sections(at, part).next()?);
        }
        None
    }

    /// `totem.cluster_name`.
    #[must_use]
    pub fn cluster_name(&self) -> Option<&str> {
        self.get("totem.cluster_name")
    }

    /// The number of `node` sections in the `nodelist` section.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.sections(None, "nodelist")
            .next()
            .map_or(0, |nl| self.sections(Some(nl), "node").count())
    }

    /// Whether `quorum.device` exists.
    #[must_use]
    pub fn has_device(&self) -> bool {
        self.sections(None, "quorum")
            .any(|q| self.sections(Some(q), "device").next().is_some())
    }

    /// The file's line ending for new lines.
    fn eol(&self) -> &'static str {
        self.lines
            .iter()
            .map(|l| l.eol)
            .find(|e| !e.is_empty())
            .unwrap_or("\n")
    }

    /// One level of indentation: the file's first indented line inside a
    /// section, else a tab.
    fn indent_unit(&self) -> String {
        self.children(None)
            .find_map(|i| {
                let Kind::Open { close, .. } = self.lines[i].kind else {
                    return None;
                };
                let outer = self.lines[i].indent().len();
                (i + 1..close).find_map(|j| {
                    let l = &self.lines[j];
                    (!matches!(l.kind, Kind::Blank) && l.indent().len() > outer)
                        .then(|| l.indent()[outer..].to_owned())
                })
            })
            .unwrap_or_else(|| "\t".to_owned())
    }

    /// Indentation of the entries of the section opened on `open`.
    fn child_indent(&self, open: usize) -> String {
        let first = self
            .children(Some(open))
            .find(|&i| !matches!(self.lines[i].kind, Kind::Blank | Kind::Comment));
        match first {
            Some(i) => self.lines[i].indent().to_owned(),
            None => format!("{}{}", self.lines[open].indent(), self.indent_unit()),
        }
    }

    fn close_of(&self, open: usize) -> usize {
        match self.lines[open].kind {
            Kind::Open { close, .. } => close,
            _ => open,
        }
    }

    /// Inserts raw lines before line `at`, then re-parses so that every
    /// index is right again. The inserted text is made here, never from
    /// input that could unbalance the file.
    fn insert(&mut self, at: usize, texts: &[String]) -> Result<(), ConfError> {
        let eol = self.eol();
        let new = texts.iter().map(|t| Line {
            text: t.clone(),
            eol,
            kind: Kind::Blank,
        });
        self.lines.splice(at..at, new);
        self.reparse()
    }

    fn remove(&mut self, range: Range<usize>) -> Result<(), ConfError> {
        self.lines.drain(range);
        self.reparse()
    }

    /// Re-parses after an edit. Edits keep the file balanced, so this does
    /// not fail; if it ever did, the edit is refused rather than written.
    fn reparse(&mut self) -> Result<(), ConfError> {
        // A last line without an ending that is no longer last gets one.
        let eol = self.eol();
        let n = self.lines.len();
        for l in self.lines.iter_mut().take(n.saturating_sub(1)) {
            if l.eol.is_empty() {
                l.eol = eol;
            }
        }
        *self = Self::parse_text(&self.to_text())?;
        Ok(())
    }

    /// Raises `totem.config_version` by `by`, or adds it with value `by`.
    fn bump_config_version(&mut self, by: u64) -> Result<u64, ConfError> {
        let totem = self
            .section(None, "totem")?
            .ok_or(ConfError::MissingSection("totem"))?;
        if let Some(line) = self.pair(totem, "config_version") {
            let old = self.value(line);
            let new = old
                .parse::<u64>()
                .ok()
                .filter(|_| old.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|v| v.checked_add(by))
                .ok_or_else(|| ConfError::BadConfigVersion(old.to_owned()))?;
            let Kind::Pair { value, .. } = self.lines[line].kind.clone() else {
                unreachable!("pair() returns pairs")
            };
            self.lines[line].text.replace_range(value, &new.to_string());
            self.reparse()?;
            Ok(new)
        } else {
            let text = format!("{}config_version: {by}", self.child_indent(totem));
            let close = self.close_of(totem);
            self.insert(close, &[text])?;
            Ok(by)
        }
    }
}

impl fmt::Display for CorosyncConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

mod edit;
pub use edit::{
    Algorithm, DeviceSettings, Edit, add_device, raise_config_version, remove_device, valid_host,
};

#[cfg(test)]
mod tests;
