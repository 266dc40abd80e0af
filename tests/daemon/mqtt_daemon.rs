//! The real `qnetd` binary publishing to a real Mosquitto (issue 15):
//! `--mqtt` with a login, qdevice clients over the wire, discovery configs
//! and states checked with `mosquitto_sub`; a vote change reaches the state
//! topic; the broker killed and restarted: the daemon reconnects and
//! republishes while every echo of a qdevice client keeps being answered.
//! And add-on mode: the broker found through a fake Supervisor.
//!
//! Skipped honestly when Mosquitto is not installed.

#![allow(
    clippy::disallowed_methods,
    reason = "tests of the real binary use the wall clock for deadlines"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use qnetd::proto::build;
use qnetd::proto::{Heuristics, Msg, MsgType, RingId};

use crate::loopback::Client;
use crate::mqtt_broker::{Broker, PASSWORD, USER, setup};
use crate::support::server::{Scratch, free_ports};
use crate::support::{Daemon, Launch, wait_ready};

/// [`PASSWORD`] inside a URL.
pub(crate) const PASSWORD_IN_URL: &str = "s3cret%3A%40%2F%25";

/// Polls `f` until it returns `Some`, for up to `secs`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The state topic named by the retained config whose topic contains `key`.
fn state_topic(broker: &Broker, key: &str) -> Option<String> {
    let configs = broker.retained("homeassistant/#");
    let line = configs.iter().find(|l| l.contains(key))?;
    let (_, json) = line.split_once(' ')?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(v["state_topic"].as_str()?.to_string())
}

/// The retained payload of `topic`.
fn state(broker: &Broker, topic: &str) -> Option<String> {
    broker
        .retained(topic)
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{topic} ")).map(str::to_string))
}

/// Reads until a message of type `ty`, answering VOTE_INFOs as qdevice
/// does; returns its seq.
fn reply(c: &mut Client, ty: MsgType) -> Option<u32> {
    loop {
        let bytes = c
            .recv()
            .unwrap_or_else(|| panic!("EOF while waiting for {ty}"));
        let m = Msg::parse(&bytes).unwrap();
        match m.msg_type {
            t if t == ty => return m.seq,
            MsgType::VoteInfo => c.send(&build::vote_info_reply(m.seq.unwrap())),
            other => panic!("unexpected {other} while waiting for {ty}"),
        }
    }
}

fn node_list_reply(c: &mut Client) {
    reply(c, MsgType::NodeListReply);
}

/// One heartbeat, answered.
fn echo(c: &mut Client, seq: u32) {
    c.send(&build::echo_request(seq));
    assert_eq!(reply(c, MsgType::EchoReply), Some(seq));
}

/// Node `id` joins cluster `mq` and sends its config and membership lists.
fn join(port: u16, id: u32, members: &[u32], ring_seq: u64, seq: &mut u32) -> Client {
    join_in(b"mq", port, id, members, ring_seq, seq)
}

/// [`join`] for `cluster`.
fn join_in(
    cluster: &[u8],
    port: u16,
    id: u32,
    members: &[u32],
    ring_seq: u64,
    seq: &mut u32,
) -> Client {
    let mut c = Client::connect(port);
    c.join_cluster(cluster, id);
    c.send(&build::config_list(3, true, None, &[1, 2]));
    node_list_reply(&mut c);
    *seq = 4;
    membership(&mut c, members, ring_seq, seq);
    c
}

fn membership(c: &mut Client, members: &[u32], ring_seq: u64, seq: &mut u32) {
    c.send(&build::membership_list(
        *seq,
        RingId {
            node_id: members[0],
            seq: ring_seq,
        },
        members,
        Heuristics::Undefined,
    ));
    *seq += 1;
    node_list_reply(c);
}

fn start_daemon(dir: &std::path::Path, broker_port: u16) -> Daemon {
    start_daemon_with(dir, broker_port, &[])
}

/// [`start_daemon`] with more options.
fn start_daemon_with(dir: &std::path::Path, broker_port: u16, more: &[&str]) -> Daemon {
    let url = format!("mqtt://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{broker_port}");
    let mut args = vec!["-s", "off", "--mqtt", &url, "--mqtt-topic-prefix", "qt"];
    args.extend_from_slice(more);
    Launch::ours(dir, "qnetd").args(&args).start()
}

/// Config topics under `homeassistant/#` whose object id contains `key`.
fn config_topics(broker: &Broker, key: &str) -> Vec<String> {
    broker
        .retained("homeassistant/#")
        .into_iter()
        .filter_map(|l| l.split_once(' ').map(|(t, _)| t.to_string()))
        .filter(|t| t.contains(key))
        .collect()
}

