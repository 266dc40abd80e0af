//! Tests of the pairing endpoint: hostile requests to [`parse`], and the
//! whole flow through [`handle`] with a fake signer.

use std::cell::RefCell;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::*;
use crate::pair::pin::spki_pin;
use crate::pair::token::{MAX_FAILED_ATTEMPTS, RANDOM_LEN, WindowParams};

const T0: Timestamp = Timestamp::from_millis(5_000_000);

fn reference(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/testdata/reference")
        .join(name);
    CertificateDer::from_pem_file(&path).expect("pem").to_vec()
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/pair/testdata/corosync-conf")
            .join(name),
    )
    .expect("corpus")
}

/// A DER certificate request with common name `cn` (or only an O).
fn request_for(cn: Option<&str>) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    match cn {
        Some(cn) => params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn),
        None => params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "x"),
    }
    let key = rcgen::KeyPair::generate().expect("key");
    params.serialize_request(&key).expect("csr").der().to_vec()
}

#[test]
fn request_names() {
    let reference = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/reference/qdevice-net-node.crq"),
    )
    .expect("crq");
    assert_eq!(check_request_names(&reference, "testcluster"), Ok(()));
    assert!(check_request_names(&reference, "TestCluster").is_err());
    assert!(check_request_names(&reference, "testcluste").is_err());
    assert!(check_request_names(&request_for(Some("a")), "a").is_ok());
    assert!(check_request_names(&request_for(Some("*")), "a").is_err());
    assert!(check_request_names(&request_for(None), "a").is_err());
    assert!(check_request_names(&[], "a").is_err());
    assert!(check_request_names(&reference[..reference.len() - 1], "testcluster").is_err());
}

fn token() -> Token {
    Token::from_random(&[0x3c; RANDOM_LEN])
}

