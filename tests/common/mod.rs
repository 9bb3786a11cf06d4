//! Shared test support: run a test body on every selected flavour (REVENANT_TEST_FLAVORS), naming the flavour on
//! failure, plus small SQL helpers. Servers come from `revenant::sandbox` (real servers, never mocks).
#![allow(dead_code)]

use std::future::Future;

use color_eyre::eyre::{Result, WrapErr};
use mysql_async::prelude::Queryable;
pub use revenant::sandbox::{Flavor, Server};

/// Runs `body` once per selected flavour; a failure names the flavour.
pub async fn each_flavor<F, Fut>(body: F)
where
    F: Fn(Flavor) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let _ = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_env("REVENANT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
    ).with_test_writer().try_init();
    let flavors = revenant::sandbox::selected_flavors().expect("REVENANT_TEST_FLAVORS");
    assert!(!flavors.is_empty(), "REVENANT_TEST_FLAVORS selects no flavour");
    for flavor in flavors {
        if let Err(e) = body(flavor).await {
            panic!("[{flavor}] {e:?}");
        }
    }
}

/// Runs statements separated by `;` lines (no DELIMITER support) on a connection.
pub async fn exec_all(conn: &mut mysql_async::Conn, sql: &str) -> Result<()> {
    for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        conn.query_drop(stmt).await.wrap_err_with(|| format!("running: {stmt}"))?;
    }
    Ok(())
}

/// (row count, order-independent checksum) of `SELECT cols FROM db.table`, computed on the server with CRC32 over a
/// per-row text form (MySQL 9.7 has no MD5).
pub async fn table_checksum(conn: &mut mysql_async::Conn, db: &str, table: &str, cols: &[&str]) -> Result<(u64, String)> {
    let list = cols.iter().map(|c| format!("IFNULL(HEX(`{c}`),'\\N')")).collect::<Vec<_>>().join(", '|', ");
    let q = format!(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT({list}))),0), COALESCE(BIT_XOR(CRC32(CONCAT('x',{list}))),0) FROM `{db}`.`{table}`"
    );
    let row: Option<(u64, String, String)> = conn.query_first(q).await.wrap_err("checksum query")?;
    let (n, a, b) = row.unwrap_or_default();
    Ok((n, format!("{a}/{b}")))
}
