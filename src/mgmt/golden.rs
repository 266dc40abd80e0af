//! Golden tests: an [`Instance`] driven through its sans-IO API into the
//! state of `tests/vectors/tool_samples.txt`, rendered and compared byte for
//! byte with what the reference `corosync-qnetd-tool` printed.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::json::{self, AlgorithmName, Report, TieBreakerModeName, VoteName};
use super::{ServerView, report, respond};
use crate::core::ClientId;
use crate::core::{Event, Instance, InstanceConfig, Timestamp};
use crate::proto::build;
use crate::proto::{
    DecisionAlgorithm, Frame, Heuristics, Msg, MsgType, NodeInfo, NodeListType, RingId, Status,
    TieBreaker, TieBreakerMode, TlsSupported,
};

const SAMPLES: &str = include_str!("../../tests/vectors/tool_samples.txt");

/// Each `===== $ corosync-qnetd-tool ARGS` block: (ARGS, output, exit).
fn samples() -> Vec<(String, String, u8)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in SAMPLES.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("===== $ corosync-qnetd-tool ") {
            let args = rest.split("   (").next().unwrap().trim().to_string();
            cur = Some((args, String::new()));
        } else if let Some(code) = line.strip_prefix("[exit ") {
            let (args, text) = cur.take().unwrap();
            out.push((
                args,
                text,
                code.trim_end().trim_end_matches(']').parse().unwrap(),
            ));
        } else if let Some((_, text)) = cur.as_mut() {
            text.push_str(line);
        }
    }
    out
}

