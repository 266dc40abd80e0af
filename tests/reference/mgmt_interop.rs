//! Differential tests of the management interface against the reference
//! `corosync-qnetd` 3.0.3 and `corosync-qnetd-tool`: both servers get the
//! same simulated clients (the two clusters of `tool_samples.txt`), then
//! the real tool and ours run against both sockets and every output, error
//! line and exit code must be identical once the TCP ports are replaced by
//! names. Skipped (with a message) when the reference is not installed.

use std::path::Path;
use std::time::Duration;

use crate::support::server::{
    Kind, Node, REFERENCE_TOOL, Scratch, Server, ToolRun, free_ports, ids, ipc, normalize,
    our_tool_link, reference, run_tool, sample_clients,
};

const TOOL_NAME: &str = "corosync-qnetd-tool";

/// The tool invocations compared, as in tool_samples.txt and beyond.
const INVOCATIONS: &[&[&str]] = &[
    &["-s"],
    &["-s", "-v"],
    &["-sv"],
    &["-l"],
    &["-l", "-v"],
    &["-l", "-c", "testcluster"],
    &["-l", "-v", "-c", "other"],
    &["-l", "-c", "nosuch"],
    &["-l", "-c", ""],
    &["-l", "-c", "test\"cl\\uster"],
    &["-lv", "-cother", "ignored-operand"],
    &["-s", "-l"],
];

/// Raw request lines whose replies must be byte-identical.
const RAW: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"bogus\n",
    b"STATUS\n",
    b"status VERBOSE extra\n",
    b"status\0x\n",
    b"\0status\n",
    b"bog\0us\n",
    b"  \t status\n",
    b"status\rjunk\n",
    b"\"sta\"tus\n",
    b"st\\atus\n",
    b"\"status\n",
    b"list cluster \"a\\\"b\" \n",
    b"list bogus verbose\n",
    b"list cluster\n",
    b"list cluster \"\" \n",
    b"lisT Verbose cluster testcluster\n",
    b"list \"\" verbose\n",
    b"list cluster other cluster testcluster verbose\n",
    b"\xff\xfe\n",
    b"\"\\q\"\n",
    b"a\\\n",
    b"list\x0bverbose\n",
    b"status\x0cverbose\n",
    b"json\n",
    b"status",
];

fn keepalive(nodes: &mut [Node]) {
    for n in nodes {
        n.keepalive();
    }
}

fn tool(exe: &Path, args: &[&str], socket: &Path) -> ToolRun {
    let mut all: Vec<&str> = args.to_vec();
    let socket = socket.to_str().unwrap();
    all.extend(["-p", socket]);
    run_tool(exe, TOOL_NAME, &all)
}

fn normalized(run: &ToolRun, server: &Server, nodes: &[Node]) -> ToolRun {
    ToolRun {
        stdout: normalize(&run.stdout, server.port, nodes),
        stderr: run.stderr.clone(),
        code: run.code,
        signal: run.signal,
    }
}

/// Maps a normalised output onto the ports of tool_samples.txt.
fn as_in_samples(text: &str) -> String {
    text.replace("SERVER_PORT", "15403")
        .replace("NODE1_PORT", "55098")
        .replace("NODE2_PORT", "55110")
        .replace("NODE3_PORT", "55118")
}

/// `corosync-qnetd-tool ARGS` blocks of tool_samples.txt.
fn samples() -> Vec<(String, String)> {
    let text = include_str!("../vectors/tool_samples.txt");
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("===== $ corosync-qnetd-tool ") {
            cur = Some((
                rest.split("   (").next().unwrap().trim().to_string(),
                String::new(),
            ));
        } else if line.starts_with("[exit ") {
            out.push(cur.take().unwrap());
        } else if let Some((_, t)) = cur.as_mut() {
            t.push_str(line);
        }
    }
    out
}

