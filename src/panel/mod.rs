//! The status panel, sans-IO: HTTP requests in, responses and server-sent
//! event frames out. The shell (`net/http.rs`) owns the sockets and the
//! clock; this module owns every decision.
//!
//! ```text
//!   mod.rs     limits, request parsing (httparse), routing, response framing
//!   feed.rs    snapshots of the `--json` Report, the event list, SSE frames
//!   page.html  the page (embedded; no external assets)
//! ```
//!
//! Contract:
//! * A request head is at most [`MAX_REQUEST`] bytes with at most
//!   [`MAX_HEADERS`] headers, else `431` and close. It must be complete
//!   within the request deadline (the shell enforces it), else close.
//!   Only the pairing calls read a body (`Content-Length`, at most
//!   [`MAX_BODY`] bytes, else `413`); every answer but the event stream
//!   ends with `Connection: close`.
//! * Only the allowed source address is served ([`source_allowed`]); the
//!   Supervisor's Ingress proxy in add-on mode.
//! * `GET /` the page, `GET /api/status` the `--json` [`Report`], `GET
//!   /api/events` the event stream; `POST /api/pair` and `POST
//!   /api/unpair` need `X-Qnetd-Request: 1` (CSRF; else `403`); their
//!   body (JSON or a form: `nodes`, optional `cluster`; `cluster` for
//!   unpair) becomes the management socket's [`PairCommand`], carried out
//!   by the shell through the same `Pairing` as `qnetd pair` (`GET
//!   /api/pair/status` is `pair status`). Its `key=value` reply becomes a
//!   JSON object ([`pair_reply`]). Anything else `404` (`405` for a known
//!   path with the wrong method).
//! * The page is served under the `X-Ingress-Path` base: it gets a
//!   `<base href>` of that path, so its relative URLs go through the proxy.
//!   A base with characters outside `[A-Za-z0-9/_.-]` is ignored.
//!
//! [`Report`]: crate::mgmt::json::Report

pub mod feed;

use std::net::IpAddr;

pub use feed::Feed;

use crate::mgmt::pair::{OpenParams, PairCommand};

/// Largest request head, bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 32;
/// Default time a client has to send its request head, ms.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Default simultaneous HTTP connections (event streams included).
pub const DEFAULT_MAX_CONNS: usize = 16;
/// Default Ingress port of a Home Assistant add-on.
pub const INGRESS_PORT: u16 = 8099;
/// The Supervisor's Ingress proxy.
pub const INGRESS_PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 30, 32, 2));
/// The CSRF header every state-changing call must carry (value `1`).
pub const CSRF_HEADER: &str = "X-Qnetd-Request";
/// Largest request body (pairing calls only).
pub const MAX_BODY: usize = 1024;
/// Longest accepted `X-Ingress-Path`.
const MAX_BASE: usize = 256;

/// The page, with `{{BASE}}` where the base path goes.
const PAGE: &str = include_str!("page.html");

/// Whether a connection from `peer` is served: always without an allowed
/// source, else only from that address (IPv4-mapped IPv6 counts as IPv4).
#[must_use]
pub fn source_allowed(allow: Option<IpAddr>, peer: IpAddr) -> bool {
    let canon = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        IpAddr::V4(_) => a,
    };
    allow.is_none_or(|a| canon(a) == canon(peer))
}

/// What a request asks for, once its head is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The page, under this base path (no trailing slash).
    Page {
        /// Validated `X-Ingress-Path`, or empty.
        base: String,
    },
    /// The JSON status.
    Status,
    /// The event stream.
    Events,
    /// A pairing request for the daemon's pairing state.
    Pair(PairCommand),
    /// A finished answer: status code and message.
    Answer(u16, &'static str),
}

/// The outcome of parsing the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Head incomplete: read more (if under the limit).
    Partial,
    /// The head is complete.
    Done(Route),
}

/// Parses a request head and routes it.
#[must_use]
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => return Parsed::Partial,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Done(Route::Answer(431, "Request header fields too large"));
        }
        Err(_) => return Parsed::Done(Route::Answer(400, "Bad request")),
    };
    if head_len > MAX_REQUEST {
        return Parsed::Done(Route::Answer(431, "Request header fields too large"));
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let get = method == "GET" || method == "HEAD";
    let route = match (path, get, method == "POST") {
        ("/" | "/index.html", true, _) => Route::Page {
            base: base_path(header("X-Ingress-Path")),
        },
        ("/api/status", true, _) => Route::Status,
        ("/api/events", true, _) => Route::Events,
        ("/api/pair/status", true, _) => Route::Pair(PairCommand::Status),
        ("/api/pair" | "/api/unpair", _, true) => {
            if header(CSRF_HEADER) != Some(b"1") {
                return Parsed::Done(Route::Answer(403, "Missing X-Qnetd-Request header"));
            }
            let len = header("Content-Length")
                .and_then(|v| std::str::from_utf8(v).ok())
                .map_or(Some(0), |v| v.trim().parse::<usize>().ok());
            let Some(len) = len.filter(|&l| l <= MAX_BODY) else {
                return Parsed::Done(Route::Answer(413, "Request body too large"));
            };
            let Some(body) = buf.get(head_len..head_len + len) else {
                return Parsed::Partial;
            };
            Route::Pair(pair_command(path == "/api/unpair", body))
        }
        (
            "/" | "/index.html" | "/api/status" | "/api/events" | "/api/pair" | "/api/unpair"
            | "/api/pair/status",
            ..,
        ) => Route::Answer(405, "Method not allowed"),
        _ => Route::Answer(404, "Not found"),
    };
    Parsed::Done(route)
}

