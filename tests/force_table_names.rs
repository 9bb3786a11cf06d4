//! gh-ost's `--force-table-names` on both flavours: a table whose name leaves no room for the helper tables'
//! suffixes is refused before anything changes, naming the flag; with the flag, the helper tables are built on the
//! given name and the migration completes with the tables identical.

mod common;

use std::process::Command as Proc;

use common::{each_flavor, exec_all, table_checksum, Server};
use mysql_async::prelude::Queryable;

const LONG: &str = "orders_with_a_very_long_name_that_fills_the_sixty_four_limit_x";

fn migrate(server: &Server, extra: &[&str]) -> std::io::Result<std::process::Output> {
    Proc::new(env!("CARGO_BIN_EXE_revenant"))
        .args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"])
        .args(["--database", "ft", "--table", LONG, "--alter", "ADD COLUMN b INT", "--execute"])
        .args(extra)
        .env_remove("MYSQL_PWD")
        .env("NO_COLOR", "1")
        .output()
}

async fn tables(c: &mut mysql_async::Conn) -> mysql_async::Result<Vec<String>> {
    let mut names: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='ft'").await?;
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_tables_take_the_forced_name() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        exec_all(&mut c, &format!("CREATE DATABASE ft;\nCREATE TABLE ft.{LONG} (id INT AUTO_INCREMENT PRIMARY KEY, a INT)")).await?;
        c.query_drop(format!("INSERT INTO ft.{LONG} (a) VALUES (1), (2), (3)")).await?;
        let out = migrate(&server, &[])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("longer than the server's 64 characters") && stderr.contains("--force-table-names"), "{stderr}");
        assert_eq!(tables(&mut c).await?, vec![LONG.to_string()], "nothing was created");
        let bad = migrate(&server, &["--force-table-names=x;drop"])?;
        assert_eq!(bad.status.code(), Some(2), "a name that is not an identifier is refused");
        let out = migrate(&server, &["--force-table-names=ord"])?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(tables(&mut c).await?, vec!["_ord_del".to_string(), LONG.to_string()], "the old table takes the forced name");
        let cols = ["id", "a"];
        assert_eq!(table_checksum(&mut c, "ft", "_ord_del", &cols).await?, table_checksum(&mut c, "ft", LONG, &cols).await?);
        Ok(())
    })
    .await;
}