#[test]
fn real_tool_output_is_identical_on_both_servers() {
    let Some((_, real)) = reference() else {
        return;
    };
    let dir = Scratch::new("diff");
    let ports = free_ports(2);
    let reference = Server::start(Kind::Reference, &dir, "ref", ports[0], "");
    let ours = Server::start(Kind::Ours, &dir, "ours", ports[1], "");
    let mut ref_nodes = sample_clients(reference.port);
    let mut our_nodes = sample_clients(ours.port);
    let our_tool = our_tool_link(&dir);
    let samples = samples();

    for args in INVOCATIONS {
        keepalive(&mut ref_nodes);
        keepalive(&mut our_nodes);
        let want = tool(&real, args, &reference.socket);
        assert_eq!(want.code, Some(0), "reference {args:?}: {want:?}");
        let want_n = normalized(&want, &reference, &ref_nodes);
        // The real tool against our server.
        let got = tool(&real, args, &ours.socket);
        assert_eq!(
            normalized(&got, &ours, &our_nodes),
            want_n,
            "real corosync-qnetd-tool {args:?}: our server differs"
        );
        // Our tool against both servers: byte-identical to the real tool.
        assert_eq!(
            tool(&our_tool, args, &reference.socket),
            want,
            "our tool {args:?} against the reference server"
        );
        assert_eq!(
            tool(&our_tool, args, &ours.socket),
            got,
            "our tool {args:?} against our server"
        );
        // The simulated clients reproduce the captured samples.
        let joined = args.join(" ");
        if let Some((_, text)) = samples.iter().find(|(a, _)| *a == joined) {
            assert_eq!(&as_in_samples(&want_n.stdout), text, "sample {joined}");
        }
    }
    assert_eq!(samples.len(), 7);

    // Raw exchanges, including malformed requests.
    for raw in RAW {
        keepalive(&mut ref_nodes);
        keepalive(&mut our_nodes);
        let want = ipc(&reference.socket, raw).unwrap();
        let got = ipc(&ours.socket, raw).unwrap();
        let want = normalize(&String::from_utf8_lossy(&want), reference.port, &ref_nodes);
        let got = normalize(&String::from_utf8_lossy(&got), ours.port, &our_nodes);
        if *raw == b"json\n" {
            assert_eq!(want, "Error\nUnknown command 'json'\n");
            assert!(got.starts_with("OK\n{"), "{got}");
        } else {
            assert_eq!(got, want, "request {raw:?}");
        }
    }
    // A request line at the receive limit (4096 with the LF) is answered;
    // one byte more closes the connection without a reply.
    for len in [4095, 4096] {
        let mut line = vec![b'x'; len];
        line.push(b'\n');
        let want = ipc(&reference.socket, &line).unwrap();
        let got = ipc(&ours.socket, &line).unwrap();
        assert_eq!(got, want, "line of {len} bytes");
        assert_eq!(want.is_empty(), len == 4096);
    }
    // Bytes after the first line are never read.
    let mut pipelined = b"status\n".to_vec();
    pipelined.extend(vec![b'y'; 5000]);
    let want = ipc(&reference.socket, &pipelined).unwrap();
    let got = ipc(&ours.socket, &pipelined).unwrap();
    assert_eq!(
        normalize(&String::from_utf8_lossy(&got), ours.port, &our_nodes),
        normalize(&String::from_utf8_lossy(&want), reference.port, &ref_nodes)
    );

    // --json against the reference: the server's error, exit code 4.
    let json = tool(&our_tool, &["--json"], &reference.socket);
    assert_eq!(json.stderr, "Error: Unknown command 'json'\n");
    assert_eq!(json.code, Some(4));

    // Shutdown: same reply, both servers exit 0, remove the socket, keep
    // the lock file, and drop the clients without a word.
    let mut servers = [(reference, ref_nodes), (ours, our_nodes)];
    let mut results = Vec::new();
    for (server, nodes) in &mut servers {
        let run = tool(&real, &["-H"], &server.socket);
        let status = server.wait_exit(Duration::from_secs(5));
        let closed = nodes
            .iter_mut()
            .all(|n| n.closed_by_server(Duration::from_secs(2)));
        results.push((
            run,
            status.map(|s| s.code()),
            server.socket.exists(),
            server.lock.exists(),
            closed,
        ));
    }
    assert_eq!(
        results[0],
        (
            ToolRun {
                stdout: String::new(),
                stderr: String::new(),
                code: Some(0),
                signal: None,
            },
            Some(Some(0)),
            false,
            true,
            true
        ),
        "reference shutdown"
    );
    assert_eq!(results[1], results[0], "our shutdown");
}

#[test]
fn tool_errors_and_usage_are_identical() {
    let Some((_, real)) = reference() else {
        return;
    };
    let dir = Scratch::new("errors");
    let our_tool = our_tool_link(&dir);
    let missing = dir.path("missing.sock");
    let missing = missing.to_str().unwrap();
    let long = format!("/tmp/{}", "x".repeat(110));
    let cases: &[&[&str]] = &[
        &[],
        &["-v"],
        &["-h"],
        &["-s", "-h"],
        &["-x"],
        &["-s", "-c"],
        &["-l", "-p"],
        &["--help"],
        &["-s:"],
        &["-", "-l"],
        &["-s", "-p", missing],
        &["-H", "-p", missing],
        &["-s", "-p", ""],
        &["-s", "-p", &long],
        &["-l", "-c", "x", "-p", missing],
    ];
    for args in cases {
        for arg0 in [TOOL_NAME, REFERENCE_TOOL] {
            let want = run_tool(&real, arg0, args);
            let got = run_tool(&our_tool, arg0, args);
            assert_eq!(got, want, "argv0 {arg0}, args {args:?}");
        }
    }
    // The message the connect error is built from.
    let run = run_tool(&our_tool, TOOL_NAME, &["-s", "-p", missing]);
    assert_eq!(
        run.stderr,
        "corosync-qnetd-tool: Can't connect to qnetd socket (is QNetd running?): No such file or directory\n"
    );
    assert_eq!(run.code, Some(3));
}

