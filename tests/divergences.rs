//! Divergences found from outside (issue 12), each a regression test on both flavours: an UPDATE that changes an
//! ENUM column of a composite PRIMARY KEY (with a _bin collation) applied from the binlog; a DATETIME key column
//! changed to TIMESTAMP (refused: the conversion depends on the time zone); a PRIMARY KEY over a STORED generated
//! column (MySQL; MariaDB allows no generated column in a primary key, which the test checks).

mod common;

use std::process::Command as Proc;
use std::time::Duration;

use color_eyre::eyre::Result;
use common::{each_flavor, exec_all, finish_after_ready, table_checksum, test_config, wait_phase, Server};
use mysql_async::prelude::Queryable;
use revenant::engine::pipeline::migrate;
use revenant::engine::Phase;

async fn enum_key_update(server: &Server, db: &str, alter: &str) -> Result<()> {
    let mut c = server.conn().await?;
    exec_all(
        &mut c,
        &format!(
            "CREATE DATABASE {db};\n\
             CREATE TABLE {db}.t (id INT NOT NULL, e ENUM('a','b','c') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, v INT, PRIMARY KEY (id, e))"
        ),
    )
    .await?;
    c.query_drop(format!(
        "INSERT INTO {db}.t SELECT seq, ELT(1 + seq % 2, 'a', 'b'), seq FROM (SELECT @n := @n + 1 AS seq FROM \
         information_schema.COLUMNS a, (SELECT @n := 0) z LIMIT 200) s"
    ))
    .await?;
    let (handle, join) = migrate::start(test_config(server, db, "t", alter));
    let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await;
    // Key changes from the binlog: every 'a' becomes 'c', and some 'b' become 'a'.
    c.query_drop(format!("UPDATE {db}.t SET e = 'c' WHERE e = 'a'")).await?;
    c.query_drop(format!("UPDATE {db}.t SET e = 'a', v = v + 1 WHERE e = 'b' AND id < 50")).await?;
    finish_after_ready(&handle, join, ready).await?;
    let old = table_checksum(&mut c, db, "_t_del", &["id", "e", "v"]).await?;
    let new = table_checksum(&mut c, db, "t", &["id", "e", "v"]).await?;
    assert_eq!(old, new, "{db} ({alter}): the ENUM key updates are applied");
    assert_eq!(old.0, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enum_key_column_updated_from_the_binlog_keeps_the_tables_identical() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        // Same ENUM in the ghost (written by index), and an ENUM with a label added (written by label).
        enum_key_update(&server, "d_enum1", "ADD COLUMN f INT").await?;
        enum_key_update(&server, "d_enum2", "MODIFY e ENUM('a','b','c','d') CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL").await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datetime_key_column_changed_to_timestamp_is_refused_before_anything_changes() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(
            &mut c,
            "CREATE DATABASE d_ts;\n\
             CREATE TABLE d_ts.t (id INT NOT NULL, t DATETIME NOT NULL, v INT, PRIMARY KEY (id, t));\n\
             INSERT INTO d_ts.t VALUES (1, '2024-03-31 02:30:00', 1), (2, '2024-10-27 02:30:00', 2)",
        )
        .await?;
        let out = Proc::new(env!("CARGO_BIN_EXE_revenant"))
            .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
            .args(["--database", "d_ts", "--table", "t", "--alter", "CHANGE t t TIMESTAMP NOT NULL", "--execute"])
            .env_remove("MYSQL_PWD")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("key column `t` from DATETIME to TIMESTAMP") && stderr.contains("time"), "{stderr}");
        let tables: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='d_ts'").await?;
        assert_eq!(tables, vec!["t".to_string()], "nothing was created");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_key_over_a_stored_generated_column_is_shared() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        c.query_drop("CREATE DATABASE d_gen").await?;
        let create = "CREATE TABLE d_gen.t (id INT NOT NULL, j JSON NOT NULL, \
                      idb INT AS (CAST(JSON_UNQUOTE(JSON_EXTRACT(j, '$.b')) AS SIGNED)) STORED NOT NULL, v INT, PRIMARY KEY (id, idb))";
        if let Err(e) = c.query_drop(create).await {
            // MariaDB: "Primary key cannot be defined upon a generated column".
            assert!(server.flavor.to_string().contains("mariadb"), "{e}");
            return Ok(());
        }
        c.query_drop(
            "INSERT INTO d_gen.t (id, j, v) SELECT seq, JSON_OBJECT('b', CAST(seq % 7 AS SIGNED)), CAST(seq AS SIGNED) FROM (SELECT @n := @n + 1 AS seq FROM \
             information_schema.COLUMNS a, (SELECT @n := 0) z LIMIT 300) s",
        )
        .await?;
        let (handle, join) = migrate::start(test_config(&server, "d_gen", "t", "ADD COLUMN f INT"));
        let ready = wait_phase(&handle, Phase::ReadyToCutOver, Duration::from_secs(60)).await;
        // Changes of the generated key from the binlog (through j), deletes and inserts.
        c.query_drop("UPDATE d_gen.t SET j = JSON_OBJECT('b', 100 + id) WHERE id <= 40").await?;
        c.query_drop("DELETE FROM d_gen.t WHERE id BETWEEN 41 AND 60").await?;
        c.query_drop("INSERT INTO d_gen.t (id, j, v) VALUES (1000, JSON_OBJECT('b', 3), 1)").await?;
        finish_after_ready(&handle, join, ready).await?;
        let old = table_checksum(&mut c, "d_gen", "_t_del", &["id", "j", "idb", "v"]).await?;
        let new = table_checksum(&mut c, "d_gen", "t", &["id", "j", "idb", "v"]).await?;
        assert_eq!(old, new, "the tables are identical over the shared columns");
        assert_eq!(old.0, 281);
        Ok(())
    })
    .await;
}
