//! The daemon entry (`corosync-qnetd`): the command line or the add-on
//! options file, then logging, then [`crate::net::run`].
//!
//! Add-on mode is explicit: a bare `qnetd` behaves like `corosync-qnetd`
//! even where `/data/options.json` exists, so a host never changes
//! behaviour because of a stray file. The image's `ENTRYPOINT` passes
//! `--options /data/options.json`. In add-on mode the settings are the
//! add-on defaults, then the options file, then any flag after it (see
//! [`crate::config::addon`]), and the log goes to stdout, which the
//! Supervisor shows in the add-on's Log tab.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// The reference daemon's name: invoked by it (a symlink), the usage is the
/// reference's.
pub const REFERENCE_NAME: &str = "corosync-qnetd";
use crate::config::addon;
use crate::config::cli::{self, Command};

/// The daemon's usage, then the subcommands (not under the reference
/// name, whose usage stays the reference's).
fn usage(program: &str) -> String {
    let mut text = cli::usage(program);
    if program != REFERENCE_NAME {
        text.push_str("\nsubcommands:\n");
        for (name, help, _) in &crate::cmd::SUBCOMMANDS {
            let _ = writeln!(text, "  {program} {name:<12} {help}");
        }
        text.push_str(
            "\nEvery program takes --help and --version (exit status 0). Exit status: 0 ok,\n\
             1 usage error or failure; -h and -v exit 1, as corosync-qnetd.\n",
        );
    }
    text
}

/// Usage and version go to stdout, as the reference.
fn print(text: &str, code: u8) -> ExitCode {
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::from(code)
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
        Ok(Command::Usage { .. } | Command::Version { .. }) => {
            Err("unexpected -h/-v with --options".to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the daemon with the command line `args` (after the program name).
#[must_use]
pub fn run(program: &str, args: Vec<OsString>) -> ExitCode {
    let (config, options_file, warnings) = match cli::parse(program, args.clone()) {
        Ok(Command::Run {
            config,
            options_file,
            warnings,
        }) => (config, options_file, warnings),
        Ok(Command::Usage { code }) => return print(&usage(program), code),
        Ok(Command::Version { code }) => return print(&cli::version_text(), code),
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
    crate::logging::init(program, filter, addon_mode);
    for w in &warnings {
        log::warn!("{w}");
    }
    match crate::net::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
