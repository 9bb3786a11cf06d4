//! Server topologies for tests: a primary with GTID replicas (failover), and two independent servers (move-tables).

use color_eyre::eyre::{bail, Result, WrapErr};
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

use super::server::{Flavor, Server};

/// Starts a primary and `replicas` GTID replicas of it, replicating and caught up.
pub async fn primary_with_replicas(flavor: Flavor, replicas: usize) -> Result<(Server, Vec<Server>)> {
    let primary = Server::start(flavor).await?;
    let mut reps = Vec::new();
    for _ in 0..replicas {
        let r = Server::start(flavor).await?;
        replicate_from(&r, &primary).await?;
        reps.push(r);
    }
    Ok((primary, reps))
}

/// Two independent servers of one flavour (source and target of move-tables).
pub async fn two_servers(flavor: Flavor) -> Result<(Server, Server)> {
    Ok((Server::start(flavor).await?, Server::start(flavor).await?))
}

/// Makes `replica` replicate from `source` by GTID auto-positioning and starts replication.
pub async fn replicate_from(replica: &Server, source: &Server) -> Result<()> {
    let mut c = replica.conn().await?;
    match replica.flavor {
        Flavor::MariaDb => {
            c.query_drop(format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', MASTER_PASSWORD='', \
                 MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                source.port
            ))
            .await
            .wrap_err("CHANGE MASTER TO")?;
            c.query_drop("START SLAVE").await?;
        }
        Flavor::MySql => {
            c.query_drop(format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={}, SOURCE_USER='root', \
                 SOURCE_PASSWORD='', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1",
                source.port
            ))
            .await
            .wrap_err("CHANGE REPLICATION SOURCE TO")?;
            c.query_drop("START REPLICA").await?;
        }
    }
    wait_caught_up(replica, source, Duration::from_secs(60)).await
}

/// Waits until the replica has executed everything the source has executed.
pub async fn wait_caught_up(replica: &Server, source: &Server, timeout: Duration) -> Result<()> {
    let mut sc = source.conn().await?;
    let mut rc = replica.conn().await?;
    let deadline = Instant::now() + timeout;
    loop {
        let done = match source.flavor {
            Flavor::MariaDb => {
                let pos: Option<String> = sc.query_first("SELECT @@gtid_binlog_pos").await?;
                let pos = pos.unwrap_or_default();
                if pos.is_empty() {
                    true
                } else {
                    let r: Option<i64> =
                        rc.exec_first("SELECT MASTER_GTID_WAIT(?, 0.5)", (pos.clone(),)).await?;
                    r == Some(0)
                }
            }
            Flavor::MySql => {
                let set: Option<String> = sc.query_first("SELECT @@gtid_executed").await?;
                let set = set.unwrap_or_default();
                let r: Option<i64> =
                    rc.exec_first("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 0.5)", (set,)).await?;
                r == Some(0)
            }
        };
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            let status = replica_status(replica).await.unwrap_or_default();
            bail!("replica {replica:?} did not catch up with {source:?} within {timeout:?}: {status}");
        }
    }
}

/// A one-line summary of the replica's replication state, for failure messages.
pub async fn replica_status(replica: &Server) -> Result<String> {
    let mut c = replica.conn().await?;
    let q = match replica.flavor {
        Flavor::MariaDb => "SHOW SLAVE STATUS",
        Flavor::MySql => "SHOW REPLICA STATUS",
    };
    let row: Option<mysql_async::Row> = c.query_first(q).await?;
    Ok(match row {
        None => "not a replica".to_string(),
        Some(r) => {
            let cols = r.columns_ref().to_vec();
            let mut parts = Vec::new();
            for (i, col) in cols.iter().enumerate() {
                let name = col.name_str();
                if name.contains("Running") || name.contains("Error") && !name.contains("Timestamp") {
                    let v: Option<String> = r.get_opt(i).and_then(|x| x.ok());
                    parts.push(format!("{name}={}", v.unwrap_or_default()));
                }
            }
            parts.join(" ")
        }
    })
}