/// A restart forgets nothing at the broker: a fresh daemon finds the
/// retained configs of the one before, and removes those of a cluster and
/// of a node that never come back after the away time (empty retained
/// configs, seen by a live subscriber, and their states), while the
/// server's and those of the cluster and node that did come back stay.
#[test]
fn a_restarted_daemon_removes_what_never_came_back() {
    let Some(dir) = setup() else { return };
    let broker_port = free_ports(1)[0];
    let broker = Broker::start(&dir, broker_port);
    let away = ["--mqtt-remove-after", "4"];
    let daemon = start_daemon_with(&dir, broker_port, &away);
    let (mut s1, mut s2, mut s3) = (0, 0, 0);
    let a = join(daemon.port, 1, &[1, 2], 5, &mut s1);
    let b = join(daemon.port, 2, &[1, 2], 5, &mut s2);
    let c = join_in(b"gone", daemon.port, 1, &[1], 5, &mut s3);
    // Server 4; mq: 3 and 4 per node; gone: 3 and 4.
    let before = eventually(15, "every config", || {
        let c = broker.retained("homeassistant/#");
        (c.len() == 4 + (3 + 2 * 4) + (3 + 4)).then_some(c)
    });
    eventually(10, "gone's vote", || state(&broker, "qt/gone/node1/vote"));
    let server = config_topics(&broker, "/qt_server_");
    let gone = config_topics(&broker, "/qt_gone_");
    let node2 = config_topics(&broker, "/qt_mq_node2_");
    let kept: Vec<String> = config_topics(&broker, "/qt_mq_")
        .into_iter()
        .filter(|t| !node2.contains(t))
        .collect();
    assert_eq!(
        (server.len(), gone.len(), node2.len(), kept.len()),
        (4, 7, 4, 7)
    );

    // The daemon and every client go at once (a reboot); nothing is
    // removed, the broker keeps it all.
    drop(daemon);
    drop((a, b, c));
    assert_eq!(broker.retained("homeassistant/#").len(), before.len());

    // A live subscriber (MQTT 5, retain flag as published): `RETAIN LEN TOPIC`.
    let mut sub = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker_port.to_string()])
        .args(["-u", USER, "-P", PASSWORD, "-W", "60"])
        .args(["-V", "mqttv5", "--retain-as-published", "-F", "%r %l %t"])
        .args(["-t", "homeassistant/#"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    let lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // It has every retained config before the new daemon starts.
    for _ in 0..before.len() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the retained configs");
        assert!(
            line.starts_with("1 ") && !line.starts_with("1 0 "),
            "{line}"
        );
    }

    // A fresh daemon; only node 1 of mq comes back.
    let daemon = start_daemon_with(&dir, broker_port, &away);
    let mut s1 = 0;
    let mut a = join(daemon.port, 1, &[1], 6, &mut s1);
    let mut echoes = 0;
    let gone_now = eventually(30, "the stale configs deleted", || {
        echoes += 1;
        echo(&mut a, echoes);
        let now = broker.retained("homeassistant/#");
        let stale = now.iter().any(|l| {
            gone.iter()
                .chain(&node2)
                .any(|t| l.starts_with(&format!("{t} ")))
        });
        (!stale).then_some(now)
    });
    // The server's and the returning cluster's configs stay, nothing else.
    let topics: Vec<String> = gone_now
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(t, _)| t.to_string()))
        .collect();
    let mut expected: Vec<String> = server.iter().chain(&kept).cloned().collect();
    expected.sort();
    assert_eq!(topics, expected);
    assert!(broker.retained("qt/gone/#").is_empty());
    assert!(broker.retained("qt/mq/node2/#").is_empty());
    assert_eq!(
        state(&broker, "qt/mq/node1/vote").as_deref(),
        Some("ACK"),
        "the returning node's state stays"
    );

    // The subscriber saw an empty retained config for each stale one.
    let _ = sub.kill();
    let _ = sub.wait();
    reader.join().unwrap();
    let deleted: std::collections::BTreeSet<String> = rx
        .try_iter()
        .filter_map(|l| l.strip_prefix("1 0 ").map(str::to_string))
        .collect();
    let stale: std::collections::BTreeSet<String> = gone.iter().chain(&node2).cloned().collect();
    assert_eq!(deleted, stale);
    drop(daemon);
}

