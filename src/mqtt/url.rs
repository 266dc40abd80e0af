//! Where the broker is: `--mqtt mqtt[s]://user:pass@host:port`, or the
//! Home Assistant Supervisor's services API, both into one [`BrokerSettings`].
//!
//! Contract:
//! - [`parse_url`] takes `mqtt://` (plain, default port 1883) or `mqtts://`
//!   (TLS, default port 8883), scheme case-insensitive. The user info is
//!   optional; user and password are percent-decoded and must be UTF-8. The
//!   host is a DNS name, an IPv4 address or a bracketed IPv6 address
//!   (`[::1]`, stored without brackets). Nothing may follow the port but one
//!   optional `/`. Every byte is hostile: control characters, spaces,
//!   stray `%`, `@` in a host, empty parts, ports outside 1..=65535 and
//!   URLs longer than [`MAX_URL_LEN`] are refused with one line naming the
//!   part, and the password never appears in an error or in `Debug`.
//! - [`from_supervisor`] reads the JSON body of the Supervisor's
//!   `GET http://supervisor/services/mqtt`: `{"result": "ok", "data":
//!   {"host", "port", "ssl", "username", "password", "protocol", "addon"}}`
//!   (only `host` and `port` required; `ssl` defaults to false, `protocol`
//!   to `3.1.1`, the only other value being `3.1`, which brokers that speak
//!   3.1 also accept as 3.1.1). `{"result": "error", "message": ...}` (no
//!   MQTT provider installed) is [`SupervisorMqtt::Unavailable`], not an
//!   error: MQTT then stays off with one log line.
//!
//! No I/O here: the shell does the HTTP request and the TCP connection.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// Default port of `mqtt://`.
pub const DEFAULT_PORT: u16 = 1883;
/// Default port of `mqtts://`.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Longest accepted broker URL, bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest accepted host name (RFC 1035 presentation form).
pub const MAX_HOST_LEN: usize = 253;

/// How to reach and log in to the broker.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// DNS name or IP address, IPv6 without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS to the broker (`mqtts://`, Supervisor `ssl: true`).
    pub tls: bool,
    /// User name, if the broker wants a login.
    pub username: Option<String>,
    /// Password (with a user name only; MQTT 3.1.1 has no password
    /// without a user).
    pub password: Option<String>,
}

impl fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl BrokerSettings {
    /// `host:port` for connecting and logging, IPv6 in brackets.
    #[must_use]
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A broker URL or Supervisor answer that cannot be used: one line naming
/// the part that is wrong (never containing the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

fn err(message: impl Into<String>) -> UrlError {
    UrlError(message.into())
}

/// Parses `mqtt://[user[:password]@]host[:port][/]` or `mqtts://...`.
///
/// # Errors
/// One line naming the part that is wrong.
pub fn parse_url(url: &str) -> Result<BrokerSettings, UrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(err(format!("URL longer than {MAX_URL_LEN} bytes")));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(err("URL contains a space or a control character"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| err("URL must start with mqtt:// or mqtts://"))?;
    let tls = if scheme.eq_ignore_ascii_case("mqtt") {
        false
    } else if scheme.eq_ignore_ascii_case("mqtts") {
        true
    } else {
        return Err(err(format!(
            "unsupported scheme '{}' (mqtt or mqtts)",
            printable(scheme)
        )));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(err(
            "URL has a path, query or fragment; only mqtt[s]://[user[:password]@]host[:port] is accepted",
        ));
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = match u.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (u, None),
            };
            let user = percent_decode(user).map_err(|e| err(format!("user: {e}")))?;
            if user.is_empty() {
                return Err(err("user is empty"));
            }
            let pass = pass
                .map(percent_decode)
                .transpose()
                .map_err(|e| err(format!("password: {e}")))?;
            (Some(user), pass)
        }
    };
    let (host, port) = split_host_port(hostport)?;
    let port = match port {
        None => {
            if tls {
                DEFAULT_TLS_PORT
            } else {
                DEFAULT_PORT
            }
        }
        Some(p) => parse_port(p)?,
    };
    Ok(BrokerSettings {
        host,
        port,
        tls,
        username,
        password,
    })
}

/// Splits `host[:port]` / `[v6][:port]`, validating the host.
fn split_host_port(s: &str) -> Result<(String, Option<&str>), UrlError> {
    if let Some(v6) = s.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| err("host: '[' without ']'"))?;
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| err(format!("host: '{}' is no IPv6 address", printable(addr))))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| err("host: junk after ']'"))?,
            ),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    validate_host(host)?;
    Ok((host.to_ascii_lowercase(), port))
}

/// A DNS name (letters, digits, `-`, `_`, dots) or an IPv4 address.
fn validate_host(host: &str) -> Result<(), UrlError> {
    if host.is_empty() {
        return Err(err("host is empty"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(err(format!("host longer than {MAX_HOST_LEN} bytes")));
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if trimmed.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(err(format!(
            "host: '{}' is no DNS name or IP address",
            printable(host)
        )))
    }
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "port: '{}' is no number in 1..65535",
            printable(p)
        )));
    }
    match p.parse::<u16>() {
        Ok(n) if n != 0 => Ok(n),
        _ => Err(err(format!("port: '{p}' is not in 1..65535"))),
    }
}

