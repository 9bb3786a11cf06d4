//! `revenant run-cases DIR` (wrapped by scripts/run-cases): runs outside test cases in gh-ost's localtests format
//! (see ../shared/peer-cases/README.md) against sandbox servers, driving this very binary through its command line,
//! and checks each case's oracle: old and new table identical over the compared columns, or the expected failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result, WrapErr};
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::args::RunCasesArgs;
use crate::sandbox::{Flavor, Server};

#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    Skip(String),
    /// Expected to fail like gh-ost, but revenant migrated and the oracle holds.
    Diverge(String),
    Fail(String),
}

/// Splits a SQL script into statements, honouring `delimiter` lines.
pub fn split_sql(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut delim = ";".to_string();
    let mut cur = String::new();
    for line in script.lines() {
        let t = line.trim();
        if t.to_ascii_lowercase().starts_with("delimiter ") {
            delim = t[10..].trim().to_string();
            continue;
        }
        if cur.is_empty() && (t.is_empty() || t.starts_with("--")) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(delim.as_str()) {
            let stmt = cur.trim_end();
            let stmt = stmt[..stmt.len() - delim.len()].trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    let rest = cur.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

fn read_opt(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

pub async fn run(a: RunCasesArgs) -> Result<i32> {
    let flavors = match &a.flavors {
        Some(f) => f.split(',').map(|s| s.trim().parse::<Flavor>().map_err(|e| eyre!(e))).collect::<Result<Vec<_>>>()?,
        None => crate::sandbox::selected_flavors()?,
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&a.dir)
        .wrap_err_with(|| format!("reading {}", a.dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("create.sql").exists())
        .filter(|p| a.only.as_ref().is_none_or(|o| p.file_name().is_some_and(|n| n.to_string_lossy().contains(o.as_str()))))
        .collect();
    cases.sort();
    let exe = std::env::current_exe()?;
    let (mut passed, mut failed, mut skipped, mut diverged) = (0, 0, 0, 0);
    for flavor in flavors {
        let server = Server::start(flavor).await?;
        let mut c = server.conn().await?;
        let version: String = c.query_first("SELECT CONCAT(@@version, ' ', @@version_comment)").await?.unwrap_or_default();
        drop(c);
        for case in &cases {
            let name = case.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let started = Instant::now();
            let verdict = match run_case(&exe, &server, &version, case).await {
                Ok(v) => v,
                Err(e) => Verdict::Fail(format!("{e:#}")),
            };
            let secs = started.elapsed().as_secs_f64();
            match &verdict {
                Verdict::Pass => {
                    passed += 1;
                    println!("PASS    {flavor:7} {name} ({secs:.1}s)");
                }
                Verdict::Skip(why) => {
                    skipped += 1;
                    println!("SKIP    {flavor:7} {name}: {why}");
                }
                Verdict::Diverge(why) => {
                    diverged += 1;
                    println!("DIVERGE {flavor:7} {name} ({secs:.1}s): {why}");
                }
                Verdict::Fail(why) => {
                    failed += 1;
                    println!("FAIL    {flavor:7} {name} ({secs:.1}s): {why}");
                }
            }
        }
    }
    println!("peer cases: {passed} passed, {failed} failed, {skipped} skipped ({diverged} diverged from gh-ost on purpose)");
    Ok(if failed > 0 { 1 } else { 0 })
}

async fn run_case(exe: &Path, server: &Server, version: &str, dir: &Path) -> Result<Verdict> {
    if let Some(re) = read_opt(dir, "ignore_versions") {
        let re = re.trim();
        if !re.is_empty() && regex::Regex::new(re).wrap_err("ignore_versions regex")?.is_match(version) {
            return Ok(Verdict::Skip(format!("ignore_versions /{re}/ matches {version}")));
        }
    }
    let mut t = create_case_schema(server, dir).await?;
    let extra = read_opt(dir, "extra_args").unwrap_or_default();
    let mut args: Vec<String> = shlex::split(extra.trim()).ok_or_else(|| eyre!("extra_args: unbalanced quotes"))?;
    if !args.iter().any(|a| a.starts_with("--alter") || a.starts_with("-alter")) {
        args.push("--alter=engine=innodb".into());
    }
    let (status, all_output) = run_revenant(exe, server, &args, &mut t).await?;
    let _ = t.query_drop("DROP EVENT IF EXISTS gh_ost_test").await;
    match read_opt(dir, "expect_failure") {
        Some(expected) => judge_expected_failure(expected.trim(), status.success(), &all_output, &mut t, dir).await,
        None => judge_migration(status, &all_output, &mut t, dir).await,
    }
}

/// A fresh `test` database with the case's create.sql run in it; the connection to it.
async fn create_case_schema(server: &Server, dir: &Path) -> Result<mysql_async::Conn> {
    let mut c = server.conn().await?;
    c.query_drop("DROP DATABASE IF EXISTS test").await?;
    c.query_drop("CREATE DATABASE test").await?;
    let mut t = server.conn_db("test").await?;
    let script = std::fs::read_to_string(dir.join("create.sql"))?;
    for stmt in split_sql(&script) {
        t.query_drop(&stmt).await.wrap_err_with(|| format!("create.sql: {}", stmt.lines().next().unwrap_or("")))?;
    }
    Ok(t)
}

/// Runs the migration with the case's arguments; at the postponed gate the case's writes (its event) are stopped
/// and the cut-over released. Its exit status and what it printed (status JSON left out).
async fn run_revenant(exe: &Path, server: &Server, args: &[String], t: &mut mysql_async::Conn) -> Result<(std::process::ExitStatus, String)> {
    let flag = std::env::temp_dir().join(format!("revenant-case-{}-{}.postpone", std::process::id(), server.port));
    let socket = std::env::temp_dir().join(format!("revenant-case-{}-{}.sock", std::process::id(), server.port));
    std::fs::write(&flag, b"")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("migrate")
        .args(["--host", "127.0.0.1", "--port", &server.port.to_string(), "--user", "root", "--database", "test"])
        .args(["--table", "gh_ost_test", "--execute", "--status-json", "--default-retries", "3", "--chunk-size", "100"])
        .arg(format!("--postpone-cut-over-flag-file={}", flag.display()))
        .arg(format!("--serve-socket-file={}", socket.display()))
        .args(args)
        .env_remove("MYSQL_PWD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().wrap_err("starting revenant")?;
    let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
    let mut stderr = child.stderr.take().ok_or_else(|| eyre!("no stderr"))?;
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let watched = watch_output(BufReader::new(stdout).lines(), &flag, t).await;
    let _ = std::fs::remove_file(&flag);
    let out_text = match watched {
        Ok(text) => text,
        Err(e) => {
            let _ = child.kill().await;
            return Err(e);
        }
    };
    let status = child.wait().await?;
    let err_text = err_task.await.unwrap_or_default();
    Ok((status, format!("{out_text}\n{err_text}")))
}

/// Reads the status lines until the run ends (at most 180 s), releasing the cut-over at the gate.
async fn watch_output(
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    flag: &Path,
    t: &mut mysql_async::Conn,
) -> Result<String> {
    let mut out_text = String::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut released = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if !released && line.contains("\"phase\":\"ready-to-cut-over\"") && line.contains("\"backlog\":0") {
                    // Stop the writes, let the tool catch up, then release the cut-over.
                    let _ = t.query_drop("ALTER EVENT gh_ost_test DISABLE").await;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let _ = std::fs::remove_file(flag);
                    released = true;
                }
                if !line.starts_with('{') {
                    out_text.push_str(&line);
                    out_text.push('\n');
                }
            }
            Ok(Ok(None)) => return Ok(out_text),
            Ok(Err(e)) => bail!("reading revenant's output: {e}"),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            bail!("timed out after 180 s");
        }
    }
}

/// A case gh-ost expects to fail: revenant refused (with the expected words, leaving nothing behind), or it
/// migrated and the oracle tells a deliberate divergence from a bug.
async fn judge_expected_failure(expected: &str, migrated: bool, all_output: &str, t: &mut mysql_async::Conn, dir: &Path) -> Result<Verdict> {
    if migrated {
        return Ok(match oracle(t, dir).await {
            Ok(()) => Verdict::Diverge(format!(
                "gh-ost expects a failure{}; revenant migrated and the old and new tables are identical",
                if expected.is_empty() { String::new() } else { format!(" ('{expected}')") }
            )),
            Err(e) => Verdict::Fail(format!("expected a failure; revenant migrated and the oracle failed: {e:#}")),
        });
    }
    if !expected.is_empty() && !all_output.contains(expected) {
        return Ok(Verdict::Fail(format!("failed, but without '{expected}': {}", last_lines(all_output, 6))));
    }
    // Nothing may be left behind by a refused migration.
    let leftovers: Vec<String> = t
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='test' AND TABLE_NAME LIKE '\\_gh\\_ost\\_test\\_%'")
        .await?;
    if !leftovers.is_empty() {
        return Ok(Verdict::Fail(format!("refused, but left tables behind: {leftovers:?}")));
    }
    Ok(Verdict::Pass)
}

/// A case that must migrate: the oracle holds and the structure is the expected one.
async fn judge_migration(status: std::process::ExitStatus, all_output: &str, t: &mut mysql_async::Conn, dir: &Path) -> Result<Verdict> {
    if !status.success() {
        return Ok(Verdict::Fail(format!("revenant exited with {status}: {}", last_lines(all_output, 8))));
    }
    oracle(t, dir).await?;
    if let Some(want) = read_opt(dir, "expect_table_structure") {
        let (_, create): (String, String) =
            t.query_first("SHOW CREATE TABLE gh_ost_test").await?.ok_or_else(|| eyre!("no table"))?;
        if !create.contains(want.trim()) {
            return Ok(Verdict::Fail(format!("SHOW CREATE TABLE lacks '{}': {create}", want.trim())));
        }
    }
    Ok(Verdict::Pass)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Old (`_gh_ost_test_del`) and new (`gh_ost_test`) tables hold the same rows over the compared columns.
async fn oracle(t: &mut mysql_async::Conn, dir: &Path) -> Result<()> {
    let orig_cols = read_opt(dir, "orig_columns").map(|s| s.trim().to_string()).unwrap_or_else(|| "*".into());
    let ghost_cols = read_opt(dir, "ghost_columns").map(|s| s.trim().to_string()).unwrap_or_else(|| "*".into());
    let order_by = match read_opt(dir, "order_by") {
        Some(o) => o.trim().to_string(),
        None => {
            let info = crate::engine::plan::schema::read_table(t, "test", "_gh_ost_test_del")
                .await?
                .ok_or_else(|| eyre!("_gh_ost_test_del does not exist after the migration"))?;
            let key = info.unique_keys.first().ok_or_else(|| eyre!("the old table has no unique key"))?;
            key.columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        }
    };
    let digest = |rows: Vec<mysql_async::Row>| {
        let mut h = Sha256::new();
        let n = rows.len();
        for r in rows {
            for v in r.unwrap() {
                h.update(v.as_sql(false).as_bytes());
                h.update(b"\x1f");
            }
            h.update(b"\x1e");
        }
        (n, hex::encode(h.finalize()))
    };
    let old: Vec<mysql_async::Row> = t.query(format!("SELECT {orig_cols} FROM _gh_ost_test_del ORDER BY {order_by}")).await?;
    let new: Vec<mysql_async::Row> = t.query(format!("SELECT {ghost_cols} FROM gh_ost_test ORDER BY {order_by}")).await?;
    let (a, b) = (digest(old), digest(new));
    if a != b {
        bail!("rows differ: _gh_ost_test_del has {} rows ({}), gh_ost_test has {} rows ({})", a.0, &a.1[..12], b.0, &b.1[..12]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_split_statements() {
        let s = "drop table if exists t;\ncreate table t (id int);\n\ndelimiter ;;\ncreate event e on schedule every 1 second do\nbegin\n  insert into t values (1);\n  insert into t values (2);\nend ;;\n";
        let v = split_sql(s);
        assert_eq!(v.len(), 3);
        assert!(v[2].starts_with("create event") && v[2].ends_with("end"));
    }
}
