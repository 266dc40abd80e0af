//! `qnetd certutil`: the server side of the certificate set-up, in place of
//! `corosync-qnetd-certutil`.
//!
//! It takes the verbs and options of `qdevices/corosync-qnetd-certutil.sh`, so
//! `pvecm qdevice setup`, `pcs` and people who know the reference can drive it
//! unchanged, plus `-d DIR` to name the store directory:
//!
//! ```text
//! certutil [-d DIR] -i [-G]                   create the CA and the server certificate
//! certutil [-d DIR] -s -c REQUEST -n CLUSTER  sign a node's certificate request
//! certutil [-d DIR] --import-nss NSSDB       import corosync-qnetd-certutil's NSS database
//! certutil -h | --help | --version            usage, version (exit 0)
//! ```
//!
//! `--import-nss` ([`crate::cert::import_nss`]) writes our PEM store from the
//! reference's keys, in `-d DIR` or else in NSSDB itself beside the NSS
//! files, so the CA the nodes trust stays the same. It is accepted under the
//! reference name too.
//!
//! Behaviour and exit codes (see [`run`]):
//! - `-i` is idempotent. On an existing store it says so, changes nothing and
//!   exits **0**. The reference exits 1 there ("Certificate database ...
//!   already exists"); `pvecm` ignores that status, and `pcs` checks for the
//!   store before calling `-i`, so success is the more useful answer for an
//!   idempotent operation. An NSS database of the reference in the directory
//!   is never overwritten (exit 1 with instructions).
//! - `-s` writes `cluster-CLUSTER.crt` (raw DER) and prints
//!   `Certificate stored in PATH`, the exact line `pcs` parses. As in the
//!   reference, `-n` names the file. Unlike the reference, `-n` must be a
//!   possible corosync cluster name (`cert::name::check_cluster_name`), and a
//!   request whose name would not pass the server's cluster-name check for
//!   `-n` is refused (exit 1, nothing signed) unless `-f` / `--force` is
//!   given; then it is signed with a warning.
//! - A missing or unreadable `-c` file, or a missing `-n`, exits 2 like the
//!   reference; any other error exits 1. No operation, or `-h`, prints the
//!   usage and exits 0, as the reference does.
//! - `-G` (group permissions) is accepted for compatibility and has no effect:
//!   keys are always 0600 and public files 0644; as root, new files get the
//!   owner of the directory above the store, like the reference's files.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cert::name::cluster_name_matches;
use crate::cert::store::{CertStore, DEFAULT_DIR, InitOutcome};

/// The reference tool's name: invoked by it (a symlink), this is that tool.
pub const REFERENCE_NAME: &str = "corosync-qnetd-certutil";

/// Exit status for usage errors and bad arguments (the reference's `exit 1`).
const EXIT_ERROR: u8 = super::EXIT_FAILURE;
/// Exit status for a missing request file or cluster name (the reference's `exit 2`).
const EXIT_MISSING_INPUT: u8 = 2;

/// Runs `certutil` with the command line `args` (after the program name)
/// and returns its exit status. `program` is shown in messages: its file
/// name (`corosync-qnetd-certutil` for `/usr/sbin/corosync-qnetd-certutil`),
/// and `certutil` alone as `qnetd certutil`.
///
/// Output goes to stdout, diagnostics to stderr; see the
/// [module docs](self) for the exit statuses.
#[must_use]
pub fn run(program: &str, args: Vec<OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from(program)).chain(args);
    let status = run_with(argv, &mut io::stdout().lock(), &mut io::stderr().lock());
    ExitCode::from(status)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Init,
    Sign,
    ImportNss,
}

struct Options {
    program: String,
    dir: PathBuf,
    operation: Option<Operation>,
    request: Option<PathBuf>,
    cluster: Option<OsString>,
    /// `--import-nss DIR`: the reference's NSS database to import.
    nss_dir: Option<PathBuf>,
    /// Whether `-d` was given (else `--import-nss DIR` is also the store).
    dir_given: bool,
    force: bool,
}

