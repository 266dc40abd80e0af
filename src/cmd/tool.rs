//! `qnetd tool` / `corosync-qnetd-tool`: the management client
//! (`qdevices/corosync-qnetd-tool.c`), with the reference's options, bytes
//! on the socket, output and exit codes, plus `--json`.
//!
//! ```text
//! usage: corosync-qnetd-tool [-Hhlsv] [-c cluster_name] [-p qnetd_ipc_socket_path]
//!   -s            status                      sends "status \n"
//!   -l            list clusters and nodes     sends "list \n"
//!   -v            verbose                     adds "verbose "
//!   -c NAME       only cluster NAME (with -l) adds "cluster \"NAME\" " (quoted, \" and \\ escaped)
//!   -H            shut the server down        sends "shutdown \n"
//!   -p PATH       socket (default /var/run/corosync-qnetd/corosync-qnetd.sock)
//!   -h            usage (exit 1, as the reference)
//!   --help, --version  usage or version, exit 0 (not under the reference name)
//!   --json        the JSON document (see [`crate::mgmt::json`]) instead of the text;
//!                 sends "json \n" (with -c: "json cluster \"NAME\" \n"); ignored with -H
//! ```
//!
//! Options are read like glibc `getopt(argc, argv, "Hhlsvc:p:")`: grouped
//! flags, attached or separate arguments, non-options skipped, `--` ends
//! the options, the last of `-H`/`-l`/`-s` wins.
//!
//! Invoked as `corosync-qnetd-tool`, every output is the reference's; as
//! `qnetd tool`, `--help` and `--version` work and a failed connection
//! names the socket path tried and how to give another.
//!
//! Exit codes: 0 success, 1 usage, 2 internal error (command too long,
//! send failed, status line too long), 3 cannot connect, unknown status
//! line, or the connection closed before a status line, 4 the server
//! answered `Error` (the message goes to stderr after `Error: `).
//!
//! Unlike the reference tool, a server that closes the connection without
//! a reply (past `ipc_max_clients`, or a management connection deadline)
//! is reported on stderr with exit 3 instead of exit 0 and no output, and a
//! close before the request is written gives exit 2 with a message instead
//! of death by SIGPIPE: a script or health check must not read silence as
//! success.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read as _, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use crate::config::DEFAULT_LOCAL_SOCKET_FILE;
use crate::mgmt::{TOOL_MAX_REQUEST, c_str, quote};

/// The name the reference's usage line always shows
/// (`QNETD_TOOL_PROGRAM_NAME`).
pub const REFERENCE_NAME: &str = "corosync-qnetd-tool";

/// Longest status line, NUL included (`IPC_READ_BUF_SIZE`).
const STATUS_LINE_MAX: usize = 512;

/// `sizeof(sockaddr_un.sun_path)` on Linux.
const SUN_PATH_LEN: usize = 108;

/// What to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    None,
    Shutdown,
    Status,
    List,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    operation: Operation,
    verbose: bool,
    cluster: Option<Vec<u8>>,
    socket: OsString,
    json: bool,
}

/// Output streams and the names to print, so tests can capture everything.
struct Io<'a> {
    /// `argv[0]` as given: getopt's messages use it.
    argv0: &'a str,
    /// Its last path component: `err(3)`'s messages use it.
    short: &'a str,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Io<'_> {
    fn usage(&mut self) {
        let (name, json) = if self.short == REFERENCE_NAME {
            (REFERENCE_NAME, "")
        } else {
            (self.argv0, " [--json]")
        };
        let _ = writeln!(
            self.out,
            "usage: {name} [-Hhlsv] [-c cluster_name] [-p qnetd_ipc_socket_path]{json}"
        );
    }

    /// `errx`: "name: message".
    fn fail(&mut self, code: u8, message: &str) -> u8 {
        let _ = self.out.flush();
        let _ = writeln!(self.err, "{}: {message}", self.short);
        code
    }

    /// A getopt complaint, then the usage, exit 1.
    fn bad_option(&mut self, what: &str, option: u8) -> u8 {
        let _ = write!(self.err, "{}: {what} -- '", self.argv0);
        let _ = self.err.write_all(&[option]);
        let _ = self.err.write_all(b"'\n");
        self.usage();
        1
    }
}

