//! The pairing endpoint as sans-IO functions: request bytes in, response
//! bytes out (the API table is in the [`crate::pair`] documentation).
//!
//! [`parse`] takes the bytes received so far on a pairing connection (after
//! TLS) and answers [`Parse::Incomplete`] (read more), a complete
//! [`Request`], or a [`Response`] to send before closing (a malformed,
//! oversized or unknown request). Limits: the head at most [`MAX_HEAD`]
//! bytes and [`MAX_HEADERS`] headers; bodies only on POST, with a
//! `Content-Length` (no chunked encoding) within the route's limit
//! ([`MAX_CONF_LEN`] for corosync.conf, [`MAX_CSR_LEN`] for a certificate
//! request), refused with 413 as soon as the head announces more. The time
//! limit on slow requests is the caller's (a deadline per connection).
//!
//! [`handle`] answers a request for the one open [`PairingWindow`] (if any)
//! at `now`. It signs through the caller's closure, the only effect it
//! causes; everything else is computed here. One request per connection:
//! every response says `Connection: close`. Header values are reduced to
//! printable ASCII.

use core::fmt::Write as _;

use super::corosync_conf::{
    self, ConfError, CorosyncConf, DeviceSettings, MAX_CONF_LEN, add_device, raise_config_version,
};
use super::script::{ScriptParams, pem, render, shell_quote};
use super::token::{PairingWindow, Refusal, Token};
use crate::core::time::Timestamp;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer as _;

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 32;
/// Largest certificate request body.
pub const MAX_CSR_LEN: usize = 16 * 1024;

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    refusal: Option<Refusal>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
            refusal: None,
        }
    }

    /// A one-line `text/plain` answer.
    fn text(status: u16, line: &str) -> Self {
        Self::new(
            status,
            "text/plain; charset=utf-8",
            format!("{line}\n").into_bytes(),
        )
    }

    fn not_found() -> Self {
        Self::text(404, "not found")
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The window's refusal this answer carries, if it is one.
    #[must_use]
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The values of the extra header `name`.
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The response as bytes on the wire.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let clean: String = value
                .chars()
                .map(|c| {
                    if c == ' ' || c.is_ascii_graphic() {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            let _ = write!(head, "{name}: {clean}\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// What a pairing request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /pair/TOKEN`: the node script.
    Script,
    /// `GET /pair/TOKEN/ca.crt`.
    CaCert,
    /// `GET /pair/TOKEN/status`.
    Status,
    /// `POST /pair/TOKEN/corosync.conf[?force=1]`.
    Conf {
        /// Replace an existing device.
        force: bool,
    },
    /// `POST /pair/TOKEN/corosync.conf/undo`.
    ConfUndo,
    /// `POST /pair/TOKEN/sign?node=NAME`.
    Sign {
        /// The node's name, for the audit log.
        node: String,
    },
}

/// A complete, well-formed pairing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The route.
    pub route: Route,
    /// The token as presented (not yet checked).
    pub token: String,
    /// The body.
    pub body: Vec<u8>,
}

/// The outcome of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed.
    Incomplete,
    /// A request, and the number of bytes it used.
    Request(Request, usize),
    /// Send this and close.
    Reject(Response),
}

fn valid_node_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The route, token and body limit of `METHOD TARGET`, or `None` (404).
fn route(method: &str, target: &str) -> Option<(Route, String, usize)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix("/pair/")?;
    let (token, sub) = match rest.split_once('/') {
        None => (rest, ""),
        Some((_, "")) => return None,
        Some(split) => split,
    };
    if token.is_empty() {
        return None;
    }
    let route = match (method, sub, query) {
        ("GET", "", "") => (Route::Script, 0),
        ("GET", "ca.crt", "") => (Route::CaCert, 0),
        ("GET", "status", "") => (Route::Status, 0),
        ("POST", "corosync.conf", "") => (Route::Conf { force: false }, MAX_CONF_LEN),
        ("POST", "corosync.conf", "force=1") => (Route::Conf { force: true }, MAX_CONF_LEN),
        ("POST", "corosync.conf/undo", "") => (Route::ConfUndo, MAX_CONF_LEN),
        ("POST", "sign", q) => {
            let node = q.strip_prefix("node=").filter(|n| valid_node_name(n))?;
            (
                Route::Sign {
                    node: node.to_owned(),
                },
                MAX_CSR_LEN,
            )
        }
        _ => return None,
    };
    Some((route.0, token.to_owned(), route.1))
}

/// Parses the bytes received so far; see the module documentation.
#[must_use]
pub fn parse(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parse::Incomplete,
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            return Parse::Reject(Response::text(431, "request head too large"));
        }
        Err(_) => return Parse::Reject(Response::text(400, "malformed HTTP request")),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Parse::Reject(Response::text(400, "malformed HTTP request"));
    };
    let Some((route, token, limit)) = route(method, target) else {
        return Parse::Reject(Response::not_found());
    };
    let mut length: Option<usize> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parse::Reject(Response::text(400, "chunked bodies are not accepted"));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = core::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (value, length) {
                (Some(v), None) => length = Some(v),
                (Some(v), Some(l)) if v == l => {}
                _ => return Parse::Reject(Response::text(400, "bad Content-Length")),
            }
        }
    }
    let length = match (length, limit) {
        (None, 0) => 0,
        (None, _) => return Parse::Reject(Response::text(411, "Content-Length required")),
        (Some(0), 0) => 0,
        (Some(_), 0) => return Parse::Reject(Response::text(400, "no body expected")),
        (Some(n), limit) if n > limit => {
            return Parse::Reject(Response::text(
                413,
                &format!("body of {n} bytes, more than the {limit} accepted"),
            ));
        }
        (Some(n), _) => n,
    };
    let end = head_len + length;
    if buf.len() < end {
        return Parse::Incomplete;
    }
    Parse::Request(
        Request {
            route,
            token,
            body: buf[head_len..end].to_vec(),
        },
        end,
    )
}