/// [`run`] with explicit output streams. Write errors (a closed stdout) are
/// ignored, never a panic.
fn run_with(
    args: impl IntoIterator<Item = OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let opts = match parse_args(args) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Help(program)) => {
            let _ = usage(out, &program);
            return 0;
        }
        Ok(Parsed::Version) => {
            let _ = writeln!(out, "{}", super::version_line());
            return 0;
        }
        Err((program, msg)) => {
            let _ = writeln!(err, "{program}: {msg}");
            let _ = writeln!(err, "Try '{program} -h' for more information.");
            return EXIT_ERROR;
        }
    };
    match opts.operation {
        None => {
            let _ = usage(out, &opts.program);
            0
        }
        Some(Operation::Init) => init(&opts, out, err),
        Some(Operation::Sign) => sign(&opts, out, err),
        Some(Operation::ImportNss) => import_nss(&opts, out, err),
    }
}

enum Parsed {
    Run(Options),
    Help(String),
    Version,
}

/// `Err((program, message))` on bad usage.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, (String, String)> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_iter(args);
    let program = display_name(parser.bin_name());
    let mut opts = Options {
        program,
        dir: PathBuf::from(DEFAULT_DIR),
        operation: None,
        request: None,
        cluster: None,
        nss_dir: None,
        dir_given: false,
        force: false,
    };
    let fail = |e: lexopt::Error, opts: &Options| (opts.program.clone(), e.to_string());
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(fail(e, &opts)),
        };
        match arg {
            Short('i') => opts.operation = Some(Operation::Init),
            Short('s') => opts.operation = Some(Operation::Sign),
            Short('G') => {}
            Short('f') | Long("force") => opts.force = true,
            Short('c') => match parser.value() {
                Ok(v) => opts.request = Some(PathBuf::from(v)),
                Err(e) => return Err(fail(e, &opts)),
            },
            Short('n') => match parser.value() {
                Ok(v) => opts.cluster = Some(v),
                Err(e) => return Err(fail(e, &opts)),
            },
            Short('d') => match parser.value() {
                Ok(v) => {
                    opts.dir = PathBuf::from(v);
                    opts.dir_given = true;
                }
                Err(e) => return Err(fail(e, &opts)),
            },
            Long("import-nss") => match parser.value() {
                Ok(v) => {
                    opts.operation = Some(Operation::ImportNss);
                    opts.nss_dir = Some(PathBuf::from(v));
                }
                Err(e) => return Err(fail(e, &opts)),
            },
            Short('h') | Long("help") => return Ok(Parsed::Help(opts.program)),
            Long("version") => return Ok(Parsed::Version),
            other => return Err(fail(other.unexpected(), &opts)),
        }
    }
    Ok(Parsed::Run(opts))
}

/// The name for messages: `qnetd certutil` for the subcommand, else the
/// file name of `argv[0]`.
fn display_name(bin: Option<&str>) -> String {
    let base = bin
        .map(|b| {
            Path::new(b)
                .file_name()
                .map_or(b, |n| n.to_str().unwrap_or(b))
        })
        .unwrap_or("certutil");
    if base == "certutil" {
        "qnetd certutil".to_owned()
    } else {
        base.to_owned()
    }
}

fn usage(out: &mut dyn Write, program: &str) -> io::Result<()> {
    writeln!(
        out,
        "\
Usage: {program} [-d DIR] -i [-G]
       {program} [-d DIR] -s -c REQUEST -n CLUSTER [-f]
       {program} [-d DIR] --import-nss NSSDB

 -i          Create the QNetd CA and the server certificate (once)
 -s          Sign a cluster certificate request
 -c REQUEST  Certificate request file from a node
             (corosync-qdevice-net-certutil -r -n CLUSTER writes qdevice-net-node.crq)
 -n CLUSTER  Name of the cluster (for -s)
 -f          Sign even if the request names another cluster than -n
 -d DIR      Certificate store directory (default {DEFAULT_DIR})
 -G          Accepted for compatibility; no effect
 --import-nss NSSDB  Import the CA and server keys of corosync-qnetd-certutil's
             NSS database NSSDB (needs pk12util and openssl); the store is -d,
             by default NSSDB itself. The NSS files are left as they are.
 -h, --help  Show this help
 --version   Show the version"
    )
}