#[test]
fn limits_behave_alike() {
    let Some((_, real)) = reference() else {
        return;
    };
    let dir = Scratch::new("limits");
    let ports = free_ports(2);
    let settings = "ipc_max_clients=1,ipc_max_send_size=1024,ipc_max_receive_size=1024";
    let reference = Server::start(Kind::Reference, &dir, "ref", ports[0], settings);
    let ours = Server::start(Kind::Ours, &dir, "ours", ports[1], settings);
    let our_tool = our_tool_link(&dir);
    let mut results = Vec::new();
    for server in [&reference, &ours] {
        // A cluster whose verbose list is longer than 1024 bytes.
        let mut node = Node::connect(server.port);
        node.preinit(b"big");
        node.init(
            1,
            qnetd::proto::DecisionAlgorithm::Test,
            10_000,
            crate::support::server::LOWEST,
            qnetd::proto::RingId { node_id: 1, seq: 1 },
        );
        let many: Vec<u32> = (1..=250).collect();
        node.node_list(
            qnetd::proto::NodeListType::InitialConfig,
            &ids(&many),
            |_| {},
        );
        let mut r = Vec::new();
        r.push(
            String::from_utf8_lossy(&ipc(&server.socket, b"list verbose\n").unwrap()).into_owned(),
        );
        // An unknown word whose error message does not fit: no reply.
        let mut long = vec![b'w'; 1000];
        long.push(b'\n');
        r.push(String::from_utf8_lossy(&ipc(&server.socket, &long).unwrap()).into_owned());
        // A request over the receive limit: no reply.
        let mut long = vec![b'w'; 1024];
        long.push(b'\n');
        r.push(String::from_utf8_lossy(&ipc(&server.socket, &long).unwrap()).into_owned());
        // With one idle management connection open, the reference accepts
        // the next one and closes it: the tool prints nothing and exits 0,
        // or, if the close comes before its request is written, dies of
        // SIGPIPE. Ours closes the idle one instead and answers (intended
        // difference: idle connections must not lock out the health check).
        let idle = std::os::unix::net::UnixStream::connect(&server.socket).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        for exe in [&*real, &*our_tool] {
            let run = tool(exe, &["-s"], &server.socket);
            let quiet = run.stdout.is_empty() && run.stderr.is_empty();
            let ended = matches!((run.code, run.signal), (Some(0), None) | (None, Some(13)));
            r.push(format!("quiet={quiet} ended={ended}"));
        }
        drop(idle);
        std::thread::sleep(Duration::from_millis(100));
        let run = tool(&real, &["-s"], &server.socket);
        r.push(format!("{:?}", run.code));
        results.push(r);
        node.keepalive();
    }
    assert_eq!(results[0][0], "Error\nCan't get QNetd cluster list\n");
    assert_eq!(results[0][1], "");
    assert_eq!(results[0][2], "");
    assert_eq!(results[0][3], "quiet=true ended=true");
    // Our tool says what happened and fails instead (intended difference).
    assert_eq!(results[0][4], "quiet=false ended=false");
    assert_eq!(results[0][5], "Some(0)");
    assert_eq!(results[1][..3], results[0][..3]);
    assert_eq!(results[1][3], "quiet=false ended=true");
    assert_eq!(results[1][4], "quiet=false ended=true");
    assert_eq!(results[1][5], results[0][5]);
    assert!(
        ours.log_text()
            .contains("Closing the oldest idle IPC connection to accept a new one"),
        "{}",
        ours.log_text()
    );
}

#[test]
fn second_instance_on_the_same_lock_file_is_refused_like_the_reference() {
    if reference().is_none() {
        return;
    }
    let dir = Scratch::new("lock");
    let ports = free_ports(1);
    let mut outcomes = Vec::new();
    for kind in [Kind::Reference, Kind::Ours] {
        let name = format!("{kind:?}");
        let first = Server::start(kind, &dir, &name, ports[0], "");
        let mut second = Server::spawn(
            kind,
            &dir,
            &format!("{name}-2"),
            ports[0],
            &first.lock,
            &first.socket,
            "",
        );
        let status = second
            .wait_exit(Duration::from_secs(5))
            .expect("second exits");
        assert!(
            second.log_text().contains("Another instance is running"),
            "{kind:?}: {}",
            second.log_text()
        );
        // The first one's socket is untouched.
        let reply = ipc(&first.socket, b"status\n").unwrap();
        outcomes.push((status.code(), reply.starts_with(b"OK\n")));
        drop(first);
    }
    assert_eq!(outcomes[0], (Some(1), true));
    assert_eq!(outcomes[1], outcomes[0]);
}
