//! gh-ost's `--discard-foreign-keys` on both flavours, through the command line: a table with a foreign key to
//! another table is refused without the flag and migrated with it (the new table has no foreign key, the rows are
//! identical, the old table keeps its key); a table other tables reference is refused even with the flag.

mod common;

use std::process::{Command as Proc, Output};

use color_eyre::eyre::{ensure, Result};
use common::{each_flavor, exec_all, table_checksum, Server};
use mysql_async::prelude::Queryable;

fn migrate(server: &Server, table: &str, extra: &[&str]) -> std::io::Result<Output> {
    Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
        .args(["--database", "fk", "--table", table, "--alter", "ADD COLUMN note VARCHAR(20)", "--execute"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("NO_COLOR", "1")
        .output()
}

async fn create_statement(c: &mut mysql_async::Conn, table: &str) -> Result<String> {
    let row: Option<(String, String)> = c.query_first(format!("SHOW CREATE TABLE fk.{table}")).await?;
    Ok(row.map(|r| r.1).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_foreign_keys_migrates_the_child_and_still_refuses_the_parent() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(
            &mut c,
            "CREATE DATABASE fk;\n\
             CREATE TABLE fk.parent (id INT NOT NULL PRIMARY KEY, a INT) ENGINE=InnoDB;\n\
             CREATE TABLE fk.child (id INT AUTO_INCREMENT PRIMARY KEY, pid INT, b VARCHAR(10), \
               CONSTRAINT fk_child_parent FOREIGN KEY (pid) REFERENCES fk.parent (id)) ENGINE=InnoDB;\n\
             INSERT INTO fk.parent VALUES (1, 1), (2, 2), (3, 3);\n\
             INSERT INTO fk.child (pid, b) VALUES (1, 'a'), (2, 'b'), (NULL, 'c'), (3, 'd'), (1, 'e')",
        )
        .await?;
        let before = table_checksum(&mut c, "fk", "child", &["id", "pid", "b"]).await?;

        let refused = migrate(&server, "child", &[])?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        ensure!(refused.status.code() == Some(2), "{flavor}: without the flag the child is refused: {stderr}");
        ensure!(stderr.contains("has foreign key fk_child_parent") && stderr.contains("--discard-foreign-keys"), "{flavor}: {stderr}");
        ensure!(create_statement(&mut c, "child").await?.contains("FOREIGN KEY"), "{flavor}: the refusal changed the table");

        let out = migrate(&server, "child", &["--discard-foreign-keys"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "{flavor}: --discard-foreign-keys migrates the child: {stderr}");
        ensure!(stderr.contains("created without the foreign keys fk_child_parent"), "{flavor}: the run says what it discards: {stderr}");
        let new = create_statement(&mut c, "child").await?;
        ensure!(new.contains("`note`") && !new.contains("FOREIGN KEY"), "{flavor}: the new table has the column and no foreign key: {new}");
        ensure!(create_statement(&mut c, "_child_del").await?.contains("FOREIGN KEY"), "{flavor}: the old table keeps its key");
        ensure!(table_checksum(&mut c, "fk", "child", &["id", "pid", "b"]).await? == before, "{flavor}: the rows are identical");

        // The old child still references the parent: the parent stays refused, flag or not.
        let parent = migrate(&server, "parent", &["--discard-foreign-keys"])?;
        let stderr = String::from_utf8_lossy(&parent.stderr);
        ensure!(parent.status.code() == Some(2) && stderr.contains("Parent-side foreign keys are not supported"), "{flavor}: {stderr}");
        let mut tables: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'fk'").await?;
        tables.sort();
        ensure!(tables == ["_child_del", "child", "parent"], "{flavor}: the refusal left nothing behind: {tables:?}");
        Ok(())
    })
    .await;
}
