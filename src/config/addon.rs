//! Home Assistant add-on mode: `/data/options.json` → [`Config`].
//!
//! The Supervisor validates the user's options against the `schema` of
//! `addon/config.yaml` and writes them to `/data/options.json`; the image's
//! entrypoint is `qnetd --options /data/options.json`. This module is the
//! serde image of that file ([`Options`], `deny_unknown_fields`) and the
//! mapping onto a [`Config`]. Values go through the same setters as the
//! command line ([`AdvancedSettings::set`](crate::config::AdvancedSettings::set),
//! [`Config::validate`]), so a value is validated once, with one rule.
//!
//! Precedence, lowest first: the add-on defaults of [`base_config`] (the
//! certificate store under `/data`), then the options file, then any
//! command-line flag given after `--options` (e.g. `-l ADDR -p PORT`, which
//! the options do not cover).
//!
//! The lock file and the management socket keep the reference's paths under
//! `/var/run/corosync-qnetd`, so `qnetd tool` and `qnetd healthcheck` (the
//! image's `HEALTHCHECK`) find the daemon inside the container without
//! flags. A `FROM scratch` image has no `/var/run`; the daemon creates the
//! directory, in the container's own layer, which the Supervisor throws
//! away on every start, so no stale file survives a restart.
//!
//! Every error is one line that starts with `options.json:` and names the
//! option, e.g. `options.json: tls: expected one of off, on, required, got
//! "maybe"`; `main` prints it and exits non-zero.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::config::{Config, ConfigError, MqttBroker};
use crate::core::InstanceConfig;
use crate::proto::TlsSupported;

/// Where the Supervisor writes the options.
pub const OPTIONS_FILE: &str = "/data/options.json";
/// Certificate store of the add-on (persistent, part of HA backups).
pub const NSS_DB_DIR: &str = "/data/tls";
/// Lock file of the add-on: the reference's path, created by the daemon.
pub const LOCK_FILE: &str = crate::config::DEFAULT_LOCK_FILE;
/// Management socket of the add-on: the reference's path, where `qnetd tool`
/// and `qnetd healthcheck` look by default.
pub const LOCAL_SOCKET_FILE: &str = crate::config::DEFAULT_LOCAL_SOCKET_FILE;

/// Prefix of every error about the options file.
const PREFIX: &str = "options.json";

/// `log_level`: the Home Assistant add-on levels (bashio's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything, including hex dumps.
    Trace,
    /// Per-message summaries.
    Debug,
    /// Lifecycle and vote changes (the default).
    #[default]
    Info,
    /// Same as `info`: `log` has no notice level.
    Notice,
    /// Warnings and errors.
    Warning,
    /// Errors only.
    Error,
    /// Same as `error`: `log` has no fatal level.
    Fatal,
}

impl LogLevel {
    /// Every level, in the order of the schema.
    pub const ALL: [Self; 7] = [
        Self::Trace,
        Self::Debug,
        Self::Info,
        Self::Notice,
        Self::Warning,
        Self::Error,
        Self::Fatal,
    ];

    /// The name in `options.json`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Fatal => "fatal",
        }
    }

    /// The `log` filter this level stands for.
    #[must_use]
    pub const fn filter(self) -> log::LevelFilter {
        match self {
            Self::Trace => log::LevelFilter::Trace,
            Self::Debug => log::LevelFilter::Debug,
            Self::Info | Self::Notice => log::LevelFilter::Info,
            Self::Warning => log::LevelFilter::Warn,
            Self::Error | Self::Fatal => log::LevelFilter::Error,
        }
    }
}

/// `tls`: the server's TLS mode, in the client-side spelling
/// (`quorum.device.net.tls`), which is also what the add-on UI shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsOption {
    /// No TLS (`-s off`).
    Off,
    /// TLS offered, plain TCP accepted (`-s on`, the reference default).
    On,
    /// TLS required (`-s req`): the add-on default, because only then is
    /// every client authenticated (with `client_cert_required`), and
    /// Proxmox's qdevice uses TLS whenever the server offers it.
    #[default]
    Required,
}

impl TlsOption {
    /// Every value, in the order of the schema.
    pub const ALL: [Self; 3] = [Self::Off, Self::On, Self::Required];

    /// The name in `options.json`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Required => "required",
        }
    }

    /// The protocol value.
    #[must_use]
    pub const fn tls_supported(self) -> TlsSupported {
        match self {
            Self::Off => TlsSupported::Unsupported,
            Self::On => TlsSupported::Supported,
            Self::Required => TlsSupported::Required,
        }
    }
}

/// A closed set of names, deserialized from a JSON string with a message
/// that lists the accepted names.
trait Named: Sized + Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

