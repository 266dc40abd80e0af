//! The daemon's command line, compatible with `corosync-qnetd`
//! (`qdevices/corosync-qnetd.c: cli_parse`): the same options, defaults,
//! validation messages and exit codes.
//!
//! ```text
//! qnetd [-46dfhv] [-l listen_addr] [-p listen_port] [-s tls]
//!       [-c client_cert_required] [-m max_clients] [-S option=value[,option2=value2,...]]
//!       [--options FILE]
//!       [--mqtt mqtt[s]://[user[:pass]@]host[:port]] [--mqtt-topic-prefix P]
//!       [--mqtt-discovery-prefix P] [--mqtt-remove-after SECONDS]
//!       [--mqtt-ca-file FILE]
//!       [--http [ADDR:]PORT] [--http-allow ADDR] [--http-timeout MS]
//! ```
//!
//! The `--http*` options are ours (the status panel, [`crate::panel`]):
//! `--http PORT` binds loopback, `--http ADDR:PORT` (IPv6 as `[::1]:PORT`)
//! that address; `--http-allow ADDR` answers only that source.
//!
//! `-h` and `-v` exit 1 as the reference; `--help` and `--version` exit 0,
//! as in every `qnetd` program ([`crate::cmd`]).
//! The `--mqtt*` options are ours (Home Assistant over MQTT, off unless
//! `--mqtt` is given); a bad value is one line naming the option.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::{Config, ConfigError, IpVersion, MqttBroker, parse_bool, parse_int};
use crate::mqtt::url::parse_url;
use crate::proto::{DecisionAlgorithm, MsgType, SUPPORTED_DECISION_ALGORITHMS, SUPPORTED_MESSAGES};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the server.
    Run {
        /// Settings from the options.
        config: Box<Config>,
        /// `--options FILE`: Home Assistant options to apply on top.
        options_file: Option<PathBuf>,
        /// Warnings to log once logging is up (deprecated `-S` keys).
        warnings: Vec<String>,
    },
    /// Print the [`usage`] to stdout and exit with `code`: 1 for `-h` (as
    /// the reference), 0 for `--help`.
    Usage {
        /// The exit status.
        code: u8,
    },
    /// Print the [`version_text`] to stdout and exit with `code`: 1 for
    /// `-v` (as the reference), 0 for `--version`.
    Version {
        /// The exit status.
        code: u8,
    },
}

/// The usage text, as `corosync-qnetd -h` prints it, with our name.
#[must_use]
pub fn usage(program: &str) -> String {
    format!(
        "usage: {program} [-46dfhv] [-l listen_addr] [-p listen_port] [-s tls]\n{:14}[-c client_cert_required] [-m max_clients] [-S option=value[,option2=value2,...]]\n{:14}[--options FILE] [--mqtt URL] [--mqtt-topic-prefix P] [--mqtt-discovery-prefix P]\n{:14}[--mqtt-remove-after SECONDS] [--mqtt-ca-file FILE]\n{:14}[--http [ADDR:]PORT] [--http-allow ADDR] [--http-timeout MS]\n",
        "", "", "", ""
    )
}

/// The `-v` text: our version, then the same capability lines as the
/// reference's `display_version`.
#[must_use]
pub fn version_text() -> String {
    let mut s = format!(
        "qnetd version '{}' (Corosync Qdevice Network Daemon protocol {})\n\nSupported algorithms: ",
        env!("CARGO_PKG_VERSION"),
        crate::REFERENCE_VERSION
    );
    for (i, a) in SUPPORTED_DECISION_ALGORITHMS.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{} ({a})", DecisionAlgorithm::from(*a).as_str());
    }
    s.push_str("\nSupported message types: ");
    for (i, t) in SUPPORTED_MESSAGES.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}{} ({t})", MsgType::from(*t).as_str());
    }
    s.push('\n');
    s
}

