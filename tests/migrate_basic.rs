//! End-to-end migrations with a concurrent writer on every selected flavour; the oracle compares the old table
//! (`_t_del`) with the new one over the shared columns.

mod common;

use common::{each_flavor, exec_all, migrate_with_writer, Server};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_column_under_writes() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, "CREATE DATABASE app;\nCREATE TABLE app.items (id BIGINT AUTO_INCREMENT PRIMARY KEY, a INT, b VARCHAR(64), c DATETIME(6), d DECIMAL(10,2), KEY(a))").await?;
        c.query_drop("INSERT INTO app.items (a, b, c, d) SELECT seq % 97, CONCAT('row ', seq), NOW(6) - INTERVAL seq SECOND, seq / 7 FROM (SELECT @n := @n + 1 AS seq FROM information_schema.COLUMNS a, information_schema.COLUMNS b, (SELECT @n := 0) z LIMIT 20000) s").await?;
        let ops = migrate_with_writer(&server, "app", "items", "ADD COLUMN f INT NOT NULL DEFAULT 7", &["a", "b", "c", "d"], &["id", "a", "b", "c", "d"], &["id", "a", "b", "c", "d"], |_| {}).await?;
        assert!(ops > 10, "the writer barely ran ({ops} ops)");
        Ok(())
    })
    .await;
}