impl Named for LogLevel {
    const ALL: &'static [Self] = &Self::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for TlsOption {
    const ALL: &'static [Self] = &Self::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// `a, b, c`: the names of `T`.
fn one_of<T: Named>() -> String {
    T::ALL
        .iter()
        .map(|v| v.name())
        .collect::<Vec<_>>()
        .join(", ")
}

struct OneOf<T>(std::marker::PhantomData<T>);

impl<T: Named> de::Visitor<'_> for OneOf<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", one_of::<T>())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        T::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s)
            .ok_or_else(|| E::custom(format_args!("expected one of {}, got {s:?}", one_of::<T>())))
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(OneOf(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for TlsOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(OneOf(std::marker::PhantomData))
    }
}

/// The options of `addon/config.yaml`, as the Supervisor writes them.
///
/// A missing key takes the add-on default (the same as `options:` in
/// `config.yaml`), so a hand-written file may be partial; an unknown key is
/// an error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Log filter.
    pub log_level: LogLevel,
    /// TLS mode.
    pub tls: TlsOption,
    /// Whether TLS clients must present a certificate.
    pub client_cert_required: bool,
    /// Maximum number of clients; 0 = unlimited.
    pub max_clients: i64,
    /// Server default of the ffsplit keep-active-partition tie-breaker.
    pub keep_active_partition_tie_breaker: bool,
    /// Smallest heartbeat interval a client may ask for, in ms.
    pub heartbeat_interval_min: i64,
    /// Largest heartbeat interval a client may ask for, in ms.
    pub heartbeat_interval_max: i64,
    /// Publish Home Assistant entities through the Supervisor's MQTT
    /// service (when a broker add-on provides one).
    pub mqtt: bool,
    /// Home Assistant's MQTT discovery prefix.
    pub mqtt_discovery_prefix: String,
    /// The address the cluster nodes reach this add-on at, for the pairing
    /// command printed in the log; empty: not set.
    pub pairing_address: String,
}

impl Default for Options {
    fn default() -> Self {
        let engine = InstanceConfig::default();
        Self {
            log_level: LogLevel::default(),
            tls: TlsOption::default(),
            client_cert_required: engine.client_cert_required,
            max_clients: i64::try_from(super::DEFAULT_MAX_CLIENTS).unwrap_or(i64::MAX),
            keep_active_partition_tie_breaker: engine.keep_active_partition_tie_breaker,
            heartbeat_interval_min: i64::from(engine.heartbeat_interval_min),
            heartbeat_interval_max: i64::from(engine.heartbeat_interval_max),
            mqtt: true,
            mqtt_discovery_prefix: crate::mqtt::discovery::DEFAULT_DISCOVERY_PREFIX.to_string(),
            pairing_address: String::new(),
        }
    }
}

fn error(message: impl fmt::Display) -> ConfigError {
    ConfigError::new(format!("{PREFIX}: {message}"))
}

impl Options {
    /// Parses the text of an options file. Pure; no defaults of the
    /// environment are read.
    ///
    /// # Errors
    /// Invalid JSON, a value of the wrong type, an unknown key or a name
    /// outside its list: one line naming the option.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        // Two steps, so type errors come without serde_json's line/column
        // noise but with the option's name (serde_path_to_error).
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| error(format_args!("invalid JSON: {e}")))?;
        if !value.is_object() {
            return Err(error("expected a JSON object"));
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                error(e.into_inner())
            } else {
                error(format_args!("{path}: {}", e.into_inner()))
            }
        })
    }

    /// Reads and parses an options file.
    ///
    /// # Errors
    /// The file cannot be read, or as [`Options::from_json_str`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(format_args!("can't read {}: {e}", path.display())))?;
        Self::from_json_str(&text)
    }

    /// Stores the options in `config`, through the same setters as the
    /// command line.
    ///
    /// # Errors
    /// A value out of range, naming the option.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        config.tls = self.tls.tls_supported();
        config.client_cert_required = self.client_cert_required;
        config.max_clients = u64::try_from(self.max_clients)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                error(format_args!(
                    "max_clients: expected 0 (unlimited) to {}, got {}",
                    usize::MAX,
                    self.max_clients
                ))
            })?;
        if matches!(self.log_level, LogLevel::Trace | LogLevel::Debug) {
            config.debug = config.debug.max(1);
        }
        let advanced = [
            (
                "keep_active_partition_tie_breaker",
                if self.keep_active_partition_tie_breaker {
                    "on"
                } else {
                    "off"
                }
                .to_string(),
            ),
            (
                "heartbeat_interval_min",
                self.heartbeat_interval_min.to_string(),
            ),
            (
                "heartbeat_interval_max",
                self.heartbeat_interval_max.to_string(),
            ),
        ];
        for (key, value) in &advanced {
            config.advanced.set(key, value).map_err(error)?;
        }
        if self.mqtt {
            config.mqtt.broker = MqttBroker::Supervisor;
        }
        config
            .mqtt
            .discovery
            .discovery_prefix
            .clone_from(&self.mqtt_discovery_prefix);
        config
            .mqtt
            .discovery
            .validate()
            .map_err(|e| error(format_args!("mqtt_discovery_prefix: {e}")))?;
        let address = self.pairing_address.trim();
        if !address.is_empty()
            && (address.len() > 253
                || !address
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'-')))
        {
            return Err(error(format_args!(
                "pairing_address: expected a host name or IP address, got {:?}",
                self.pairing_address
            )));
        }
        config.auto_pair = Some(super::AutoPair {
            address: (!address.is_empty()).then(|| address.to_owned()),
        });
        config.validate().map_err(error)
    }
}

