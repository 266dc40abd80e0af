//! Bounded resources over TLS: a client that never reads, half-open
//! handshakes and a handshake that never completes.

use super::*;

/// The server's resident memory, from `/proc/PID/status`, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// An ECHO_REQUEST padded with an unknown option (which the server skips)
/// to `len` bytes; its reply is as long.
fn big_echo_request(seq: u32, len: usize) -> Vec<u8> {
    let mut bytes = build::to_bytes(&build::echo_request(seq));
    let pad = len - bytes.len() - 4;
    bytes.extend_from_slice(&0x7ff0u16.to_be_bytes());
    bytes.extend_from_slice(&u16::try_from(pad).unwrap().to_be_bytes());
    bytes.resize(len, 0xab);
    let payload = u32::try_from(len - 6).unwrap();
    bytes[2..6].copy_from_slice(&payload.to_be_bytes());
    bytes
}

#[test]
fn tls_client_that_never_reads_is_dropped_and_memory_stays_flat() {
    const FLOOD: usize = 64 << 20;
    const RSS_MARGIN_KIB: u64 = 32 << 10;
    let server = Server::start("deaf", &["-s", "req", "-c", "off"]);
    let cfg = client_config(provider(true), &server.ca(), None);
    let mut good = Node::joined(&server, &cfg, CLUSTER);
    let mut deaf = Node::joined(&server, &cfg, "deafcluster");
    let pid = server.daemon.child.id();
    let before = vm_rss_kib(pid);
    let mut peak = before;
    // A write that blocks this long means the server stopped reading
    // without dropping the client.
    deaf.s
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = big_echo_request(7, 16 * 1024);
    let tls = deaf.tls.as_mut().unwrap();
    let mut sent = 0;
    let mut dropped = false;
    while sent < FLOOD {
        tls.send(&request).unwrap();
        let out = tls.take_output();
        match deaf.s.write_all(&out) {
            Ok(()) => sent += request.len(),
            Err(e) => {
                assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "server stalled");
                assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "server stalled");
                dropped = true;
                break;
            }
        }
        if sent % (1 << 20) == 0 {
            peak = peak.max(vm_rss_kib(pid));
        }
    }
    peak = peak.max(vm_rss_kib(pid));
    eprintln!("server RSS {before} KiB before, {peak} KiB at most; {sent} bytes sent");
    assert!(
        peak < before + RSS_MARGIN_KIB,
        "server RSS grew from {before} KiB to {peak} KiB after {sent} bytes"
    );
    assert!(
        dropped,
        "a client that never reads must be dropped ({sent} bytes sent)"
    );
    // The other cluster is still served.
    good.send(&build::echo_request(9));
    good.expect(MsgType::EchoReply);
    assert!(server.stop().success());
}

/// A client that sent STARTTLS and half a ClientHello, then nothing.
fn half_open(server: &Server, config: &Arc<rustls::ClientConfig>) -> Node {
    let mut node = Node::connect(server);
    node.preinit(CLUSTER);
    node.send(&build::starttls(2));
    let hello = TlsClient::new(config).take_output();
    node.s.write_all(&hello[..hello.len() / 2]).unwrap();
    node
}

#[test]
fn half_open_handshakes_do_not_push_out_real_clients() {
    let server = Server::start_with(
        "halfflood",
        &["-s", "req", "-c", "off", "-m", "4"],
        "max_preinit_clients_per_addr=0",
    );
    let cfg = client_config(provider(true), &server.ca(), None);
    let mut good = Node::joined(&server, &cfg, CLUSTER);
    let mut flood: Vec<Node> = (0..8).map(|_| half_open(&server, &cfg)).collect();
    let mut late = Node::joined(&server, &cfg, "latecluster");
    for (i, node) in flood.iter_mut().enumerate().take(6) {
        assert_eq!(node.recv(), Got::Closed, "half-open handshake {i}");
    }
    for (seq, node) in [&mut good, &mut late].into_iter().enumerate() {
        node.send(&build::echo_request(u32::try_from(seq).unwrap()));
        node.expect(MsgType::EchoReply);
    }
}

#[test]
fn a_tls_handshake_that_never_completes_is_closed_at_the_init_deadline() {
    // The deadline runs from connect for every client: long enough for
    // the good client's own handshake and INIT under qemu (make test-armv7
    // takes over 300 ms for it), short enough to wait for.
    let server = Server::start_with("halfopen", &["-s", "on", "-c", "off"], "init_timeout=3000");
    let cfg = client_config(provider(true), &server.ca(), None);
    let mut good = Node::joined(&server, &cfg, CLUSTER);
    let mut half = half_open(&server, &cfg);
    assert_eq!(
        half.recv(),
        Got::Closed,
        "a stalled handshake must be closed"
    );
    // The client past INIT is still served.
    good.send(&build::echo_request(9));
    good.expect(MsgType::EchoReply);
    assert!(server.stop().success());
}
