//! The service manager's side channels, without libsystemd and without
//! `unsafe`: [`notify`] (`sd_notify` over `$NOTIFY_SOCKET`). The log
//! destinations (journal, syslog) are in [`crate::logging`].

pub mod notify;
