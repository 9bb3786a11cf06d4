//! The strict copy and apply on both flavours: an ALTER that would lose or change rows fails before the cut-over
//! with the reason, the original untouched: a unique key added over duplicates (the values named), a narrowed
//! column, a character set that cannot hold the values, NOT NULL over NULLs, and a value the applier would cut.
//! `--panic-on-warnings=false` copies the changed value instead; `--allow-zero-in-date` lets the ghost's ALTER take
//! a zero-date DEFAULT.

mod common;

use std::process::{Command as Proc, Output};
use std::time::Duration;

use color_eyre::eyre::Result;
use common::{each_flavor, exec_all, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::Phase;

fn migrate_cli(server: &Server, db: &str, alter: &str, extra: &[&str]) -> Result<Output> {
    let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
        .args(["--database", db, "--table", "t", "--alter", alter, "--chunk-size", "50", "--execute"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("NO_COLOR", "1")
        .output()?;
    Ok(out)
}

/// `db.t (id INT PRIMARY KEY, name VARCHAR(20), b VARCHAR(20) utf8mb4, c INT NULL)` with 300 rows; row 150 gets
/// the special values `special` (column = value SQL).
async fn seed(server: &Server, db: &str, special: &str) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(
        &mut c,
        &format!(
            "CREATE DATABASE {db};\n\
             CREATE TABLE {db}.t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, b VARCHAR(20) CHARACTER SET utf8mb4, c INT NULL)"
        ),
    )
    .await?;
    c.query_drop(format!(
        "INSERT INTO {db}.t SELECT seq, CONCAT('n', seq), 'abc', seq FROM (SELECT @n := @n + 1 AS seq FROM \
         information_schema.COLUMNS a, information_schema.COLUMNS b, (SELECT @n := 0) z LIMIT 300) s"
    ))
    .await?;
    c.query_drop("SET NAMES utf8mb4").await?;
    c.query_drop(format!("UPDATE {db}.t SET {special} WHERE id = 150")).await?;
    Ok(())
}

const COLS: &[&str] = &["id", "name", "b", "c"];

/// Runs the ALTER expecting a failure whose text contains every one of `needles`; the original is as it was.
async fn refused(server: &Server, db: &str, special: &str, alter: &str, needles: &[&str]) -> Result<()> {
    seed(server, db, special).await?;
    let mut c = server.conn().await?;
    let before = table_checksum(&mut c, db, "t", COLS).await?;
    let out = migrate_cli(server, db, alter, &[])?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{db}: `{alter}` must fail:\n{text}");
    for n in needles {
        assert!(text.contains(n), "{db}: `{alter}`: the error names {n:?}:\n{text}");
    }
    assert_eq!(table_checksum(&mut c, db, "t", COLS).await?, before, "{db}: the original is untouched");
    let create: (String, String) = c.query_first(format!("SHOW CREATE TABLE {db}.t")).await?.unwrap_or_default();
    assert!(!create.1.contains("uk_name") && create.1.contains("varchar(20)"), "{db}: not swapped: {}", create.1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alters_that_would_lose_or_change_rows_fail_with_the_reason() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        refused(&server, "s_uk", "name = 'n7'", "ADD UNIQUE KEY uk_name (name)", &["uk_name", "n7", "duplicates"]).await?;
        refused(&server, "s_narrow", "b = 'abcdefgh'", "MODIFY b VARCHAR(5)", &["1265", "(150)"]).await?;
        refused(&server, "s_charset", "b = 'xжy'", "MODIFY b VARCHAR(20) CHARACTER SET latin1", &["1366", "(150)"]).await?;
        refused(&server, "s_null", "c = NULL", "MODIFY c INT NOT NULL", &["1048", "(150)"]).await?;

        // Asked for: the value is copied as the new column holds it.
        seed(&server, "s_allow", "b = 'abcdefgh'").await?;
        let out = migrate_cli(&server, "s_allow", "MODIFY b VARCHAR(5)", &["--panic-on-warnings=false"])?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut c = server.conn().await?;
        let b: Option<String> = c.query_first("SELECT b FROM s_allow.t WHERE id = 150").await?;
        assert_eq!(b.as_deref(), Some("abcde"), "--panic-on-warnings=false copies the cut value");
        let old = table_checksum(&mut c, "s_allow", "_t_del", &["id", "name", "c"]).await?;
        assert_eq!(old, table_checksum(&mut c, "s_allow", "t", &["id", "name", "c"]).await?);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applier_fails_on_a_value_the_new_column_cannot_hold() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "s_apply", "c = 1").await?;
        let mut cfg = test_config(&server, "s_apply", "t", "MODIFY b VARCHAR(5)");
        cfg.run.retry_for = Duration::from_secs(2);
        let (handle, join) = migrate::start(cfg);
        wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await?;
        let mut c = server.conn().await?;
        c.query_drop("INSERT INTO s_apply.t VALUES (1000, 'late', 'far too long', 1)").await?;
        let outcome = tokio::time::timeout(Duration::from_secs(60), join).await??;
        let err = format!("{:#}", outcome.expect_err("the applier must stop the run"));
        assert!(err.contains("Data too long") || err.contains("1406"), "{err}");
        let tables: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='s_apply' AND TABLE_NAME='t'").await?;
        assert_eq!(tables, vec!["t".to_string()], "the original serves");
        let b: Option<String> = c.query_first("SELECT b FROM s_apply.t WHERE id = 1000").await?;
        assert_eq!(b.as_deref(), Some("far too long"));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_zero_in_date_lets_the_ghost_take_a_zero_date_default() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let alter = "ADD COLUMN d DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'";
        let mut c = server.conn().await?;
        let mode: Option<String> = c.query_first("SELECT @@GLOBAL.sql_mode").await?;
        let zero_refused = mode.unwrap_or_default().contains("NO_ZERO_DATE");
        seed(&server, "z1", "c = 1").await?;
        let out = migrate_cli(&server, "z1", alter, &[])?;
        let text = String::from_utf8_lossy(&out.stderr);
        if zero_refused {
            assert!(!out.status.success() && text.contains("the server rejects the ALTER"), "{text}");
        }
        seed(&server, "z2", "c = 1").await?;
        let out = migrate_cli(&server, "z2", alter, &["--allow-zero-in-date"])?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let zeros: Option<u64> = c.query_first("SELECT COUNT(*) FROM z2.t WHERE CAST(d AS CHAR) = '0000-00-00 00:00:00'").await?;
        assert_eq!(zeros, Some(300), "every row has the zero-date default");
        Ok(())
    })
    .await;
}