#[test]
fn daemon_publishes_votes_and_survives_a_broker_restart() {
    let Some(dir) = setup() else { return };
    let broker_port = free_ports(1)[0];
    let broker = Broker::start(&dir, broker_port);
    let daemon = start_daemon(&dir, broker_port);

    // Two nodes in one partition: both get ACK.
    let (mut s1, mut s2) = (0, 0);
    let mut a = join(daemon.port, 1, &[1, 2], 5, &mut s1);
    let mut b = join(daemon.port, 2, &[1, 2], 5, &mut s2);
    let vote2 = eventually(10, "node 2's vote config", || {
        state_topic(&broker, "_node2_vote/config")
    });
    let clients = eventually(10, "the client count", || {
        state_topic(&broker, "_server_connected_clients/config")
    });
    eventually(10, "node 2 ACK", || {
        (state(&broker, &vote2).as_deref() == Some("ACK")).then_some(())
    });
    assert_eq!(state(&broker, &clients).as_deref(), Some("2"));
    assert_eq!(state(&broker, "qt/status").as_deref(), Some("online"));
    let configs = broker.retained("homeassistant/#");
    // Server 4, cluster 3, 4 per node.
    assert_eq!(configs.len(), 4 + 3 + 2 * 4, "{configs:#?}");

    // A 50:50 split: the lowest node id keeps the vote, node 2 loses it.
    membership(&mut a, &[1], 6, &mut s1);
    membership(&mut b, &[2], 6, &mut s2);
    eventually(10, "node 2 NACK", || {
        (state(&broker, &vote2).as_deref() == Some("NACK")).then_some(())
    });

    // The broker dies (SIGKILL, no persistence) and comes back while node
    // 1 keeps sending echoes: every one is answered.
    let mut echoes = 0u32;
    let mut echo = |a: &mut Client, b: &mut Client| {
        echoes += 1;
        echo(a, echoes);
        echo(b, echoes);
    };
    broker.kill();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        echo(&mut a, &mut b);
        std::thread::sleep(Duration::from_millis(20));
    }
    let broker = Broker::start(&dir, broker_port);
    let republished = eventually(30, "the republished configs", || {
        echo(&mut a, &mut b);
        let now = broker.retained("homeassistant/#");
        (now.len() == configs.len()).then_some(now)
    });
    assert_eq!(republished, configs);
    eventually(10, "the republished vote", || {
        echo(&mut a, &mut b);
        (state(&broker, &vote2).as_deref() == Some("NACK")).then_some(())
    });
    assert!(echoes > 10, "{echoes} echoes only");

    // A disconnect is a state change too.
    drop(b);
    eventually(10, "one client left", || {
        (state(&broker, &clients).as_deref() == Some("1")).then_some(())
    });
    drop(a);
    drop(daemon);
    eventually(10, "the last will", || {
        (state(&broker, "qt/status").as_deref() == Some("offline")).then_some(())
    });
}

/// A one-request HTTP server: answers `body` to a GET of `/services/mqtt`
/// with the right bearer token, 401 otherwise; returns the request line
/// and headers it got.
fn fake_supervisor(body: String) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let ok = head.starts_with("GET /services/mqtt HTTP/1.1\r\n")
            && head.contains("Authorization: Bearer t0ken\r\n");
        let (status, body) = if ok {
            ("200 OK", body)
        } else {
            (
                "401 Unauthorized",
                r#"{"result":"error","message":"no"}"#.into(),
            )
        };
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head
    });
    (port, handle)
}

/// Our binary in add-on mode with `options` (JSON), its Supervisor a
/// [`fake_supervisor`] answering `body`; output piped, started. Returns
/// the daemon and the request head the Supervisor got.
fn start_addon(dir: &Scratch, options: &str, body: String) -> (Daemon, String) {
    let (sup_port, sup) = fake_supervisor(body);
    let file = dir.path("options.json");
    std::fs::write(&file, options).unwrap();
    // `--http 0`: the panel on an ephemeral loopback port, not the add-on's
    // 8099, so add-on tests run side by side.
    let launch =
        Launch::ours(dir, "addon").args(&["--options", file.to_str().unwrap(), "--http", "0"]);
    let mut child = launch
        .command(free_ports(1)[0])
        .env("SUPERVISOR_TOKEN", "t0ken")
        .env(
            "QNETD_SUPERVISOR_URL",
            format!("http://127.0.0.1:{sup_port}"),
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut child, launch.socket(), Duration::from_secs(30)).expect("add-on started");
    (Daemon { child, port: 0 }, sup.join().unwrap())
}

#[test]
fn addon_mode_finds_the_broker_through_the_supervisor() {
    let Some(dir) = setup() else { return };
    let broker_port = free_ports(1)[0];
    let broker = Broker::start(&dir, broker_port);
    let body = serde_json::json!({
        "result": "ok",
        "data": {"host": "127.0.0.1", "port": broker_port, "ssl": false,
                 "username": USER, "password": PASSWORD, "protocol": "3.1.1"}
    })
    .to_string();
    let (daemon, head) = start_addon(
        &dir,
        r#"{"tls":"off","mqtt_discovery_prefix":"hass"}"#,
        body,
    );
    assert!(head.contains("Authorization: Bearer t0ken"), "{head}");
    let configs = eventually(10, "discovery under hass/", || {
        let c = broker.retained("hass/#");
        (c.len() == 4).then_some(c)
    });
    assert!(
        configs
            .iter()
            .all(|l| l.contains("\"availability_topic\":\"qnetd/status\""))
    );
    drop(daemon);
}