/// `%XX` decoding into UTF-8; a `%` not followed by two hex digits is an
/// error (so is a decoded NUL: no broker takes one in a login).
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err("'%' not followed by two hex digits"),
            }
        } else {
            out.push(b);
        }
    }
    if out.contains(&0) {
        return Err("contains NUL");
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 after percent-decoding")
}

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Up to 64 characters of a hostile value, for an error line.
fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}

/// What the Supervisor says about the MQTT service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorMqtt {
    /// A broker add-on provides the service.
    Available(BrokerSettings),
    /// No provider (the Supervisor's message, e.g. "Service not enabled").
    Unavailable(String),
}

#[derive(Deserialize)]
struct Envelope {
    result: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<ServiceData>,
}

/// Everything optional: an error answer may carry `"data": {}`; `host`
/// and `port` are checked only when `result` is `ok`.
#[derive(Deserialize)]
struct ServiceData {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    ssl: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
}

/// Reads the body of `GET http://supervisor/services/mqtt`.
///
/// # Errors
/// The body is no such JSON document, or its host, port or protocol is
/// unusable (one line naming the field).
pub fn from_supervisor(body: &[u8]) -> Result<SupervisorMqtt, UrlError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        err(format!(
            "supervisor services/mqtt: not the expected JSON ({e})"
        ))
    })?;
    if envelope.result != "ok" {
        return Ok(SupervisorMqtt::Unavailable(
            envelope
                .message
                .map_or_else(|| printable(&envelope.result), |m| printable(&m)),
        ));
    }
    let data = envelope
        .data
        .ok_or_else(|| err("supervisor services/mqtt: result ok without data"))?;
    let field = |name: &str, e: UrlError| err(format!("supervisor services/mqtt: {name}: {e}"));
    if let Some(p) = data.protocol.as_deref()
        && p != "3.1.1"
        && p != "3.1"
    {
        return Err(err(format!(
            "supervisor services/mqtt: protocol '{}' is not 3.1.1",
            printable(p)
        )));
    }
    let (Some(host), Some(port)) = (data.host.as_deref(), data.port) else {
        return Err(err("supervisor services/mqtt: host and port are required"));
    };
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6,
        None => host,
    };
    let host = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        v6.to_string()
    } else {
        validate_host(host).map_err(|e| field("host", e))?;
        host.to_ascii_lowercase()
    };
    if port == 0 {
        return Err(err("supervisor services/mqtt: port: 0 is not in 1..65535"));
    }
    let check = |name: &str, v: &Option<String>| match v {
        Some(s) if s.contains('\0') => Err(err(format!(
            "supervisor services/mqtt: {name} contains NUL"
        ))),
        _ => Ok(()),
    };
    check("username", &data.username)?;
    check("password", &data.password)?;
    let username = data.username.filter(|u| !u.is_empty());
    let password = username.as_ref().and(data.password);
    Ok(SupervisorMqtt::Available(BrokerSettings {
        host,
        port,
        tls: data.ssl,
        username,
        password,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> BrokerSettings {
        parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn bad(url: &str) -> String {
        match parse_url(url) {
            Ok(s) => panic!("{url} accepted as {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_and_tls_default_ports() {
        let s = ok("mqtt://broker.local");
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("broker.local", 1883, false)
        );
        assert_eq!((s.username, s.password), (None, None));
        let s = ok("MQTTS://Broker.LOCAL/");
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("broker.local", 8883, true)
        );
    }

    #[test]
    fn user_password_port_and_percent_decoding() {
        let s = ok("mqtt://ha%20user:p%40ss%3Aw%C3%B6rd@10.0.0.2:1884");
        assert_eq!(s.username.as_deref(), Some("ha user"));
        assert_eq!(s.password.as_deref(), Some("p@ss:wörd"));
        assert_eq!((s.host.as_str(), s.port), ("10.0.0.2", 1884));
        // A raw '@' in the password: the last '@' ends the user info.
        let s = ok("mqtt://u:a@b@host");
        assert_eq!(s.password.as_deref(), Some("a@b"));
        assert_eq!(s.host, "host");
        // User without password, empty password.
        assert_eq!(ok("mqtt://u@h").password, None);
        assert_eq!(ok("mqtt://u:@h").password.as_deref(), Some(""));
    }

    #[test]
    fn ipv6_brackets() {
        let s = ok("mqtts://[::1]:9000");
        assert_eq!((s.host.as_str(), s.port), ("::1", 9000));
        assert_eq!(s.authority(), "[::1]:9000");
        let s = ok("mqtt://u:p@[FE80::0001]");
        assert_eq!((s.host.as_str(), s.port), ("fe80::1", 1883));
        assert_eq!(ok("mqtt://h:1").authority(), "h:1");
    }

    #[test]
    fn hostile_input_is_one_clear_line() {
        for (url, part) in [
            ("http://h", "scheme"),
            ("h:1883", "mqtt://"),
            ("mqtt://", "host is empty"),
            ("mqtt://u:p@", "host is empty"),
            ("mqtt://h:0", "port"),
            ("mqtt://h:65536", "port"),
            ("mqtt://h:-1", "port"),
            ("mqtt://h:", "port"),
            ("mqtt://h:1883:1", "port"),
            ("mqtt://h:+80", "port"),
            ("mqtt://h/topic", "path"),
            ("mqtt://h?x=1", "path"),
            ("mqtt://h#f", "path"),
            ("mqtt://h o", "space"),
            ("mqtt://h\n", "control"),
            ("mqtt://ho\u{7f}st", "control"),
            ("mqtt://[::1", "']'"),
            ("mqtt://[nope]", "IPv6"),
            ("mqtt://[::1]x", "junk"),
            ("mqtt://-h", "DNS name"),
            ("mqtt://h..x", "DNS name"),
            ("mqtt://h%41", "DNS name"),
            ("mqtt://hé", "DNS name"),
            ("mqtt://:p@h", "user is empty"),
            ("mqtt://u%4:p@h", "user"),
            ("mqtt://u:p%zz@h", "password"),
            ("mqtt://u:%00@h", "NUL"),
            ("mqtt://u:%ff@h", "UTF-8"),
        ] {
            let e = bad(url);
            assert!(e.contains(part), "{url:?}: {e:?} does not name {part:?}");
            assert!(!e.contains('\n'), "{url:?}: multi-line error");
        }
        let long = format!("mqtt://{}", "a".repeat(MAX_URL_LEN));
        assert!(bad(&long).contains("longer"));
        let long_host = format!("mqtt://{}", ["a"; 130].join("."));
        assert!(bad(&long_host).contains("host longer"));
    }

    #[test]
    fn password_never_in_errors_or_debug() {
        let e = bad("mqtt://user:s3cr3t@h:99999");
        assert!(!e.contains("s3cr3t"), "{e}");
        let s = ok("mqtt://user:s3cr3t@h");
        let d = format!("{s:?}");
        assert!(!d.contains("s3cr3t") && d.contains("redacted"), "{d}");
    }

    #[test]
    fn supervisor_answer_with_broker() {
        let body = br#"{"result":"ok","data":{"addon":"core_mosquitto","host":"core-mosquitto",
            "port":1883,"ssl":false,"protocol":"3.1.1","username":"addons","password":"Eiph6"}}"#;
        let SupervisorMqtt::Available(s) = from_supervisor(body).unwrap() else {
            panic!("expected a broker")
        };
        assert_eq!(
            s,
            BrokerSettings {
                host: "core-mosquitto".into(),
                port: 1883,
                tls: false,
                username: Some("addons".into()),
                password: Some("Eiph6".into()),
            }
        );
        // Optional fields absent; ssl true; IPv6 host with or without brackets.
        let body = br#"{"result":"ok","data":{"host":"[fd00::5]","port":8883,"ssl":true}}"#;
        let SupervisorMqtt::Available(s) = from_supervisor(body).unwrap() else {
            panic!("expected a broker")
        };
        assert_eq!((s.host.as_str(), s.port, s.tls), ("fd00::5", 8883, true));
        assert_eq!((s.username, s.password), (None, None));
    }

    #[test]
    fn supervisor_without_broker_is_not_an_error() {
        let body = br#"{"result":"error","message":"Service not enabled","data":{}}"#;
        assert_eq!(
            from_supervisor(body).unwrap(),
            SupervisorMqtt::Unavailable("Service not enabled".into())
        );
    }

    #[test]
    fn supervisor_hostile_answers() {
        for (body, part) in [
            (&b"not json"[..], "JSON"),
            (br#"{"result":"ok"}"#, "without data"),
            (br#"{"result":"ok","data":{"port":1883}}"#, "required"),
            (br#"{"result":"ok","data":{"host":"h"}}"#, "required"),
            (
                br#"{"result":"ok","data":{"host":"h","port":70000}}"#,
                "JSON",
            ),
            (br#"{"result":"ok","data":{"host":"h","port":0}}"#, "port"),
            (br#"{"result":"ok","data":{"host":"h h","port":1}}"#, "host"),
            (br#"{"result":"ok","data":{"host":"","port":1}}"#, "host"),
            (
                br#"{"result":"ok","data":{"host":"h","port":1,"protocol":"5"}}"#,
                "protocol",
            ),
            (
                br#"{"result":"ok","data":{"host":"h","port":1,"username":"a\u0000"}}"#,
                "NUL",
            ),
        ] {
            let e = from_supervisor(body).unwrap_err().to_string();
            assert!(e.contains(part), "{}: {e}", String::from_utf8_lossy(body));
            assert!(e.starts_with("supervisor services/mqtt"), "{e}");
        }
    }
}
