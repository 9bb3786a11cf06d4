//! Shared by the move-tables tests: two seeded tables, an application writer that keeps writing through the fence,
//! hooks that record their runs, and the table-by-table checksum oracle (source `_<t>_del` against target `t`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{bail, Result};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::move_tables::MoveTablesConfig;

use crate::common::{conn_config, exec_all, table_checksum, Server};

pub const COLS: [&str; 5] = ["id", "a", "b", "c", "d"];

/// Two tables of `rows` rows each in `db` on the source, and an empty `db` on the target.
pub async fn seed(source: &Server, target: &Server, db: &str, rows: u64) -> Result<()> {
    let mut c = source.conn().await?;
    exec_all(&mut c, &format!("CREATE DATABASE {db}")).await?;
    for t in ["orders", "items"] {
        exec_all(
            &mut c,
            &format!("CREATE TABLE {db}.{t} (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c DATETIME(6), d DECIMAL(10,2), KEY(a))"),
        )
        .await?;
        c.query_drop(format!("INSERT INTO {db}.{t} (a, b, c, d) VALUES (1, 'seed', NOW(6), 1.5)")).await?;
        let mut have = 1;
        while have < rows {
            let take = (rows - have).min(have);
            c.query_drop(format!(
                "INSERT INTO {db}.{t} (a, b, c, d) SELECT a + {have}, CONCAT('{t} ', id + {have}), c - INTERVAL id SECOND, d + id FROM {db}.{t} ORDER BY id LIMIT {take}"
            ))
            .await?;
            have += take;
        }
    }
    let mut t = target.conn().await?;
    t.query_drop(format!("CREATE DATABASE {db}")).await?;
    Ok(())
}

/// The application: inserts, updates (key updates too) and deletes on one source table until stopped; it keeps
/// going when the table is gone (the fence) and counts those refused writes.
pub struct AppWriter {
    stop: Arc<AtomicBool>,
    pub ok: Arc<AtomicU64>,
    pub missing: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl AppWriter {
    pub async fn start(server: &Server, db: &str, table: &str, seed: u64) -> Result<AppWriter> {
        let mut conn = server.conn_db(db).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let missing = Arc::new(AtomicU64::new(0));
        let (s, o, m) = (stop.clone(), ok.clone(), missing.clone());
        let t = format!("`{table}`");
        let task = tokio::spawn(async move {
            let mut x: u64 = seed | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            while !s.load(Ordering::Relaxed) {
                let ids: Vec<i64> = match conn.query(format!("SELECT id FROM {t} ORDER BY RAND() LIMIT 2")).await {
                    Ok(ids) => ids,
                    Err(mysql_async::Error::Server(e)) if e.code == 1146 => {
                        m.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if ids.len() < 2 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let (a, b) = (ids[0], ids[1]);
                let sql = match next() % 10 {
                    0..=3 => format!("INSERT INTO {t} (a, b, c, d) SELECT a + 7, CONCAT(b, '+'), c, d * 2 FROM {t} WHERE id = {a}"),
                    4..=6 => format!("UPDATE {t} x JOIN (SELECT * FROM {t} WHERE id = {b}) y SET x.a = y.a, x.b = y.b, x.d = x.d + 1 WHERE x.id = {a}"),
                    7 => format!("UPDATE {t} SET id = id + 100000000 WHERE id = {a}"),
                    _ => format!("DELETE FROM {t} WHERE id = {a}"),
                };
                match conn.query_drop(sql).await {
                    Ok(()) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mysql_async::Error::Server(e)) if e.code == 1146 => {
                        m.fetch_add(1, Ordering::Relaxed);
                    }
                    // Key collisions and the like: the oracle compares whatever the tables end up holding.
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(())
        });
        Ok(AppWriter { stop, ok, missing, task })
    }

    /// Stops; returns (writes that succeeded, writes refused because the table was missing).
    pub async fn stop(self) -> Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await??;
        Ok((self.ok.load(Ordering::Relaxed), self.missing.load(Ordering::Relaxed)))
    }
}

pub fn move_config(source: &Server, target: &Server, db: &str) -> MoveTablesConfig {
    let mut cfg = MoveTablesConfig::new(conn_config(source), conn_config(target), db, db, &["orders", "items"]);
    cfg.run.chunk_size = 100;
    cfg.run.chunk_target = Duration::from_millis(50);
    cfg.run.postpone_cut_over = true;
    cfg.run.retry_for = Duration::from_secs(20);
    cfg.run.execute = true;
    cfg
}

/// A hooks directory whose hooks append their name and drain GTID to `hooks.log`; `before_exit` is the exit code
/// of the before-cut-over hook.
pub fn hooks_dir(dir: &Path, before_exit: i32) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let log = dir.join("hooks.log");
    for (name, code) in [("gh-ost-on-before-cut-over", before_exit), ("gh-ost-on-success", 0)] {
        let p = hooks.join(format!("{name}.sh"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{name} tables=$GH_OST_TABLE_NAME drain=$GH_OST_DRAIN_GTID revenant=$REVENANT_DRAIN_GTID pwd=${{MYSQL_PWD:-none}}\" >> '{}'\nexit {code}\n",
                log.display()
            ),
        )?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(hooks)
}

pub fn hook_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("hooks.log")).unwrap_or_default().lines().map(str::to_string).collect()
}

pub fn scratch(tag: &str, port: u16) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("revenant-move-{tag}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Source `_<t>_del` and target `t` hold the same rows, for both tables; returns the row counts.
pub async fn verify_moved(source: &Server, target: &Server, db: &str) -> Result<Vec<u64>> {
    let mut s = source.conn().await?;
    let mut t = target.conn().await?;
    let mut counts = Vec::new();
    for table in ["orders", "items"] {
        let old = table_checksum(&mut s, db, &format!("_{table}_del"), &COLS).await?;
        let new = table_checksum(&mut t, db, table, &COLS).await?;
        if old != new {
            bail!("{db}.{table}: source _{table}_del {old:?} and target {table} {new:?} differ");
        }
        if old.0 == 0 {
            bail!("{db}.{table} is empty: the check proves nothing");
        }
        counts.push(old.0);
    }
    Ok(counts)
}

