//! `qnetd unpair` with MQTT on, against a real Mosquitto (issue 15): the
//! unpaired cluster's Home Assistant entities are deleted at once (an empty
//! retained config for each, seen by a live `mosquitto_sub`), the other
//! cluster's stay, and they do not come back when the revoked nodes try
//! again. Skipped honestly without Mosquitto.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use super::*;
use crate::mqtt_broker::{Broker, PASSWORD, USER, setup};
use crate::mqtt_daemon::PASSWORD_IN_URL;
use crate::support::server::free_ports;

/// Retained config topics of `cluster` (its id is the name itself).
fn cluster_configs(broker: &Broker, cluster: &str) -> Vec<String> {
    let marker = format!("/qnetd_{cluster}_");
    broker
        .retained("homeassistant/#")
        .into_iter()
        .filter_map(|l| l.split_once(' ').map(|(t, _)| t.to_string()))
        .filter(|t| t.contains(&marker))
        .collect()
}

/// A client configuration with its own certificate for `cluster`.
fn node_config(server: &Server, cluster: &str) -> Arc<rustls::ClientConfig> {
    let (chain, key) = server.client_identity(cluster);
    client_config(provider(true), &server.ca(), Some((chain, key)))
}

/// A node of `cluster` with id `node_id`: PREINIT, STARTTLS with `cfg`,
/// INIT; the INIT reply.
fn join(
    server: &Server,
    cfg: &Arc<rustls::ClientConfig>,
    cluster: &str,
    node_id: u32,
) -> (Node, Got) {
    let mut node = Node::connect(server);
    node.preinit(cluster);
    if !node.starttls(cfg) {
        return (node, Got::Closed);
    }
    node.send(&build::init(&Init::traced_ffsplit(3, node_id)));
    let got = node.recv();
    (node, got)
}

#[test]
fn unpair_deletes_the_clusters_entities_at_the_broker() {
    let Some(broker_dir) = setup() else { return };
    let broker = Broker::start(&broker_dir, free_ports(1)[0]);
    let url = format!("mqtt://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{}", broker.port);
    let server = Server::start("unpair-mqtt", &["-s", "on", "-c", "on", "--mqtt", &url]);
    let cfg1 = node_config(&server, CLUSTER);
    let mut nodes = Vec::new();
    for (cfg, cluster, id) in [
        (cfg1.clone(), CLUSTER, 1),
        (node_config(&server, CLUSTER), CLUSTER, 2),
        (node_config(&server, "othercluster"), "othercluster", 1),
    ] {
        let (node, got) = join(&server, &cfg, cluster, id);
        assert!(init_ok(&got), "INIT of node {id} of {cluster}");
        nodes.push(node);
    }

    // Server 4; each cluster 3 and 4 per node.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while broker.retained("homeassistant/#").len() < 4 + (3 + 2 * 4) + (3 + 4) {
        assert!(
            std::time::Instant::now() < deadline,
            "configs not published: {:#?}",
            broker.retained("homeassistant/#")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let doomed = cluster_configs(&broker, CLUSTER);
    assert_eq!(doomed.len(), 3 + 2 * 4, "{doomed:#?}");
    let kept = cluster_configs(&broker, "othercluster");
    assert_eq!(kept.len(), 3 + 4, "{kept:#?}");

    // A live subscriber (MQTT 5, retain flag as published): `RETAIN LEN TOPIC`.
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-u", USER, "-P", PASSWORD, "-W", "20"])
        .args(["-V", "mqttv5", "--retain-as-published", "-F", "%r %l %t"])
        .args(["-t", "homeassistant/#"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub");
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let mut next = || {
        let line = lines.next().and_then(Result::ok)?;
        let mut words = line.splitn(3, ' ');
        let retain = words.next()? == "1";
        let len: usize = words.next()?.parse().ok()?;
        Some((retain, len, words.next()?.to_string()))
    };
    // Subscribed once every retained config has arrived.
    let mut seen = 0;
    while seen < 4 + doomed.len() + kept.len() {
        let (retain, len, _) = next().expect("the retained configs");
        assert!(retain && len > 0);
        seen += 1;
    }

    let out = crate::support::command(BIN, None)
        .args(["unpair", CLUSTER, "-p"])
        .arg(server.dir.join("qnetd.sock"))
        .output()
        .unwrap();
    assert_succeeded(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("2 certificate(s) revoked, 2 client(s) disconnected"),
        "{out:?}"
    );

    // Every config of the cluster gets an empty retained message; nothing
    // else under the discovery prefix changes.
    let mut deleted = Vec::new();
    while deleted.len() < doomed.len() {
        let Some((retain, len, topic)) = next() else {
            panic!("deleted only {deleted:#?}")
        };
        assert!(retain && len == 0, "{retain} {len} {topic}");
        assert!(doomed.contains(&topic), "{topic} deleted");
        deleted.push(topic);
    }
    deleted.sort();
    deleted.dedup();
    assert_eq!(deleted.len(), doomed.len(), "{deleted:#?}");
    let _ = sub.kill();
    let _ = sub.wait();

    assert!(cluster_configs(&broker, CLUSTER).is_empty());
    assert!(broker.retained(&format!("qnetd/{CLUSTER}/#")).is_empty());
    assert_eq!(cluster_configs(&broker, "othercluster"), kept);
    assert!(
        broker
            .retained("qnetd/server/connected_clients")
            .contains(&"qnetd/server/connected_clients 1".to_string())
    );

    // A revoked node tries again: refused, and the entities stay away.
    let (_, got) = join(&server, &cfg1, CLUSTER, 1);
    assert_eq!(got, Got::Closed);
    nodes[2].send(&build::echo_request(9));
    nodes[2].expect(MsgType::EchoReply);
    assert!(cluster_configs(&broker, CLUSTER).is_empty());
    assert_eq!(cluster_configs(&broker, "othercluster"), kept);
}