fn init(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let store = CertStore::open(&opts.dir);
    let outcome = match store.init() {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", opts.program);
            return EXIT_ERROR;
        }
    };
    let ca = store.ca_cert_path();
    let _ = match outcome {
        InitOutcome::Created => writeln!(
            out,
            "Created a new QNetd CA and server certificate in {}",
            opts.dir.display()
        ),
        InitOutcome::AlreadyExists => writeln!(
            out,
            "The certificate store in {} already exists; nothing was changed",
            opts.dir.display()
        ),
    };
    let _ = writeln!(out, "QNetd CA certificate is exported as {}", ca.display());
    let _ = writeln!(
        out,
        "Copy it to every cluster node and import it there with: \
         corosync-qdevice-net-certutil -i -c {}",
        ca.file_name()
            .map_or(ca.as_os_str(), |n| n)
            .to_string_lossy()
    );
    0
}

fn import_nss(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let Some(nss_dir) = &opts.nss_dir else {
        return EXIT_ERROR;
    };
    let dir = if opts.dir_given { &opts.dir } else { nss_dir };
    let store = CertStore::open(dir);
    match crate::cert::import_nss::import(nss_dir, &store) {
        Ok(()) => {
            let _ = writeln!(
                out,
                "Imported the QNetd CA and server keys of the NSS database {} into {}",
                nss_dir.display(),
                dir.display()
            );
            let _ = writeln!(
                out,
                "The CA is unchanged: nodes paired with corosync-qnetd keep working. \
                 The NSS files were not changed."
            );
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", opts.program);
            EXIT_ERROR
        }
    }
}

