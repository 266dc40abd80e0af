//! The status panel through the real binary (`--http`): source filtering,
//! the Ingress base path, request limits, the JSON status against the
//! management socket's `json` answer, the event stream, the CSRF rule, and
//! the pairing steps (a window opened from the panel, refused tokens and
//! another cluster's file, real signings with `curl` on the pairing
//! endpoint, an unpair, a lock-out, an expiry) in the event stream and the
//! page's snapshot, and the paired clusters the snapshot lists.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::pairing::{conf, curl, have_curl, post, with_secret};
use crate::support::server::{Scratch, free_ports, ipc, sample_clients};
use crate::support::{Daemon, Launch};
use crate::testkit::make_request;

/// A daemon with the panel on a free loopback port, plus `extra` options.
/// Dead peer detection is off: the test clients send no heartbeats.
pub(crate) fn start(dir: &Scratch, extra: &[&str]) -> (Daemon, u16) {
    let http = free_ports(1)[0];
    let spec = format!("127.0.0.1:{http}");
    let mut args = vec!["-s", "off", "--http", spec.as_str()];
    args.extend(extra);
    let launch = Launch::ours(&dir.0, "panel")
        .args(&args)
        .settings("dpd_enabled=off");
    (launch.start(), http)
}

/// A daemon with TLS on (so pairing works), listening on 127.0.0.1, the
/// panel on a free loopback port and its certificate store in `store`
/// under `dir`; dead peer detection off. Returns the daemon, the panel's
/// port and the store's path.
pub(crate) fn start_tls(dir: &Scratch) -> (Daemon, u16, PathBuf) {
    let http = free_ports(1)[0];
    let spec = format!("127.0.0.1:{http}");
    let store = dir.path("store");
    let launch = Launch::ours(&dir.0, "panel")
        .args(&["-s", "on", "-l", "127.0.0.1", "--http", &spec])
        .settings(&format!("nss_db_dir={},dpd_enabled=off", store.display()));
    (launch.start(), http, store)
}

/// A pairing window opened through the panel (`POST /api/pair` with
/// `json`): its token id, the pin and the node command's base URL
/// (`https://…/pair/ID.SECRET`).
pub(crate) struct Window {
    pub(crate) id: String,
    pub(crate) pin: String,
    pub(crate) url: String,
}

pub(crate) fn open_window(port: u16, json: &str) -> Window {
    let r = panel_post(port, "/api/pair", json);
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let v: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    let words: Vec<&str> = v["command"].as_str().unwrap().split_whitespace().collect();
    Window {
        id: v["id"].as_str().unwrap().to_string(),
        pin: words[3].to_string(),
        url: words[4].to_string(),
    }
}

/// A node's certificate (DER) and key.
pub(crate) type Identity = (CertificateDer<'static>, PrivateKeyDer<'static>);

/// What the node script does on the pairing endpoint, with `curl`: sends
/// the corosync.conf of `cluster` with `nodes` nodes (`n1`…), then one
/// certificate request per node to `sign`. Returns the nodes' identities.
pub(crate) fn sign_nodes(dir: &Scratch, w: &Window, cluster: &str, nodes: u32) -> Vec<Identity> {
    let (_, code, text) = post(
        &w.pin,
        &format!("{}/corosync.conf", w.url),
        &conf(dir, cluster, nodes),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&text));
    (1..=nodes)
        .map(|i| {
            let (request, key) = make_request(cluster);
            let path = dir.path(&format!("{cluster}-n{i}.csr"));
            std::fs::write(&path, request).unwrap();
            let (_, code, der) = post(&w.pin, &format!("{}/sign?node=n{i}", w.url), &path);
            assert_eq!(code, 200, "{}", String::from_utf8_lossy(&der));
            (CertificateDer::from(der), key)
        })
        .collect()
}

