//! Replica mode, gh-ost's default topology, through the command line on both flavours: `--host` names a read-only
//! replica; revenant streams the replica's binary log and changes the table on its primary while a writer runs
//! there. The oracle holds on the primary (the new table holds the original's rows over the shared columns) and on
//! the replica (the same tables arrive by replication); nothing was written on the replica itself (its executed
//! GTIDs are all the primary's). `--assume-master-host` names the primary explicitly, and a replica whose
//! primary is itself a replica is refused, naming what to do. `--replica-server-id` sets the stream's server id,
//! and one the topology already uses is refused.

mod common;

use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, ensure, Result};
use common::{each_flavor, exec_all, table_checksum, Writer};
use mysql_async::prelude::Queryable;
use revenant::sandbox::{primary_with_replicas, replicate_from, wait_caught_up, Flavor, Server};

const COLS: &[&str] = &["id", "a", "b"];

fn revenant(replica: &Server, extra: &[String]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--headless", "--host=127.0.0.1", &format!("--port={}", replica.port), "--user=root"])
        .args(["--database=shop", "--table=orders", "--alter=ADD COLUMN c INT NOT NULL DEFAULT 5", "--chunk-size=200"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("NO_COLOR", "1");
    p
}

/// The phase in the migration's checkpoint row on the primary ('' while there is none).
async fn checkpoint_phase(c: &mut mysql_async::Conn) -> Result<String> {
    let r: Result<Option<String>, _> = c.query_first("SELECT phase FROM shop._orders_ghk WHERE id = 'summary'").await;
    Ok(r.ok().flatten().unwrap_or_default())
}

/// The replica's executed GTIDs that the replica itself wrote (none when nothing ran on it directly).
async fn own_gtids(replica: &Server) -> Result<Vec<String>> {
    let mut c = replica.conn().await?;
    Ok(match replica.flavor {
        Flavor::MariaDb => {
            let pos: String = c.query_first("SELECT @@gtid_binlog_pos").await?.unwrap_or_default();
            let id: u32 = c.query_first("SELECT @@server_id").await?.unwrap_or(0);
            pos.split(',').filter(|g| g.split('-').nth(1) == Some(&id.to_string())).map(str::to_string).collect()
        }
        Flavor::MySql => {
            let set: String = c.query_first("SELECT REPLACE(@@gtid_executed, '\\n', '')").await?.unwrap_or_default();
            let uuid: String = c.query_first("SELECT @@server_uuid").await?.unwrap_or_default();
            set.split(',').filter(|g| g.trim().starts_with(&uuid)).map(str::to_string).collect()
        }
    })
}

async fn migrate_through_the_replica(primary: &Server, replica: &Server, extra: &[String]) -> Result<()> {
    let mut p = primary.conn().await?;
    let flag = std::env::temp_dir().join(format!("rvn-replica-mode-{}-{}", std::process::id(), primary.port));
    std::fs::write(&flag, b"")?;
    let writer = Writer::start(primary, "shop", "orders", &["a", "b"], true).await?;
    let mut args = vec!["--execute".to_string(), format!("--postpone-cut-over-flag-file={}", flag.display())];
    args.extend(extra.iter().cloned());
    args.push(format!("--serve-socket-file={}.sock", flag.display()));
    let mut child = revenant(replica, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_phase(&mut p).await? != "ready" {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!("the migration did not get ready: phase {:?}: {}", checkpoint_phase(&mut p).await?, String::from_utf8_lossy(&out.stderr));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let writes = writer.stop().await?;
    std::fs::remove_file(&flag)?;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success() && stdout.contains("Done: shop.orders migrated"), "{stdout}{stderr}");
    ensure!(stderr.contains(&format!("replica mode: streaming the binary log of 127.0.0.1:{}", replica.port)), "{stderr}");
    ensure!(writes > 20, "the writer wrote too little ({writes})");
    ensure!(table_checksum(&mut p, "shop", "orders", COLS).await? == table_checksum(&mut p, "shop", "_orders_del", COLS).await?, "primary: new table differs");
    let c: Option<u64> = p.query_first("SELECT MIN(c) FROM shop.orders").await?;
    ensure!(c == Some(5), "primary: the new column: {c:?}");
    wait_caught_up(replica, primary, Duration::from_secs(60)).await?;
    let mut r = replica.conn().await?;
    ensure!(table_checksum(&mut r, "shop", "orders", COLS).await? == table_checksum(&mut p, "shop", "orders", COLS).await?, "replica: the new table did not arrive");
    ensure!(own_gtids(replica).await?.is_empty(), "something was written on the replica itself: {:?}", own_gtids(replica).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_a_replica_the_binlog_is_read_there_and_the_table_changed_on_its_primary() {
    each_flavor(|flavor| async move {
        let (primary, replicas) = primary_with_replicas(flavor, 1).await?;
        let replica = &replicas[0];
        let mut p = primary.conn().await?;
        exec_all(&mut p, "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(40))").await?;
        p.query_drop(
            "INSERT INTO shop.orders (a, b) SELECT seq, CONCAT('o', seq) FROM (SELECT @n := @n + 1 AS seq FROM \
             information_schema.COLUMNS x, information_schema.COLUMNS y, (SELECT @n := 0) z LIMIT 3000) s",
        )
        .await?;
        wait_caught_up(replica, &primary, Duration::from_secs(60)).await?;
        replica.conn().await?.query_drop("SET GLOBAL read_only = 1").await?;
        // gh-ost's --replica-server-id: the stream presents the id given.
        migrate_through_the_replica(&primary, replica, &["--replica-server-id=424242".to_string()]).await?;

        // --assume-master-host names the primary; a second migration of the new table.
        p.query_drop("DROP TABLE shop._orders_del").await?;
        p.query_drop("ALTER TABLE shop.orders DROP COLUMN c").await?;
        wait_caught_up(replica, &primary, Duration::from_secs(60)).await?;
        migrate_through_the_replica(&primary, replica, &[format!("--assume-master-host=127.0.0.1:{}", primary.port)]).await?;

        // --replica-server-id of a server in the topology: refused before anything changes, naming it.
        for (id, who) in [(primary.server_id, format!("127.0.0.1:{} itself", primary.port)), (replica.server_id, "its replica".to_string())] {
            let out = revenant(&primary, &[format!("--replica-server-id={id}")]).output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(out.status.code() == Some(2) && stderr.contains(&format!("--replica-server-id {id} is the server id of")) && stderr.contains(&who), "server id {id}: {stderr}");
        }
        // A chain (replica of a replica): refused before anything changes, naming the flag.
        let second = Server::start(flavor).await?;
        replicate_from(&second, replica).await?;
        let out = revenant(&second, &[]).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(2) && stderr.contains("--assume-master-host"), "a chain: {stderr}");
        Ok(())
    })
    .await;
}
