//! Shared by the failover tests (tests/failover.rs, tests/move_tables_failover.rs): a child's status-JSON lines
//! read on a thread, and promoting a replica the way a failover manager does.

use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, Result};
use mysql_async::prelude::Queryable;

use super::{exec_all, Flavor, Server};

/// The status-JSON lines of a child, read on a thread (which keeps draining, so the child never blocks).
pub struct Lines {
    rx: Receiver<String>,
    last: Vec<String>,
}

impl Lines {
    pub fn of(child: &mut Child) -> Result<Lines> {
        Ok(Lines { rx: super::run::lines_of(child)?, last: Vec::new() })
    }

    /// Waits for a line on which `pred` holds; Err on timeout or when the child's output ended first.
    pub fn wait(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.last.push(line.clone());
                    if self.last.len() > 3 {
                        self.last.remove(0);
                    }
                    if hit {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => bail!("the run's output ended before {what}; last lines: {:?}", self.last),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}; last lines: {:?}", self.last);
            }
        }
    }
}

/// Makes a replica the primary: replication stopped and forgotten, writable.
pub async fn promote(replica: &Server) -> Result<()> {
    let mut c = replica.conn().await?;
    match replica.flavor {
        Flavor::MariaDb => exec_all(&mut c, "STOP SLAVE;\nRESET SLAVE ALL;\nSET GLOBAL read_only = 0").await,
        Flavor::MySql => exec_all(&mut c, "STOP REPLICA;\nRESET REPLICA ALL;\nSET GLOBAL super_read_only = 0;\nSET GLOBAL read_only = 0").await,
    }
}

/// As a failover manager promotes a replica whose primary died: it first applies what it had received (its relay
/// log), then is promoted.
pub async fn promote_applied(replica: &Server) -> Result<()> {
    let mut c = replica.conn().await?;
    let waited: Option<Option<i64>> = match replica.flavor {
        Flavor::MariaDb => {
            let row: Option<mysql_async::Row> = c.query_first("SHOW SLAVE STATUS").await?;
            let io_pos: String = row.and_then(|r| r.get_opt::<String, _>("Gtid_IO_Pos").and_then(|v| v.ok())).unwrap_or_default();
            c.exec_first("SELECT MASTER_GTID_WAIT(?, 60)", (io_pos,)).await?
        }
        Flavor::MySql => {
            let received: Option<Option<String>> =
                c.query_first("SELECT GROUP_CONCAT(RECEIVED_TRANSACTION_SET) FROM performance_schema.replication_connection_status").await?;
            c.exec_first("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 60)", (received.flatten().unwrap_or_default(),)).await?
        }
    };
    if waited.flatten() != Some(0) {
        bail!("{replica:?} did not apply its relay log within 60s");
    }
    drop(c);
    promote(replica).await
}
