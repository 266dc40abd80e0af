#![forbid(unsafe_code)]
//! The `qnetd` binary: the daemon and its companion tools in one file.
//!
//! ```text
//! qnetd [daemon options]          the server (corosync-qnetd compatible)
//! qnetd tool [tool options]       the management client (corosync-qnetd-tool compatible)
//! qnetd healthcheck [options]     exit 0 if the daemon answers, 1 otherwise
//! ```
//!
//! Invoked as `corosync-qnetd` (a symlink) it behaves the same; invoked as
//! `corosync-qnetd-tool` it is the tool.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use qnetd::cli::{self, Command};
use qnetd::config::Config;

fn program_name(argv0: Option<&OsString>) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map_or_else(|| "qnetd".to_string(), |n| n.to_string_lossy().into_owned())
}

fn init_logging(config: &Config, to_stdout: bool) {
    let default = if config.debug > 0 { "debug" } else { "info" };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    builder.format(|buf, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(
            buf,
            "{} {level:<7} {}",
            buf.timestamp_seconds(),
            record.args()
        )
    });
    if to_stdout {
        builder.target(env_logger::Target::Stdout);
    }
    builder.init();
}

fn fail(program: &str, message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::FAILURE
}

fn daemon(program: &str, args: Vec<OsString>) -> ExitCode {
    let (config, options_file, warnings) = match cli::parse(program, args) {
        Ok(Command::Run {
            config,
            options_file,
            warnings,
        }) => (config, options_file, warnings),
        Ok(Command::Print { text, code }) => {
            #[allow(
                clippy::print_stdout,
                reason = "usage and version go to stdout, as the reference"
            )]
            {
                print!("{text}");
            }
            return ExitCode::from(code);
        }
        Err(e) => return fail(program, &e),
    };
    if let Some(path) = options_file {
        return fail(
            program,
            &format!(
                "--options {}: Home Assistant options are not supported by this build yet",
                path.display()
            ),
        );
    }
    init_logging(&config, false);
    for w in &warnings {
        log::warn!("{w}");
    }
    match qnetd::net::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let program = program_name(args.first());
    let argv0 = args
        .first()
        .map_or_else(|| program.clone(), |a| a.to_string_lossy().into_owned());
    if !args.is_empty() {
        args.remove(0);
    }
    if program == qnetd::tool::REFERENCE_NAME {
        return qnetd::tool::run(&argv0, args);
    }
    if program == "corosync-qnetd-certutil" {
        return qnetd::certutil::run(std::iter::once(OsString::from(&argv0)).chain(args));
    }
    match args.first().and_then(|a| a.to_str()) {
        Some("certutil") => {
            return qnetd::certutil::run(
                std::iter::once(OsString::from(format!("{program} certutil")))
                    .chain(args.into_iter().skip(1)),
            );
        }
        Some("tool") => return qnetd::tool::run(&format!("{program} tool"), args.split_off(1)),
        Some("healthcheck") => {
            return qnetd::healthcheck::run(&format!("{program} healthcheck"), args.split_off(1));
        }
        _ => {}
    }
    daemon(&program, args)
}
