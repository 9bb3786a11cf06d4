//! Where a migration streams the binary log and where it changes the table. gh-ost's default topology: `--host`
//! names a replica; its binary log is streamed (the replica needs `log_slave_updates` and row images), and the
//! table is copied, applied to and swapped on its primary (the server it replicates from, or
//! `--assume-master-host`). A `--host` that replicates from nobody is the primary itself. Two primaries that
//! replicate from each other (`--allow-master-master`) keep gh-ost's meaning too: the server `--host` names is
//! taken as the active one. A longer chain is refused: the primary must be named.

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;

use crate::engine::config::{ConnectionConfig, MigrationConfig};
use crate::engine::plan::preflight::refuse;

/// Whom a server replicates from: (host, port, server id), or None.
async fn upstream(conn: &mut mysql_async::Conn) -> Result<Option<(String, u16, u32)>> {
    let version: String = conn.query_first("SELECT @@version").await?.unwrap_or_default();
    let q = if version.to_ascii_lowercase().contains("mariadb") { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" };
    let rows: Vec<mysql_async::Row> = match conn.query(q).await {
        Ok(rows) => rows,
        // Not allowed to look: preflight's own check of the server says what it can.
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1227 | 1142 | 1044) => return Ok(None),
        Err(e) => return Err(e).wrap_err(q),
    };
    let Some(row) = rows.first() else { return Ok(None) };
    let text = |names: [&str; 2]| names.iter().find_map(|n| row.get_opt::<String, _>(*n).and_then(|r| r.ok())).unwrap_or_default();
    let port = text(["Source_Port", "Master_Port"]).parse().unwrap_or(3306);
    let id = text(["Source_Server_Id", "Master_Server_Id"]).parse().unwrap_or(0);
    Ok(Some((text(["Source_Host", "Master_Host"]), port, id)))
}

async fn server_id(conn: &mut mysql_async::Conn) -> Result<u32> {
    Ok(conn.query_first("SELECT @@server_id").await?.unwrap_or(0))
}

/// The primary's connection settings: its address, the migration's credentials (or `--master-user`) and TLS.
fn primary_at(cfg: &MigrationConfig, host: String, port: u16) -> ConnectionConfig {
    ConnectionConfig {
        host,
        port,
        user: cfg.master_user.clone().unwrap_or_else(|| cfg.source.user.clone()),
        password: cfg.source.password.clone(),
        socket: None,
        tls: cfg.source.tls.clone(),
        gtid_domain_id: None,
    }
}

async fn connect(c: &ConnectionConfig, what: &str) -> Result<mysql_async::Conn> {
    crate::engine::connection::connect(c.opts())
        .await
        .map_err(|e| refuse(format!("cannot connect to {} ({what}): {e}", c.display()), c.connect_hint()))
}

/// revenant's own GTID domain on a MariaDB replica it migrates on ([`OWN_DOMAIN`], or the first domain above it
/// that the replica does not replicate): its writes there must not take sequence numbers in a replicated domain
/// (with gtid_strict_mode the replica's SQL thread would stop at the primary's next transaction). The same domain
/// on every run of the migration, so a resume adds no new one. None on MySQL (its GTIDs carry the server's UUID).
async fn own_gtid_domain(c: &ConnectionConfig) -> Result<Option<u32>> {
    let mut conn = connect(c, "--host").await?;
    let version: String = conn.query_first("SELECT @@version").await?.unwrap_or_default();
    if !version.to_ascii_lowercase().contains("mariadb") {
        let _ = conn.disconnect().await;
        return Ok(None);
    }
    let replicated: String = conn.query_first("SELECT @@gtid_slave_pos").await?.unwrap_or_default();
    let _ = conn.disconnect().await;
    let used: Vec<u32> = replicated.split(',').filter_map(|g| g.trim().split('-').next()?.parse().ok()).collect();
    let domain = (OWN_DOMAIN..).find(|d| !used.contains(d)).unwrap_or(OWN_DOMAIN);
    tracing::info!("the replica's own writes go to GTID domain {domain} (it replicates domains {used:?})");
    Ok(Some(domain))
}

/// The GTID domain revenant writes in on a MariaDB replica, when the replica does not replicate it already.
pub const OWN_DOMAIN: u32 = 4242;

/// `cfg` with replica mode resolved: `source` becomes the primary and `binlog_source` the replica `--host`
/// named; unchanged when `--host` is the primary (or one of two primaries).
pub async fn resolve(mut cfg: MigrationConfig) -> Result<MigrationConfig> {
    if cfg.on_replica.is_some() {
        // gh-ost's --test-on-replica / --migrate-on-replica: everything on --host itself.
        cfg.source.gtid_domain_id = own_gtid_domain(&cfg.source).await?;
        return Ok(cfg);
    }
    if cfg.binlog_source.is_some() {
        return Ok(cfg);
    }
    let mut host = connect(&cfg.source, "--host").await?;
    let up = upstream(&mut host).await?;
    let host_id = server_id(&mut host).await?;
    let _ = host.disconnect().await;
    let primary = match (&cfg.assume_master_host, up) {
        (Some((h, p)), _) => primary_at(&cfg, h.clone(), *p),
        (None, None) => return Ok(cfg),
        (None, Some((h, p, _))) => {
            let candidate = primary_at(&cfg, h, p);
            let mut c = connect(&candidate, "the primary of --host,").await?;
            let above = upstream(&mut c).await?;
            let _ = c.disconnect().await;
            match above {
                None => candidate,
                Some((_, _, id)) if id == host_id && cfg.allow_master_master => {
                    tracing::info!("{} and {} replicate from each other: {} is taken as the active primary (--allow-master-master)", cfg.source.display(), candidate.display(), cfg.source.display());
                    return Ok(cfg);
                }
                Some((_, _, id)) if id == host_id => {
                    return Err(refuse(
                        format!("{} and {} replicate from each other (two primaries)", cfg.source.display(), candidate.display()),
                        "point --host at the active primary and add --allow-master-master, or name it with --assume-master-host",
                    ))
                }
                Some((h2, p2, _)) => {
                    return Err(refuse(
                        format!("{} replicates from {}, which itself replicates from {h2}:{p2}", cfg.source.display(), candidate.display()),
                        "name the primary with --assume-master-host HOST:PORT (revenant does not follow a replication chain)",
                    ))
                }
            }
        }
    };
    if primary.host == cfg.source.host && primary.port == cfg.source.port {
        return Ok(cfg);
    }
    tracing::info!("replica mode: streaming the binary log of {}, changing the table on its primary {}", cfg.source.display(), primary.display());
    cfg.binlog_source = Some(std::mem::replace(&mut cfg.source, primary));
    Ok(cfg)
}
