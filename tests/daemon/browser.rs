//! The status panel in a real browser: Debian's headless `chromium`
//! against our daemon with live wire clients. The DOM shows exactly the
//! clusters, nodes and votes the JSON status has; the page follows a
//! disconnect and a partition on its own (server-sent events: the tab
//! title carries each cluster's state line, read through the DevTools
//! HTTP endpoint `/json/list`); "Pair a cluster" shows the node command,
//! and the event list the window opened; Unpair buttons on the cards of
//! paired clusters only (none without TLS), and a small card for a paired
//! cluster with no node connected; screenshots in light and dark mode and
//! phone-sized, of a cluster paired through the pairing endpoint whose
//! nodes vote over TLS with the signed certificates. With
//! `QNETD_PANEL_SCREENSHOTS=DIR` the screenshots are also copied to `DIR`
//! (how `docs/img/panel-*.png` are made).

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qnetd::cert::store::CertStore;
use qnetd::proto::build;
use qnetd::proto::{Msg, NodeListType, RingId};
use rustls::pki_types::CertificateDer;

use super::panel::{Identity, http, open_window, sign_nodes, start, start_tls};
use crate::support::server::{Scratch, ids, sample_clients};
use crate::support::skip;
use crate::support::wire::take_frame;
use crate::testkit::{Client as TlsClient, client_config};

const INSTALL: &str = "apt-get install -y chromium";

fn chromium() -> Option<PathBuf> {
    let found = skip::program("chromium");
    if found.is_none() {
        skip::skip("chromium is not installed", INSTALL);
    }
    found
}