/// Sends `request` and returns everything until the server closes (or 5 s
/// of silence).
pub(crate) fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST` to the panel on `port` with the CSRF header.
pub(crate) fn panel_post(port: u16, path: &str, body: &str) -> String {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nX-Qnetd-Request: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn get(port: u16, path: &str) -> String {
    http(port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

#[test]
fn only_the_allowed_source_is_served() {
    let dir = Scratch::new("panel-source");
    let (_d, port) = start(&dir, &["--http-allow", "127.0.0.2"]);
    let r = get(port, "/api/status");
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 403 "), "{r}");
    assert!(!r.contains("schema_version"));

    let dir = Scratch::new("panel-source-ok");
    let (_d, port) = start(&dir, &["--http-allow", "127.0.0.1"]);
    assert!(get(port, "/api/status").starts_with("HTTP/1.1 200 "));
}

#[test]
fn routes_base_path_and_csrf() {
    let dir = Scratch::new("panel-routes");
    let (_d, port) = start(&dir, &[]);
    let page = http(
        port,
        "GET / HTTP/1.1\r\nX-Ingress-Path: /api/hassio_ingress/AbC-12_x\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    assert!(page.contains("Content-Type: text/html"));
    assert!(body(&page).contains("<base href=\"/api/hassio_ingress/AbC-12_x/\">"));
    // Without Ingress: the root.
    assert!(body(&get(port, "/")).contains("<base href=\"/\">"));
    assert!(get(port, "/nope").starts_with("HTTP/1.1 404 "));
    assert!(get(port, "/api/pair").starts_with("HTTP/1.1 405 "));
    // State-changing calls: POST with the custom header only.
    let no_header = http(port, "POST /api/pair HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(no_header.starts_with("HTTP/1.1 403 "), "{no_header}");
    let unpair = http(
        port,
        "POST /api/unpair HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(unpair.starts_with("HTTP/1.1 403 "), "{unpair}");
    // With -s off pairing is refused with the management socket's words.
    let with = http(
        port,
        "POST /api/pair HTTP/1.1\r\nX-Qnetd-Request: 1\r\nContent-Length: 9\r\n\r\nnodes=2&x",
    );
    assert!(with.starts_with("HTTP/1.1 409 "), "{with}");
    assert!(body(&with).contains("pairing needs TLS"), "{with}");
    let status = get(port, "/api/pair/status");
    assert!(status.starts_with("HTTP/1.1 409 "), "{status}");
    // A body past the limit.
    let big = http(
        port,
        "POST /api/pair HTTP/1.1\r\nX-Qnetd-Request: 1\r\nContent-Length: 5000\r\n\r\n",
    );
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
}

#[test]
fn oversized_and_slow_requests_are_cut_off_and_voting_goes_on() {
    let dir = Scratch::new("panel-limits");
    let (d, port) = start(&dir, &["--http-timeout", "300"]);
    let big = format!(
        "GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(qnetd::panel::MAX_REQUEST)
    );
    let r = http(port, &big);
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431 "), "{r}");

    // A client that never finishes its request is closed after the
    // deadline, without an answer; meanwhile nodes are served.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"GET / HTT").unwrap();
    let nodes = sample_clients(d.port);
    let mut got = Vec::new();
    let closed = slow.read_to_end(&mut got).is_ok();
    assert!(closed, "the slow client was not closed");
    assert!(got.is_empty(), "{got:?}");
    // The nodes got their votes while the slow client waited.
    let status = body(&get(port, "/api/status")).to_string();
    let doc: qnetd::mgmt::json::Report = serde_json::from_str(&status).unwrap();
    assert_eq!(doc.server.connected_clients, 3);
    drop(nodes);
}

#[test]
fn json_status_is_the_management_sockets_json() {
    let dir = Scratch::new("panel-json");
    let (d, port) = start(&dir, &[]);
    let nodes = sample_clients(d.port);
    let r = get(port, "/api/status");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(r.contains("Content-Type: application/json"));
    let raw = ipc(&dir.path("panel.sock"), b"json\n").unwrap();
    let mgmt = String::from_utf8(raw).unwrap();
    let mgmt = mgmt.strip_prefix("OK\n").unwrap();
    assert_eq!(body(&r), mgmt);
    let doc: qnetd::mgmt::json::Report = serde_json::from_str(body(&r)).unwrap();
    assert_eq!(doc.clusters.len(), 2);
    drop(nodes);
}

/// Reads server-sent events until one `status` event satisfies `want`.
fn next_status(
    s: &mut TcpStream,
    pending: &mut Vec<u8>,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let frame = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 2);
            if let Some(data) = frame
                .strip_prefix("event: status\ndata: ")
                .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
                && want(&data)
            {
                return data;
            }
        }
        let n = s.read(&mut buf).expect("an event within 5 s");
        assert!(n > 0, "stream closed");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Opens the event stream; returns it and the bytes read past its head.
fn subscribe(port: u16) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let mut head = [0u8; 1];
    while !pending.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut head).unwrap(), 1);
        pending.push(head[0]);
    }
    let head = String::from_utf8(std::mem::take(&mut pending)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("Content-Type: text/event-stream"));
    (s, pending)
}

#[test]
fn event_stream_delivers_connects_and_disconnects() {
    let dir = Scratch::new("panel-sse");
    let (d, port) = start(&dir, &[]);
    let (mut s, mut pending) = subscribe(port);
    let first = next_status(&mut s, &mut pending, |_| true);
    assert_eq!(first["report"]["clusters"], serde_json::json!([]));
    // TLS off: no pairing, no paired list.
    assert!(first["paired"].is_null(), "{first}");

    let nodes = sample_clients(d.port);
    let v = next_status(&mut s, &mut pending, |v| {
        v["report"]["clusters"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    });
    let connects = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "connect")
        .count();
    assert_eq!(connects, 3, "{v}");
    let key = format!("testcluster/127.0.0.1:{}", nodes[0].local_port);
    assert!(v["connected_since_ms"][&key].is_u64(), "{v}");

    drop(nodes);
    let v = next_status(&mut s, &mut pending, |v| {
        v["report"]["clusters"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    let kinds: Vec<_> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "disconnect").count(),
        3,
        "{kinds:?}"
    );
}

#[test]
fn a_client_that_keeps_sending_after_its_request_is_closed() {
    let dir = Scratch::new("panel-flood");
    let (_d, port) = start(&dir, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\n\r\n").unwrap();
    let mut first = [0u8; 16];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r");
    // The stream stays open for a quiet client; not for this one.
    let _ = s.write_all(&vec![b'x'; 4 * qnetd::panel::MAX_REQUEST]);
    let mut rest = Vec::new();
    let closed = match s.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the stream was not closed");
}

/// The events of a status snapshot of kind `kind`.
fn of_kind<'a>(v: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn pairing_steps_reach_the_event_stream_and_the_page() {
    if !have_curl() {
        return;
    }
    let dir = Scratch::new("panel-pairing");
    let (_d, port, store) = start_tls(&dir);
    let (mut s, mut pending) = subscribe(port);
    next_status(&mut s, &mut pending, |_| true);

    // Opened from the panel: the step names the window, never the secret.
    let w = open_window(port, r#"{"nodes":2}"#);
    let secret = w.url.rsplit_once('.').unwrap().1.to_string();
    let v = next_status(&mut s, &mut pending, |v| {
        !of_kind(v, "pair_open").is_empty()
    });
    let open = of_kind(&v, "pair_open")[0];
    assert_eq!(open["token"], w.id.as_str(), "{v}");
    assert_eq!(open["nodes"], 2);
    assert!(open["cluster"].is_null());
    let ttl = open["expires_at_ms"].as_u64().unwrap() - open["at_ms"].as_u64().unwrap();
    assert!((1_790_000..=1_800_000).contains(&ttl), "{ttl}");

    // A wrong secret is refused, by token id and address.
    let bad = with_secret(&w.url, &"0".repeat(32));
    assert_eq!(curl(Some(&w.pin), &bad, &[]).1, 403);
    // The node script's calls: corosync.conf binds 'alpha', two signings
    // complete the window.
    sign_nodes(&dir, &w, "alpha", 2);
    let v = next_status(&mut s, &mut pending, |v| {
        !of_kind(v, "pair_closed").is_empty()
    });
    let refused = of_kind(&v, "pair_refused");
    assert_eq!(refused.len(), 1, "{v}");
    assert_eq!(refused[0]["token"], w.id.as_str());
    assert_eq!(refused[0]["reason"], "bad_secret");
    assert_eq!(refused[0]["status"], 403);
    assert!(
        refused[0]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // The signed steps are the certificate index's entries.
    let issued = qnetd::cert::store::CertStore::open(&store)
        .issued()
        .unwrap();
    let signed = of_kind(&v, "pair_signed");
    assert_eq!((signed.len(), issued.len()), (2, 2), "{v}");
    for (e, entry) in signed.iter().zip(&issued) {
        assert_eq!(e["token"], w.id.as_str());
        assert_eq!(e["cluster"], "alpha");
        assert_eq!(e["node"], entry.node.as_str());
        assert_eq!(e["serial"], entry.serial);
        assert!(e["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    let closed = of_kind(&v, "pair_closed");
    assert_eq!(closed.len(), 1, "{v}");
    assert_eq!(closed[0]["reason"], "completed");
    assert_eq!(closed[0]["cluster"], "alpha");
    // In order: opened, refused, signed twice, completed.
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "pair_open",
            "pair_refused",
            "pair_signed",
            "pair_signed",
            "pair_closed"
        ]
    );

    // Another cluster's corosync.conf on the same window: refused.
    let beta = conf(&dir, "beta", 2);
    assert_eq!(
        post(&w.pin, &format!("{}/corosync.conf", w.url), &beta).1,
        409
    );
    // Unpaired from the panel.
    let r = panel_post(port, "/api/unpair", r#"{"cluster":"alpha"}"#);
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let v = next_status(&mut s, &mut pending, |v| !of_kind(v, "unpair").is_empty());
    let wrong = of_kind(&v, "pair_refused")[1];
    assert_eq!(
        (&wrong["reason"], &wrong["status"], &wrong["token"]),
        (&"wrong_cluster".into(), &409.into(), &w.id.as_str().into()),
        "{v}"
    );
    let unpair = of_kind(&v, "unpair")[0];
    assert_eq!(unpair["cluster"], "alpha");
    assert_eq!(unpair["revoked"], 2);
    assert_eq!(unpair["disconnected"], 0);
    // The completed window was reported once, not again by the unpair.
    assert_eq!(of_kind(&v, "pair_closed").len(), 1, "{v}");

    // A new window locked out by wrong secrets: each refusal, then the end.
    let w2 = open_window(port, "{}");
    let bad = with_secret(&w2.url, &"1".repeat(32));
    let codes: Vec<u16> = (0..5).map(|_| curl(Some(&w2.pin), &bad, &[]).1).collect();
    assert_eq!(codes, [403, 403, 403, 403, 410]);
    let v = next_status(&mut s, &mut pending, |v| {
        of_kind(v, "pair_closed").len() == 2
    });
    let reasons: Vec<&str> = of_kind(&v, "pair_refused")
        .iter()
        .filter(|e| e["token"] == w2.id.as_str())
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "bad_secret",
            "bad_secret",
            "bad_secret",
            "bad_secret",
            "locked_out"
        ]
    );
    let last = v["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "pair_closed", "{v}");
    assert_eq!(last["reason"], "locked_out");
    assert_eq!(last["token"], w2.id.as_str());

    // The page's inline snapshot has the same list; nothing has the secret.
    let page = get(port, "/");
    assert!(page.contains(r#""kind":"pair_signed""#), "{page}");
    assert!(!page.contains(&secret));
    assert!(!v.to_string().contains(&secret));
}

#[test]
fn an_expiring_window_is_reported_on_time_without_a_request() {
    let dir = Scratch::new("panel-expiry");
    let (_d, port, _store) = start_tls(&dir);
    let (mut s, mut pending) = subscribe(port);
    next_status(&mut s, &mut pending, |_| true);
    // Opened through the management socket (`qnetd pair --ttl 1`).
    let r = ipc(&dir.path("panel.sock"), b"pair open ttl=1\n").unwrap();
    assert!(r.starts_with(b"OK\n"), "{}", String::from_utf8_lossy(&r));
    let v = next_status(&mut s, &mut pending, |v| {
        !of_kind(v, "pair_closed").is_empty()
    });
    let open = of_kind(&v, "pair_open")[0];
    let closed = of_kind(&v, "pair_closed")[0];
    assert_eq!(closed["reason"], "expired", "{v}");
    assert_eq!(closed["token"], open["token"]);
    // At the expiry: the loop wakes for it (an idle loop would otherwise
    // sleep until the 15 s keepalive, past the stream's 5 s read timeout).
    let expiry = open["expires_at_ms"].as_u64().unwrap();
    assert!(closed["at_ms"].as_u64().unwrap() >= expiry, "{v}");
}

#[test]
fn paired_lists_the_clusters_with_live_certificates_connected_or_not() {
    if !have_curl() {
        return;
    }
    let dir = Scratch::new("panel-paired");
    let (d, port, store) = start_tls(&dir);
    // Two clusters connected in clear, without certificates.
    let nodes = sample_clients(d.port);
    let (mut s, mut pending) = subscribe(port);
    let v = next_status(&mut s, &mut pending, |v| {
        v["report"]["clusters"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    });
    assert_eq!(v["paired"], serde_json::json!([]), "{v}");

    // testcluster paired through the endpoint: listed, though its nodes
    // still vote in clear; and a cluster with no node connected too.
    let w = open_window(port, r#"{"nodes":2,"cluster":"testcluster"}"#);
    sign_nodes(&dir, &w, "testcluster", 2);
    let v = next_status(&mut s, &mut pending, |v| {
        v["paired"] == serde_json::json!(["testcluster"])
    });
    assert_eq!(v["report"]["clusters"].as_array().unwrap().len(), 2);
    let w = open_window(port, r#"{"nodes":2}"#);
    sign_nodes(&dir, &w, "lab", 2);
    let v = next_status(&mut s, &mut pending, |v| {
        v["paired"] == serde_json::json!(["lab", "testcluster"])
    });
    let mut connected: Vec<&str> = v["report"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    connected.sort_unstable();
    assert_eq!(connected, ["other", "testcluster"], "{v}");
    // The list is the index's live clusters; the page has it inline.
    let issued = qnetd::cert::store::CertStore::open(&store)
        .issued()
        .unwrap();
    let mut live: Vec<&str> = qnetd::cert::index::live_clusters(&issued).collect();
    live.sort_unstable();
    live.dedup();
    assert_eq!(live, ["lab", "testcluster"]);
    let page = get(port, "/");
    assert!(page.contains(r#""paired":["lab","testcluster"]"#), "{page}");

    // Unpaired from the panel: gone (its clients too); the unpaired and the
    // never-paired cluster cannot be unpaired.
    let r = panel_post(port, "/api/unpair", r#"{"cluster":"testcluster"}"#);
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(body(&r).contains(r#""disconnected":"2""#), "{r}");
    let v = next_status(&mut s, &mut pending, |v| {
        v["paired"] == serde_json::json!(["lab"])
    });
    assert_eq!(of_kind(&v, "unpair")[0]["cluster"], "testcluster");
    for cluster in ["testcluster", "other"] {
        let r = panel_post(
            port,
            "/api/unpair",
            &format!(r#"{{"cluster":"{cluster}"}}"#),
        );
        assert!(r.starts_with("HTTP/1.1 409 "), "{r}");
        assert!(body(&r).contains("no live certificates"), "{r}");
    }
    let r = panel_post(port, "/api/unpair", r#"{"cluster":"lab"}"#);
    assert!(body(&r).contains(r#""disconnected":"0""#), "{r}");
    next_status(&mut s, &mut pending, |v| {
        v["paired"] == serde_json::json!([])
    });
    drop(nodes);
}
