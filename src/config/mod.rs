//! Daemon configuration: the validated settings the server runs with.
//!
//! ```text
//!   mod.rs    the model: Config, AdvancedSettings (-S), defaults, setters
//!   cli.rs    the corosync-qnetd compatible command line  → Config
//!   addon.rs  the Home Assistant add-on options file       → Config
//! ```
//!
//! Both front ends go through the same setters here, so a value is
//! validated once, with the reference's rules and messages
//! (`qdevices/qnetd-advanced-settings.c`, `qdevices/corosync-qnetd.c`).
//! The engine's part ([`InstanceConfig`]) and its defaults are the
//! engine's; this model takes them from there.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::core::InstanceConfig;
use crate::core::settings::{MIN_CLIENT_MSG_SIZE, MIN_CLIENT_SEND_BUFFERS};
use crate::mqtt::discovery::DiscoveryConfig;
use crate::mqtt::url::BrokerSettings;
use crate::proto::TlsSupported;

pub mod addon;
mod auth;
pub mod cli;

/// Default TCP port (`QNETD_DEFAULT_HOST_PORT`).
pub const DEFAULT_PORT: u16 = 5403;
/// Default listen backlog. The reference uses 10
/// (`QNETD_DEFAULT_LISTEN_BACKLOG`), which drops connections when many
/// nodes reconnect at once (after a qnetd restart, say); the kernel caps
/// this value at `net.core.somaxconn`.
pub const DEFAULT_LISTEN_BACKLOG: i32 = 1024;
/// Default lock file (`QNETD_DEFAULT_LOCK_FILE`).
pub const DEFAULT_LOCK_FILE: &str = "/var/run/corosync-qnetd/corosync-qnetd.pid";
/// Default management socket (`QNETD_DEFAULT_LOCAL_SOCKET_FILE`).
pub const DEFAULT_LOCAL_SOCKET_FILE: &str = "/var/run/corosync-qnetd/corosync-qnetd.sock";
/// Default certificate nickname (`QNETD_DEFAULT_CERT_NICKNAME`).
pub const DEFAULT_CERT_NICKNAME: &str = "QNetd Cert";
/// Default management socket backlog.
pub const DEFAULT_LOCAL_SOCKET_BACKLOG: i32 = 10;
/// Default number of simultaneous management connections.
pub const DEFAULT_IPC_MAX_CLIENTS: usize = 10;
/// Default largest management request.
pub const DEFAULT_IPC_MAX_RECEIVE_SIZE: usize = 4 * 1024;
/// Default largest management reply.
pub const DEFAULT_IPC_MAX_SEND_SIZE: usize = 10 * 1024 * 1024;
/// Smallest accepted `ipc_max_receive_size` / `ipc_max_send_size`.
pub const MIN_IPC_RECEIVE_SEND_SIZE: usize = 1024;
/// Default `-m`. The reference's 0 (unlimited) lets a flood of connections
/// take every file descriptor and as much memory as the clients like; 1000
/// stays below the common soft limit of 1024 descriptors with room for the
/// listener, the poll, the signals, the lock file and the management
/// connections. `-m 0` still means unlimited.
pub const DEFAULT_MAX_CLIENTS: usize = 1000;
/// Default `max_preinit_clients_per_addr`: connections from one source
/// address that have not finished INIT (a node has one connection; a few
/// nodes behind one NAT address reconnect at once after a restart).
pub const DEFAULT_MAX_PREINIT_CLIENTS_PER_ADDR: usize = 16;
/// Default `init_timeout` in ms: time from accept to a successful INIT. A
/// real qdevice needs well under a second (PREINIT, STARTTLS, handshake,
/// INIT); the reference waits the pre-INIT dead-peer timeout (180 s).
pub const DEFAULT_INIT_TIMEOUT: u32 = 30_000;
/// Allowed range of `dpd_interval_coefficient`.
pub const DPD_INTERVAL_COEFFICIENT_RANGE: (f64, f64) = (1.0, 1000.0);

