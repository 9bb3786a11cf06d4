//! `--analyze-ghost-table-before-cutover` (gh-ost's flag) on both flavours: the ghost is analyzed right before
//! the cut-over, which then completes with the tables identical.

mod common;

use std::process::Command as Proc;

use common::{each_flavor, exec_all, table_checksum, Server};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ghost_is_analyzed_before_the_cut_over() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE an;\nCREATE TABLE an.t (id INT AUTO_INCREMENT PRIMARY KEY, a INT, KEY (a))").await?;
        c.query_drop("INSERT INTO an.t (a) VALUES (1), (2), (3), (4), (5), (6), (7), (8)").await?;
        let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
            .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
            .args(["--database", "an", "--table", "t", "--alter", "ADD COLUMN b INT", "--execute", "--analyze-ghost-table-before-cutover"])
            .env_remove("MYSQL_PWD")
            .env("NO_COLOR", "1")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let analyzed = stderr.find("ANALYZE TABLE `an`.`_t_gho`: OK").ok_or_else(|| color_eyre::eyre::eyre!("no ANALYZE logged: {stderr}"))?;
        let cut = stderr.find("phase: cut-over").ok_or_else(|| color_eyre::eyre::eyre!("no cut-over: {stderr}"))?;
        assert!(analyzed < cut, "ANALYZE runs before the cut-over: {stderr}");
        assert_eq!(table_checksum(&mut c, "an", "_t_del", &["id", "a"]).await?, table_checksum(&mut c, "an", "t", &["id", "a"]).await?);
        Ok(())
    })
    .await;
}
