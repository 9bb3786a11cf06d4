//! gh-ost's `--test-on-replica` and `--migrate-on-replica` against the harness's GTID primary/replica pairs of both
//! flavours, under a writer on the primary: the whole migration runs on the (read-only) replica and nothing is
//! written on the primary. A test stops replication before its cut-over and swaps straight back: the original
//! serves again, the migrated copy `_t_gho` holds the same rows, replication stays stopped. A migration on the
//! replica keeps the new table there and replication goes on into it. A test killed right after its swap is
//! swapped back by `--resume`. Wrong combinations are refused as gh-ost
//! refuses them.

mod common;

use std::process::{Command as Proc, Output, Stdio};
use std::time::Duration;

use color_eyre::eyre::{ensure, Result};
use common::{each_flavor, seed_app_table, table_checksum, Server, Writer};
use mysql_async::prelude::Queryable;

fn revenant(server: &Server, extra: &[&str]) -> Result<Output> {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", "app"])
        .args(["--table", "t", "--alter", "ADD COLUMN f INT", "--headless", "--default-retries", "3", "--chunk-size", "500"])
        .arg(format!("--serve-socket-file=/tmp/revenant-onreplica-{}.sock", server.port))
        .args(extra)
        .env_remove("REVENANT_FAILPOINTS")
        .stdin(Stdio::null());
    Ok(p.output()?)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn tables(c: &mut mysql_async::Conn) -> Result<Vec<String>> {
    let mut names: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'").await?;
    names.sort();
    Ok(names)
}

async fn columns(c: &mut mysql_async::Conn, table: &str) -> Result<Vec<String>> {
    Ok(c.exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", (table,)).await?)
}

/// Whether the replica's I/O and SQL threads run.
async fn replicating(c: &mut mysql_async::Conn, mariadb: bool) -> Result<(bool, bool)> {
    let row: Option<mysql_async::Row> = c.query_first(if mariadb { "SHOW SLAVE STATUS" } else { "SHOW REPLICA STATUS" }).await?;
    let yes = |names: [&str; 2]| {
        row.as_ref().and_then(|r| names.iter().find_map(|n| r.get_opt::<String, _>(*n).and_then(|v| v.ok()))).is_some_and(|v| v == "Yes")
    };
    Ok((yes(["Replica_IO_Running", "Slave_IO_Running"]), yes(["Replica_SQL_Running", "Slave_SQL_Running"])))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_and_migrate_on_a_replica_run_there_and_leave_the_primary_alone() {
    each_flavor(|flavor| async move {
        let mariadb = flavor == common::Flavor::MariaDb;
        let (primary, replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = &replicas[0];
        seed_app_table(&primary, "t", 5000).await?;
        revenant::sandbox::wait_caught_up(replica, &primary, Duration::from_secs(60)).await?;
        let (mut p, mut r) = (primary.conn().await?, replica.conn().await?);
        r.query_drop("SET GLOBAL read_only = 1").await?;
        let cols = ["id", "a", "b"];

        // Refused as gh-ost refuses them, before anything changes.
        for (extra, want) in [
            (vec!["--test-on-replica", "--allow-on-master"], "mutually exclusive"),
            (vec!["--test-on-replica", "--migrate-on-replica"], "mutually exclusive"),
            (vec!["--test-on-replica-skip-replica-stop"], "requires --test-on-replica"),
        ] {
            let out = revenant(replica, &extra)?;
            ensure!(!out.status.success() && text(&out).contains(want), "{extra:?}: {}", text(&out));
        }
        let out = revenant(&primary, &["--test-on-replica", "--execute"])?;
        ensure!(!out.status.success() && text(&out).contains("replicates from nobody"), "on the primary: {}", text(&out));
        ensure!(tables(&mut p).await? == ["t"], "a refused run changed the primary");

        // --test-on-replica under a writer on the primary.
        let writer = Writer::start(&primary, "app", "t", &["a", "b"], true).await?;
        let out = revenant(replica, &["--test-on-replica", "--execute"])?;
        let ops = writer.stop().await?;
        ensure!(out.status.success() && text(&out).contains("Tested on the replica"), "--test-on-replica: {}", text(&out));
        ensure!(replicating(&mut r, mariadb).await? == (false, false), "replication should stay stopped after the test");
        ensure!(tables(&mut r).await? == ["_t_gho", "t"], "the replica's tables after the test: {:?}", tables(&mut r).await?);
        ensure!(columns(&mut r, "t").await? == cols && columns(&mut r, "_t_gho").await? == ["id", "a", "b", "f"], "the original serves under its name, the copy is migrated");
        let (orig, copy) = (table_checksum(&mut r, "app", "t", &cols).await?, table_checksum(&mut r, "app", "_t_gho", &cols).await?);
        ensure!(orig == copy && orig.0 >= 5000, "the replica's original {orig:?} and migrated copy {copy:?} differ ({ops} writer ops)");
        ensure!(tables(&mut p).await? == ["t"] && columns(&mut p, "t").await? == cols, "the test wrote on the primary: {:?}", tables(&mut p).await?);

        // A test killed right after its swap (the migrated table under the original's name): --resume swaps back.
        r.query_drop("START REPLICA").await?;
        revenant::sandbox::wait_caught_up(replica, &primary, Duration::from_secs(60)).await?;
        // As a DBA cleans up on a replica: unlogged (a logged DROP would take a replicated domain's next number).
        r.query_drop("SET SESSION sql_log_bin = 0").await?;
        r.query_drop("DROP TABLE app._t_gho").await?;
        r.query_drop("SET SESSION sql_log_bin = 1").await?;
        let mut killed = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        killed
            .args(["migrate", "--host", "127.0.0.1", "--port", &replica.port.to_string(), "--user", "root", "--database", "app"])
            .args(["--table", "t", "--alter", "ADD COLUMN f INT", "--headless", "--test-on-replica", "--execute"])
            .arg(format!("--serve-socket-file=/tmp/revenant-onreplica-{}.sock", replica.port))
            .env("REVENANT_FAILPOINTS", "after-swap=exit")
            .stdin(Stdio::null());
        let out = killed.output()?;
        ensure!(!out.status.success() && columns(&mut r, "t").await? == ["id", "a", "b", "f"], "the fail point after the swap: {}", text(&out));
        let out = revenant(replica, &["--test-on-replica", "--execute", "--resume"])?;
        ensure!(out.status.success() && text(&out).contains("Tested on the replica"), "the resumed test: {}", text(&out));
        ensure!(tables(&mut r).await? == ["_t_gho", "t"] && columns(&mut r, "t").await? == cols, "after the resumed test: {:?}", tables(&mut r).await?);
        let (orig, copy) = (table_checksum(&mut r, "app", "t", &cols).await?, table_checksum(&mut r, "app", "_t_gho", &cols).await?);
        ensure!(orig == copy, "after the resumed test: original {orig:?}, migrated copy {copy:?}");

        // --migrate-on-replica, replication running again, under a writer: the replica keeps the new table.
        r.query_drop("START REPLICA").await?;
        revenant::sandbox::wait_caught_up(replica, &primary, Duration::from_secs(60)).await?;
        let writer = Writer::start(&primary, "app", "t", &["a", "b"], true).await?;
        let out = revenant(replica, &["--migrate-on-replica", "--initially-drop-ghost-table", "--execute"])?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ops = writer.stop().await?;
        ensure!(out.status.success() && text(&out).contains("Done: app.t migrated"), "--migrate-on-replica: {}", text(&out));
        revenant::sandbox::wait_caught_up(replica, &primary, Duration::from_secs(60)).await?;
        ensure!(columns(&mut r, "t").await? == ["id", "a", "b", "f"], "the replica's table is the migrated one");
        ensure!(tables(&mut r).await? == ["_t_del", "t"], "the replica's tables: {:?}", tables(&mut r).await?);
        ensure!(tables(&mut p).await? == ["t"] && columns(&mut p, "t").await? == cols, "the migration wrote on the primary");
        let (on_primary, on_replica) = (table_checksum(&mut p, "app", "t", &cols).await?, table_checksum(&mut r, "app", "t", &cols).await?);
        ensure!(on_primary == on_replica, "replication into the new table: primary {on_primary:?}, replica {on_replica:?} ({ops} writer ops)");
        Ok(())
    })
    .await;
}