/// A configuration error: one line naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// An error with the given text.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Which IP version the listener uses (`-4`, `-6`, or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpVersion {
    /// IPv6 wildcard, which also accepts IPv4 (v4-mapped).
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// The advanced settings of `-S key=value` (`struct qnetd_advanced_settings`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdvancedSettings {
    /// TCP listen backlog.
    pub listen_backlog: i32,
    /// Messages queued per client before it is disconnected.
    pub max_client_send_buffers: usize,
    /// Largest message built for a client, header included.
    pub max_client_send_size: usize,
    /// Largest message accepted from a client, header included.
    pub max_client_receive_size: usize,
    /// Directory of the certificate store.
    pub nss_db_dir: PathBuf,
    /// Name of the server certificate (kept for compatibility; the store
    /// holds one server certificate).
    pub cert_nickname: String,
    /// Smallest heartbeat interval a client may ask for, in ms.
    pub heartbeat_interval_min: u32,
    /// Largest heartbeat interval a client may ask for, in ms.
    pub heartbeat_interval_max: u32,
    /// Whether silent clients are disconnected.
    pub dpd_enabled: bool,
    /// DPD timeout as a multiple of the client's heartbeat.
    pub dpd_interval_coefficient: f64,
    /// Lock file holding our PID.
    pub lock_file: PathBuf,
    /// Management socket path.
    pub local_socket_file: PathBuf,
    /// Management socket backlog.
    pub local_socket_backlog: i32,
    /// Simultaneous management connections (0 = unlimited).
    pub ipc_max_clients: usize,
    /// Largest management request line.
    pub ipc_max_receive_size: usize,
    /// Largest management reply.
    pub ipc_max_send_size: usize,
    /// Server default for the ffsplit keep-active-partition tie-breaker.
    pub keep_active_partition_tie_breaker: bool,
    /// Connections from one address that have not finished INIT (0 =
    /// unlimited); more are closed at once. Not in the reference.
    pub max_preinit_clients_per_addr: usize,
    /// Milliseconds from accept to a successful INIT before the connection
    /// is closed. Not in the reference.
    pub init_timeout: u32,
}

impl Default for AdvancedSettings {
    fn default() -> Self {
        let engine = InstanceConfig::default();
        Self {
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            max_client_send_buffers: engine.max_client_send_buffers,
            max_client_send_size: engine.max_client_send_size,
            max_client_receive_size: engine.max_client_receive_size,
            nss_db_dir: PathBuf::from(crate::cert::store::DEFAULT_DIR),
            cert_nickname: DEFAULT_CERT_NICKNAME.to_string(),
            heartbeat_interval_min: engine.heartbeat_interval_min,
            heartbeat_interval_max: engine.heartbeat_interval_max,
            dpd_enabled: engine.dpd_enabled,
            dpd_interval_coefficient: engine.dpd_interval_coefficient,
            lock_file: PathBuf::from(DEFAULT_LOCK_FILE),
            local_socket_file: PathBuf::from(DEFAULT_LOCAL_SOCKET_FILE),
            local_socket_backlog: DEFAULT_LOCAL_SOCKET_BACKLOG,
            ipc_max_clients: DEFAULT_IPC_MAX_CLIENTS,
            ipc_max_receive_size: DEFAULT_IPC_MAX_RECEIVE_SIZE,
            ipc_max_send_size: DEFAULT_IPC_MAX_SEND_SIZE,
            keep_active_partition_tie_breaker: engine.keep_active_partition_tie_breaker,
            max_preinit_clients_per_addr: DEFAULT_MAX_PREINIT_CLIENTS_PER_ADDR,
            init_timeout: DEFAULT_INIT_TIMEOUT,
        }
    }
}

/// Outcome of [`AdvancedSettings::set`] for a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The value was stored.
    Stored,
    /// The key is deprecated and ignored (the caller warns).
    Deprecated,
}

/// Parses an integer like C `strtoll` in base 10 with nothing left over,
/// then range-checks it (`utils_strtonum`).
#[must_use]
pub fn parse_int(s: &str, min: i128, max: i128) -> Option<i128> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i128 = t.parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

/// Parses a real number like C `strtod` with nothing left over, then
/// range-checks it (`utils_strtod`). NaN is refused.
#[must_use]
pub fn parse_real(s: &str, min: f64, max: f64) -> Option<f64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let v: f64 = t.parse().ok()?;
    (!v.is_nan() && v >= min && v <= max).then_some(v)
}

