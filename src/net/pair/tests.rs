use super::*;
use crate::core::{InstanceConfig, PeerAddr};
use crate::mgmt::pair::parse_kv;

fn pairing(listen: Option<&str>) -> (tempfile::TempDir, Pairing) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.advanced.nss_db_dir = tmp.path().join("store");
    config.listen_addr = listen.map(str::to_owned);
    CertStore::open(&config.advanced.nss_db_dir).init().unwrap();
    let p = Pairing::new(&config, RevokedSerials::default()).unwrap();
    (tmp, p)
}

fn reply(p: &mut Pairing, line: &[u8]) -> String {
    let instance = Instance::new(InstanceConfig::default());
    let crate::mgmt::Command::Pair(cmd) = crate::mgmt::Command::parse(line) else {
        panic!("not a pair command");
    };
    let (r, clients) = p.command(cmd, &instance, Timestamp::from_millis(0), 1 << 20);
    assert!(clients.is_empty());
    String::from_utf8(r.unwrap()).unwrap()
}

#[test]
fn the_address_defaults_to_a_specific_listen_address_only() {
    for wildcard in [None, Some("0.0.0.0"), Some("::")] {
        let (_t, mut p) = pairing(wildcard);
        let r = reply(&mut p, b"pair open\n");
        assert!(
            r.starts_with("Error\n") && r.contains("--address"),
            "{wildcard:?}: {r}"
        );
        let r = reply(&mut p, b"pair open address=192.0.2.1\n");
        assert!(r.contains("https://192.0.2.1:5403/pair/"), "{r}");
    }
    let (_t, mut p) = pairing(Some("192.0.2.9"));
    let r = reply(&mut p, b"pair open nodes=2 ttl=60\n");
    let body = r.strip_prefix("OK\n").unwrap();
    assert!(
        parse_kv(body, "command")
            .unwrap()
            .contains("https://192.0.2.9:5403/")
    );
    assert_eq!(parse_kv(body, "expires_in"), Some("60"));
    let status = reply(&mut p, b"pair status\n");
    assert!(
        status.contains("window=open\n") && status.contains("nodes=2\n"),
        "{status}"
    );
    // The secret is only in the command, never in the status.
    let secret = parse_kv(body, "command")
        .unwrap()
        .split('.')
        .next_back()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(!status.contains(&secret));
    assert_eq!(reply(&mut p, b"pair close\n"), "OK\n");
    assert_eq!(reply(&mut p, b"pair status\n"), "OK\nwindow=none\n");
    assert!(reply(&mut p, b"pair close\n").starts_with("Error\n"));
    let r = reply(&mut p, b"unpair nosuch\n");
    assert!(r.contains("no live certificates"), "{r}");
    let r = reply(&mut p, b"pair open address=192.0.2.1 cluster=-bad\n");
    assert!(
        r.starts_with("Error\n") && r.contains("not supported"),
        "{r}"
    );
}

#[test]
fn the_paired_set_starts_from_the_index_then_signing_adds_and_unpair_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.advanced.nss_db_dir = tmp.path().join("store");
    config.listen_addr = Some("192.0.2.9".into());
    let store = CertStore::open(&config.advanced.nss_db_dir);
    store.init().unwrap();
    // In the index before the start: c0 live (twice), c1 revoked.
    for cluster in ["c0", "c0", "c1"] {
        let (csr, _key) = crate::net::tls::testkit::make_request(cluster);
        store.sign_request(&csr, cluster).unwrap();
    }
    store.revoke_cluster("c1").unwrap();
    let mut p = Pairing::new(&config, RevokedSerials::default()).unwrap();
    let names = |p: &Pairing| p.paired().iter().cloned().collect::<Vec<_>>();
    assert_eq!(names(&p), ["c0"]);

    // A signing pairs its cluster, with its step; a failed one nothing.
    let addr = PeerAddr("192.0.2.7:40000".parse().unwrap());
    let (csr, _key) = crate::net::tls::testkit::make_request("c2");
    let der = p.ledger.sign(&p.store, &csr, "c2", "n1", "ab12", addr);
    assert!(der.is_ok_and(|d| !d.is_empty()));
    assert_eq!(names(&p), ["c0", "c2"]);
    let garbage = p
        .ledger
        .sign(&p.store, b"not a request", "c3", "n1", "-", addr);
    assert!(garbage.is_err());
    assert_eq!(names(&p), ["c0", "c2"]);
    let steps = p.take_steps();
    assert!(
        matches!(&steps[..], [Event::PairSigned { cluster, node, token, .. }]
            if cluster == "c2" && node == "n1" && token == "ab12"),
        "{steps:?}"
    );
    // The set is the index's live clusters.
    let live: BTreeSet<String> = live_clusters(&store.issued().unwrap())
        .map(str::to_owned)
        .collect();
    assert_eq!(&live, p.paired());

    // Unpairing removes; an unknown cluster changes nothing.
    assert!(reply(&mut p, b"unpair c0\n").contains("revoked=2\n"));
    assert_eq!(names(&p), ["c2"]);
    assert!(reply(&mut p, b"unpair c0\n").starts_with("Error\n"));
    assert!(reply(&mut p, b"unpair nosuch\n").starts_with("Error\n"));
    assert_eq!(names(&p), ["c2"]);
    assert!(reply(&mut p, b"unpair c2\n").contains("revoked=1\n"));
    assert!(p.paired().is_empty());
}