/// glibc `getopt` with `"Hhlsvc:p:"` (permuting), plus `--json`.
fn parse(io: &mut Io<'_>, args: &[OsString]) -> Result<Options, u8> {
    let mut o = Options {
        operation: Operation::None,
        verbose: false,
        cluster: None,
        socket: OsString::from(DEFAULT_LOCAL_SOCKET_FILE),
        json: false,
    };
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let arg = arg.as_bytes();
        i += 1;
        if arg == b"--" {
            break;
        }
        if arg == b"--json" {
            o.json = true;
            continue;
        }
        // Ours only: the reference's getopt rejects them ("invalid option
        // -- '-'"), and under its name so do we.
        if io.short != REFERENCE_NAME {
            if arg == b"--help" {
                io.usage();
                return Err(super::EXIT_OK);
            }
            if arg == b"--version" {
                let _ = writeln!(io.out, "{}", super::version_line());
                return Err(super::EXIT_OK);
            }
        }
        let Some(flags) = arg.strip_prefix(b"-").filter(|f| !f.is_empty()) else {
            continue; // a non-option: getopt permutes it to the end
        };
        let mut j = 0;
        while let Some(&c) = flags.get(j) {
            j += 1;
            match c {
                b'H' => o.operation = Operation::Shutdown,
                b'l' => o.operation = Operation::List,
                b's' => o.operation = Operation::Status,
                b'v' => o.verbose = true,
                b'h' => {
                    io.usage();
                    return Err(1);
                }
                b'c' | b'p' => {
                    let value = match flags.get(j..).filter(|r| !r.is_empty()) {
                        Some(rest) => rest,
                        None => {
                            let Some(next) = args.get(i) else {
                                return Err(io.bad_option("option requires an argument", c));
                            };
                            i += 1;
                            next.as_bytes()
                        }
                    };
                    if c == b'c' {
                        o.cluster = Some(value.to_vec());
                    } else {
                        o.socket = OsStr::from_bytes(value).to_os_string();
                    }
                    break;
                }
                _ => return Err(io.bad_option("invalid option", c)),
            }
        }
    }
    if o.operation == Operation::None && !o.json {
        io.usage();
        return Err(1);
    }
    Ok(o)
}

/// The request line (`store_command`).
fn command(o: &Options) -> Vec<u8> {
    let mut line = match (o.operation, o.json) {
        (Operation::Shutdown, _) => b"shutdown ".to_vec(),
        (_, true) => b"json ".to_vec(),
        (Operation::Status, false) => b"status ".to_vec(),
        (Operation::List | Operation::None, false) => b"list ".to_vec(),
    };
    if o.verbose && !o.json {
        line.extend_from_slice(b"verbose ");
    }
    if let Some(name) = &o.cluster {
        line.extend_from_slice(b"cluster ");
        line.extend(quote(name));
        line.push(b' ');
    }
    line.push(b'\n');
    line
}

/// glibc's `strerror` texts for the errors connecting to the socket can
/// give, where musl's differ: the static builds link musl, and the
/// reference tool prints glibc's words.
fn glibc_strerror(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        12 => "Cannot allocate memory",
        13 => "Permission denied",
        20 => "Not a directory",
        36 => "File name too long",
        40 => "Too many levels of symbolic links",
        88 => "Socket operation on non-socket",
        91 => "Protocol wrong type for socket",
        104 => "Connection reset by peer",
        110 => "Connection timed out",
        111 => "Connection refused",
        _ => return None,
    })
}

