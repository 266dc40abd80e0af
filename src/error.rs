//! The shell's error type: everything that stops the daemon from starting
//! or running. Each variant prints as one line naming what failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::net::tls::TlsConfigError;

/// A fatal daemon error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Invalid settings.
    Config(ConfigError),
    /// The listen address could not be resolved or bound.
    Bind {
        /// What we tried to bind.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// Another instance holds the lock file.
    AnotherInstance {
        /// The lock file.
        path: PathBuf,
    },
    /// An I/O operation failed.
    Io {
        /// What was being done, e.g. "create lock file /run/x.pid".
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// TLS could not be set up (certificate store or server configuration).
    Tls(TlsConfigError),
}

impl Error {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Bind { addr, source } => write!(f, "Can't listen on {addr}: {source}"),
            Self::AnotherInstance { path } => {
                write!(
                    f,
                    "Another instance is running (lock file {})",
                    path.display()
                )
            }
            Self::Io { what, source } => write!(f, "Can't {what}: {source}"),
            Self::Tls(e) => write!(f, "TLS setup failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Bind { source, .. } | Self::Io { source, .. } => Some(source),
            Self::Tls(e) => Some(e),
            Self::AnotherInstance { .. } => None,
        }
    }
}

impl From<TlsConfigError> for Error {
    fn from(e: TlsConfigError) -> Self {
        Self::Tls(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}
