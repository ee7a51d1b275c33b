//! What the daemon asks of the system: systemd's notify protocol (Type=notify,
//! WatchdogSec=) when it is there, and enough open files.

use std::time::Duration;

/// Tells systemd the sockets are bound and the daemon is receiving.
pub fn ready() {
    notify(b"READY=1");
}

/// A message to systemd's notification socket, when there is one.
pub fn notify(msg: &[u8]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Ok(s) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = s.send_to(msg, path);
    }
}

/// Half the watchdog period systemd asks for (WatchdogSec=), if it asks.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec / 2))
}

/// Open files up to the hard limit: the connection caps of `[limits]` then
/// leave descriptors for delivery (SMTP, webhooks) and the store.
#[allow(unsafe_code)] // libc has no safe getrlimit/setrlimit
pub fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let soft = lim.rlim_cur;
            // "Unlimited" is refused for open files: the kernel's own cap is the most.
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|n| n.trim().parse::<libc::rlim_t>().ok())
                .unwrap_or(1 << 20);
            lim.rlim_cur = lim.rlim_max.min(nr_open);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(
                    from = soft,
                    to = lim.rlim_max,
                    "raised the open files limit"
                );
            }
        }
    }
}