/// Checks that the DER certificate request `der` names exactly `cluster`:
/// one common name, equal to it. The certificate copies the request's
/// subject, and qnetd admits a client to the cluster its certificate names,
/// so a window bound to one cluster must never sign another name.
///
/// # Errors
///
/// A one-line reason.
pub fn check_request_names(der: &[u8], cluster: &str) -> Result<(), String> {
    let req = match X509CertificationRequest::from_der(der) {
        Ok(([], req)) => req,
        Ok(_) => return Err("trailing bytes after the certificate request".into()),
        Err(e) => return Err(format!("not a DER certificate request: {e}")),
    };
    let mut names = req.certification_request_info.subject.iter_common_name();
    match (names.next().map(|n| n.as_str()), names.next()) {
        (Some(Ok(cn)), None) if cn == cluster => Ok(()),
        (Some(Ok(cn)), None) => Err(format!(
            "the certificate request is for '{}', not for cluster '{cluster}'",
            cn.escape_debug()
        )),
        _ => Err(format!(
            "the certificate request must have exactly one common name, '{cluster}'"
        )),
    }
}

/// The status code of a refusal.
#[must_use]
pub fn refusal_status(r: &Refusal) -> u16 {
    match r {
        Refusal::Malformed(_) | Refusal::UnknownId => 404,
        Refusal::BadSecret { .. } => 403,
        Refusal::LockedOut | Refusal::Expired | Refusal::Closed => 410,
        Refusal::BadClusterName(_) => 400,
        Refusal::ClusterMismatch { .. }
        | Refusal::NameTaken(_)
        | Refusal::TooManyNodes { .. }
        | Refusal::NotBound
        | Refusal::CertLimit(_) => 409,
    }
}

fn refusal(r: &Refusal) -> Response {
    let mut response = match refusal_status(r) {
        404 => Response::not_found(),
        status => Response::text(status, &r.to_string()),
    };
    response.refusal = Some(r.clone());
    response
}

fn conf_error(e: &ConfError) -> Response {
    let status = if *e == ConfError::AlreadyConfigured {
        409
    } else {
        400
    };
    Response::text(status, &e.to_string())
}

/// Signs a DER certificate request `(request, cluster, node)` whose names
/// [`check_request_names`] already checked: the DER certificate, or a
/// one-line reason (for example a wrong signature).
pub type Signer<'a> = dyn FnMut(&[u8], &str, &str) -> Result<Vec<u8>, String> + 'a;

/// What [`handle`] needs from the server.
pub struct Context<'a> {
    /// The address the nodes reach this server at.
    pub host: &'a str,
    /// The server's port.
    pub port: u16,
    /// The SPKI pin of the server certificate.
    pub pin: &'a str,
    /// The CA certificate, DER.
    pub ca_der: &'a [u8],
    /// Whether a cluster name has live certificates (the collision guard).
    pub has_live_certs: &'a dyn Fn(&str) -> bool,
    /// The signer (the caller's certificate store; it also writes the
    /// audit log line and the certificate index).
    pub sign: &'a mut Signer<'a>,
}