fn frame(msg: &Msg<'_>) -> Vec<u8> {
    let mut buf = vec![0; msg.buffer_len()];
    let n = msg.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A sans-IO stand-in for `corosync-qdevice` clients.
struct Sim {
    inst: Instance,
    now: Timestamp,
    /// Replies received, per client, not yet looked at.
    inbox: Vec<(ClientId, Vec<u8>)>,
}

struct Node {
    id: ClientId,
    seq: u32,
}

impl Sim {
    fn new(cfg: InstanceConfig) -> Self {
        Self {
            inst: Instance::new(cfg),
            now: Timestamp::from_millis(1_000),
            inbox: Vec::new(),
        }
    }

    fn connect(&mut self, addr: &str) -> Node {
        let addr: SocketAddr = addr.parse().unwrap();
        Node {
            id: self.inst.accept(self.now, addr).unwrap(),
            seq: 0,
        }
    }

    /// Delivers the instance's output; VOTE_INFOs are answered at once
    /// (what qdevice does), everything else lands in the inbox.
    fn settle(&mut self) {
        let mut work = VecDeque::new();
        loop {
            while let Some(Event::Close(id)) = self.inst.poll_event() {
                self.inst.disconnect(self.now, id);
            }
            while let Some(id) = self.inst.poll_transmit() {
                let bytes = self.inst.outgoing(id).to_vec();
                self.inst.consume_outgoing(id, bytes.len());
                let mut rest = &bytes[..];
                while let Status::Complete(n) = Frame::<&[u8]>::check(rest) {
                    work.push_back((id, rest[..n].to_vec()));
                    rest = &rest[n..];
                }
            }
            let Some((id, bytes)) = work.pop_front() else {
                return;
            };
            let msg = Msg::parse(&bytes).unwrap();
            if msg.msg_type == MsgType::VoteInfo {
                let mut reply = Msg::new(MsgType::VoteInfoReply);
                reply.seq = msg.seq;
                let reply = frame(&reply);
                let _ = self.inst.handle_input(self.now, id, &reply);
            } else {
                self.inbox.push((id, bytes));
            }
        }
    }

    fn send(&mut self, node: &mut Node, mut msg: Msg<'_>) {
        node.seq += 1;
        msg.seq = Some(node.seq);
        let bytes = frame(&msg);
        let input = self.inst.handle_input(self.now, node.id, &bytes);
        assert_eq!(input.consumed, bytes.len());
        self.settle();
        // Every request gets its reply (and nothing is an error).
        let pos = self
            .inbox
            .iter()
            .position(|(id, _)| *id == node.id)
            .expect("a reply");
        let (_, reply) = self.inbox.remove(pos);
        let reply = Msg::parse(&reply).unwrap();
        assert_ne!(reply.msg_type, MsgType::ServerError, "{msg:?}");
        assert_eq!(reply.seq, Some(node.seq));
    }

    fn preinit(&mut self, node: &mut Node, cluster: &[u8]) {
        let mut m = Msg::new(MsgType::Preinit);
        m.cluster_name = Some(cluster);
        self.send(node, m);
    }

    fn init(
        &mut self,
        node: &mut Node,
        node_id: u32,
        algorithm: DecisionAlgorithm,
        heartbeat: u32,
        tie_breaker: TieBreaker,
        ring_id: RingId,
    ) {
        // The sequence number is set when the message is sent.
        let m = build::init(&build::Init {
            seq: 0,
            node_id,
            algorithm,
            heartbeat_interval: heartbeat,
            tie_breaker,
            ring_id,
        });
        self.send(node, m);
    }

    fn kap(&mut self, node: &mut Node) {
        let mut m = Msg::new(MsgType::SetOption);
        m.keep_active_partition_tie_breaker = Some(true);
        self.send(node, m);
    }

    fn node_list(
        &mut self,
        node: &mut Node,
        list_type: NodeListType,
        nodes: &[NodeInfo],
        f: impl FnOnce(&mut Msg<'_>),
    ) {
        let mut m = Msg::new(MsgType::NodeList);
        m.node_list_type = Some(list_type);
        m.nodes = crate::proto::Nodes::from_slice(nodes);
        f(&mut m);
        self.send(node, m);
    }

    fn view(&self) -> ServerView<'_> {
        ServerView {
            instance: &self.inst,
            listen_addr: Some("127.0.0.1"),
            port: 15403,
        }
    }
}

fn ids(ids: &[u32]) -> Vec<NodeInfo> {
    ids.iter().map(|&n| NodeInfo::new(n)).collect()
}

const LOWEST: TieBreaker = TieBreaker {
    mode: TieBreakerMode::Lowest,
    node_id: 0,
};

/// The state of tool_samples.txt: the first phase of the reference's
/// `split2 --algorithm ffsplit` trace (config version 5), plus one lms node.
fn sample_state() -> Sim {
    let mut sim = Sim::new(InstanceConfig {
        tls: TlsSupported::Unsupported,
        ..InstanceConfig::default()
    });
    let ring = RingId { node_id: 1, seq: 8 };
    let mut n1 = sim.connect("127.0.0.1:55098");
    let mut n2 = sim.connect("127.0.0.1:55110");
    for (node, id) in [(&mut n1, 1), (&mut n2, 2)] {
        sim.preinit(node, b"testcluster");
        sim.init(node, id, DecisionAlgorithm::Ffsplit, 8000, LOWEST, ring);
        sim.kap(node);
        sim.node_list(node, NodeListType::InitialConfig, &ids(&[1, 2]), |m| {
            m.config_version = Some(5);
        });
    }
    for node in [&mut n1, &mut n2] {
        sim.node_list(node, NodeListType::Membership, &ids(&[1, 2]), |m| {
            m.ring_id = Some(ring);
        });
    }
    let mut n3 = sim.connect("127.0.0.1:55118");
    let ring3 = RingId {
        node_id: 3,
        seq: 0x14,
    };
    sim.preinit(&mut n3, b"other");
    let tb3 = TieBreaker {
        mode: TieBreakerMode::NodeId,
        node_id: 3,
    };
    sim.init(&mut n3, 3, DecisionAlgorithm::Lms, 5000, tb3, ring3);
    sim.node_list(
        &mut n3,
        NodeListType::InitialConfig,
        &ids(&[3, 4, 5]),
        |_| {},
    );
    sim.node_list(&mut n3, NodeListType::Membership, &ids(&[3, 4, 5]), |m| {
        m.ring_id = Some(ring3);
        m.heuristics = Some(Heuristics::Pass);
    });
    sim
}

fn render(view: &ServerView<'_>, args: &str) -> Vec<u8> {
    match args {
        "-s" => report::status(view, false),
        "-s -v" => report::status(view, true),
        "-l" => report::list(view, false, None),
        "-l -v" => report::list(view, true, None),
        "-l -c testcluster" => report::list(view, false, Some(b"testcluster")),
        "-l -v -c other" => report::list(view, true, Some(b"other")),
        "-l -c nosuch" => report::list(view, false, Some(b"nosuch")),
        other => panic!("no renderer for sample {other:?}"),
    }
}

#[test]
fn text_reports_match_the_reference_samples() {
    let sim = sample_state();
    let view = sim.view();
    let samples = samples();
    assert_eq!(samples.len(), 7);
    for (args, want, code) in samples {
        assert_eq!(code, 0);
        let got = render(&view, &args);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            want,
            "corosync-qnetd-tool {args}"
        );
    }
}