fn value(parser: &mut lexopt::Parser) -> Result<String, ConfigError> {
    let v = parser
        .value()
        .map_err(|e| ConfigError::new(e.to_string()))?;
    v.into_string()
        .map_err(|v| ConfigError::new(format!("invalid UTF-8 in argument {}", v.to_string_lossy())))
}

/// Parses the daemon's arguments (without the program name), starting
/// from [`Config::default`].
///
/// # Errors
/// One line in the reference's words, e.g. `host port must be in range
/// 1-65535`; the caller prints it and exits with status 1.
pub fn parse(
    program: &str,
    args: impl IntoIterator<Item = OsString>,
) -> Result<Command, ConfigError> {
    parse_onto(program, args, Config::default())
}

/// Parses the daemon's arguments on top of `base`: each flag overrides
/// the base's value. `main` uses it to apply flags given after
/// `--options FILE` on top of the add-on settings ([`crate::config::addon`]).
///
/// # Errors
/// As [`parse`].
pub fn parse_onto(
    program: &str,
    args: impl IntoIterator<Item = OsString>,
    base: Config,
) -> Result<Command, ConfigError> {
    use lexopt::prelude::*;
    let mut config = base;
    let mut warnings = Vec::new();
    let mut options_file = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| ConfigError::new(e.to_string()))? {
        match arg {
            Short('4') => config.ip_version = IpVersion::V4,
            Short('6') => config.ip_version = IpVersion::V6,
            Short('f') => {}
            Short('d') => config.debug = config.debug.saturating_add(1),
            Short('c') => {
                config.client_cert_required =
                    parse_bool(&value(&mut parser)?).ok_or_else(|| {
                        ConfigError::new("client_cert_required should be on/yes/1, off/no/0")
                    })?;
            }
            Short('l') => config.listen_addr = Some(value(&mut parser)?),
            Short('m') => {
                let v = value(&mut parser)?;
                config.max_clients = parse_int(&v, 0, i128::from(i64::MAX))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| ConfigError::new(format!("max clients value {v} is invalid")))?;
            }
            Short('p') => {
                config.port = parse_int(&value(&mut parser)?, 1, i128::from(u16::MAX))
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| ConfigError::new("host port must be in range 1-65535"))?;
            }
            Short('S') => {
                for key in config.advanced.apply_list(&value(&mut parser)?)? {
                    warnings.push(format!(
                        "Option '{key}' is deprecated and has no effect anymore"
                    ));
                }
            }
            Short('s') => config.tls = Config::parse_tls(&value(&mut parser)?)?,
            Short('v') => return Ok(Command::Version { code: 1 }),
            Long("version") => return Ok(Command::Version { code: 0 }),
            Short('h') => return Ok(Command::Usage { code: 1 }),
            Long("help") => return Ok(Command::Usage { code: 0 }),
            Long("options") => options_file = Some(PathBuf::from(value(&mut parser)?)),
            Long("mqtt") => {
                let url = value(&mut parser)?;
                config.mqtt.broker = MqttBroker::Url(
                    parse_url(&url).map_err(|e| ConfigError::new(format!("--mqtt: {e}")))?,
                );
            }
            Long("mqtt-topic-prefix") => {
                config.mqtt.discovery.topic_prefix = value(&mut parser)?;
                check_prefixes(&config)?;
            }
            Long("mqtt-discovery-prefix") => {
                config.mqtt.discovery.discovery_prefix = value(&mut parser)?;
                check_prefixes(&config)?;
            }
            Long("mqtt-remove-after") => {
                let v = value(&mut parser)?;
                let secs = v
                    .parse::<u32>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        ConfigError::new(format!(
                            "--mqtt-remove-after: expected seconds from 0 to {}, got {v:?}",
                            u32::MAX
                        ))
                    })?;
                config.mqtt.discovery.remove_after =
                    std::time::Duration::from_secs(u64::from(secs));
            }
            Long("mqtt-ca-file") => {
                config.mqtt.ca_file = Some(PathBuf::from(value(&mut parser)?));
            }
            Long("http") => config.http = Some(parse_http(&value(&mut parser)?)?),
            Long("http-allow") => {
                let v = value(&mut parser)?;
                config.http_allow = Some(v.parse().map_err(|_| {
                    ConfigError::new(format!("--http-allow: expected an IP address, got '{v}'"))
                })?);
            }
            Long("http-timeout") => {
                let v = value(&mut parser)?;
                config.http_request_timeout_ms = parse_int(&v, 1, 3_600_000)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| {
                        ConfigError::new(format!(
                            "--http-timeout: expected milliseconds 1-3600000, got '{v}'"
                        ))
                    })?;
            }
            other => {
                return Err(ConfigError::new(format!(
                    "{}\n{}",
                    other.unexpected(),
                    usage(program).trim_end()
                )));
            }
        }
    }
    Ok(Command::Run {
        config: Box::new(config),
        options_file,
        warnings,
    })
}