/// Parses on/yes/1 and off/no/0, case-insensitively (`utils_parse_bool_str`).
#[must_use]
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "yes" | "1" => Some(true),
        "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn int_in<T: TryFrom<i128>>(
    key: &str,
    value: &str,
    min: i128,
    max: i128,
) -> Result<T, ConfigError> {
    parse_int(value, min, max)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| invalid_value(key, value))
}

fn invalid_value(key: &str, value: &str) -> ConfigError {
    ConfigError::new(format!("Invalid value '{value}' for option '{key}'"))
}

impl AdvancedSettings {
    /// Sets one advanced setting by name (case-insensitive), with the
    /// reference's validation.
    ///
    /// # Errors
    /// `Unknown option 'KEY'` or `Invalid value 'VALUE' for option 'KEY'`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<SetOutcome, ConfigError> {
        let size_max = i128::from(i64::MAX);
        match key.to_ascii_lowercase().as_str() {
            "listen_backlog" => self.listen_backlog = int_in(key, value, 1, i128::from(i32::MAX))?,
            "max_client_send_buffers" => {
                self.max_client_send_buffers =
                    int_in(key, value, MIN_CLIENT_SEND_BUFFERS as i128, size_max)?;
            }
            "max_client_send_size" => {
                self.max_client_send_size =
                    int_in(key, value, MIN_CLIENT_MSG_SIZE as i128, size_max)?;
            }
            "max_client_receive_size" => {
                self.max_client_receive_size =
                    int_in(key, value, MIN_CLIENT_MSG_SIZE as i128, size_max)?;
            }
            "nss_db_dir" => self.nss_db_dir = PathBuf::from(value),
            "cert_nickname" => self.cert_nickname = value.to_string(),
            "heartbeat_interval_min" => {
                self.heartbeat_interval_min = int_in(key, value, 1, i128::from(u32::MAX))?;
            }
            "heartbeat_interval_max" => {
                self.heartbeat_interval_max = int_in(key, value, 1, i128::from(u32::MAX))?;
            }
            "dpd_enabled" => {
                self.dpd_enabled = parse_bool(value).ok_or_else(|| invalid_value(key, value))?;
            }
            "dpd_interval" => return Ok(SetOutcome::Deprecated),
            "dpd_interval_coefficient" => {
                let (min, max) = DPD_INTERVAL_COEFFICIENT_RANGE;
                self.dpd_interval_coefficient =
                    parse_real(value, min, max).ok_or_else(|| invalid_value(key, value))?;
            }
            "lock_file" => self.lock_file = PathBuf::from(value),
            "local_socket_file" => self.local_socket_file = PathBuf::from(value),
            "local_socket_backlog" => {
                self.local_socket_backlog = int_in(key, value, 1, i128::from(i32::MAX))?;
            }
            "ipc_max_clients" => self.ipc_max_clients = int_in(key, value, 0, size_max)?,
            "ipc_max_receive_size" => {
                self.ipc_max_receive_size =
                    int_in(key, value, MIN_IPC_RECEIVE_SEND_SIZE as i128, size_max)?;
            }
            "ipc_max_send_size" => {
                self.ipc_max_send_size =
                    int_in(key, value, MIN_IPC_RECEIVE_SEND_SIZE as i128, size_max)?;
            }
            "keep_active_partition_tie_breaker" => {
                self.keep_active_partition_tie_breaker =
                    parse_bool(value).ok_or_else(|| invalid_value(key, value))?;
            }
            "max_preinit_clients_per_addr" => {
                self.max_preinit_clients_per_addr = int_in(key, value, 0, size_max)?;
            }
            "init_timeout" => {
                self.init_timeout = int_in(key, value, 1, i128::from(u32::MAX))?;
            }
            _ => return Err(ConfigError::new(format!("Unknown option '{key}'"))),
        }
        Ok(SetOutcome::Stored)
    }

    /// Applies a `-S` argument: `key=value` pairs separated by commas, the
    /// value running to the next comma; parsing stops at an empty key
    /// (`dynar_getopt_lex`). Returns the deprecated keys that were ignored.
    ///
    /// # Errors
    /// The first invalid key or value.
    pub fn apply_list(&mut self, list: &str) -> Result<Vec<String>, ConfigError> {
        let mut deprecated = Vec::new();
        for item in list.split(',') {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            if key.is_empty() {
                break;
            }
            if self.set(key, value)? == SetOutcome::Deprecated {
                deprecated.push(key.to_string());
            }
        }
        Ok(deprecated)
    }
}