/// `strerror` text of an I/O error (without Rust's "(os error N)").
fn strerror(e: &io::Error) -> String {
    if let Some(text) = e.raw_os_error().and_then(glibc_strerror) {
        return text.to_string();
    }
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(n) => text.get(..n).unwrap_or(&text).to_string(),
        None => text,
    }
}

fn connect(path: &OsStr) -> io::Result<UnixStream> {
    let len = path.as_bytes().len();
    if len == 0 || len >= SUN_PATH_LEN {
        return Err(io::Error::from_raw_os_error(36)); // ENAMETOOLONG
    }
    UnixStream::connect(path)
}

/// Prints a reply (`read_ipc_reply`) and returns the exit code.
fn print_reply(io: &mut Io<'_>, reply: &[u8]) -> u8 {
    let mut status = Vec::new();
    let mut bytes = reply.iter();
    for &b in bytes.by_ref() {
        match b {
            b'\r' => {}
            b'\n' => {
                if status.len() >= STATUS_LINE_MAX {
                    return io.fail(2, "Internal error during IPC status line read");
                }
                let word = c_str(&status);
                let rest = bytes.as_slice();
                if word.eq_ignore_ascii_case(b"OK") {
                    let _ = io.out.write_all(rest);
                    let _ = io.out.flush();
                    return 0;
                }
                if word.eq_ignore_ascii_case(b"Error") {
                    let _ = io.err.write_all(b"Error: ");
                    let _ = io.err.write_all(rest);
                    return 4;
                }
                return io.fail(3, "Unknown status line returned by IPC server");
            }
            _ => {
                if status.len() >= STATUS_LINE_MAX {
                    return io.fail(2, "Internal error during IPC status line read");
                }
                status.push(b);
            }
        }
    }
    io.fail(
        3,
        "The server closed the connection without a reply \
         (too many management connections, or a timeout)",
    )
}

fn run_with(io: &mut Io<'_>, args: &[OsString]) -> u8 {
    let o = match parse(io, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut stream = match connect(&o.socket) {
        Ok(s) => s,
        Err(e) => {
            if io.short == REFERENCE_NAME {
                let message = format!(
                    "Can't connect to qnetd socket (is QNetd running?): {}",
                    strerror(&e)
                );
                return io.fail(3, &message);
            }
            let message = format!(
                "Can't connect to qnetd socket {} (is QNetd running?): {}\n\
                 {}: give the server's socket with -p PATH: the server's \
                 -S local_socket_file=PATH (`make run`: -p target/run/qnetd.sock)",
                o.socket.to_string_lossy(),
                strerror(&e),
                io.short
            );
            return io.fail(3, &message);
        }
    };
    let line = command(&o);
    // The reference builds the line, NUL included, in a buffer of the
    // server's default request size.
    if line.len() + 1 > TOOL_MAX_REQUEST {
        return io.fail(2, "Can't store command");
    }
    if let Err(e) = stream.write_all(&line).and_then(|()| stream.flush()) {
        // Rust ignores SIGPIPE, so a server that closed first (e.g.
        // `ipc_max_clients` reached) shows up here as EPIPE.
        return io.fail(2, &format!("Can't send command: {}", strerror(&e)));
    }
    let mut reply = Vec::new();
    // A read error ends the reply like EOF does (fgetc returns EOF).
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    print_reply(io, &reply)
}

/// Runs the tool. `argv0` is the name it was invoked by (`argv[0]` for
/// `corosync-qnetd-tool`, e.g. "qnetd tool" for the subcommand); `args`
/// excludes it.
#[must_use]
pub fn run(argv0: &str, args: Vec<OsString>) -> ExitCode {
    let short = argv0.rsplit('/').next().unwrap_or(argv0);
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut io = Io {
        argv0,
        short,
        out: &mut out,
        err: &mut err,
    };
    let code = run_with(&mut io, &args);
    let _ = out.flush();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests;