fn sign(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let program = &opts.program;
    let Some(request_path) = &opts.request else {
        let _ = writeln!(
            err,
            "{program}: -s needs a certificate request file (-c FILE)"
        );
        return EXIT_MISSING_INPUT;
    };
    let request = match std::fs::read(request_path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                err,
                "{program}: can't open certificate request {}: {e}",
                request_path.display()
            );
            return EXIT_MISSING_INPUT;
        }
    };
    let Some(cluster) = opts.cluster.as_ref().filter(|c| !c.is_empty()) else {
        let _ = writeln!(
            err,
            "{program}: you have to specify the cluster name (-n CLUSTER)"
        );
        return EXIT_MISSING_INPUT;
    };
    let Some(cluster) = cluster.to_str() else {
        let _ = writeln!(err, "{program}: the cluster name is not valid UTF-8");
        return EXIT_ERROR;
    };

    if let Err(why) = crate::cert::name::check_cluster_name(cluster) {
        let _ = writeln!(
            err,
            "{program}: invalid cluster name {cluster:?}: {why} (a corosync cluster_name)"
        );
        return EXIT_ERROR;
    }
    // Refuse now rather than have the server refuse the node at INIT, or
    // worse, sign a certificate for another cluster than the admin named.
    match crate::cert::name::from_request_der(&request) {
        Ok(names) if !cluster_name_matches(cluster.as_bytes(), &names) => {
            let shown = names
                .dns_names
                .first()
                .or(names.common_name.as_ref())
                .map_or("(no name)", String::as_str);
            let shown = qnetd_engine::algo::model::NameDisplay(shown.as_bytes());
            if !opts.force {
                let _ = writeln!(
                    err,
                    "{program}: the request is for \"{shown}\", not for cluster \"{cluster}\"; \
                     nothing was signed (-f signs it anyway; qnetd would refuse it for \"{cluster}\")"
                );
                return EXIT_ERROR;
            }
            let _ = writeln!(
                err,
                "{program}: warning: the request is for \"{shown}\", which does not match the \
                 cluster name \"{cluster}\"; qnetd will refuse this certificate for that cluster"
            );
        }
        // Not a request: sign_request says so below.
        Ok(_) | Err(_) => {}
    }

    let _ = writeln!(out, "Signing cluster certificate");
    let store = CertStore::open(&opts.dir);
    let path = match store.sign_request(&request, cluster) {
        Ok(path) => path,
        Err(e) => {
            let _ = writeln!(err, "{program}: {}: {e}", request_path.display());
            return EXIT_ERROR;
        }
    };
    // `pcs` reads the path from exactly this line.
    let _ = writeln!(out, "Certificate stored in {}", path.display());
    0
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const REFERENCE_CSR: &[u8] = include_bytes!("../testdata/reference/qdevice-net-node.crq");

    fn run_capture(args: &[&str]) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = run_with(args.iter().map(OsString::from), &mut out, &mut err);
        (
            status,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn init_then_init_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nssdb");
        let dir_s = dir.to_str().unwrap();
        let (status, out, err) = run_capture(&["corosync-qnetd-certutil", "-d", dir_s, "-i", "-G"]);
        assert_eq!(status, 0, "{err}");
        assert!(out.contains("Created a new QNetd CA"), "{out}");
        let ca_line = format!("QNetd CA certificate is exported as {dir_s}/qnetd-cacert.crt");
        assert!(out.contains(&ca_line), "{out}");
        assert!(dir.join("qnetd-cacert.crt").exists());

        let (status, out, _) = run_capture(&["certutil", "-i", "-d", dir_s]);
        assert_eq!(status, 0);
        assert!(out.contains("already exists; nothing was changed"), "{out}");
        assert!(out.contains(&ca_line), "{out}");
    }

    #[test]
    fn sign_prints_the_line_pcs_parses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nssdb");
        let dir_s = dir.to_str().unwrap();
        let csr = tmp.path().join("qdevice-net-node.crq");
        fs::write(&csr, REFERENCE_CSR).unwrap();
        let csr_s = csr.to_str().unwrap();
        assert_eq!(run_capture(&["certutil", "-d", dir_s, "-i"]).0, 0);

        let (status, out, err) = run_capture(&[
            "certutil",
            "-d",
            dir_s,
            "-s",
            "-c",
            csr_s,
            "-n",
            "testcluster",
        ]);
        assert_eq!(status, 0, "{err}");
        assert!(err.is_empty(), "no warning for a matching name: {err}");
        let want = format!("Certificate stored in {dir_s}/cluster-testcluster.crt");
        assert!(out.lines().any(|l| l == want), "{out}");
        assert!(dir.join("cluster-testcluster.crt").exists());

        // A request for another cluster than -n: refused, nothing signed
        // (issue 11, finding 6)...
        let (status, out, err) =
            run_capture(&["certutil", "-d", dir_s, "-s", "-c", csr_s, "-n", "prod"]);
        assert_eq!(status, EXIT_ERROR, "{out}");
        assert!(
            err.contains("not for cluster \"prod\"") && err.contains("\"testcluster\""),
            "{err}"
        );
        assert!(!dir.join("cluster-prod.crt").exists());
        // ... unless forced: signed, with a warning.
        for force in ["-f", "--force"] {
            let (status, out, err) = run_capture(&[
                "certutil", "-d", dir_s, "-s", "-c", csr_s, "-n", "prod", force,
            ]);
            assert_eq!(status, 0, "{err}");
            assert!(out.contains("cluster-prod.crt"), "{out}");
            assert!(
                err.contains("warning") && err.contains("\"testcluster\""),
                "{err}"
            );
        }
        // Names that cannot be a corosync cluster_name are refused.
        let long = "c".repeat(254);
        for bad in ["a/b", "a b", "x\n", "-x", long.as_str(), "caf\u{e9}"] {
            let (status, _, err) =
                run_capture(&["certutil", "-d", dir_s, "-s", "-c", csr_s, "-n", bad]);
            assert_eq!(status, EXIT_ERROR, "{bad:?}");
            assert!(err.contains("invalid cluster name"), "{err}");
        }
    }

    #[test]
    fn exit_codes_follow_the_reference() {
        let tmp = tempfile::tempdir().unwrap();
        let dir_s = tmp.path().to_str().unwrap();
        let missing = tmp.path().join("missing.crq");
        let missing_s = missing.to_str().unwrap();

        // No operation: usage, success (as the reference).
        let (status, out, _) = run_capture(&["corosync-qnetd-certutil"]);
        assert_eq!(status, 0);
        assert_eq!(run_capture(&["corosync-qnetd-certutil", "-h"]).1, out);
        assert!(out.starts_with("Usage: corosync-qnetd-certutil "), "{out}");
        let (_, out, _) = run_capture(&["/usr/bin/certutil", "-d", dir_s]);
        assert!(out.starts_with("Usage: qnetd certutil "), "{out}");

        let (status, _, err) = run_capture(&["certutil", "-x"]);
        assert_eq!(status, 1);
        assert!(err.contains("'-x'"), "{err}");
        assert_eq!(run_capture(&["certutil", "-c"]).0, 1, "missing value");
        assert_eq!(run_capture(&["certutil", "stray"]).0, 1);

        assert_eq!(
            run_capture(&["certutil", "-d", dir_s, "-s", "-n", "c"]).0,
            2
        );
        assert_eq!(
            run_capture(&["certutil", "-d", dir_s, "-s", "-c", missing_s, "-n", "c"]).0,
            2
        );
        fs::write(&missing, REFERENCE_CSR).unwrap();
        assert_eq!(
            run_capture(&["certutil", "-d", dir_s, "-s", "-c", missing_s]).0,
            2
        );

        // A store that does not exist yet: a clear error naming the directory.
        let (status, out, err) = run_capture(&[
            "certutil",
            "-d",
            dir_s,
            "-s",
            "-c",
            missing_s,
            "-n",
            "testcluster",
        ]);
        assert_eq!(status, 1);
        assert!(!out.contains("Certificate stored in"), "{out}");
        assert!(
            err.contains("no certificate store in") && err.contains(dir_s),
            "{err}"
        );

        // Invalid request content.
        assert_eq!(run_capture(&["certutil", "-d", dir_s, "-i"]).0, 0);
        fs::write(&missing, b"not a request").unwrap();
        let (status, _, err) =
            run_capture(&["certutil", "-d", dir_s, "-s", "-c", missing_s, "-n", "c"]);
        assert_eq!(status, 1);
        assert!(err.contains("certificate request:"), "{err}");
    }

    #[test]
    fn refuses_to_touch_an_nss_database() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cert9.db"), b"").unwrap();
        let (status, _, err) = run_capture(&["certutil", "-d", tmp.path().to_str().unwrap(), "-i"]);
        assert_eq!(status, 1);
        assert!(err.contains("NSS database"), "{err}");
        assert!(!tmp.path().join("qnetd-cacert.crt").exists());
    }

    #[test]
    fn import_nss_arguments_and_refusals() {
        let tmp = tempfile::tempdir().unwrap();
        let dir_s = tmp.path().to_str().unwrap();
        // Under both names; no NSS database: nothing is written.
        for program in ["certutil", "corosync-qnetd-certutil"] {
            let (status, out, err) = run_capture(&[program, "--import-nss", dir_s]);
            assert_eq!(status, 1, "{out}");
            assert!(err.contains("holds no NSS database"), "{err}");
        }
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        let (status, _, err) = run_capture(&["certutil", "--import-nss"]);
        assert_eq!(status, 1);
        assert!(err.contains("--import-nss"), "{err}");
        // A store of ours already there: refused, untouched.
        assert_eq!(run_capture(&["certutil", "-d", dir_s, "-i"]).0, 0);
        fs::write(tmp.path().join("cert9.db"), b"").unwrap();
        let key = fs::read(tmp.path().join("qnetd-ca.key")).unwrap();
        let (status, _, err) = run_capture(&["certutil", "--import-nss", dir_s]);
        assert_eq!(status, 1);
        assert!(err.contains("already holds qnetd-ca.key"), "{err}");
        assert_eq!(fs::read(tmp.path().join("qnetd-ca.key")).unwrap(), key);
    }

    #[test]
    fn the_nss_refusal_names_the_import_command() {
        let tmp = tempfile::tempdir().unwrap();
        let dir_s = tmp.path().to_str().unwrap();
        fs::write(tmp.path().join("cert9.db"), b"").unwrap();
        let (_, _, err) = run_capture(&["certutil", "-d", dir_s, "-i"]);
        assert!(
            err.contains(&format!("qnetd certutil --import-nss {dir_s}"))
                && err.contains("docs/certificates.md"),
            "{err}"
        );
        let (status, out, _) = run_capture(&["certutil", "--version"]);
        assert_eq!(status, 0);
        assert_eq!(out, format!("{}\n", crate::cmd::version_line()));
    }
}
