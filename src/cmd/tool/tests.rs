//! The tool against canned replies: arguments, output and exit codes.

use super::*;

fn parsed(args: &[&str]) -> (Result<Options, u8>, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let r = {
        let mut io = Io {
            argv0: "/usr/bin/corosync-qnetd-tool",
            short: REFERENCE_NAME,
            out: &mut out,
            err: &mut err,
        };
        parse(&mut io, &args)
    };
    (
        r,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn line(args: &[&str]) -> String {
    String::from_utf8(command(&parsed(args).0.unwrap())).unwrap()
}

const USAGE: &str =
    "usage: corosync-qnetd-tool [-Hhlsv] [-c cluster_name] [-p qnetd_ipc_socket_path]\n";

#[test]
fn bytes_sent_match_the_reference() {
    assert_eq!(line(&["-s"]), "status \n");
    assert_eq!(line(&["-s", "-v"]), "status verbose \n");
    assert_eq!(line(&["-sv"]), "status verbose \n");
    assert_eq!(line(&["-l"]), "list \n");
    assert_eq!(line(&["-l", "-v"]), "list verbose \n");
    assert_eq!(
        line(&["-l", "-c", "testcluster"]),
        "list cluster \"testcluster\" \n"
    );
    assert_eq!(
        line(&["-lvcq\"u\\o"]),
        "list verbose cluster \"q\\\"u\\\\o\" \n"
    );
    assert_eq!(line(&["-H"]), "shutdown \n");
    assert_eq!(line(&["-s", "-l", "-H", "-l"]), "list \n");
    assert_eq!(line(&["--json"]), "json \n");
    assert_eq!(
        line(&["-l", "-v", "--json", "-c", "x"]),
        "json cluster \"x\" \n"
    );
    assert_eq!(line(&["-H", "--json"]), "shutdown \n");
    // Non-options are skipped; "--" ends the options.
    assert_eq!(line(&["extra", "-s", "more"]), "status \n");
    assert_eq!(line(&["-s", "--", "-v"]), "status \n");
    assert_eq!(line(&["-c", "-s", "-l"]), "list cluster \"-s\" \n");
}

#[test]
fn socket_path_option() {
    let o = parsed(&["-s", "-p", "/tmp/x.sock"]).0.unwrap();
    assert_eq!(o.socket, "/tmp/x.sock");
    let o = parsed(&["-p/tmp/y", "-s"]).0.unwrap();
    assert_eq!(o.socket, "/tmp/y");
    let o = parsed(&["-s"]).0.unwrap();
    assert_eq!(o.socket, DEFAULT_LOCAL_SOCKET_FILE);
}

#[test]
fn usage_and_getopt_errors() {
    assert_eq!(parsed(&[]), (Err(1), USAGE.to_string(), String::new()));
    assert_eq!(parsed(&["-v"]), (Err(1), USAGE.to_string(), String::new()));
    assert_eq!(
        parsed(&["-s", "-h"]),
        (Err(1), USAGE.to_string(), String::new())
    );
    assert_eq!(
        parsed(&["-x"]),
        (
            Err(1),
            USAGE.to_string(),
            "/usr/bin/corosync-qnetd-tool: invalid option -- 'x'\n".to_string()
        )
    );
    assert_eq!(
        parsed(&["-s", "-c"]),
        (
            Err(1),
            USAGE.to_string(),
            "/usr/bin/corosync-qnetd-tool: option requires an argument -- 'c'\n".to_string()
        )
    );
    assert_eq!(
        parsed(&["--help"]).2,
        "/usr/bin/corosync-qnetd-tool: invalid option -- '-'\n"
    );
    assert_eq!(
        parsed(&["-s:"]).2,
        "/usr/bin/corosync-qnetd-tool: invalid option -- ':'\n"
    );
    // "-" alone is a non-option.
    assert_eq!(line(&["-", "-s"]), "status \n");
}

fn printed(reply: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = {
        let mut io = Io {
            argv0: "corosync-qnetd-tool",
            short: REFERENCE_NAME,
            out: &mut out,
            err: &mut err,
        };
        print_reply(&mut io, reply)
    };
    (code, out, err)
}

#[test]
fn replies() {
    assert_eq!(printed(b"OK\nbody\n"), (0, b"body\n".to_vec(), vec![]));
    assert_eq!(printed(b"ok\r\nbody"), (0, b"body".to_vec(), vec![]));
    assert_eq!(printed(b"OK\0junk\nx"), (0, b"x".to_vec(), vec![]));
    assert_eq!(
        printed(b"Error\nNo command specified\n"),
        (4, vec![], b"Error: No command specified\n".to_vec())
    );
    assert_eq!(printed(b"ERROR\n"), (4, vec![], b"Error: ".to_vec()));
    assert_eq!(
        printed(b"What\nx"),
        (
            3,
            vec![],
            b"corosync-qnetd-tool: Unknown status line returned by IPC server\n".to_vec()
        )
    );
    let closed = b"corosync-qnetd-tool: The server closed the connection without a reply \
        (too many management connections, or a timeout)\n"
        .to_vec();
    assert_eq!(printed(b""), (3, vec![], closed.clone()));
    assert_eq!(printed(b"OK"), (3, vec![], closed));
    let mut long = vec![b'O'; 511];
    long.push(b'\n');
    assert_eq!(printed(&long).0, 3);
    let mut long = vec![b'O'; 512];
    long.push(b'\n');
    assert_eq!(
        printed(&long),
        (
            2,
            vec![],
            b"corosync-qnetd-tool: Internal error during IPC status line read\n".to_vec()
        )
    );
    // 512 bytes and EOF: no status line (the reference exits 0 silently).
    assert_eq!(printed(&[b'O'; 512]).0, 3);
    assert_eq!(printed(&[b'O'; 513]).0, 2);
}

#[test]
fn connect_errors_use_strerror() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = {
        let mut io = Io {
            argv0: REFERENCE_NAME,
            short: REFERENCE_NAME,
            out: &mut out,
            err: &mut err,
        };
        run_with(
            &mut io,
            &[
                OsString::from("-s"),
                OsString::from("-p/nonexistent/x.sock"),
            ],
        )
    };
    assert_eq!(code, 3);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "corosync-qnetd-tool: Can't connect to qnetd socket (is QNetd running?): No such file or directory\n"
    );
    let long = format!("-p/{}", "x".repeat(120));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = {
        let mut io = Io {
            argv0: "qnetd tool",
            short: "qnetd tool",
            out: &mut out,
            err: &mut err,
        };
        run_with(&mut io, &[OsString::from("-s"), OsString::from(long)])
    };
    assert_eq!(code, 3);
    // strerror(ENAMETOOLONG) as glibc and the reference print it, also
    // from the musl builds (musl says "Filename too long").
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("(is QNetd running?): File name too long\n"),
        "{err}"
    );
}

#[test]
fn usage_of_the_subcommand_mentions_json() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = {
        let mut io = Io {
            argv0: "qnetd tool",
            short: "qnetd tool",
            out: &mut out,
            err: &mut err,
        };
        parse(&mut io, &[])
    };
    assert_eq!(r, Err(1));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "usage: qnetd tool [-Hhlsv] [-c cluster_name] [-p qnetd_ipc_socket_path] [--json]\n"
    );
}