fn request(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: q\r\n").into_bytes();
    if method == "POST" {
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn parsed(bytes: &[u8]) -> Request {
    match parse(bytes) {
        Parse::Request(r, n) => {
            assert_eq!(n, bytes.len());
            r
        }
        other => panic!("not a request: {other:?}"),
    }
}

fn rejected(bytes: &[u8]) -> u16 {
    match parse(bytes) {
        Parse::Reject(r) => r.status(),
        other => panic!(
            "not rejected: {other:?} for {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn routes() {
    let t = token().to_string();
    let cases = [
        ("GET", format!("/pair/{t}"), Route::Script),
        ("GET", format!("/pair/{t}/ca.crt"), Route::CaCert),
        ("GET", format!("/pair/{t}/status"), Route::Status),
        (
            "POST",
            format!("/pair/{t}/corosync.conf"),
            Route::Conf { force: false },
        ),
        (
            "POST",
            format!("/pair/{t}/corosync.conf?force=1"),
            Route::Conf { force: true },
        ),
        (
            "POST",
            format!("/pair/{t}/corosync.conf/undo"),
            Route::ConfUndo,
        ),
        (
            "POST",
            format!("/pair/{t}/sign?node=pve-1"),
            Route::Sign {
                node: "pve-1".into(),
            },
        ),
    ];
    for (method, target, route) in cases {
        let r = parsed(&request(method, &target, b""));
        assert_eq!(r.route, route, "{target}");
        assert_eq!(r.token, t);
    }
}

#[test]
fn every_other_path_and_method_is_404() {
    let t = token().to_string();
    let targets = [
        "/".to_owned(),
        "/pair".into(),
        "/pair/".into(),
        "/pair//status".into(),
        "/PAIR/x".into(),
        format!("/pair/{t}/"),
        format!("/pair/{t}/other"),
        format!("/pair/{t}/../../etc/passwd"),
        format!("/pair/{t}/status/"),
        format!("/pair/{t}/status?x=1"),
        format!("/pair/{t}?x"),
        format!("/pair/{t}/corosync.conf?force=yes"),
        format!("/pair/{t}/sign"),
        format!("/pair/{t}/sign?node="),
        format!("/pair/{t}/sign?node=a%20b"),
        format!("/pair/{t}/sign?node=a/b"),
        format!("/pair/{t}/sign?node={}", "a".repeat(64)),
        format!("http://q/pair/{t}"),
        "*".into(),
    ];
    for target in &targets {
        assert_eq!(rejected(&request("GET", target, b"")), 404, "{target}");
    }
    for method in ["PUT", "DELETE", "HEAD", "OPTIONS", "CONNECT", "get"] {
        assert_eq!(
            rejected(&request(method, &format!("/pair/{t}"), b"")),
            404,
            "{method}"
        );
    }
    assert_eq!(rejected(&request("POST", &format!("/pair/{t}"), b"")), 404);
    assert_eq!(
        rejected(&request("GET", &format!("/pair/{t}/sign?node=a"), b"")),
        404
    );
}

#[test]
fn incomplete_requests_wait_and_oversized_heads_are_refused() {
    let t = token().to_string();
    let full = request("POST", &format!("/pair/{t}/corosync.conf"), b"abc");
    for cut in 0..full.len() {
        assert_eq!(parse(&full[..cut]), Parse::Incomplete, "cut at {cut}");
    }
    let mut big = format!("GET /pair/{t} HTTP/1.1\r\nX: ").into_bytes();
    big.resize(MAX_HEAD + 1, b'a');
    assert_eq!(rejected(&big), 431);
    let mut many = format!("GET /pair/{t} HTTP/1.1\r\n").into_bytes();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(rejected(&many), 431);
    assert_eq!(rejected(b"\x16\x03\x01\x00\x05hello\r\n\r\n"), 400);
    assert_eq!(rejected(b"GET /pair/x HTTP/9.9\r\n\r\n"), 400);
    assert_eq!(rejected(b"GET /pair/x\0 HTTP/1.1\r\n\r\n"), 400);
}

#[test]
fn bodies_are_bounded_and_framed() {
    let t = token().to_string();
    let target = format!("/pair/{t}/corosync.conf");
    let head = |extra: &str| format!("POST {target} HTTP/1.1\r\n{extra}\r\n").into_bytes();
    assert_eq!(rejected(&head("")), 411);
    assert_eq!(rejected(&head("Transfer-Encoding: chunked\r\n")), 400);
    assert_eq!(
        rejected(&head("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")),
        400
    );
    for bad in ["x", "-1", "1 2", "+3", "", "99999999999999999999999999"] {
        assert_eq!(
            rejected(&head(&format!("Content-Length: {bad}\r\n"))),
            400,
            "{bad:?}"
        );
    }
    assert_eq!(
        rejected(&head("Content-Length: 3\r\nContent-Length: 4\r\n")),
        400
    );
    // Refused as soon as the head announces too much, before any body.
    assert_eq!(
        rejected(&head(&format!("Content-Length: {}\r\n", MAX_CONF_LEN + 1))),
        413
    );
    let sign = format!(
        "POST /pair/{t}/sign?node=a HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        MAX_CSR_LEN + 1
    );
    assert_eq!(rejected(sign.as_bytes()), 413);
    let get = format!("GET /pair/{t} HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(rejected(get.as_bytes()), 400);
    // The same length twice is fine; bytes after the body are not taken.
    let mut ok = head("Content-Length: 3\r\nContent-Length: 3\r\n");
    ok.extend_from_slice(b"abcGET /");
    match parse(&ok) {
        Parse::Request(r, n) => {
            assert_eq!(r.body, b"abc");
            assert_eq!(n, ok.len() - 5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn response_bytes() {
    let mut r = Response::text(409, "no");
    r.headers
        .push(("X-Qnetd-Warning", "a\r\nSet-Cookie: x\u{7f}é".into()));
    let bytes = r.to_bytes();
    let text = String::from_utf8(bytes).expect("utf8");
    assert!(text.starts_with("HTTP/1.1 409 Conflict\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Length: 3\r\n"));
    assert!(text.contains("\r\nConnection: close\r\n"));
    assert!(
        text.contains("\r\nX-Qnetd-Warning: a??Set-Cookie: x??\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nno\n"));
    // The response parses back as HTTP.
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    assert!(matches!(
        resp.parse(text.as_bytes()),
        Ok(httparse::Status::Complete(_))
    ));
    assert_eq!(resp.code, Some(409));
}

struct Server {
    window: PairingWindow,
    ca: Vec<u8>,
    pin: String,
    signed: RefCell<Vec<(String, String)>>,
    live: Vec<&'static str>,
}

impl Server {
    fn new(params: WindowParams) -> Self {
        Self {
            window: PairingWindow::open(params, &token(), T0, |_| false).expect("open"),
            ca: reference("qnetd-cacert.crt"),
            pin: spki_pin(&reference("qnetd-server.crt")).expect("pin"),
            signed: RefCell::new(Vec::new()),
            live: Vec::new(),
        }
    }

    fn call_at(
        &mut self,
        method: &str,
        sub: &str,
        body: &[u8],
        presented: &str,
        now: Timestamp,
    ) -> Response {
        let req = parsed(&request(method, &format!("/pair/{presented}{sub}"), body));
        let live = self.live.clone();
        let has_live = move |n: &str| live.contains(&n);
        let signed = &self.signed;
        let mut sign = |csr: &[u8], cluster: &str, node: &str| {
            if node == "broken" {
                return Err("the request's signature is wrong".to_owned());
            }
            assert!(check_request_names(csr, cluster).is_ok());
            signed
                .borrow_mut()
                .push((cluster.to_owned(), node.to_owned()));
            Ok(format!("CERT {cluster} {node}").into_bytes())
        };
        let mut ctx = Context {
            host: "192.0.2.10",
            port: 5403,
            pin: &self.pin,
            ca_der: &self.ca,
            has_live_certs: &has_live,
            sign: &mut sign,
        };
        handle(&req, Some(&mut self.window), &mut ctx, now)
    }

    fn call(&mut self, method: &str, sub: &str, body: &[u8]) -> Response {
        self.call_at(method, sub, body, &token().to_string(), T0)
    }
}

#[test]
fn pairing_flow() {
    let mut s = Server::new(WindowParams::default());
    let script = s.call("GET", "", b"");
    assert_eq!(script.status(), 200);
    let text = String::from_utf8(script.body().to_vec()).expect("utf8");
    assert!(text.starts_with("#!/bin/bash"));
    assert!(text.contains(&token().to_string()));
    assert!(text.contains(&s.pin));
    let ca = s.call("GET", "/ca.crt", b"");
    let back = CertificateDer::from_pem_slice(ca.body()).expect("pem");
    assert_eq!(back.as_ref(), &s.ca[..]);
    let csr = request_for(Some("homelab"));
    // Signing before corosync.conf binds the window is refused.
    assert_eq!(s.call("POST", "/sign?node=pve1", &csr).status(), 409);
    let conf = corpus("pve8-2node.conf");
    let edited = s.call("POST", "/corosync.conf", &conf);
    assert_eq!(edited.status(), 200);
    assert_eq!(edited.body(), corpus("pve8-2node.add"));
    assert_eq!(
        edited.header("X-Qnetd-Algorithm").collect::<Vec<_>>(),
        ["ffsplit"]
    );
    assert_eq!(
        edited.header("x-qnetd-config-version").collect::<Vec<_>>(),
        ["3"]
    );
    let status = s.call("GET", "/status", b"");
    let st = String::from_utf8(status.body().to_vec()).expect("utf8");
    assert_eq!(st, "cluster=homelab\nnodes=2\nsigned=0\nexpires_in=1800\n");
    // The edited file again: already configured.
    let again = s.call("POST", "/corosync.conf", edited.body());
    assert_eq!(again.status(), 409);
    let undo = s.call("POST", "/corosync.conf/undo", &conf);
    assert_eq!(undo.status(), 200);
    assert!(String::from_utf8_lossy(undo.body()).contains("config_version: 4"));
    // Refused requests are not counted: a signer failure, a request for
    // another cluster or without a name, garbage.
    assert_eq!(s.call("POST", "/sign?node=broken", &csr).status(), 400);
    let other = s.call("POST", "/sign?node=pve1", &request_for(Some("prod")));
    assert_eq!(other.status(), 400);
    assert!(
        String::from_utf8_lossy(other.body()).contains("is for 'prod', not for cluster 'homelab'")
    );
    assert_eq!(
        s.call("POST", "/sign?node=pve1", &request_for(None))
            .status(),
        400
    );
    assert_eq!(s.call("POST", "/sign?node=pve1", b"csr").status(), 400);
    let mut trailing = csr.clone();
    trailing.push(0);
    assert_eq!(s.call("POST", "/sign?node=pve1", &trailing).status(), 400);
    for node in ["pve1", "pve2"] {
        let r = s.call("POST", &format!("/sign?node={node}"), &csr);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), format!("CERT homelab {node}").as_bytes());
    }
    // A replay after N certificates.
    let r = s.call("POST", "/sign?node=pve3", &csr);
    assert_eq!(r.status(), 409);
    assert_eq!(
        *s.signed.borrow(),
        [
            ("homelab".to_owned(), "pve1".to_owned()),
            ("homelab".into(), "pve2".into())
        ]
    );
    // Another cluster's file.
    let other = corpus("pve7-3node-two-links.conf");
    let r = s.call("POST", "/corosync.conf", &other);
    assert_eq!(r.status(), 409);
    assert!(String::from_utf8_lossy(r.body()).contains("'homelab', not 'prod-cl'"));
}

#[test]
fn warnings_become_headers() {
    let mut s = Server::new(WindowParams::default());
    let r = s.call(
        "POST",
        "/corosync.conf",
        &corpus("plain-5node-lms-atb.conf"),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("X-Qnetd-Warning").count(), 4);
    assert_eq!(r.header("X-Qnetd-Algorithm").collect::<Vec<_>>(), ["lms"]);
    let bad = s.call("POST", "/corosync.conf", b"totem {\n");
    assert_eq!(bad.status(), 400);
    assert!(String::from_utf8_lossy(bad.body()).contains("never closed"));
}

/// A window of 60 s at `T0`, its token, the token with a wrong secret, and
/// a token of another window.
fn refusal_setup() -> (Server, Token, String, String) {
    let s = Server::new(WindowParams {
        ttl_ms: 60_000,
        ..WindowParams::default()
    });
    let t = token();
    let wrong = format!("{}.{}", t.id(), "0".repeat(32));
    let other = Token::from_random(&[1; RANDOM_LEN]).to_string();
    (s, t, wrong, other)
}

#[test]
fn token_refusals() {
    let (mut s, t, wrong, other) = refusal_setup();
    let unknown = s.call_at("GET", "", b"", &other, T0);
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.refusal(), Some(&Refusal::UnknownId));
    assert_eq!(s.call_at("GET", "", b"", "nonsense", T0).status(), 404);
    let expired = s.call_at("GET", "", b"", &t.to_string(), T0.add_millis(60_000));
    assert_eq!(expired.status(), 410);
    assert_eq!(expired.refusal(), Some(&Refusal::Expired));
    assert_eq!(s.call("GET", "/status", b"").refusal(), None);
    for _ in 1..MAX_FAILED_ATTEMPTS {
        let r = s.call_at("GET", "", b"", &wrong, T0);
        assert_eq!(r.status(), 403);
        assert!(matches!(r.refusal(), Some(Refusal::BadSecret { .. })));
        assert!(!String::from_utf8_lossy(&r.to_bytes()).contains(&t.to_string()[9..]));
    }
    assert_eq!(s.call_at("GET", "", b"", &wrong, T0).status(), 410);
    assert_eq!(s.call("GET", "", b"").status(), 410);
    // No window at all.
    let req = parsed(&request("GET", &format!("/pair/{t}"), b""));
    let mut sign = |_: &[u8], _: &str, _: &str| Err::<Vec<u8>, String>("no".into());
    let ca = reference("qnetd-cacert.crt");
    let mut ctx = Context {
        host: "h",
        port: 5403,
        pin: "",
        ca_der: &ca,
        has_live_certs: &|_| false,
        sign: &mut sign,
    };
    assert_eq!(handle(&req, None, &mut ctx, T0).status(), 404);
}

/// `bash -c BODY`: (exit status, stdout, stderr), or `None` without bash.
fn run_in_bash(body: &[u8]) -> Option<(i32, String, String)> {
    let script = String::from_utf8(body.to_vec()).expect("utf8");
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .ok()?;
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn refused_script_requests_answer_a_script_that_says_why_and_fails() {
    let (mut s, t, wrong, other) = refusal_setup();
    let cases = [
        (
            s.call_at("GET", "", b"", &t.to_string(), T0.add_millis(60_000)),
            410,
            "the pairing window has expired: open a new one with `qnetd pair`",
        ),
        (
            s.call_at("GET", "", b"", &wrong, T0),
            403,
            "wrong pairing token secret",
        ),
        (
            s.call_at("GET", "", b"", &other, T0),
            404,
            "no pairing window is open for this token",
        ),
    ];
    for (r, status, reason) in cases {
        assert_eq!(r.status(), status);
        let wire = String::from_utf8_lossy(&r.to_bytes()).into_owned();
        assert!(
            wire.contains("Content-Type: text/x-shellscript\r\n"),
            "{wire}"
        );
        assert!(!wire.contains(&t.to_string()[9..]), "{wire}");
        let Some((rc, stdout, stderr)) = run_in_bash(r.body()) else {
            eprintln!("skipped: no bash");
            return;
        };
        assert_eq!(rc, 1, "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "ERROR: qnetd refused the pairing (HTTP {status}): "
            )),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "{stderr}");
        assert!(stderr.ends_with("Nothing was changed.\n"), "{stderr}");
    }
    // The other routes keep their one-line text answers for the script's own requests.
    let r = s.call_at("GET", "/status", b"", &other, T0);
    assert_eq!((r.status(), r.body()), (404, &b"not found\n"[..]));
}

#[test]
fn name_collision_is_409() {
    let mut s = Server::new(WindowParams::default());
    s.live = vec!["homelab"];
    let r = s.call("POST", "/corosync.conf", &corpus("pve8-2node.conf"));
    assert_eq!(r.status(), 409);
    assert!(String::from_utf8_lossy(r.body()).contains("--replace"));
    let mut s = Server::new(WindowParams {
        replace: true,
        ..WindowParams::default()
    });
    s.live = vec!["homelab"];
    assert_eq!(
        s.call("POST", "/corosync.conf", &corpus("pve8-2node.conf"))
            .status(),
        200
    );
}

#[test]
fn refusal_statuses() {
    assert_eq!(refusal_status(&Refusal::UnknownId), 404);
    assert_eq!(refusal_status(&Refusal::BadSecret { remaining: 1 }), 403);
    assert_eq!(refusal_status(&Refusal::Expired), 410);
    assert_eq!(refusal_status(&Refusal::CertLimit(2)), 409);
    assert_eq!(refusal_status(&Refusal::BadClusterName("x y".into())), 400);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
        let mut prefixed = b"POST /pair/x/corosync.conf HTTP/1.1\r\n".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = parse(&prefixed);
    }
}
