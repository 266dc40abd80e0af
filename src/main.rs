#![forbid(unsafe_code)]
//! The `qnetd` binary: the daemon and its companion tools in one file.
//!
//! ```text
//! qnetd [daemon options]                      the server (corosync-qnetd compatible)
//! qnetd --options /data/options.json [flags]  the server as a Home Assistant add-on
//! qnetd certutil [certutil options]           the certificate store (corosync-qnetd-certutil compatible)
//! qnetd tool [tool options]                   the management client (corosync-qnetd-tool compatible)
//! qnetd healthcheck [options]                 exit 0 if the daemon answers, 1 otherwise
//! ```
//!
//! Invoked as `corosync-qnetd` (a symlink) it behaves the same; invoked as
//! `corosync-qnetd-certutil` or `corosync-qnetd-tool` it is that tool.
//!
//! Add-on mode is explicit: a bare `qnetd` behaves like `corosync-qnetd`
//! even where `/data/options.json` exists, so a host never changes
//! behaviour because of a stray file. The image's `ENTRYPOINT` passes
//! `--options /data/options.json`. In add-on mode the settings are the
//! add-on defaults, then the options file, then any flag after it (see
//! [`qnetd::addon`]), and the log goes to stdout, which the Supervisor shows
//! in the add-on's Log tab.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use qnetd::addon;
use qnetd::cli::{self, Command};
use qnetd::config::Config;

fn program_name(argv0: Option<&OsString>) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map_or_else(|| "qnetd".to_string(), |n| n.to_string_lossy().into_owned())
}

fn fail(program: &str, message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::FAILURE
}

/// The flags to apply on top of the options file: all arguments except
/// `--options FILE` itself.
fn args_after_options(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--options" {
            let _ = it.next();
        } else if !a.to_str().is_some_and(|s| s.starts_with("--options=")) {
            out.push(a.clone());
        }
    }
    out
}

/// Add-on mode: defaults, then the options file, then the other flags.
fn addon_config(
    program: &str,
    path: &Path,
    flags: Vec<OsString>,
) -> Result<(Config, log::LevelFilter), String> {
    let options = addon::Options::load(path).map_err(|e| e.to_string())?;
    let mut base = addon::base_config();
    options.apply(&mut base).map_err(|e| e.to_string())?;
    match cli::parse_onto(program, flags, base) {
        Ok(Command::Run { config, .. }) => {
            let filter = if config.debug > 0 {
                options.log_level.filter().max(log::LevelFilter::Debug)
            } else {
                options.log_level.filter()
            };
            Ok((*config, filter))
        }
        Ok(Command::Print { .. }) => Err("unexpected -h/-v with --options".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn daemon(program: &str, args: Vec<OsString>) -> ExitCode {
    let (config, options_file, warnings) = match cli::parse(program, args.clone()) {
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
    let (config, filter, addon_mode) = match options_file {
        None => {
            let filter = if config.debug > 0 {
                log::LevelFilter::Debug
            } else {
                log::LevelFilter::Info
            };
            (*config, filter, false)
        }
        Some(path) => match addon_config(program, &path, args_after_options(&args)) {
            Ok((config, filter)) => (config, filter, true),
            Err(e) => return fail(program, &e),
        },
    };
    qnetd::logging::init(program, filter, addon_mode);
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