#[test]
fn addon_mode_without_a_broker_stays_off_with_one_line() {
    let dir = Scratch::new("addon-nobroker");
    let body = r#"{"result":"error","message":"Service not enabled","data":{}}"#.to_string();
    let (mut daemon, head) = start_addon(&dir, r#"{"tls":"off"}"#, body);
    assert!(head.contains("Authorization: Bearer t0ken"), "{head}");
    let mut stdout = daemon.child.stdout.take().unwrap();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let mqtt: Vec<_> = out.lines().filter(|l| l.contains("MQTT")).collect();
    assert_eq!(mqtt.len(), 1, "{out}");
    assert!(
        mqtt[0].contains("MQTT off: no MQTT broker add-on (Service not enabled)"),
        "{out}"
    );
    let mut err = String::new();
    daemon
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "");
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in
/// `dir`: `ca.pem`, `server.pem`, `server.key`.
fn tls_files(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

#[test]
fn mqtts_with_a_ca_file() {
    let Some(dir) = setup() else { return };
    tls_files(&dir);
    let [plain_port, tls_port] = free_ports(2)[..] else {
        unreachable!()
    };
    let broker = Broker::start_with(
        &dir,
        plain_port,
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            dir.path("ca.pem").display(),
            dir.path("server.pem").display(),
            dir.path("server.key").display()
        ),
    );
    let url = format!("mqtts://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{tls_port}");
    let ca = dir.path("ca.pem");
    let daemon = Launch::ours(&dir, "qnetd")
        .args(&[
            "-s",
            "off",
            "--mqtt",
            &url,
            "--mqtt-ca-file",
            ca.to_str().unwrap(),
        ])
        .start();
    let mut s1 = 0;
    let _a = join(daemon.port, 1, &[1], 5, &mut s1);
    let vote1 = eventually(10, "node 1's vote config over TLS", || {
        state_topic(&broker, "_node1_vote/config")
    });
    eventually(10, "node 1's vote over TLS", || state(&broker, &vote1));
    assert_eq!(state(&broker, "qnetd/status").as_deref(), Some("online"));
}

#[test]
fn an_unreadable_ca_file_is_one_line_and_a_failure() {
    let dir = Scratch::new("mqtt-badca");
    let out = Launch::ours(&dir, "qnetd")
        .args(&[
            "-s",
            "off",
            "--mqtt",
            "mqtts://127.0.0.1:1",
            "--mqtt-ca-file",
            "/nonexistent/ca.pem",
        ])
        .command(free_ports(1)[0])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err
        .lines()
        .filter(|l| l.contains("--mqtt-ca-file"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("can't read CA file /nonexistent/ca.pem"),
        "{err}"
    );
}

/// Heartbeats publish nothing; a state change publishes: a live
/// subscriber (`-R`: no stale retained messages) counts what arrives.
#[test]
fn heartbeats_publish_nothing() {
    let Some(dir) = setup() else { return };
    let broker_port = free_ports(1)[0];
    let broker = Broker::start(&dir, broker_port);
    let daemon = start_daemon(&dir, broker_port);
    let mut s1 = 0;
    let mut a = join(daemon.port, 1, &[1], 5, &mut s1);
    let vote1 = eventually(10, "node 1's vote config", || {
        state_topic(&broker, "_node1_vote/config")
    });
    eventually(10, "node 1's vote", || state(&broker, &vote1));
    let sub = |secs: &str| {
        std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker_port.to_string()])
            .args(["-u", USER, "-P", PASSWORD, "-v", "-R", "-W", secs])
            .args(["-t", "qt/#", "-t", "homeassistant/#"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let live = |child: std::process::Child| -> Vec<String> {
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    // mosquitto_sub -W exits after that many seconds without a message.
    let quiet = sub("3");
    std::thread::sleep(Duration::from_millis(300));
    for seq in 1..=50 {
        echo(&mut a, seq);
    }
    assert_eq!(live(quiet), Vec::<String>::new(), "published per heartbeat");
    let busy = sub("3");
    std::thread::sleep(Duration::from_millis(300));
    let b = join(daemon.port, 2, &[1, 2], 6, &mut 0);
    let got = live(busy);
    assert!(
        got.iter().any(|l| l.starts_with("qt/mq/node2/")),
        "a join publishes: {got:#?}"
    );
    drop(b);
}