#[test]
fn an_unpair_is_one_step_once() {
    let (tmp, mut p) = pairing(Some("192.0.2.9"));
    assert!(reply(&mut p, b"unpair c1\n").starts_with("Error\n"));
    assert!(p.take_steps().is_empty(), "a failed unpair removes nothing");
    let (csr, _key) = crate::net::tls::testkit::make_request("c1");
    CertStore::open(tmp.path().join("store"))
        .sign_request(&csr, "c1")
        .unwrap();
    // A window for c1 goes with it.
    reply(&mut p, b"pair open cluster=c1 replace=1\n");
    assert!(reply(&mut p, b"unpair c1\n").contains("revoked=1\n"));
    let steps = p.take_steps();
    assert!(matches!(&steps[0], Event::PairOpen { cluster: Some(c), .. } if c == "c1"));
    assert!(matches!(
        &steps[1],
        Event::PairClosed {
            reason: "unpaired",
            ..
        }
    ));
    assert_eq!(
        steps[2],
        Event::Unpair {
            cluster: "c1".into(),
            revoked: 1,
            disconnected: 0
        }
    );
    assert_eq!(steps.len(), 3);
    assert!(p.take_steps().is_empty());
}

#[test]
fn window_steps_open_replace_expire_and_close_once_each() {
    let (_t, mut p) = pairing(Some("192.0.2.9"));
    let poll = mio::Poll::new().unwrap();
    let first = reply(&mut p, b"pair open nodes=2 ttl=60\n");
    let first_id = parse_kv(first.strip_prefix("OK\n").unwrap(), "id")
        .unwrap()
        .to_owned();
    reply(&mut p, b"pair open ttl=60\n");
    let steps = p.take_steps();
    assert_eq!(
        steps[0],
        Event::PairOpen {
            token: first_id.clone(),
            cluster: None,
            nodes: Some(2),
            expires_at_ms: 60_000
        }
    );
    assert_eq!(
        steps[1],
        Event::PairClosed {
            token: first_id.clone(),
            cluster: None,
            reason: "replaced"
        }
    );
    assert!(matches!(&steps[2], Event::PairOpen { token, nodes: None, .. } if *token != first_id));
    assert_eq!(steps.len(), 3);
    // The loop wakes for the expiry, which is reported once.
    assert_eq!(p.poll_timeout(), Some(Timestamp::from_millis(60_000)));
    p.handle_timeout(poll.registry(), Timestamp::from_millis(59_999));
    assert!(p.take_steps().is_empty());
    p.handle_timeout(poll.registry(), Timestamp::from_millis(60_000));
    let steps = p.take_steps();
    assert!(
        matches!(
            &steps[..],
            [Event::PairClosed {
                reason: "expired",
                ..
            }]
        ),
        "{steps:?}"
    );
    assert_eq!(p.poll_timeout(), None);
    p.handle_timeout(poll.registry(), Timestamp::from_millis(70_000));
    assert!(p.take_steps().is_empty());
    // Closing an expired window reports nothing more; an open one, once.
    assert_eq!(reply(&mut p, b"pair close\n"), "OK\n");
    assert!(p.take_steps().is_empty());
    reply(&mut p, b"pair open\n");
    assert_eq!(reply(&mut p, b"pair close\n"), "OK\n");
    let steps = p.take_steps();
    assert!(
        matches!(
            &steps[..],
            [
                Event::PairOpen { .. },
                Event::PairClosed {
                    reason: "closed",
                    ..
                }
            ]
        ),
        "{steps:?}"
    );
    // Neither the steps nor anything else carry the secret.
    let out = reply(&mut p, b"pair open\n");
    let secret = out
        .rsplit_once('.')
        .unwrap()
        .1
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let json = serde_json::to_string(&p.take_steps()).unwrap();
    assert!(!json.contains(&secret[..16]), "{json}");
}
