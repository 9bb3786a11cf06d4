//! The original's definition is checked again right before the rename (issue 13, item 7): a DDL the binary log
//! does not show (run with `sql_log_bin=0`) while the cut-over waits must not be swapped away. Both flavours and
//! both cut-over modes: the run fails before any rename, the original serves with its new column and that
//! column's values, and nothing is left renamed.

mod common;

use std::time::Duration;

use color_eyre::eyre::{ensure, eyre};
use common::{each_flavor, seed_app_table, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::config::CutOverMode;
use revenant::engine::pipeline::migrate;
use revenant::engine::{Command, Phase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_the_binlog_did_not_show_stops_the_cut_over_with_the_original_serving() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        for (table, mode) in [("atomic", CutOverMode::Atomic), ("twostep", CutOverMode::TwoStep)] {
            seed_app_table(&server, table, 500).await?;
            let mut cfg = test_config(&server, "app", table, "ADD COLUMN c INT");
            cfg.cut_over = mode;
            let (handle, join) = migrate::start(cfg);
            wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(90)).await?;
            // A DBA's change behind the binary log's back while the cut-over waits.
            let mut c = server.conn().await?;
            c.query_drop("SET SESSION sql_log_bin = 0").await?;
            c.query_drop(format!("ALTER TABLE app.{table} ADD COLUMN z INT NOT NULL DEFAULT 7")).await?;
            c.query_drop(format!("UPDATE app.{table} SET z = id WHERE id <= 10")).await?;
            c.query_drop("SET SESSION sql_log_bin = 1").await?;
            ensure!(handle.send(Command::CutOver).await.ok, "{flavor} {table}: the cut-over approval was refused");
            let result = tokio::time::timeout(Duration::from_secs(120), join).await.map_err(|_| eyre!("{flavor} {table}: the run hung"))??;
            let e = match result {
                Ok(o) => return Err(eyre!("{flavor} {table}: the run swapped a changed table away: {o:?}")),
                Err(e) => format!("{e:#}"),
            };
            ensure!(e.contains("changed during the migration") && e.contains("nothing was swapped"), "{flavor} {table}: {e}");
            let z: Option<u64> = c.query_first(format!("SELECT SUM(z) FROM app.{table}")).await?;
            ensure!(z == Some(55 + 490 * 7), "{flavor} {table}: the original serves with the new column's values: {z:?}");
            let old: Option<String> = c
                .exec_first("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = ?", (format!("_{table}_del"),))
                .await?;
            ensure!(old.is_none(), "{flavor} {table}: a renamed or sentry table was left: {old:?}");
        }
        Ok(())
    })
    .await;
}