/// Everything the daemon needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listen address (`-l`): a host name or IP; `None` is the wildcard.
    pub listen_addr: Option<String>,
    /// TCP port (`-p`).
    pub port: u16,
    /// IP version (`-4` / `-6`).
    pub ip_version: IpVersion,
    /// TLS mode (`-s`).
    pub tls: TlsSupported,
    /// Whether TLS clients must present a certificate (`-c`).
    pub client_cert_required: bool,
    /// Maximum number of clients, 0 = unlimited (`-m`); at the limit a new
    /// connection closes the oldest one that has not finished INIT.
    pub max_clients: usize,
    /// Debug logging (`-d`, counted).
    pub debug: u8,
    /// `-S` settings.
    pub advanced: AdvancedSettings,
    /// Home Assistant over MQTT (off by default).
    pub mqtt: MqttConfig,
    /// The status panel's HTTP listener (`--http`, the add-on's Ingress
    /// port); `None` = off.
    pub http: Option<SocketAddr>,
    /// The only source the panel answers (`--http-allow`; the Ingress
    /// proxy in the add-on); `None` = any.
    pub http_allow: Option<IpAddr>,
    /// Time a panel client has to send its request and take the answer,
    /// ms (`--http-timeout`).
    pub http_request_timeout_ms: u64,
    /// Add-on mode: open a pairing window at start when no cluster is
    /// paired yet.
    pub auto_pair: Option<AutoPair>,
}

/// The pairing window the add-on opens by itself at start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoPair {
    /// The address the nodes reach the server at (add-on option
    /// `pairing_address`); `None`: unknown, the log says how to set it.
    pub address: Option<String>,
}

/// Where the MQTT broker comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MqttBroker {
    /// No MQTT (the default outside the add-on).
    #[default]
    Off,
    /// `--mqtt URL`.
    Url(BrokerSettings),
    /// Add-on mode: ask the Supervisor's services API at start
    /// (`http://supervisor`, or `QNETD_SUPERVISOR_URL` for tests).
    Supervisor,
}

/// The MQTT settings (`--mqtt*` options, or the add-on's `mqtt*` options).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MqttConfig {
    /// The broker, if any.
    pub broker: MqttBroker,
    /// Topic prefixes and the removal delay.
    pub discovery: DiscoveryConfig,
    /// CA certificates (PEM) trusted for `mqtts://`; `None`: the system's
    /// bundle, [`DEFAULT_CA_FILE`].
    pub ca_file: Option<PathBuf>,
}

/// The system CA bundle used for `mqtts://` (Debian's path).
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl Default for Config {
    fn default() -> Self {
        let engine = InstanceConfig::default();
        Self {
            listen_addr: None,
            port: DEFAULT_PORT,
            ip_version: IpVersion::Any,
            tls: engine.tls,
            client_cert_required: engine.client_cert_required,
            max_clients: DEFAULT_MAX_CLIENTS,
            debug: 0,
            advanced: AdvancedSettings::default(),
            mqtt: MqttConfig::default(),
            http: None,
            http_allow: None,
            http_request_timeout_ms: crate::panel::DEFAULT_REQUEST_TIMEOUT_MS,
            auto_pair: None,
        }
    }
}

impl From<&Config> for InstanceConfig {
    /// The engine's part of the configuration.
    fn from(c: &Config) -> Self {
        let a = &c.advanced;
        Self {
            tls: c.tls,
            client_cert_required: c.client_cert_required,
            max_clients: c.max_clients,
            max_client_send_buffers: a.max_client_send_buffers,
            max_client_send_size: a.max_client_send_size,
            max_client_receive_size: a.max_client_receive_size,
            heartbeat_interval_min: a.heartbeat_interval_min,
            heartbeat_interval_max: a.heartbeat_interval_max,
            dpd_enabled: a.dpd_enabled,
            dpd_interval_coefficient: a.dpd_interval_coefficient,
            keep_active_partition_tie_breaker: a.keep_active_partition_tie_breaker,
        }
    }
}

