//! Opening connections to the servers: every connection revenant opens goes through [`connect`], which gives up
//! after `--mysql-timeout` (gh-ost's flag; none unless given) with an I/O error, so a server that does not answer
//! is treated as a lost connection (retried for `--retry-seconds`, then a resumable stop), never a hang. The same
//! setting becomes the sessions' `net_read_timeout` and `net_write_timeout` ([`session_timeouts`]): the server
//! drops a connection whose client stops reading or writing for that long. A running query is not cut short (a
//! chunk, a lock wait of the cut-over keep their own limits). The setting is process-wide, as gh-ost's is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::{Conn, Opts};

/// `--mysql-timeout` in milliseconds; 0: none.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);

/// Sets the connect and session timeouts of every connection opened from now on (None or zero: none).
pub fn set_timeout(timeout: Option<Duration>) {
    let ms = timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    TIMEOUT_MS.store(ms, Ordering::Relaxed);
}

/// The timeout set by [`set_timeout`].
pub fn timeout() -> Option<Duration> {
    match TIMEOUT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

/// Opens a connection, giving up after the timeout (an I/O error of kind `TimedOut`, which the retry rules treat
/// as a lost connection).
pub async fn connect<T: Into<Opts>>(opts: T) -> mysql_async::Result<Conn> {
    let opts: Opts = opts.into();
    let Some(limit) = timeout() else { return Conn::new(opts).await };
    let target = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    match tokio::time::timeout(limit, Conn::new(opts)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection to {target} within --mysql-timeout ({:.1} s)", limit.as_secs_f64()),
        )
        .into()),
    }
}

/// The session statement that carries the timeout to the server (None without one): whole seconds, at least 1.
pub fn session_timeouts() -> Option<String> {
    let secs = timeout()?.as_secs_f64().ceil().max(1.0) as u64;
    Some(format!("SET SESSION net_read_timeout = {secs}, net_write_timeout = {secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_gets_whole_seconds_and_nothing_without_a_timeout() {
        set_timeout(Some(Duration::from_millis(1500)));
        assert_eq!(session_timeouts().as_deref(), Some("SET SESSION net_read_timeout = 2, net_write_timeout = 2"));
        set_timeout(Some(Duration::from_millis(200)));
        assert_eq!(session_timeouts().as_deref(), Some("SET SESSION net_read_timeout = 1, net_write_timeout = 1"));
        set_timeout(None);
        assert_eq!(session_timeouts(), None);
    }
}
