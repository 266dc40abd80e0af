//! The status panel in a real browser: Debian's headless `chromium`
//! against our daemon with live wire clients. The DOM shows exactly the
//! clusters, nodes and votes the JSON status has; the page follows a
//! disconnect and a partition on its own (server-sent events: the tab
//! title carries each cluster's state line, read through the DevTools
//! HTTP endpoint `/json/list`); screenshots in light and dark mode and
//! phone-sized. With `QNETD_PANEL_SCREENSHOTS=DIR` the screenshots are
//! also copied to `DIR` (how `docs/img/panel-*.png` are made).

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive real processes and wait on the real clock"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qnetd::proto::{NodeListType, RingId};

use super::panel::{http, start};
use crate::support::server::{Scratch, ids, sample_clients};
use crate::support::skip;

const INSTALL: &str = "apt-get install -y chromium";

fn chromium() -> Option<PathBuf> {
    let found = skip::program("chromium");
    if found.is_none() {
        skip::skip("chromium is not installed", INSTALL);
    }
    found
}

/// Headless Chromium with a fresh profile in `profile` and `extra` flags.
fn browser(exe: &Path, profile: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(exe);
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

#[test]
fn screenshots_light_dark_and_phone() {
    let Some(exe) = chromium() else { return };
    let dir = Scratch::new("browser-shots");
    let (d, port) = start(&dir, &[]);
    let nodes = sample_clients(d.port);
    let url = format!("http://127.0.0.1:{port}/");
    let copy_to = std::env::var_os("QNETD_PANEL_SCREENSHOTS").map(PathBuf::from);
    for (name, size, dark) in [
        ("panel-light.png", "1100,760", false),
        ("panel-dark.png", "1100,760", true),
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

/// "Pair a cluster": the page's deep link `#pair-start` clicks the header
/// button and then Start (the tooling has no other way to click); the node
/// command with this server's pin appears in the dialog, and in the tab
/// title while the dialog is open (read through DevTools, as above).
#[test]
fn pair_a_cluster_shows_the_node_command() {
    let Some(exe) = chromium() else { return };
    let dir = Scratch::new("browser-pair");
    let http_port = crate::support::server::free_ports(1)[0];
    let spec = format!("127.0.0.1:{http_port}");
    let store = dir.path("store");
    let d = crate::support::Launch::ours(&dir, "panel")
        .args(&["-s", "on", "-l", "127.0.0.1", "--http", &spec])
        .settings(&format!("nss_db_dir={}", store.display()))
        .start();
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
    let leaf = qnetd::cert::store::CertStore::open(&store)
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
}
