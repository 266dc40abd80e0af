//! The shell's own constants. The engine's defaults and bounds are
//! [`crate::core::settings`].
//!
//! Defaults cite `qdevices/qnet-config.h` of the reference.

/// Default TCP port (`QNETD_DEFAULT_HOST_PORT`).
pub const DEFAULT_PORT: u16 = 5403;

/// Default listen backlog. The reference uses 10
/// (`QNETD_DEFAULT_LISTEN_BACKLOG`), which drops connections when many
/// nodes reconnect at once (after a qnetd restart, say); the kernel caps
/// this value at `net.core.somaxconn`.
pub const DEFAULT_LISTEN_BACKLOG: i32 = 1024;

/// Bytes read from a socket per read call.
pub const READ_CHUNK: usize = 16 * 1024;