/// Headless Chromium with a fresh profile in `profile` and `extra` flags.
/// Its `TMPDIR` is the profile too: Chromium leaves its singleton socket's
/// `org.chromium.Chromium.*` directory behind in `TMPDIR`, and the profile
/// goes with the test's scratch directory.
fn browser(exe: &Path, profile: &Path, extra: &[&str]) -> Command {
    std::fs::create_dir_all(profile).unwrap();
    let mut c = Command::new(exe);
    c.env("TMPDIR", profile);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// The page's DOM after its first live update.
fn dump_dom(exe: &Path, dir: &Scratch, url: &str) -> String {
    let out = browser(
        exe,
        &dir.path("dom-profile"),
        &["--timeout=5000", "--dump-dom", url],
    )
    .output()
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(port: u16) -> qnetd::mgmt::json::Report {
    let r = http(port, "GET /api/status HTTP/1.1\r\n\r\n");
    serde_json::from_str(r.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn page_shows_the_clusters_nodes_and_votes_that_exist() {
    let Some(exe) = chromium() else { return };
    let dir = Scratch::new("browser-dom");
    let (d, port) = start(&dir, &[]);
    let nodes = sample_clients(d.port);
    let report = status(port);
    let dom = dump_dom(&exe, &dir, &format!("http://127.0.0.1:{port}/"));
    assert_eq!(
        dom.matches("<section class=\"card cluster\"").count(),
        report.clusters.len(),
        "{dom}"
    );
    assert_eq!(dom.matches("<tr data-node=").count(), 3, "{dom}");
    for c in &report.clusters {
        assert!(
            dom.contains(&format!("data-cluster=\"{}\"", c.name)),
            "{dom}"
        );
        for n in &c.nodes {
            let vote = serde_json::to_value(n.last_ack_nack_vote.or(n.last_vote))
                .unwrap()
                .as_str()
                .unwrap_or("none")
                .to_string();
            let row = format!(
                "<tr data-node=\"{}\"><td data-label=\"Node\">{}</td><td data-label=\"Address\">{}</td>",
                n.node_id, n.node_id, n.address
            );
            assert!(dom.contains(&row), "{row} in {dom}");
            assert!(
                dom.contains(&format!("class=\"vote vote-{vote}\">{vote}</td>")),
                "vote {vote} in {dom}"
            );
        }
    }
    assert!(dom.contains("voting: nodes 1, 2 have the vote"), "{dom}");
    assert!(dom.contains("<b>Clients</b>3</li>"), "{dom}");
    // TLS off: nothing is paired, nothing can be unpaired.
    assert!(!dom.contains(UNPAIR), "{dom}");
    assert!(
        !dom.contains("<section class=\"card cluster idle\""),
        "{dom}"
    );
    drop(nodes);
}

/// The titles of the browser's pages, from the DevTools HTTP endpoint.
fn titles(devtools: u16) -> Vec<String> {
    let r = http(
        devtools,
        "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    let Some((_, body)) = r.split_once("\r\n\r\n") else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["title"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The DevTools port a browser started with `--remote-debugging-port=0`
/// and `profile` writes (waits up to 30 s).
fn devtools_port(profile: &Path) -> u16 {
    let active = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        if let Some(p) = std::fs::read_to_string(&active)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
        {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no DevToolsActivePort"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 20 s for a page whose title passes `want`.
fn wait_title(devtools: u16, what: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
    let start = Instant::now();
    loop {
        let t = titles(devtools);
        if t.iter().any(|t| want(t)) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no page title {what}: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn page_follows_a_disconnect_and_a_partition_on_its_own() {
    let Some(exe) = chromium() else { return };
    let dir = Scratch::new("browser-live");
    let (d, port) = start(&dir, &[]);
    let mut nodes = sample_clients(d.port);
    let profile = dir.path("live-profile");
    let child = browser(
        &exe,
        &profile,
        &[
            "--remote-debugging-port=0",
            &format!("http://127.0.0.1:{port}/"),
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let _browser = Kill(child);
    let devtools = devtools_port(&profile);
    wait_title(devtools, "with both clusters", |t| {
        t == "QNetd: testcluster voting: nodes 1, 2 have the vote; other voting: node 3 has the vote"
    });

    // Node 3 (cluster "other") goes away: the page drops the cluster.
    drop(nodes.pop());
    wait_title(devtools, "without cluster other", |t| {
        t == "QNetd: testcluster voting: nodes 1, 2 have the vote"
    });

    // Nodes 1 and 2 lose each other: two rings, the vote to node 1.
    for (i, node) in nodes.iter_mut().enumerate() {
        let id = u32::try_from(i + 1).unwrap();
        node.node_list(NodeListType::Membership, &ids(&[id]), |m| {
            m.ring_id = Some(RingId {
                node_id: id,
                seq: 9,
            });
        });
    }
    wait_title(devtools, "with the split", |t| {
        t == "QNetd: testcluster split: nodes 1 | 2, vote to 1"
    });
}

/// A card's Unpair button.
const UNPAIR: &str = "<button type=\"button\" class=\"flat unpair\">Unpair</button>";

/// The card of `cluster` in a dumped DOM (its `<section>`), if any.
fn card<'a>(dom: &'a str, class: &str, cluster: &str) -> Option<&'a str> {
    let open = format!("<section class=\"{class}\" data-cluster=\"{cluster}\">");
    let rest = dom.split_once(&open)?.1;
    rest.split_once("</section>").map(|(card, _)| card)
}

/// The screenshots show "testcluster" paired through the pairing endpoint
/// (window opened from the panel, two certificates signed with `curl`)
/// and then connected, next to an unpaired cluster and a paired one with
/// no node connected: only the paired clusters' cards have an Unpair
/// button (checked in the DOM), and the pairing steps are in the event
/// list.
#[test]
fn screenshots_light_dark_and_phone() {
    let Some(exe) = chromium() else { return };
    if !crate::pairing::have_curl() {
        return;
    }
    let dir = Scratch::new("browser-shots");
    let (d, port, store) = start_tls(&dir);
    let w = open_window(port, r#"{"nodes":2,"cluster":"lab"}"#);
    sign_nodes(&dir, &w, "lab", 2);
    let w = open_window(port, r#"{"nodes":2,"cluster":"testcluster"}"#);
    let identities = sign_nodes(&dir, &w, "testcluster", 2);
    let ca = CertStore::open(&store).load_ca_certs().unwrap().remove(0);
    let relay = tls_relay(d.port, &ca, "testcluster", identities, 3);
    let nodes = sample_clients(relay);
    let report = status(port);
    let tls: Vec<bool> = report
        .clusters
        .iter()
        .flat_map(|c| c.nodes.iter().map(|n| n.tls.client_certificate_verified))
        .collect();
    assert_eq!(
        tls,
        [true, true, false],
        "testcluster over TLS, other in clear"
    );
    let url = format!("http://127.0.0.1:{port}/");
    let dom = dump_dom(&exe, &dir, &url);
    let paired = card(&dom, "card cluster", "testcluster").unwrap_or_default();
    assert!(paired.contains("<tr data-node=\"2\">"), "{dom}");
    assert!(paired.contains(UNPAIR), "{dom}");
    let plain = card(&dom, "card cluster", "other").unwrap_or_default();
    assert!(plain.contains("<tr data-node=\"3\">"), "{dom}");
    assert!(!plain.contains("Unpair"), "{dom}");
    let idle = card(&dom, "card cluster idle", "lab").unwrap_or_default();
    assert!(idle.contains("paired, no node connected"), "{dom}");
    assert!(idle.contains(UNPAIR), "{dom}");
    assert_eq!(dom.matches(UNPAIR).count(), 2, "{dom}");
    let copy_to = std::env::var_os("QNETD_PANEL_SCREENSHOTS").map(PathBuf::from);
    for (name, size, dark) in [
        ("panel-light.png", "1100,990", false),
        ("panel-dark.png", "1100,990", true),
        ("panel-phone.png", "390,844", false),
    ] {
        let file = dir.path(name);
        let scheme = format!("--blink-settings=preferredColorScheme={}", u8::from(!dark));
        let mut args = vec![
            format!("--screenshot={}", file.display()),
            format!("--window-size={size}"),
            "--timeout=5000".to_string(),
            scheme,
        ];
        if dark {
            args.push("--force-dark-mode".into());
        }
        args.push(url.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ok = browser(&exe, &dir.path(&format!("{name}-profile")), &args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{name}");
        let png = std::fs::read(&file).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let want: u32 = size.split(',').next().unwrap().parse().unwrap();
        assert_eq!(width, want, "{name}");
        if let Some(to) = &copy_to {
            std::fs::copy(&file, to.join(name)).unwrap();
        }
    }
    drop(nodes);
}

/// A relay in front of the daemon's qdevice port `server` for `count`
/// simulated nodes, doing what a paired node's `corosync-qdevice` does: a
/// connection whose PREINIT names `cluster` goes on over TLS after
/// STARTTLS, presenting the next of `identities` (trusting `ca`); any
/// other is relayed in clear. Returns the relay's port.
fn tls_relay(
    server: u16,
    ca: &CertificateDer<'static>,
    cluster: &'static str,
    identities: Vec<Identity>,
    count: usize,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut configs: Vec<_> = identities
        .into_iter()
        .map(|(cert, key)| {
            client_config(
                rustls_ring::DEFAULT_TLS13_PROVIDER,
                ca,
                Some((vec![cert], key)),
            )
        })
        .collect();
    configs.reverse();
    std::thread::spawn(move || {
        for _ in 0..count {
            let (client, _) = listener.accept().unwrap();
            let mut server = TcpStream::connect(("127.0.0.1", server)).unwrap();
            let mut client = client;
            let preinit = read_frame(&mut client);
            server.write_all(&preinit).unwrap();
            let ours = Msg::parse(&preinit).unwrap().cluster_name == Some(cluster.as_bytes());
            let reply = read_frame(&mut server);
            client.write_all(&reply).unwrap();
            let tls = ours.then(|| {
                let mut tls = TlsClient::new(&configs.pop().expect("an identity per node"));
                server
                    .write_all(&build::to_bytes(&build::starttls(2)))
                    .unwrap();
                server.write_all(&tls.take_output()).unwrap();
                tls
            });
            std::thread::spawn(move || pump(client, server, tls));
        }
    });
    port
}

/// One whole message from `s`.
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut rx = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(frame) = take_frame(&mut rx) {
            return frame;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a whole message");
        rx.extend_from_slice(&buf[..n]);
    }
}

/// Carries bytes both ways (through `tls` to the server, if any) until
/// either side closes.
fn pump(mut client: TcpStream, mut server: TcpStream, mut tls: Option<TlsClient>) {
    let tick = Some(Duration::from_millis(5));
    client.set_read_timeout(tick).unwrap();
    server.set_read_timeout(tick).unwrap();
    let mut buf = [0u8; 16384];
    loop {
        // Server to client.
        let Some(n) = read_some(&mut server, &mut buf) else {
            return;
        };
        let plain = match tls.as_mut() {
            Some(t) if n > 0 => {
                let ok = t.receive(&buf[..n]).is_ok() && server.write_all(&t.take_output()).is_ok();
                if !ok {
                    return;
                }
                std::mem::take(&mut t.plaintext)
            }
            _ => buf[..n].to_vec(),
        };
        if client.write_all(&plain).is_err() {
            return;
        }
        // Client to server, once the handshake is done.
        if tls.as_ref().is_some_and(TlsClient::is_handshaking) {
            continue;
        }
        let Some(n) = read_some(&mut client, &mut buf) else {
            return;
        };
        let out = match tls.as_mut() {
            Some(t) if n > 0 => {
                if t.send(&buf[..n]).is_err() {
                    return;
                }
                t.take_output()
            }
            _ => buf[..n].to_vec(),
        };
        if server.write_all(&out).is_err() {
            return;
        }
    }
}

/// Reads what `s` has within its read timeout: `Some(0)` for nothing yet,
/// `None` at the end (EOF or an error).
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    match s.read(buf) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(0),
        Err(_) => None,
    }
}

/// "Pair a cluster": the page's deep link `#pair-start` clicks the header
/// button and then Start (the tooling has no other way to click); the node
/// command with this server's pin appears in the dialog, and in the tab
/// title while the dialog is open (read through DevTools, as above). The
/// event list then shows the window-opened step with the window's id (in
/// a second page, whose DOM is dumped).
#[test]
fn pair_a_cluster_shows_the_node_command() {
    let Some(exe) = chromium() else { return };
    let dir = Scratch::new("browser-pair");
    let (d, http_port, store) = start_tls(&dir);
    let profile = dir.path("pair-profile");
    let child = browser(
        &exe,
        &profile,
        &[
            "--remote-debugging-port=0",
            &format!("http://127.0.0.1:{http_port}/#pair-start"),
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let _browser = Kill(child);
    let devtools = devtools_port(&profile);
    let leaf = CertStore::open(&store)
        .load_server_identity()
        .unwrap()
        .cert_chain[0]
        .clone();
    let pin = qnetd::pair::pin::spki_pin(leaf.as_ref()).unwrap();
    let want = format!(
        "QNetd: no cluster; pairing: curl -sSk --pinnedpubkey {pin} https://127.0.0.1:{}/pair/",
        d.port
    );
    wait_title(devtools, "with the node command", |t| t.starts_with(&want));
    // The window the page opened is the daemon's.
    let status = http(http_port, "GET /api/pair/status HTTP/1.1\r\n\r\n");
    assert!(status.contains(r#""window":"open""#), "{status}");
    let id = pair_id(http_port);

    // Another page (its DOM dumped) lists the step with the window's id.
    let dom = dump_dom(&exe, &dir, &format!("http://127.0.0.1:{http_port}/"));
    let item = dom
        .split("<li class=\"event event-pair_open\">")
        .nth(1)
        .and_then(|rest| rest.split("</li>").next())
        .unwrap_or_default();
    let want = format!(
        " ago: pairing window {id} opened for the first cluster to use it, 2 node(s), valid for 30m 0s"
    );
    assert!(item.ends_with(&want), "{want} in {dom}");
}

/// The id of the open pairing window (`/api/pair/status`).
fn pair_id(port: u16) -> String {
    let r = http(port, "GET /api/pair/status HTTP/1.1\r\n\r\n");
    let v: serde_json::Value = serde_json::from_str(r.split_once("\r\n\r\n").unwrap().1).unwrap();
    v["id"].as_str().unwrap().to_string()
}