/// The fields of a pairing body (JSON); `name` is the page's older
/// spelling of `cluster`.
#[derive(serde::Deserialize, Default)]
struct PairBody {
    nodes: Option<serde_json::Value>,
    cluster: Option<String>,
    name: Option<String>,
}

/// The pairing command a body asks for: `pair open` (`unpair` false) or
/// `unpair`. The body is JSON (starting with `{`) or a form.
fn pair_command(unpair: bool, body: &[u8]) -> PairCommand {
    let fields = if body.trim_ascii_start().first() == Some(&b'{') {
        match serde_json::from_slice::<PairBody>(body) {
            Ok(f) => f,
            Err(_) => return PairCommand::Bad("the body is not valid JSON".into()),
        }
    } else {
        let mut f = PairBody::default();
        for (k, v) in String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
        {
            let v = v.trim().to_string();
            match k {
                "nodes" => f.nodes = Some(serde_json::Value::String(v)),
                "cluster" => f.cluster = Some(v),
                "name" => f.name = Some(v),
                _ => {}
            }
        }
        f
    };
    let cluster = fields
        .cluster
        .or(fields.name)
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if unpair {
        return cluster.map_or_else(
            || PairCommand::Bad("unpair needs a cluster name".into()),
            PairCommand::Unpair,
        );
    }
    let nodes = match fields.nodes {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => {
            match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Some(n),
                None => return PairCommand::Bad(format!("invalid value '{n}' for 'nodes'")),
            }
        }
        Some(serde_json::Value::String(s)) if s.is_empty() => None,
        Some(serde_json::Value::String(s)) => match s.parse() {
            Ok(n) => Some(n),
            Err(_) => return PairCommand::Bad(format!("invalid value '{s}' for 'nodes'")),
        },
        Some(v) => return PairCommand::Bad(format!("invalid value '{v}' for 'nodes'")),
    };
    PairCommand::Open(OpenParams {
        nodes,
        cluster,
        ..OpenParams::default()
    })
}

/// The answer to a pairing request: a management reply (`OK\n` and
/// `key=value` lines, or `Error\n` and a line) as `200` with a JSON object
/// of the values (strings), or `409` with the error line.
#[must_use]
pub fn pair_reply(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    if let Some(body) = text.strip_prefix("OK\n") {
        let object: serde_json::Map<String, serde_json::Value> = body
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let json = serde_json::Value::Object(object).to_string();
        return response(200, "application/json", "", json.as_bytes());
    }
    let message = text.strip_prefix("Error\n").unwrap_or(&text).trim_end();
    answer(409, message)
}

/// The validated base path: `X-Ingress-Path` without a trailing slash, or
/// empty when absent or unsafe.
fn base_path(value: Option<&[u8]>) -> String {
    let Some(v) = value else {
        return String::new();
    };
    let safe = v.len() <= MAX_BASE
        && v.first() == Some(&b'/')
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(b));
    if !safe {
        return String::new();
    }
    String::from_utf8_lossy(v).trim_end_matches('/').to_string()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A complete response that closes the connection;
