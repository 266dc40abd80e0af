//! Where the daemon's log goes, chosen once at start-up ([`choose`]):
//!
//! - add-on mode: stdout (the Supervisor's Log tab);
//! - stderr is the journal (`$JOURNAL_STREAM` names stderr's device and
//!   inode, as systemd sets it): stderr with `sd-daemon(3)` `<N>` priority
//!   prefixes and no timestamp (the journal adds its own);
//! - stderr is `/dev/null` (a unit with `StandardError=null`, such as the
//!   reference's `corosync-qnetd.service`, or a daemon started with
//!   `2>/dev/null`): syslog, one RFC 3164 datagram per record to `/dev/log`
//!   (journald's socket where systemd runs), facility `daemon`;
//!   `$QNETD_SYSLOG_SOCKET` names another socket (tests);
//! - else stderr, as before: `timestamp level message` lines.
//!
//! The level filter is the caller's unless `RUST_LOG` is set.

use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Overrides the syslog socket path (default [`DEV_LOG`]).
pub const SYSLOG_SOCKET_ENV: &str = "QNETD_SYSLOG_SOCKET";
/// The syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// A log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Plain lines on stdout (add-on mode).
    Stdout,
    /// Plain lines on stderr.
    Stderr,
    /// Stderr is a journal stream: `<N>message` lines.
    Journal,
    /// RFC 3164 datagrams to this Unix socket.
    Syslog(PathBuf),
}

/// The destination for this process (see the module documentation).
#[must_use]
pub fn choose(to_stdout: bool) -> Target {
    if to_stdout {
        return Target::Stdout;
    }
    let Ok(st) = rustix::fs::fstat(std::io::stderr()) else {
        return Target::Stderr;
    };
    let journal = std::env::var("JOURNAL_STREAM").ok();
    if journal.is_some_and(|j| j == format!("{}:{}", st.st_dev, st.st_ino)) {
        return Target::Journal;
    }
    let is_char =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice;
    if is_char && rustix::fs::major(st.st_rdev) == 1 && rustix::fs::minor(st.st_rdev) == 3 {
        let path = std::env::var_os(SYSLOG_SOCKET_ENV)
            .map_or_else(|| PathBuf::from(DEV_LOG), PathBuf::from);
        return Target::Syslog(path);
    }
    Target::Stderr
}

/// syslog severity of a `log` level (RFC 5424 numbers).
#[must_use]
pub fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Facility `daemon` (3), shifted as in a PRI field.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Installs the logger for `program` (the syslog tag) at `filter`.
pub fn init(program: &str, filter: log::LevelFilter, to_stdout: bool) {
    let target = choose(to_stdout);
    let default = filter.as_str().to_ascii_lowercase();
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if let Target::Syslog(path) = target {
        let inner = builder.build();
        let max = inner.filter();
        if let Ok(sock) = UnixDatagram::unbound()
            && log::set_boxed_logger(Box::new(Syslog {
                inner,
                sock,
                path,
                tag: format!("{program}[{}]", std::process::id()),
            }))
            .is_ok()
        {
            log::set_max_level(max);
        }
        return;
    }
    if target == Target::Journal {
        builder
            .format(|buf, record| writeln!(buf, "<{}>{}", severity(record.level()), record.args()));
    } else {
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
    }
    if target == Target::Stdout {
        builder.target(env_logger::Target::Stdout);
    }
    builder.init();
}

/// The syslog logger: `env_logger`'s filter, our datagrams.
struct Syslog {
    inner: env_logger::Logger,
    sock: UnixDatagram,
    path: PathBuf,
    tag: String,
}

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.inner.matches(record) {
            #[allow(
                clippy::disallowed_methods,
                reason = "a syslog line carries the wall-clock time; the log is I/O, not the sans-IO core"
            )]
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let line = rfc3164(
                FACILITY_DAEMON | severity(record.level()),
                now,
                &self.tag,
                &record.args().to_string(),
            );
            // Nowhere else to report a failure: stderr is /dev/null.
            let _ = self.sock.send_to(line.as_bytes(), &self.path);
        }
    }

    fn flush(&self) {}
}

/// One RFC 3164 message: `<PRI>Mmm dd hh:mm:ss TAG: MSG`, the time in UTC
/// (`unix_secs`), as glibc's `syslog(3)` writes it to `/dev/log`.
#[must_use]
pub fn rfc3164(pri: u8, unix_secs: u64, tag: &str, msg: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, month, day) = civil_from_days(unix_secs / 86_400);
    let s = unix_secs % 86_400;
    format!(
        "<{pri}>{} {day:>2} {:02}:{:02}:{:02} {tag}: {msg}",
        MONTHS[usize::from(month - 1)],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, in the
/// proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    // Both fit: month is 1..=12, day 1..=31.
    (year, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
    }

    #[test]
    fn rfc3164_line() {
        // 2026-12-06 04:05:09 UTC
        let t = 20_793 * 86_400 + 4 * 3600 + 5 * 60 + 9;
        assert_eq!(
            rfc3164(FACILITY_DAEMON | 6, t, "corosync-qnetd[42]", "hello"),
            "<30>Dec  6 04:05:09 corosync-qnetd[42]: hello"
        );
        assert_eq!(severity(log::Level::Error), 3);
        assert_eq!(severity(log::Level::Trace), 7);
    }
}