impl Config {
    /// Parses the `-s` value: on, off or req, case-insensitively. The
    /// reference refuses `required` here (only the client side takes it).
    ///
    /// # Errors
    /// `tls must be one of on, off, req`.
    pub fn parse_tls(value: &str) -> Result<TlsSupported, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "on" => Ok(TlsSupported::Supported),
            "off" => Ok(TlsSupported::Unsupported),
            "req" => Ok(TlsSupported::Required),
            _ => Err(ConfigError::new("tls must be one of on, off, req")),
        }
    }

    /// Checks settings that only make sense together.
    ///
    /// # Errors
    /// A heartbeat range that is empty, or a receive size below what the
    /// 3.0.3 client requires of a server.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.advanced;
        if a.heartbeat_interval_min > a.heartbeat_interval_max {
            return Err(ConfigError::new(format!(
                "heartbeat_interval_min ({}) is larger than heartbeat_interval_max ({})",
                a.heartbeat_interval_min, a.heartbeat_interval_max
            )));
        }
        if a.max_client_receive_size > u32::MAX as usize
            || a.max_client_send_size > u32::MAX as usize
        {
            return Err(ConfigError::new(
                "max_client_receive_size and max_client_send_size must fit in 32 bits",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_strtoll_rules() {
        assert_eq!(parse_int("5403", 1, 65535), Some(5403));
        assert_eq!(parse_int(" +12", 1, 65535), Some(12));
        assert_eq!(parse_int("0", 1, 65535), None);
        assert_eq!(parse_int("65536", 1, 65535), None);
        assert_eq!(parse_int("12x", 1, 65535), None);
        assert_eq!(parse_int("", 1, 65535), None);
        assert_eq!(parse_int("-", 0, 10), None);
    }

    #[test]
    fn advanced_settings_messages() {
        let mut a = AdvancedSettings::default();
        assert_eq!(
            a.apply_list("listen_backlog=50,DPD_ENABLED=off"),
            Ok(vec![])
        );
        assert_eq!(a.listen_backlog, 50);
        assert!(!a.dpd_enabled);
        assert_eq!(
            a.apply_list("dpd_interval=5"),
            Ok(vec!["dpd_interval".to_string()])
        );
        assert_eq!(
            a.apply_list("bogus=1").unwrap_err().to_string(),
            "Unknown option 'bogus'"
        );
        assert_eq!(
            a.apply_list("max_client_send_buffers=1")
                .unwrap_err()
                .to_string(),
            "Invalid value '1' for option 'max_client_send_buffers'"
        );
        assert_eq!(
            a.apply_list("dpd_interval_coefficient=0.5")
                .unwrap_err()
                .to_string(),
            "Invalid value '0.5' for option 'dpd_interval_coefficient'"
        );
        a.apply_list("dpd_interval_coefficient=2.5,lock_file=/tmp/x=y")
            .unwrap();
        assert!((a.dpd_interval_coefficient - 2.5).abs() < f64::EPSILON);
        assert_eq!(a.lock_file, PathBuf::from("/tmp/x=y"));
        // Parsing stops at an empty key.
        a.apply_list(",listen_backlog=7").unwrap();
        assert_eq!(a.listen_backlog, 50);
    }

    #[test]
    fn admission_settings() {
        let mut a = AdvancedSettings::default();
        assert_eq!(a.max_preinit_clients_per_addr, 16);
        assert_eq!(a.init_timeout, 30_000);
        a.apply_list("max_preinit_clients_per_addr=0,init_timeout=250")
            .unwrap();
        assert_eq!((a.max_preinit_clients_per_addr, a.init_timeout), (0, 250));
        for (list, key) in [
            ("init_timeout=0", "init_timeout"),
            ("init_timeout=5s", "init_timeout"),
            (
                "max_preinit_clients_per_addr=-1",
                "max_preinit_clients_per_addr",
            ),
        ] {
            let value = list.split_once('=').unwrap().1;
            assert_eq!(
                a.apply_list(list).unwrap_err().to_string(),
                format!("Invalid value '{value}' for option '{key}'")
            );
        }
        assert_eq!(Config::default().max_clients, DEFAULT_MAX_CLIENTS);
    }

    #[test]
    fn tls_values() {
        assert_eq!(Config::parse_tls("REQ"), Ok(TlsSupported::Required));
        assert!(Config::parse_tls("required").is_err());
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("2"), None);
    }
}
