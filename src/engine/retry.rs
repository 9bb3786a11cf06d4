//! Which errors are worth retrying (deadlocks, lock wait timeouts, lost connections), and the backoff between tries.

use std::time::Duration;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retry on the same connection (the transaction was rolled back).
    Same,
    /// The connection is gone: reconnect, then retry.
    Reconnect,
    /// Not retriable.
    No,
}

/// An error that goes away when tried again a little later on the same connection (the server said nothing
/// wrong; the state it judged was in passing). `smaller`: try again with a smaller chunk.
#[derive(Debug, Clone)]
pub struct Transient {
    pub why: String,
    pub smaller: bool,
}

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for Transient {}

/// Does the error chain ask for a smaller chunk?
pub fn wants_smaller(err: &color_eyre::Report) -> bool {
    err.chain().any(|c| c.downcast_ref::<Transient>().is_some_and(|t| t.smaller))
}

/// Classifies an error chain.
pub fn classify(err: &color_eyre::Report) -> Retry {
    for cause in err.chain() {
        if cause.downcast_ref::<Transient>().is_some() {
            return Retry::Same;
        }
        if let Some(e) = cause.downcast_ref::<mysql_async::Error>() {
            return match e {
                mysql_async::Error::Server(s) => match s.code {
                    // deadlock, lock wait timeout, query interrupted/killed, server shutdown in progress
                    1213 | 1205 => Retry::Same,
                    1053 | 1927 | 2006 | 2013 => Retry::Reconnect,
                    _ => Retry::No,
                },
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Retry::Reconnect,
                _ => Retry::No,
            };
        }
    }
    Retry::No
}

/// Backoff for attempt `n` (1-based): 50 ms doubling, at most 5 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1u64 << n.min(7))).min(Duration::from_secs(5))
}
