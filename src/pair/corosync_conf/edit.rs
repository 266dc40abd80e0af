//! The edits: the `quorum.device` block in ([`add_device`]) and out
//! ([`remove_device`]), and a plain version raise ([`raise_config_version`]),
//! each on the parsed document, changing only the lines it must.

use super::{ConfError, CorosyncConf, DEFAULT_PORT, REMOVED_QUORUM_KEYS};

/// The vote algorithm the device block names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Even node count: `ffsplit`, `votes: 1`.
    Ffsplit,
    /// Odd node count: `lms`.
    Lms,
}

impl Algorithm {
    /// The algorithm for `nodes` nodes, as pvecm chooses it.
    #[must_use]
    pub fn for_nodes(nodes: usize) -> Self {
        if nodes.is_multiple_of(2) {
            Self::Ffsplit
        } else {
            Self::Lms
        }
    }

    /// The name in corosync.conf.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ffsplit => "ffsplit",
            Self::Lms => "lms",
        }
    }
}

/// Where the nodes reach qnetd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSettings<'a> {
    /// Host name or IP address (IPv6 without brackets).
    pub host: &'a str,
    /// TCP port; written only when not [`DEFAULT_PORT`].
    pub port: u16,
    /// Replace an existing `quorum.device`.
    pub force: bool,
}

/// An edited file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The new file.
    pub text: String,
    /// One line per removed or replaced setting.
    pub warnings: Vec<String>,
    /// Nodes in the nodelist.
    pub nodes: usize,
    /// The new `totem.config_version`.
    pub config_version: u64,
}

/// Whether `host` can be written as `quorum.device.net.host`: 1 to 253
/// characters `A-Z a-z 0-9 . : - _ %`, not starting with `-`.
#[must_use]
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'-' | b'_' | b'%'))
}

fn quorum_section(conf: &CorosyncConf) -> Result<usize, ConfError> {
    let q = conf
        .section(None, "quorum")?
        .ok_or(ConfError::MissingSection("quorum"))?;
    match conf.pair(q, "provider").map(|l| conf.value(l)) {
        Some("corosync_votequorum") => Ok(q),
        _ => Err(ConfError::NotVotequorum),
    }
}

/// Adds the `quorum.device` block; see the module documentation.
///
/// # Errors
///
/// Parse errors, [`ConfError::BadHost`], [`ConfError::BadPort`],
/// [`ConfError::MissingSection`], [`ConfError::Duplicate`],
/// [`ConfError::NotVotequorum`], [`ConfError::NoNodes`],
/// [`ConfError::AlreadyConfigured`], [`ConfError::BadConfigVersion`].
pub fn add_device(input: &[u8], settings: DeviceSettings<'_>) -> Result<Edit, ConfError> {
    if !valid_host(settings.host) {
        return Err(ConfError::BadHost(settings.host.to_owned()));
    }
    if settings.port == 0 {
        return Err(ConfError::BadPort);
    }
    let mut conf = CorosyncConf::parse(input)?;
    conf.section(None, "nodelist")?
        .ok_or(ConfError::MissingSection("nodelist"))?;
    conf.section(None, "totem")?
        .ok_or(ConfError::MissingSection("totem"))?;
    let nodes = conf.node_count();
    if nodes == 0 {
        return Err(ConfError::NoNodes);
    }
    let mut warnings = Vec::new();
    let q = quorum_section(&conf)?;
    if let Some(dev) = conf.section(Some(q), "device")? {
        if !settings.force {
            return Err(ConfError::AlreadyConfigured);
        }
        let host = conf.get("quorum.device.net.host").unwrap_or("?").to_owned();
        conf.remove(dev..conf.close_of(dev) + 1)?;
        warnings.push(format!(
            "replaced the quorum device that used host {host} (--force)"
        ));
    }
    for (key, why) in REMOVED_QUORUM_KEYS {
        let q = quorum_section(&conf)?;
        while let Some(line) = conf.pair(q, key) {
            warnings.push(format!(
                "removed '{key}: {}' from the quorum section: {why}",
                conf.value(line).escape_debug()
            ));
            conf.remove(line..line + 1)?;
        }
    }
    let q = quorum_section(&conf)?;
    let algorithm = Algorithm::for_nodes(nodes);
    let i1 = conf.child_indent(q);
    let unit = conf.indent_unit();
    let (i2, i3) = (format!("{i1}{unit}"), format!("{i1}{unit}{unit}"));
    let mut block = vec![format!("{i1}device {{"), format!("{i2}model: net")];
    if algorithm == Algorithm::Ffsplit {
        block.push(format!("{i2}votes: 1"));
    }
    block.push(format!("{i2}net {{"));
    block.push(format!("{i3}tls: on"));
    block.push(format!("{i3}host: {}", settings.host));
    if settings.port != DEFAULT_PORT {
        block.push(format!("{i3}port: {}", settings.port));
    }
    block.push(format!("{i3}algorithm: {}", algorithm.as_str()));
    block.push(format!("{i2}}}"));
    block.push(format!("{i1}}}"));
    let close = conf.close_of(q);
    conf.insert(close, &block)?;
    let config_version = conf.bump_config_version(1)?;
    Ok(Edit {
        text: conf.to_text(),
        warnings,
        nodes,
        config_version,
    })
}

/// Removes `quorum.device` and raises `totem.config_version`: the inverse
/// of [`add_device`] for the device block (removed options stay removed).
///
/// # Errors
///
/// Parse errors, [`ConfError::NoDevice`], [`ConfError::Duplicate`],
/// [`ConfError::MissingSection`], [`ConfError::BadConfigVersion`].
pub fn remove_device(input: &[u8]) -> Result<Edit, ConfError> {
    let mut conf = CorosyncConf::parse(input)?;
    let q = conf.section(None, "quorum")?.ok_or(ConfError::NoDevice)?;
    let dev = conf
        .section(Some(q), "device")?
        .ok_or(ConfError::NoDevice)?;
    conf.remove(dev..conf.close_of(dev) + 1)?;
    let config_version = conf.bump_config_version(1)?;
    Ok(Edit {
        text: conf.to_text(),
        warnings: Vec::new(),
        nodes: conf.node_count(),
        config_version,
    })
}

/// `input` with `totem.config_version` raised by `by` (added as `by` when
/// missing), nothing else changed. With `by` = 2 on the file sent to
/// [`add_device`], this is the undo file: the original settings, with a
/// version above the paired file's.
///
/// # Errors
///
/// Parse errors, [`ConfError::MissingSection`], [`ConfError::Duplicate`],
/// [`ConfError::BadConfigVersion`].
pub fn raise_config_version(input: &[u8], by: u64) -> Result<Edit, ConfError> {
    let mut conf = CorosyncConf::parse(input)?;
    let config_version = conf.bump_config_version(by)?;
    Ok(Edit {
        text: conf.to_text(),
        warnings: Vec::new(),
        nodes: conf.node_count(),
        config_version,
    })
}
