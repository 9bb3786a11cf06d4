//! What revenant promises about safety (docs/security.md), checked on real servers: no second statement ever
//! runs (not from `--alter`, not on any connection revenant opens), `--throttle-query` is a single read-only
//! SELECT, the control socket is the owner's alone, flag and state files are never someone else's, and output
//! carries no escape codes unless it goes to a terminal.

mod common;

use std::process::Command as Proc;

use common::{conn_config, each_flavor, exec_all, Server};
use mysql_async::prelude::Queryable;

fn revenant(server: &Server, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["migrate", "--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--headless"]);
    p.args(extra).env_remove("MYSQL_PWD");
    p
}

async fn tables(c: &mut mysql_async::Conn, db: &str) -> color_eyre::Result<Vec<String>> {
    Ok(c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=? ORDER BY 1", (db,)).await?)
}

async fn shop(server: &Server) -> color_eyre::Result<mysql_async::Conn> {
    let mut c = server.conn().await?;
    exec_all(
        &mut c,
        "CREATE DATABASE shop;\nCREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20));\n\
         CREATE TABLE shop.victim (id INT PRIMARY KEY)",
    )
    .await?;
    c.query_drop("INSERT INTO shop.orders (v) VALUES ('a'), ('b'), ('c')").await?;
    Ok(c)
}

fn output_text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Issue 14: `--alter "ADD COLUMN c INT; DROP TABLE shop.victim"` without `--execute` dropped shop.victim and
/// then said "dry run: nothing was changed". Now it is refused before connecting, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_statement_in_the_alter_is_refused_and_changes_nothing() {
    each_flavor(|_flavor| async move {
        let server = Server::start(_flavor).await?;
        let mut c = shop(&server).await?;
        let before = tables(&mut c, "shop").await?;
        for alter in ["ADD COLUMN c INT; DROP TABLE shop.victim", "ADD COLUMN c INT;DROP TABLE shop.victim;", "ADD COLUMN c INT -- x\n; DROP TABLE shop.victim"] {
            for execute in [false, true] {
                let mut args = vec!["--database", "shop", "--table", "orders", "--alter", alter];
                if execute {
                    args.push("--execute");
                }
                let out = revenant(&server, &args).output()?;
                let (stdout, stderr) = output_text(&out);
                assert_eq!(out.status.code(), Some(2), "{alter:?} execute={execute}: {stdout}{stderr}");
                assert!(stderr.contains("one ALTER"), "{alter:?}: the reason is given: {stderr}");
                assert!(!stdout.contains("nothing was changed"), "{stdout}");
                assert_eq!(tables(&mut c, "shop").await?, before, "{alter:?} execute={execute}: nothing changed");
            }
        }
        // Refused before connecting: the same refusal with a port nothing listens on.
        let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p.args(["migrate", "--host", "127.0.0.1", "--port", "1", "--user", "root", "--headless"])
            .args(["--database", "shop", "--table", "orders", "--alter", "ADD COLUMN c INT; DROP TABLE shop.victim"]);
        let (stdout, stderr) = output_text(&p.output()?);
        assert!(stderr.contains("one ALTER") && !stderr.contains("connect"), "{stdout}{stderr}");
        Ok(())
    })
    .await;
}

/// mysql_async always asks for CLIENT_MULTI_STATEMENTS; revenant's copy (vendor/mysql_async) asks only on
/// request, so a second statement on any connection revenant opens is a syntax error and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_statement_on_a_revenant_connection_fails_and_drops_nothing() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let mut c = shop(&server).await?;
        let mut rc = mysql_async::Conn::new(conn_config(&server).opts()).await?;
        let e = rc.query_drop("SELECT 1; DROP TABLE shop.victim").await.expect_err("a second statement is refused");
        assert!(e.to_string().contains("syntax"), "{e}");
        let e = rc.query_drop("SELECT 1;DROP TABLE shop.victim").await.expect_err("also without a space");
        assert!(e.to_string().contains("syntax"), "{e}");
        assert!(tables(&mut c, "shop").await?.contains(&"victim".to_string()), "shop.victim is still there");
        // A trailing `;` alone is still one statement.
        let one: Option<i64> = rc.query_first("SELECT 1;").await?;
        assert_eq!(one, Some(1));
        // The sandbox's own (test) connections too: the server refuses unless multi-statements are asked for.
        let e = c.query_drop("SELECT 1; DROP TABLE shop.victim").await.expect_err("test connections refuse as well");
        assert!(e.to_string().contains("syntax"), "{e}");
        // The control: asking for multi-statements does run the second statement (so the refusal above is real).
        let opts = mysql_async::OptsBuilder::from_opts(conn_config(&server).opts()).multi_statements(true);
        let mut multi = mysql_async::Conn::new(opts).await?;
        multi.query_drop("SELECT 1; DROP TABLE shop.victim").await?;
        assert!(!tables(&mut c, "shop").await?.contains(&"victim".to_string()), "with multi-statements on it runs");
        Ok(())
    })
    .await;
}