/// The defaults of the add-on: [`Config::default`] with the certificate
/// store in `/data/tls`, and the status panel on the Ingress port
/// answering only the Supervisor's Ingress proxy (`--http`/`--http-allow`
/// after `--options` override both, e.g. for tests).
#[must_use]
pub fn base_config() -> Config {
    let mut config = Config::default();
    config.advanced.nss_db_dir = PathBuf::from(NSS_DB_DIR);
    config.advanced.lock_file = PathBuf::from(LOCK_FILE);
    config.advanced.local_socket_file = PathBuf::from(LOCAL_SOCKET_FILE);
    config.http = Some((std::net::Ipv4Addr::UNSPECIFIED, crate::panel::INGRESS_PORT).into());
    config.http_allow = Some(crate::panel::INGRESS_PROXY);
    config
}

/// [`base_config`] with the options of `text` applied: what the add-on
/// runs with when no command-line flag is added. Pure.
///
/// # Errors
/// As [`Options::from_json_str`] and [`Options::apply`].
pub fn config_from_json_str(text: &str) -> Result<(Config, LogLevel), ConfigError> {
    let options = Options::from_json_str(text)?;
    let mut config = base_config();
    options.apply(&mut config)?;
    Ok((config, options.log_level))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example shipped with the add-on: the `options:` of
    /// `addon/config.yaml` as the Supervisor writes them.
    const EXAMPLE: &str = include_str!("../../addon/options.example.json");

    fn err(text: &str) -> String {
        config_from_json_str(text).unwrap_err().to_string()
    }

    #[test]
    fn mqtt_options() {
        let (c, _) = config_from_json_str("{}").unwrap();
        assert_eq!(c.mqtt.broker, MqttBroker::Supervisor, "on by default");
        assert_eq!(c.mqtt.discovery.discovery_prefix, "homeassistant");
        let (c, _) =
            config_from_json_str(r#"{"mqtt":false,"mqtt_discovery_prefix":"ha/x"}"#).unwrap();
        assert_eq!(c.mqtt.broker, MqttBroker::Off);
        assert_eq!(c.mqtt.discovery.discovery_prefix, "ha/x");
        assert_eq!(
            err(r#"{"mqtt_discovery_prefix":"a/#"}"#),
            "options.json: mqtt_discovery_prefix: discovery prefix: must not contain +, # or control characters"
        );
        assert!(err(r#"{"mqtt":"yes"}"#).starts_with("options.json: mqtt: "));
    }

    #[test]
    fn shipped_example_parses_and_gives_the_defaults() {
        let options = Options::from_json_str(EXAMPLE).unwrap();
        assert_eq!(options, Options::default());
        let (config, level) = config_from_json_str(EXAMPLE).unwrap();
        assert_eq!(level, LogLevel::Info);
        assert_eq!(config.tls, TlsSupported::Required);
        assert!(config.client_cert_required);
        // The same connection cap as the daemon's command line.
        assert_eq!(config.max_clients, crate::config::DEFAULT_MAX_CLIENTS);
        assert_eq!(config.port, crate::config::DEFAULT_PORT);
        assert_eq!(config.listen_addr, None);
        assert_eq!(config.advanced.nss_db_dir, PathBuf::from("/data/tls"));
        assert_eq!(config.advanced.lock_file, PathBuf::from(LOCK_FILE));
        assert_eq!(
            config.advanced.local_socket_file,
            PathBuf::from(LOCAL_SOCKET_FILE)
        );
        assert_eq!(
            config.advanced.heartbeat_interval_min,
            crate::core::settings::DEFAULT_HEARTBEAT_INTERVAL_MIN
        );
    }

    #[test]
    fn empty_object_is_all_defaults() {
        assert_eq!(Options::from_json_str("{}").unwrap(), Options::default());
    }

    #[test]
    fn every_option_reaches_the_config() {
        let (config, level) = config_from_json_str(
            r#"{"log_level":"debug","tls":"required","client_cert_required":false,
                "max_clients":12,"keep_active_partition_tie_breaker":true,
                "heartbeat_interval_min":500,"heartbeat_interval_max":60000}"#,
        )
        .unwrap();
        assert_eq!(level, LogLevel::Debug);
        assert_eq!(config.debug, 1);
        assert_eq!(config.tls, TlsSupported::Required);
        assert!(!config.client_cert_required);
        assert_eq!(config.max_clients, 12);
        assert!(config.advanced.keep_active_partition_tie_breaker);
        assert_eq!(config.advanced.heartbeat_interval_min, 500);
        assert_eq!(config.advanced.heartbeat_interval_max, 60_000);
        let (config, _) = config_from_json_str(r#"{"tls":"off"}"#).unwrap();
        assert_eq!(config.tls, TlsSupported::Unsupported);
        assert_eq!(config.auto_pair, Some(crate::config::AutoPair::default()));
        let (config, _) = config_from_json_str(r#"{"pairing_address":" 192.0.2.7 "}"#).unwrap();
        assert_eq!(
            config.auto_pair.and_then(|a| a.address).as_deref(),
            Some("192.0.2.7")
        );
        let e = config_from_json_str(r#"{"pairing_address":"a b;rm"}"#).unwrap_err();
        assert!(e.to_string().contains("pairing_address"), "{e}");
    }

    #[test]
    fn log_levels_map_to_filters() {
        let expected = [
            ("trace", log::LevelFilter::Trace),
            ("debug", log::LevelFilter::Debug),
            ("info", log::LevelFilter::Info),
            ("notice", log::LevelFilter::Info),
            ("warning", log::LevelFilter::Warn),
            ("error", log::LevelFilter::Error),
            ("fatal", log::LevelFilter::Error),
        ];
        assert_eq!(expected.len(), LogLevel::ALL.len());
        for (name, filter) in expected {
            let o = Options::from_json_str(&format!(r#"{{"log_level":"{name}"}}"#)).unwrap();
            assert_eq!(o.log_level.as_str(), name);
            assert_eq!(o.log_level.filter(), filter, "{name}");
        }
    }

    #[test]
    fn bad_values_give_one_line_naming_the_option() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"tls":"maybe"}"#,
                r#"options.json: tls: expected one of off, on, required, got "maybe""#,
            ),
            (
                r#"{"tls":"req"}"#,
                r#"options.json: tls: expected one of off, on, required, got "req""#,
            ),
            (
                r#"{"log_level":"verbose"}"#,
                r#"options.json: log_level: expected one of trace, debug, info, notice, warning, error, fatal, got "verbose""#,
            ),
            (
                r#"{"tls":true}"#,
                "options.json: tls: invalid type: boolean `true`, expected one of off, on, required",
            ),
            (
                r#"{"client_cert_required":"yes"}"#,
                r#"options.json: client_cert_required: invalid type: string "yes", expected a boolean"#,
            ),
            (
                r#"{"max_clients":1.5}"#,
                "options.json: max_clients: invalid type: floating point `1.5`, expected i64",
            ),
            (
                r#"{"max_clients":-1}"#,
                "options.json: max_clients: expected 0 (unlimited) to ",
            ),
            (
                r#"{"heartbeat_interval_min":0}"#,
                "options.json: Invalid value '0' for option 'heartbeat_interval_min'",
            ),
            (
                r#"{"heartbeat_interval_max":99999999999}"#,
                "options.json: Invalid value '99999999999' for option 'heartbeat_interval_max'",
            ),
            (
                r#"{"heartbeat_interval_min":5000,"heartbeat_interval_max":4000}"#,
                "options.json: heartbeat_interval_min (5000) is larger than heartbeat_interval_max (4000)",
            ),
            (
                r#"{"tls":"on","port":5404}"#,
                "options.json: port: unknown field `port`, expected one of `log_level`, `tls`",
            ),
            ("[]", "options.json: expected a JSON object"),
            (
                "{",
                "options.json: invalid JSON: EOF while parsing an object",
            ),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.starts_with(want), "{text}: got {got:?}, want {want:?}");
            assert!(!got.contains('\n'), "{text}: more than one line: {got:?}");
        }
    }

    #[test]
    fn max_clients_beyond_usize_is_refused_on_32_bit() {
        let big = r#"{"max_clients":5000000000}"#;
        if usize::BITS == 32 {
            assert!(err(big).starts_with("options.json: max_clients: expected 0 (unlimited) to "));
        } else {
            assert_eq!(
                u64::try_from(config_from_json_str(big).unwrap().0.max_clients),
                Ok(5_000_000_000)
            );
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Options::load(Path::new("/nonexistent/options.json")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("options.json: can't read /nonexistent/options.json: "),
            "{e}"
        );
    }
}