/// Checks both MQTT prefixes; the error names the option.
fn check_prefixes(config: &Config) -> Result<(), ConfigError> {
    config.mqtt.discovery.validate().map_err(|e| {
        let option = if e.starts_with("discovery") {
            "--mqtt-discovery-prefix"
        } else {
            "--mqtt-topic-prefix"
        };
        ConfigError::new(format!("{option}: {e}"))
    })
}

/// `--http`: a port (on loopback) or an address with a port.
fn parse_http(v: &str) -> Result<std::net::SocketAddr, ConfigError> {
    if let Some(port) = parse_int(v, 0, 65535).and_then(|p| u16::try_from(p).ok()) {
        return Ok((std::net::Ipv4Addr::LOCALHOST, port).into());
    }
    v.parse().map_err(|_| {
        ConfigError::new(format!(
            "--http: expected PORT or ADDR:PORT (IPv6 as [::1]:PORT), got '{v}'"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::TlsSupported;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse("qnetd", args.iter().map(OsString::from)) {
            Ok(Command::Run { config, .. }) => Ok(*config),
            Ok(Command::Usage { code }) => Err(format!("usage {code}")),
            Ok(Command::Version { code }) => Err(format!("version {code}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = run(&[]).unwrap();
        assert_eq!(c.port, 5403);
        assert_eq!(c.tls, TlsSupported::Supported);
        assert!(c.client_cert_required);
        // An intended difference: the reference has no limit.
        assert_eq!(c.max_clients, crate::config::DEFAULT_MAX_CLIENTS);
        assert_eq!(c.ip_version, IpVersion::Any);
        assert_eq!(c.advanced.max_client_send_buffers, 32);
    }

    #[test]
    fn options_and_grouped_flags() {
        let c = run(&[
            "-fdd", "-6", "-s", "OFF", "-c", "no", "-p5404", "-m", "7", "-l", "::1",
        ])
        .unwrap();
        assert_eq!(c.debug, 2);
        assert_eq!(c.ip_version, IpVersion::V6);
        assert_eq!(c.tls, TlsSupported::Unsupported);
        assert!(!c.client_cert_required);
        assert_eq!(c.port, 5404);
        assert_eq!(c.max_clients, 7);
        assert_eq!(c.listen_addr.as_deref(), Some("::1"));
        let c = run(&[
            "-S",
            "keep_active_partition_tie_breaker=on",
            "-S",
            "heartbeat_interval_min=500",
        ])
        .unwrap();
        assert!(c.advanced.keep_active_partition_tie_breaker);
        assert_eq!(c.advanced.heartbeat_interval_min, 500);
    }

    #[test]
    fn reference_error_messages() {
        let cases: &[(&[&str], &str)] = &[
            (&["-p", "0"], "host port must be in range 1-65535"),
            (&["-p", "65536"], "host port must be in range 1-65535"),
            (&["-s", "required"], "tls must be one of on, off, req"),
            (
                &["-c", "maybe"],
                "client_cert_required should be on/yes/1, off/no/0",
            ),
            (&["-m", "-1"], "max clients value -1 is invalid"),
            (&["-S", "nope=1"], "Unknown option 'nope'"),
            (
                &["-S", "dpd_enabled=2"],
                "Invalid value '2' for option 'dpd_enabled'",
            ),
        ];
        for (args, msg) in cases {
            assert_eq!(run(args).unwrap_err(), *msg, "{args:?}");
        }
        let mqtt_cases: &[(&[&str], &str)] = &[
            (&["--mqtt", "http://x"], "--mqtt: "),
            (
                &["--mqtt-topic-prefix", "a/#"],
                "--mqtt-topic-prefix: topic prefix",
            ),
            (
                &["--mqtt-discovery-prefix", ""],
                "--mqtt-discovery-prefix: discovery prefix",
            ),
            (
                &["--mqtt-remove-after", "-1"],
                "--mqtt-remove-after: expected seconds",
            ),
            (
                &["--mqtt-remove-after", "1h"],
                "--mqtt-remove-after: expected seconds",
            ),
        ];
        for (args, prefix) in mqtt_cases {
            let e = run(args).unwrap_err();
            assert!(e.starts_with(prefix) && !e.contains('\n'), "{args:?}: {e}");
        }
        assert_eq!(run(&["-h"]).unwrap_err(), "usage 1");
        assert_eq!(run(&["-v"]).unwrap_err(), "version 1");
        assert_eq!(run(&["-4", "--help"]).unwrap_err(), "usage 0");
        assert_eq!(run(&["--version"]).unwrap_err(), "version 0");
        assert!(run(&["-x"]).unwrap_err().contains("usage:"));
    }

    #[test]
    fn mqtt_options() {
        use crate::config::MqttBroker;
        let c = run(&[]).unwrap();
        assert_eq!(c.mqtt.broker, MqttBroker::Off, "off by default");
        let c = run(&[
            "--mqtt",
            "mqtts://u:p@broker.lan",
            "--mqtt-topic-prefix",
            "site/qnetd",
            "--mqtt-discovery-prefix",
            "ha",
            "--mqtt-remove-after",
            "60",
            "--mqtt-ca-file",
            "/x.pem",
        ])
        .unwrap();
        let MqttBroker::Url(b) = &c.mqtt.broker else {
            panic!("{:?}", c.mqtt.broker);
        };
        assert_eq!((b.host.as_str(), b.port, b.tls), ("broker.lan", 8883, true));
        assert_eq!(b.username.as_deref(), Some("u"));
        assert_eq!(c.mqtt.discovery.topic_prefix, "site/qnetd");
        assert_eq!(c.mqtt.discovery.discovery_prefix, "ha");
        assert_eq!(c.mqtt.discovery.remove_after.as_secs(), 60);
        assert_eq!(
            c.mqtt.ca_file.as_deref(),
            Some(std::path::Path::new("/x.pem"))
        );
    }

    #[test]
    fn flags_override_the_base() {
        let base = Config {
            max_clients: 3,
            port: 1234,
            ..Config::default()
        };
        let Ok(Command::Run { config, .. }) =
            parse_onto("qnetd", ["-p", "5404"].map(OsString::from), base)
        else {
            panic!("expected Run");
        };
        assert_eq!(config.port, 5404);
        assert_eq!(config.max_clients, 3);
    }

    #[test]
    fn version_lists_algorithms_and_messages() {
        let v = version_text();
        assert!(v.contains(
            "Supported algorithms: Test (0), Fifty-Fifty split (1), 2 Node LMS (2), LMS (3)\n"
        ));
        assert!(v.contains("Preinit (0), Preinit reply (1), StartTLS (2)"));
        assert!(v.contains("Heuristics change reply (17)\n"));
    }
}