#[test]
fn replies_carry_the_reports() {
    let sim = sample_state();
    let view = sim.view();
    let max = crate::config::DEFAULT_IPC_MAX_SEND_SIZE;
    let reply = respond(b"status verbose \n", &view, max).reply.unwrap();
    assert_eq!(
        reply,
        b"OK\nQNetd address:\t\t\t127.0.0.1:15403\nTLS:\t\t\t\tUnsupported\nConnected clients:\t\t3\nConnected clusters:\t\t2\nMaximum send/receive size:\t32768/32768 bytes\n"
    );
    let reply = respond(b"list verbose cluster \"other\" \n", &view, max)
        .reply
        .unwrap();
    assert!(reply.starts_with(b"OK\nCluster \"other\":\n"));
    assert_eq!(
        respond(b"list verbose cluster nosuch\n", &view, max).reply,
        Some(b"OK\n".to_vec())
    );
    // A list that is longer than the send limit.
    let body = report::list(&view, true, None);
    assert_eq!(
        respond(b"list verbose\n", &view, body.len()).reply,
        Some(b"Error\nCan't get QNetd cluster list\n".to_vec())
    );
    assert_eq!(
        respond(b"list verbose\n", &view, body.len() + 3)
            .reply
            .unwrap()
            .len(),
        body.len() + 3
    );
}

/// A plain server with node 1 of `cluster` (ffsplit, no lists yet)
/// connected from `addr`.
fn one_ffsplit_node(addr: &str, cluster: &[u8]) -> Sim {
    let mut sim = Sim::new(InstanceConfig {
        tls: TlsSupported::Unsupported,
        ..InstanceConfig::default()
    });
    let mut n = sim.connect(addr);
    sim.preinit(&mut n, cluster);
    sim.init(
        &mut n,
        1,
        DecisionAlgorithm::Ffsplit,
        8000,
        LOWEST,
        RingId { node_id: 1, seq: 4 },
    );
    sim
}

#[test]
fn fresh_ipv6_client_without_lists() {
    let mut sim = one_ffsplit_node("[::1]:55256", b"v6");
    // A connection that never sent anything counts as a client.
    sim.connect("127.0.0.1:1");
    let view = ServerView {
        instance: &sim.inst,
        listen_addr: None,
        port: 5403,
    };
    assert_eq!(
        report::list(&view, false, None),
        b"Cluster \"v6\":\n    Algorithm:\t\tFifty-Fifty split\n    Tie-breaker:\tNode with lowest node ID\n    Node ID 1:\n        Client address:\t\t::1:55256\n"
    );
    assert_eq!(
        report::status(&view, false),
        b"QNetd address:\t\t\t*:5403\nTLS:\t\t\t\tUnsupported\nConnected clients:\t\t2\nConnected clusters:\t\t1\n"
    );
}

#[test]
fn tls_and_limits_lines() {
    let cases: &[(TlsSupported, bool, &str)] = &[
        (TlsSupported::Unsupported, true, "Unsupported"),
        (TlsSupported::Supported, false, "Supported"),
        (
            TlsSupported::Supported,
            true,
            "Supported (client certificate required)",
        ),
        (
            TlsSupported::Required,
            true,
            "Required (client certificate required)",
        ),
        (TlsSupported::Required, false, "Required"),
    ];
    for &(tls, cert, text) in cases {
        let inst = Instance::new(InstanceConfig {
            tls,
            client_cert_required: cert,
            max_clients: 7,
            max_client_send_size: 1000,
            max_client_receive_size: 2000,
            ..InstanceConfig::default()
        });
        let view = ServerView {
            instance: &inst,
            listen_addr: Some("::"),
            port: 1,
        };
        let want = format!(
            "QNetd address:\t\t\t:::1\nTLS:\t\t\t\t{text}\nConnected clients:\t\t0\nConnected clusters:\t\t0\nMaximum allowed clients:\t7\nMaximum send/receive size:\t1000/2000 bytes\n"
        );
        assert_eq!(
            String::from_utf8(report::status(&view, true)).unwrap(),
            want
        );
    }
}