/// `extra` holds more header lines, each ending in CRLF.
#[must_use]
pub fn response(code: u16, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A plain-text answer (errors, refusals).
#[must_use]
pub fn answer(code: u16, message: &str) -> Vec<u8> {
    response(
        code,
        "text/plain; charset=utf-8",
        "",
        format!("{message}\n").as_bytes(),
    )
}

/// The page under `base`, with `snapshot` (a [`Feed::snapshot`]) inline so
/// that it shows the state at once, before the event stream connects.
#[must_use]
pub fn page(base: &str, snapshot: &[u8]) -> Vec<u8> {
    // In a <script> element only "</" could end it early; "<\/" is the
    // same JSON string.
    let snapshot = String::from_utf8_lossy(snapshot).replace("</", "<\\/");
    let body = PAGE
        .replace("{{BASE}}", base)
        .replace("{{SNAPSHOT}}", &snapshot);
    response(200, "text/html; charset=utf-8", "", body.as_bytes())
}

/// The head of the event stream (the connection stays open).
#[must_use]
pub fn events_head() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: keep-alive\r\n\r\n".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(req: &str) -> Route {
        match parse(req.as_bytes()) {
            Parsed::Done(r) => r,
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn routes_and_csrf() {
        assert_eq!(
            route("GET / HTTP/1.1\r\n\r\n"),
            Route::Page {
                base: String::new()
            }
        );
        assert_eq!(
            route("GET /?x=1 HTTP/1.1\r\nX-Ingress-Path: /api/hassio_ingress/tok-EN_1/\r\n\r\n"),
            Route::Page {
                base: "/api/hassio_ingress/tok-EN_1".into()
            }
        );
        assert_eq!(
            route("GET / HTTP/1.1\r\nX-Ingress-Path: /a\"><script>\r\n\r\n"),
            Route::Page {
                base: String::new()
            }
        );
        assert_eq!(route("GET /api/status HTTP/1.1\r\n\r\n"), Route::Status);
        assert_eq!(route("GET /api/events HTTP/1.0\r\n\r\n"), Route::Events);
        assert!(matches!(
            route("GET /x HTTP/1.1\r\n\r\n"),
            Route::Answer(404, _)
        ));
        assert!(matches!(
            route("POST /api/pair HTTP/1.1\r\n\r\n"),
            Route::Answer(403, _)
        ));
        assert_eq!(
            route("POST /api/pair HTTP/1.1\r\nx-qnetd-request: 1\r\n\r\n"),
            Route::Pair(PairCommand::Open(OpenParams::default()))
        );
        let open = |nodes, cluster: Option<&str>| {
            Route::Pair(PairCommand::Open(OpenParams {
                nodes,
                cluster: cluster.map(str::to_owned),
                ..OpenParams::default()
            }))
        };
        let post = |path: &str, body: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nX-Qnetd-Request: 1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        assert_eq!(
            route(&post("/api/pair", r#"{"nodes":3,"name":"c1"}"#)),
            open(Some(3), Some("c1"))
        );
        assert_eq!(
            route(&post("/api/pair", "nodes=2&cluster=")),
            open(Some(2), None)
        );
        assert!(matches!(
            route(&post("/api/pair", r#"{"nodes":-1}"#)),
            Route::Pair(PairCommand::Bad(_))
        ));
        assert_eq!(
            route(&post("/api/unpair", "cluster=c1")),
            Route::Pair(PairCommand::Unpair("c1".into()))
        );
        assert!(matches!(
            route(&post("/api/unpair", "{}")),
            Route::Pair(PairCommand::Bad(_))
        ));
        let partial = post("/api/pair", "nodes=2");
        assert_eq!(
            parse(&partial.as_bytes()[..partial.len() - 1]),
            Parsed::Partial
        );
        assert!(matches!(
            route("POST /api/pair HTTP/1.1\r\nX-Qnetd-Request: 1\r\nContent-Length: 99999\r\n\r\n"),
            Route::Answer(413, _)
        ));
        assert_eq!(
            route("GET /api/pair/status HTTP/1.1\r\n\r\n"),
            Route::Pair(PairCommand::Status)
        );
        assert!(
            pair_reply(b"OK\ncommand=a \"b\"\nid=x\n")
                .ends_with(br#"{"command":"a \"b\"","id":"x"}"#)
        );
        assert!(pair_reply(b"Error\nno such\n").starts_with(b"HTTP/1.1 409 "));
        assert!(matches!(
            route("GET /api/pair HTTP/1.1\r\n\r\n"),
            Route::Answer(405, _)
        ));
        assert!(matches!(
            route("POST / HTTP/1.1\r\n\r\n"),
            Route::Answer(405, _)
        ));
        assert!(matches!(
            route("\x01\x02 HTTP\r\n\r\n"),
            Route::Answer(400, _)
        ));
    }

    #[test]
    fn limits() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_REQUEST));
        assert!(matches!(
            parse(big.as_bytes()),
            Parsed::Done(Route::Answer(431, _))
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(req.as_bytes()),
            Parsed::Done(Route::Answer(431, _))
        ));
    }

    #[test]
    fn sources() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(source_allowed(None, lo));
        assert!(source_allowed(
            Some(lo),
            "::ffff:127.0.0.1".parse().unwrap()
        ));
        assert!(!source_allowed(Some("127.0.0.2".parse().unwrap()), lo));
        assert!(source_allowed(Some(INGRESS_PROXY), INGRESS_PROXY));
    }

    #[test]
    fn page_gets_the_base_and_stays_small() {
        let p =
            String::from_utf8(page("/api/hassio_ingress/abc", b"{\"a\":\"</script>\"}")).unwrap();
        assert!(p.contains("<base href=\"/api/hassio_ingress/abc/\">"));
        assert!(p.contains(r#"{"a":"<\/script>"}</script>"#));
        assert!(!p.contains("{{BASE}}") && !p.contains("{{SNAPSHOT}}"));
        assert!(PAGE.len() < 48 * 1024);
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