/// The answer to a refused `GET /pair/TOKEN`. The node command pipes that
/// body into bash whatever the status (curl runs without `-f`, which would
/// only print the status code), so it is a script that prints the reason
/// on stderr and exits 1: `curl … | bash` then says why and fails.
fn refused_script(refused: &Response) -> Response {
    let reason = if refused.status == 404 {
        "no pairing window is open for this token (it was replaced by a newer one, or qnetd \
         restarted): open a new one with `qnetd pair`"
            .into()
    } else {
        String::from_utf8_lossy(&refused.body).trim_end().to_owned()
    };
    let line = format!(
        "ERROR: qnetd refused the pairing (HTTP {}): {reason}. Nothing was changed.",
        refused.status
    );
    let mut response = Response::new(
        refused.status,
        "text/x-shellscript",
        format!("printf '%s\\n' {} >&2\nexit 1\n", shell_quote(&line)).into_bytes(),
    );
    // The panel's event list still learns why.
    response.refusal = refused.refusal.clone();
    response
}

/// Answers `req` for `window` at `now`; see the module documentation.
pub fn handle(
    req: &Request,
    window: Option<&mut PairingWindow>,
    ctx: &mut Context<'_>,
    now: Timestamp,
) -> Response {
    let r = answer(req, window, ctx, now);
    if req.route == Route::Script && r.status != 200 {
        return refused_script(&r);
    }
    r
}

fn answer(
    req: &Request,
    window: Option<&mut PairingWindow>,
    ctx: &mut Context<'_>,
    now: Timestamp,
) -> Response {
    let Some(window) = window else {
        return Response::not_found();
    };
    let expires_in = window.expires().millis_since(now) / 1000;
    let mut auth = match window.authenticate(&req.token, now) {
        Ok(a) => a,
        Err(r) => return refusal(&r),
    };
    match &req.route {
        Route::Script => {
            let Ok(token) = Token::parse(&req.token) else {
                return Response::not_found();
            };
            let params = ScriptParams {
                host: ctx.host,
                port: ctx.port,
                pin: ctx.pin,
                token: &token,
                ca_der: ctx.ca_der,
            };
            match render(&params) {
                Ok(s) => Response::new(200, "text/x-shellscript", s.into_bytes()),
                Err(e) => Response::text(500, &e.to_string()),
            }
        }
        Route::CaCert => Response::new(
            200,
            "application/x-pem-file",
            format!("{}\n", pem(ctx.ca_der)).into_bytes(),
        ),
        Route::Status => {
            let w = auth.window();
            let body = format!(
                "cluster={}\nnodes={}\nsigned={}\nexpires_in={expires_in}\n",
                w.cluster().unwrap_or(""),
                w.max_certs().map_or(String::new(), |n| n.to_string()),
                w.issued()
            );
            Response::new(200, "text/plain; charset=utf-8", body.into_bytes())
        }
        Route::Conf { force } => {
            let settings = DeviceSettings {
                host: ctx.host,
                port: ctx.port,
                force: *force,
            };
            let edit = match add_device(&req.body, settings) {
                Ok(e) => e,
                Err(e) => return conf_error(&e),
            };
            let conf = match CorosyncConf::parse(&req.body) {
                Ok(c) => c,
                Err(e) => return conf_error(&e),
            };
            let Some(name) = conf.cluster_name() else {
                return Response::text(400, "corosync.conf has no totem.cluster_name");
            };
            let nodes = u32::try_from(edit.nodes).unwrap_or(u32::MAX);
            if let Err(r) = auth.bind_cluster(name, nodes, ctx.has_live_certs) {
                return refusal(&r);
            }
            let mut r = Response::new(200, "text/plain; charset=utf-8", edit.text.into_bytes());
            for w in edit.warnings {
                r.headers.push(("X-Qnetd-Warning", w));
            }
            let algorithm = corosync_conf::Algorithm::for_nodes(edit.nodes);
            r.headers
                .push(("X-Qnetd-Algorithm", algorithm.as_str().to_owned()));
            r.headers
                .push(("X-Qnetd-Config-Version", edit.config_version.to_string()));
            r
        }
        Route::ConfUndo => match raise_config_version(&req.body, 2) {
            Ok(e) => Response::new(200, "text/plain; charset=utf-8", e.text.into_bytes()),
            Err(e) => conf_error(&e),
        },
        Route::Sign { node } => {
            let cluster = match auth.check_sign() {
                Ok(c) => c.to_owned(),
                Err(r) => return refusal(&r),
            };
            if let Err(why) = check_request_names(&req.body, &cluster) {
                return Response::text(400, &why);
            }
            match (ctx.sign)(&req.body, &cluster, node) {
                Ok(der) => match auth.record_signed() {
                    Ok(()) => Response::new(200, "application/pkix-cert", der),
                    Err(r) => refusal(&r),
                },
                Err(why) => Response::text(400, &why),
            }
        }
    }
}

#[cfg(test)]
mod tests;