#[test]
fn data_centers_heuristics_and_test_algorithm() {
    let mut sim = Sim::new(InstanceConfig {
        tls: TlsSupported::Unsupported,
        ..InstanceConfig::default()
    });
    let mut n = sim.connect("10.0.0.1:4000");
    sim.preinit(&mut n, b"dc\0hidden");
    let tb = TieBreaker {
        mode: TieBreakerMode::Highest,
        node_id: 0,
    };
    sim.init(
        &mut n,
        7,
        DecisionAlgorithm::Test,
        1000,
        tb,
        RingId {
            node_id: 0xab,
            seq: 0x1_0000_0000,
        },
    );
    let mut list = ids(&[7, 8]);
    list[1].data_center_id = 42;
    sim.node_list(&mut n, NodeListType::InitialConfig, &list, |_| {});
    let mut m = Msg::new(MsgType::HeuristicsChange);
    m.heuristics = Some(Heuristics::Fail);
    sim.send(&mut n, m);
    let view = sim.view();
    let text = String::from_utf8(report::list(&view, false, Some(b"dc"))).unwrap();
    assert!(text.starts_with("Cluster \"dc\":\n    Algorithm:\t\tTest\n    Tie-breaker:\tNode with highest node ID\n    Node ID 7:\n        Client address:\t\t10.0.0.1:4000\n        Configured node list:\t7, 8 (42)\n        Heuristics:\t\tFail\n        Vote:\t\t\t"), "{text}");
    let text = String::from_utf8(report::list(&view, true, None)).unwrap();
    assert!(text.contains("        HB interval:\t\t1000ms\n"), "{text}");
    assert!(
        text.contains("        Ring ID:\t\tab.100000000\n"),
        "{text}"
    );
    assert!(
        text.contains("        Heuristics:\t\tFail (membership: Undefined, regular: Fail)\n"),
        "{text}"
    );
    // The C-string filter: a name cut at its NUL.
    assert!(report::list(&view, false, Some(b"dc\0x")).starts_with(b"Cluster \"dc\":\n"));
    assert!(report::list(&view, false, Some(b"dc\0hidden")).starts_with(b"Cluster"));
}

#[test]
fn json_document() {
    let sim = sample_state();
    let view = sim.view();
    let report = Report::new(&view, None);
    assert_eq!(report.schema_version, json::SCHEMA_VERSION);
    assert_eq!(report.server.address, "127.0.0.1");
    assert_eq!(report.server.port, 15403);
    assert_eq!(report.server.connected_clients, 3);
    assert_eq!(report.server.connected_clusters, 2);
    assert_eq!(report.server.max_clients, None);
    assert_eq!(report.clusters.len(), 2);
    let tc = &report.clusters[0];
    assert_eq!(tc.name, "testcluster");
    assert_eq!(tc.algorithm, AlgorithmName::Ffsplit);
    assert!(tc.kap_tie_breaker);
    assert_eq!(tc.tie_breaker.mode, TieBreakerModeName::Lowest);
    assert_eq!(tc.nodes.len(), 2);
    assert_eq!(tc.nodes[0].address, "127.0.0.1:55098");
    assert_eq!(tc.nodes[0].config_version, Some(5));
    assert_eq!(tc.nodes[0].last_vote, Some(VoteName::Ack));
    assert_eq!(tc.nodes[1].last_vote, Some(VoteName::NoChange));
    assert_eq!(tc.nodes[1].last_ack_nack_vote, Some(VoteName::Ack));
    assert_eq!(tc.nodes[1].heartbeat_interval_ms, 8000);
    let other = &report.clusters[1];
    assert_eq!(other.algorithm, AlgorithmName::Lms);
    assert_eq!(other.tie_breaker.node_id, Some(3));
    assert_eq!(other.nodes[0].ring_id.seq, 0x14);
    assert_eq!(other.nodes[0].membership_node_list.len(), 3);

    // The rendered bytes parse back into the same document.
    let bytes = json::render(&view, None);
    assert!(bytes.ends_with(b"}\n"));
    let back: Report = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, report);
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["server"]["tls"], "unsupported");
    assert_eq!(v["clusters"][0]["nodes"][0]["last_vote"], "ack");
    assert_eq!(v["clusters"][1]["algorithm"], "lms");
    assert_eq!(
        v["clusters"][1]["nodes"][0]["heuristics"]["membership"],
        "pass"
    );
    assert_eq!(
        v["clusters"][0]["nodes"][0]["config_node_list"][0]["node_state"],
        "not_set"
    );

    let only = Report::new(&view, Some(b"other"));
    assert_eq!(only.clusters.len(), 1);
    assert_eq!(only.server.connected_clusters, 2);
}

/// Issue 11, finding 6: a cluster name from the network never reaches the
/// admin's terminal raw: a newline or ESC in it is escaped in `list`.
#[test]
fn untrusted_cluster_names_are_escaped_in_list() {
    let sim = one_ffsplit_node("127.0.0.1:40000", b"evil\nCluster \"x\":\x1b[2J");
    let view = ServerView {
        instance: &sim.inst,
        listen_addr: None,
        port: 5403,
    };
    let out = report::list(&view, false, None);
    assert!(
        out.starts_with(b"Cluster \"evil\\x0aCluster \"x\":\\x1b[2J\":\n    Algorithm:"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(!out.contains(&0x1b), "ESC reached the report");
}
