//! Following a promoted primary (issue 16, docs/failover.md), with real processes and the harness's GTID
//! replication on every selected flavour (needs the `failpoints` feature for the run trace): the primary killed -9
//! mid-copy under a writer and its replica promoted (revenant adopts it by itself, ends with identical tables and
//! redoes at most one chunk); a planned switchover (the old primary read-only, the replica promoted); and a
//! candidate that never becomes writable (exit 3 after `--failover-timeout`, the resume command printed, and that
//! resume works once the replica is promoted); two failovers in one run; the primary killed while the cut-over is
//! postponed; a promoted candidate that lost the run's last checkpoints (refused, with the reason); and the same
//! `--host` back after a crash (adopted again).

mod common;

use std::path::Path;
use std::process::{Child, Command as Proc};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, ensure, eyre, Result};
use common::follow::{promote, promote_applied, Lines};
use common::run::{Fixture, PACED};
use common::trace::{check_bound, read_trace, slice_count};
use common::{each_flavor, exec_all, seed, stderr_of, table_checksum, Flavor, Server, Writer};
use mysql_async::prelude::Queryable;

const ALTER: &str = "ADD COLUMN f INT NOT NULL DEFAULT 1";
const COLS: [&str; 5] = ["id", "a", "b", "c", "d"];

/// revenant on `server` with the postpone flag file (when `postponed`), the fixture's trace and socket.
fn revenant(server: &Server, db: &str, fx: &Fixture, postponed: bool, extra: &[&str]) -> Proc {
    common::run::migrate(server, db, fx, postponed, &[&["--alter", ALTER], &PACED[..], extra].concat())
}

/// A planned switchover's first step: the old primary stops taking writes (MySQL: for SUPER users too).
async fn demote(primary: &Server) -> Result<()> {
    let mut c = primary.conn().await?;
    match primary.flavor {
        Flavor::MariaDb => exec_all(&mut c, "SET GLOBAL read_only = 1").await,
        Flavor::MySql => exec_all(&mut c, "SET GLOBAL super_read_only = 1").await,
    }
}

/// A hook `name` in the fixture's hooks directory running `body`.
fn hook(fx: &Fixture, name: &str, body: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let script = fx.hooks.join(name);
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A revenant-on-failover hook that writes its environment to `out`.
fn failover_hook(fx: &Fixture, out: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let script = fx.hooks.join("revenant-on-failover");
    std::fs::write(&script, format!("#!/bin/sh\nenv > '{}'\n", out.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A status line of the copy with at least `rows` copied.
fn copied(l: &str, rows: u64) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { return false };
    v["phase"] == "copy" && v["copy"]["rows_copied"].as_u64().is_some_and(|n| n >= rows)
}

/// A phase after the copy (its status line names it).
fn past_the_copy(l: &str) -> bool {
    ["catchup", "verify", "ready-to-cut-over"].iter().any(|p| l.contains(&format!("\"phase\":\"{p}\"")))
}

/// `rows` copied, or the copy already over: with two copy workers a 60,000-row copy can end between two status
/// lines (seen in CI), and these tests are about the failover, not about where in the copy it falls.
fn copied_or_past(l: &str, rows: u64) -> bool {
    copied(l, rows) || past_the_copy(l)
}

fn is_copying(l: &str) -> bool {
    copied(l, 1)
}

/// The end of a followed run: ready on the new primary, the cut-over let go, exit 0, identical tables there.
async fn finish_on(new: &Server, db: &str, fx: &Fixture, child: &mut Child, lines: &mut Lines, writer: Writer) -> Result<String> {
    let ready = lines.wait(Duration::from_secs(240), "ready-to-cut-over on the new primary", |l| l.contains("\"phase\":\"ready-to-cut-over\""));
    let ops = writer.stop().await?;
    if let Err(e) = ready {
        let _ = child.kill();
        bail!("{e:#}\n{}", stderr_of(child));
    }
    std::fs::remove_file(&fx.postpone)?;
    let status = child.wait()?;
    let stderr = stderr_of(child);
    if !status.success() {
        bail!("the followed run failed: {status}\n{stderr}");
    }
    let mut c = new.conn().await?;
    let old = table_checksum(&mut c, db, "_t_del", &COLS).await?;
    let migrated = table_checksum(&mut c, db, "t", &COLS).await?;
    assert_eq!(old, migrated, "rows differ on the new primary after the failover ({ops} writer ops there)");
    assert!(old.0 > 1000, "the migrated table holds the rows: {old:?}");
    Ok(stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_mid_copy_the_promoted_replica_is_adopted() {
    each_flavor(|flavor| async move {
        // A primary with two replicas: one is promoted, the other re-pointed to it.
        let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 2).await?;
        let (replica, other) = (replicas.remove(0), replicas.remove(0));
        // 200,000 rows: with its secondary index deferred, 60,000 were copied within 1.4 s, and the kill fell into
        // the verification (a fresh-clone CI), not the copy this test is about.
        seed(&primary, "fo", 200_000).await?;
        let fx = Fixture::new("failover", "kill", primary.port)?;
        let hook_env = fx.dir.join("hook.env");
        failover_hook(&fx, &hook_env)?;
        let writer = Writer::start(&primary, "fo", "t", &["a", "b", "c", "d"], true).await?;
        let candidates = format!("--failover-candidates=127.0.0.1:{},127.0.0.1:{}", replica.port, other.port);
        let hooks = format!("--hooks-path={}", fx.hooks.display());
        let mut child = revenant(&primary, "fo", &fx, true, &[&candidates, &hooks, "--retry-seconds", "3", "--failover-timeout", "3m"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "3000 rows copied", |l| copied(l, 3000))?;
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Unplanned failover: the primary dies mid-copy, the replica is promoted, the application follows it.
        // The other replica stops first and the one to be promoted gets at least as far, so that it can be
        // re-pointed there (asynchronous replicas can each receive a different tail of the old primary).
        stop_replication(&other, false).await?;
        revenant::sandbox::wait_caught_up(&replica, &other, Duration::from_secs(60)).await?;
        primary.kill9();
        let killed = Instant::now();
        let _ = writer.stop().await;
        promote_applied(&replica).await?;
        revenant::sandbox::replicate_from(&other, &replica).await?;
        let writer = Writer::start(&replica, "fo", "t", &["a", "b", "c", "d"], true).await?;
        let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", replica.port);
        // (The wait itself may be shorter than the status line's second: the replica is promoted at once.)
        if let Err(e) = lines.wait(Duration::from_secs(120), "the adoption", |l| l.contains(&adopted_on)) {
            let _ = writer.stop().await;
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        let took = killed.elapsed();
        let stderr = finish_on(&replica, "fo", &fx, &mut child, &mut lines, writer).await?;
        // The re-pointed replica holds the same migrated tables.
        revenant::sandbox::wait_caught_up(&other, &replica, Duration::from_secs(60)).await?;
        let mut o = other.conn().await?;
        let (old, migrated) = (table_checksum(&mut o, "fo", "_t_del", &COLS).await?, table_checksum(&mut o, "fo", "t", &COLS).await?);
        assert_eq!(old, migrated, "the other replica, re-pointed to the new primary, has identical tables");
        eprintln!("[{flavor}] killed -> adopted in {:.1}s (--retry-seconds 3)", took.as_secs_f64());
        assert!(stderr.contains(&format!("adopted on 127.0.0.1:{} at GTID", replica.port)), "the log says where it adopted:\n{stderr}");
        assert!(stderr.contains("resumed at"), "the adoption resumed as --resume does:\n{stderr}");
        assert!(stderr.contains("unreachable for") && stderr.contains("waiting up to"), "the log says why and that it waits:\n{stderr}");
        let runs = read_trace(&fx.trace);
        let (adoptions, redone) = check_bound(&runs, flavor == Flavor::MariaDb)?;
        assert_eq!(adoptions, 1, "one failover, one adoption: {runs:?}");
        assert!(redone <= slice_count(&runs), "at most one chunk redone per copy slice: {redone}");
        assert!(runs[0].committed.len() > 1, "the kill came after some chunks were copied (else the test proves little)");
        let env = std::fs::read_to_string(&hook_env).map_err(|e| eyre!("revenant-on-failover did not run: {e}"))?;
        assert!(env.contains(&format!("REVENANT_OLD_PRIMARY=127.0.0.1:{}", primary.port)), "{env}");
        assert!(env.contains(&format!("REVENANT_NEW_PRIMARY=127.0.0.1:{}", replica.port)), "{env}");
        assert!(!env.contains("PASSWORD") && !env.contains("MYSQL_PWD"), "no secret in the hook's environment: {env}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_the_run_moves_to_the_new_primary() {
    each_flavor(|flavor| async move {
        let (primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        seed(&primary, "sw", 60_000).await?;
        let fx = Fixture::new("failover", "switch", primary.port)?;
        let writer = Writer::start(&primary, "sw", "t", &["a", "b", "c", "d"], true).await?;
        let candidates = format!("--failover-candidates=127.0.0.1:{}", replica.port);
        // Hooks: on-startup counts its runs, on-success keeps its environment.
        let (startups, success_env) = (fx.hooks.join("startups"), fx.hooks.join("success.env"));
        hook(&fx, "gh-ost-on-startup", &format!("echo started >> '{}'", startups.display()))?;
        hook(&fx, "gh-ost-on-success", &format!("env > '{}'", success_env.display()))?;
        hook(&fx, "gh-ost-on-before-row-copy", &format!("echo copy >> '{}'", startups.display()))?;
        let hooks = format!("--hooks-path={}", fx.hooks.display());
        let mut child = revenant(&primary, "sw", &fx, true, &[&candidates, &hooks, "--failover-timeout", "3m"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "3000 rows copied", |l| copied_or_past(l, 3000))?;

        // The switchover: writes stop, the old primary is made read-only, the replica catches up and is promoted.
        let ops_before = writer.stop().await?;
        demote(&primary).await?;
        let demoted = Instant::now();
        lines.wait(Duration::from_secs(30), "waiting for a new primary", |l| l.contains("\"waiting\":true"))?;
        let noticed = demoted.elapsed();
        // The status names the candidates tried and what each was.
        let verdicts = [format!("127.0.0.1:{}: {}read_only is on", primary.port, if flavor == Flavor::MySql { "super_" } else { "" }), format!("127.0.0.1:{}: replicates from 127.0.0.1:{}", replica.port, primary.port)];
        lines.wait(Duration::from_secs(10), "the candidates' verdicts", |l| verdicts.iter().all(|v| l.contains(v.as_str())))?;
        revenant::sandbox::wait_caught_up(&replica, &primary, Duration::from_secs(60)).await?;
        let (gtid_old,): (String,) = primary.conn().await?.query_first(if flavor == Flavor::MariaDb { "SELECT @@gtid_binlog_pos" } else { "SELECT @@gtid_executed" }).await?.unwrap_or_default();
        promote(&replica).await?;
        let writer = Writer::start(&replica, "sw", "t", &["a", "b", "c", "d"], true).await?;
        let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", replica.port);
        if let Err(e) = lines.wait(Duration::from_secs(60), "the adoption", |l| l.contains(&adopted_on)) {
            let _ = writer.stop().await;
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        // The socket's checkpoint is read and written on the new primary (the old one is read-only: writing there
        // would fail, and must not be tried).
        let reply = control(&fx, "checkpoint")?;
        assert!(reply.contains("checkpoint recorded"), "checkpoint after the adoption: {reply}");
        let stderr = finish_on(&replica, "sw", &fx, &mut child, &mut lines, writer).await?;
        let started = std::fs::read_to_string(&startups)?;
        let count = |what: &str| started.lines().filter(|l| *l == what).count();
        assert_eq!((count("started"), count("copy")), (1, 1), "gh-ost-on-startup and on-before-row-copy run once, not again at the adoption: {started:?}");
        let env = std::fs::read_to_string(&success_env)?;
        for var in ["GH_OST_MIGRATED_HOST", "GH_OST_INSPECTED_HOST"] {
            assert!(env.lines().any(|l| l == format!("{var}=127.0.0.1:{}", replica.port)), "{var} names the new primary:\n{env}");
        }
        eprintln!("[{flavor}] read-only noticed in {:.1}s ({ops_before} writer ops before)", noticed.as_secs_f64());
        assert!(noticed < Duration::from_secs(5), "the read-only primary is noticed at once, not after --retry-seconds: {noticed:?}");
        // Nothing was written to the old primary once it was read-only: its GTID set did not move.
        let (gtid_now,): (String,) = primary.conn().await?.query_first(if flavor == Flavor::MariaDb { "SELECT @@gtid_binlog_pos" } else { "SELECT @@gtid_executed" }).await?.unwrap_or_default();
        assert_eq!(gtid_old, gtid_now, "nothing more was written to the demoted primary");
        // The old primary is made the new one's replica, and catches up to the migrated tables (MariaDB: from
        // where its own binary log ends, as a DBA re-points a demoted primary).
        if flavor == Flavor::MariaDb {
            primary.conn().await?.query_drop("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos").await?;
        }
        revenant::sandbox::replicate_from(&primary, &replica).await?;
        revenant::sandbox::wait_caught_up(&primary, &replica, Duration::from_secs(60)).await?;
        let mut o = primary.conn().await?;
        let (old, migrated) = (table_checksum(&mut o, "sw", "_t_del", &COLS).await?, table_checksum(&mut o, "sw", "t", &COLS).await?);
        assert_eq!(old, migrated, "the old primary, now a replica of the new one, has identical tables");
        assert!(stderr.contains("read_only is on"), "the log says why the primary was given up:\n{stderr}");
        let runs = read_trace(&fx.trace);
        let (adoptions, redone) = check_bound(&runs, flavor == Flavor::MariaDb)?;
        assert_eq!((adoptions, redone <= slice_count(&runs)), (1, true), "one adoption, at most one chunk redone per slice: {redone}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_primary_within_the_timeout_stops_resumably() {
    each_flavor(|flavor| async move {
        let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        // 100,000 rows: 20,000 were copied in under a second once (the chunks grow), before a status line showed
        // the copy.
        seed(&primary, "nt", 100_000).await?;
        let fx = Fixture::new("failover", "timeout", primary.port)?;
        let candidates = format!("--failover-candidates=127.0.0.1:{}", replica.port);
        let mut child = revenant(&primary, "nt", &fx, true, &[&candidates, "--retry-seconds", "2", "--failover-timeout", "8s"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "the copy", is_copying)?;
        primary.kill9();
        let killed = Instant::now();
        let waiting = lines.wait(Duration::from_secs(30), "waiting for a new primary", |l| l.contains("\"waiting\":true"))?;
        let status = child.wait()?;
        let took = killed.elapsed();
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(3), "a resumable stop after the timeout:\n{stderr}");
        assert!(took >= Duration::from_secs(8) && took < Duration::from_secs(40), "the wait lasted the timeout: {took:?}");
        assert!(stderr.contains("no new primary within --failover-timeout"), "{stderr}");
        assert!(stderr.contains("replicates from"), "the reason the candidate was refused is given:\n{stderr}");
        assert!(stderr.contains("resume with: revenant migrate") && stderr.contains("--resume"), "the resume command is printed:\n{stderr}");
        assert!(waiting.contains("candidates_tried"), "{waiting}");
        // Once a primary is there, the printed command, pointed at it, continues the migration.
        promote(&replica).await?;
        let out = revenant(&replica, "nt", &fx, false, &["--resume"]).output()?;
        assert!(out.status.success(), "resume on the promoted replica: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = replica.conn().await?;
        assert_eq!(table_checksum(&mut c, "nt", "_t_del", &COLS).await?, table_checksum(&mut c, "nt", "t", &COLS).await?);
        Ok(())
    })
    .await;
}

/// Sends one of gh-ost's commands to the run's control socket.
fn control(fx: &Fixture, command: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut sock = std::os::unix::net::UnixStream::connect(&fx.socket)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.write_all(format!("{command}\n").as_bytes())?;
    sock.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    let _ = sock.read_to_string(&mut reply);
    Ok(reply)
}

/// Stops a replica's replication threads (before it is pointed elsewhere) or only its SQL thread (`sql_only`: it
/// falls behind, keeping what it received unapplied).
async fn stop_replication(replica: &Server, sql_only: bool) -> Result<()> {
    let mut c = replica.conn().await?;
    let q = match (replica.flavor, sql_only) {
        (Flavor::MariaDb, true) => "STOP SLAVE SQL_THREAD",
        (Flavor::MariaDb, false) => "STOP SLAVE",
        (Flavor::MySql, true) => "STOP REPLICA SQL_THREAD",
        (Flavor::MySql, false) => "STOP REPLICA",
    };
    c.query_drop(q).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failovers_in_one_run() {
    each_flavor(|flavor| async move {
        let (mut a, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 2).await?;
        let (mut b, c) = (replicas.remove(0), replicas.remove(0));
        seed(&a, "two", 60_000).await?;
        let fx = Fixture::new("failover", "two", a.port)?;
        let candidates = format!("--failover-candidates=127.0.0.1:{},127.0.0.1:{}", b.port, c.port);
        let mut child = revenant(&a, "two", &fx, true, &[&candidates, "--retry-seconds", "2", "--failover-timeout", "2m", "--chunk-size", "100"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "2000 rows copied", |l| copied_or_past(l, 2000))?;

        // First failover: A dies, B is promoted, C follows B. (The copy is held first and B let catch up, so that no
        // committed chunk is lost with A: this test is about two adoptions; the first test kills mid-chunk.)
        control(&fx, "throttle")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        revenant::sandbox::wait_caught_up(&b, &a, Duration::from_secs(60)).await?;
        a.kill9();
        promote(&b).await?;
        stop_replication(&c, false).await?;
        revenant::sandbox::replicate_from(&c, &b).await?;
        let on_b = format!("\"adopted_on\":\"127.0.0.1:{}\"", b.port);
        lines.wait(Duration::from_secs(60), "the adoption on B", |l| l.contains(&on_b))?;
        control(&fx, "no-throttle")?;
        let copied_on_b = lines.wait(Duration::from_secs(60), "more rows copied on B", |l| l.contains(&on_b) && copied_or_past(l, 2500));
        // Second failover: B dies (mid-copy, or later if the copy already ended), C is promoted.
        control(&fx, "throttle")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        revenant::sandbox::wait_caught_up(&c, &b, Duration::from_secs(60)).await?;
        b.kill9();
        promote(&c).await?;
        let on_c = format!("\"adopted_on\":\"127.0.0.1:{}\"", c.port);
        if let Err(e) = copied_on_b.and_then(|_| lines.wait(Duration::from_secs(60), "the adoption on C", |l| l.contains(&on_c) && l.contains("\"count\":2"))) {
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        control(&fx, "no-throttle")?;
        let writer = Writer::start(&c, "two", "t", &["a", "b", "c", "d"], true).await?;
        let stderr = finish_on(&c, "two", &fx, &mut child, &mut lines, writer).await?;
        assert!(stderr.contains("failover 2 of this run"), "{stderr}");
        let runs = read_trace(&fx.trace);
        let (adoptions, redone) = check_bound(&runs, flavor == Flavor::MariaDb)?;
        assert_eq!(adoptions, 2, "two failovers, two adoptions");
        assert!(redone <= 2 * slice_count(&runs), "at most one chunk redone per slice and adoption: {redone}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_lacks_the_checkpoint_is_refused_with_the_reason() {
    each_flavor(|flavor| async move {
        let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        seed(&primary, "lagdb", 60_000).await?;
        let fx = Fixture::new("failover", "lag", primary.port)?;
        let candidates = format!("--failover-candidates=127.0.0.1:{}", replica.port);
        let mut child = revenant(&primary, "lagdb", &fx, true, &[&candidates, "--retry-seconds", "2", "--failover-timeout", "6s", "--max-lag-millis", "600000"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        // Past the copy, the applier's batches (heartbeats) still move the checkpoint, which is all this test needs.
        lines.wait(Duration::from_secs(90), "1000 rows copied", |l| copied_or_past(l, 1000))?;
        // The replica falls behind, then the primary dies and the replica is promoted without what it had not
        // applied (RESET drops its relay log): the checkpoints this run committed since are lost with the primary.
        stop_replication(&replica, true).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        primary.kill9();
        promote(&replica).await?;
        let status = child.wait()?;
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(3), "a resumable stop:\n{stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{}: behind: its checkpoint is at GTID set", replica.port)), "the reason is named:\n{stderr}");
        assert!(!stderr.contains("adopted on"), "the candidate that lacks the checkpoint was not adopted:\n{stderr}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_mid_catch_up_the_promoted_replica_is_adopted() {
    each_flavor(|flavor| async move {
        // A primary with two replicas: one is promoted, the other re-pointed to it.
        let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 2).await?;
        let (replica, other) = (replicas.remove(0), replicas.remove(0));
        seed(&primary, "cu", 20_000).await?;
        let fx = Fixture::new("failover", "catchup", primary.port)?;
        let hold = fx.dir.join("hold");
        std::fs::write(&hold, b"")?;
        let writer = Writer::start(&primary, "cu", "t", &["a", "b", "c", "d"], true).await?;
        let candidates = format!("--failover-candidates=127.0.0.1:{},127.0.0.1:{}", replica.port, other.port);
        let mut p = revenant(&primary, "cu", &fx, true, &[&candidates, "--retry-seconds", "2", "--failover-timeout", "2m"]);
        // The first attempt is held as catch-up begins (the copy done, the applier streaming the writer's changes).
        p.env("REVENANT_FAILPOINTS", "catchup-before-wait=hold@1").env("REVENANT_FAILPOINT_HOLD", &hold);
        let mut child = p.spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(120), "the catch-up", |l| l.contains("\"phase\":\"catchup\""))?;
        tokio::time::sleep(Duration::from_millis(700)).await;
        // The other replica stops first and the one to be promoted gets at least as far, so that it can be
        // re-pointed there (asynchronous replicas can each receive a different tail of the old primary).
        stop_replication(&other, false).await?;
        revenant::sandbox::wait_caught_up(&replica, &other, Duration::from_secs(60)).await?;
        primary.kill9();
        let _ = writer.stop().await;
        promote_applied(&replica).await?;
        revenant::sandbox::replicate_from(&other, &replica).await?;
        let writer = Writer::start(&replica, "cu", "t", &["a", "b", "c", "d"], true).await?;
        // Let the held step go on: it meets the dead primary, and the attempt ends.
        std::fs::remove_file(&hold)?;
        let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", replica.port);
        if let Err(e) = lines.wait(Duration::from_secs(60), "the adoption", |l| l.contains(&adopted_on)) {
            let _ = writer.stop().await;
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        let stderr = finish_on(&replica, "cu", &fx, &mut child, &mut lines, writer).await?;
        assert!(stderr.contains("fail point catchup-before-wait hit (hold)"), "the first attempt was held in the catch-up:\n{stderr}");
        assert!(stderr.contains("re-copying 0 rows (the copy was complete)"), "the adoption resumed past the copy:\n{stderr}");
        // The re-pointed replica holds the same migrated tables.
        revenant::sandbox::wait_caught_up(&other, &replica, Duration::from_secs(60)).await?;
        let mut o = other.conn().await?;
        let (old, migrated) = (table_checksum(&mut o, "cu", "_t_del", &COLS).await?, table_checksum(&mut o, "cu", "t", &COLS).await?);
        assert_eq!(old, migrated, "the other replica, re-pointed to the new primary, has identical tables");
        let runs = read_trace(&fx.trace);
        let (adoptions, _) = check_bound(&runs, flavor == Flavor::MariaDb)?;
        assert_eq!(adoptions, 1, "one failover, one adoption: {runs:?}");
        Ok(())
    })
    .await;
}

/// The primary killed -9 inside the cut-over, at `point` (held there by a fail point): under the lock before the
/// rename (`cutover-after-lock`: on the promoted replica the original still serves, with the sentry beside it) or
/// right after the swap (`after-swap`: there the swap is complete, or, when the rename had not reached the replica
/// yet, not begun). The run follows the promoted replica with no command and ends there, never half-swapped: the
/// new table in place, the old one beside it, identical.
async fn killed_inside_the_cut_over(flavor: Flavor, point: &str) -> Result<()> {
    let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
    let replica = replicas.remove(0);
    seed(&primary, "co", 20_000).await?;
    let fx = Fixture::new("failover", point, primary.port)?;
    let hold = fx.dir.join("hold");
    std::fs::write(&hold, b"")?;
    let writer = Writer::start(&primary, "co", "t", &["a", "b", "c", "d"], true).await?;
    let candidates = format!("--failover-candidates=127.0.0.1:{}", replica.port);
    let mut p = revenant(&primary, "co", &fx, true, &[&candidates, "--retry-seconds", "2", "--failover-timeout", "2m"]);
    p.env("REVENANT_FAILPOINTS", format!("{point}=hold@1")).env("REVENANT_FAILPOINT_HOLD", &hold);
    let mut child = p.spawn()?;
    let mut lines = Lines::of(&mut child)?;
    lines.wait(Duration::from_secs(120), "the postponed cut-over", |l| l.contains("\"phase\":\"ready-to-cut-over\""))?;
    // The writer stops before any cut-over, so that both tables can be compared at the end.
    let ops = writer.stop().await?;
    std::fs::remove_file(&fx.postpone)?;
    lines.wait(Duration::from_secs(60), "the cut-over", |l| l.contains("\"phase\":\"cut-over\""))?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    primary.kill9();
    promote_applied(&replica).await?;
    // The next attempt waits for approval again; the held step goes on and meets the dead primary.
    std::fs::write(&fx.postpone, b"")?;
    std::fs::remove_file(&hold)?;
    let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", replica.port);
    if let Err(e) = lines.wait(Duration::from_secs(60), "the adoption", |l| l.contains(&adopted_on)) {
        let _ = child.kill();
        bail!("{e:#}\n{}", stderr_of(&mut child));
    }
    // Approved at once: a run that finds the swap complete ends with the clean-up and never asks.
    std::fs::remove_file(&fx.postpone)?;
    let status = child.wait()?;
    let stderr = stderr_of(&mut child);
    ensure!(status.success(), "the followed run failed: {status}\n{stderr}");
    ensure!(stderr.contains(&format!("fail point {point} hit (hold)")), "the first attempt was held at {point}:\n{stderr}");
    let mut c = replica.conn().await?;
    let mut tables: Vec<String> = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'co'").await?;
    tables.sort();
    ensure!(tables == ["_t_del", "t"], "{point}: the tables on the new primary are {tables:?}");
    let has_f: Option<u64> = c.query_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'co' AND TABLE_NAME = 't' AND COLUMN_NAME = 'f'").await?;
    ensure!(has_f == Some(1), "{point}: t is the migrated table");
    let old = table_checksum(&mut c, "co", "_t_del", &COLS).await?;
    let migrated = table_checksum(&mut c, "co", "t", &COLS).await?;
    ensure!(old == migrated && old.0 > 1000, "{point}: rows differ on the new primary ({ops} writer ops): {old:?} {migrated:?}");
    let how = if stderr.contains("finishing the clean-up") { "the swap was complete there" } else { "the original served there; cut over again" };
    eprintln!("[{flavor}] killed at {point}: {how}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_inside_the_cut_over_ends_swapped_on_the_new_primary() {
    each_flavor(|flavor| async move {
        killed_inside_the_cut_over(flavor, "cutover-after-lock").await?;
        killed_inside_the_cut_over(flavor, "after-swap").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_while_the_cut_over_is_postponed() {
    each_flavor(|flavor| async move {
        // A primary with two replicas: one is promoted, the other re-pointed to it.
        let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 2).await?;
        let (replica, other) = (replicas.remove(0), replicas.remove(0));
        seed(&primary, "pp", 20_000).await?;
        let fx = Fixture::new("failover", "postponed", primary.port)?;
        let writer = Writer::start(&primary, "pp", "t", &["a", "b", "c", "d"], true).await?;
        let candidates = format!("--failover-candidates=127.0.0.1:{},127.0.0.1:{}", replica.port, other.port);
        let mut child = revenant(&primary, "pp", &fx, true, &[&candidates, "--retry-seconds", "2", "--failover-timeout", "2m"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(120), "the postponed cut-over", |l| l.contains("\"phase\":\"ready-to-cut-over\""))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The other replica stops first and the one to be promoted gets at least as far, so that it can be
        // re-pointed there (asynchronous replicas can each receive a different tail of the old primary).
        stop_replication(&other, false).await?;
        revenant::sandbox::wait_caught_up(&replica, &other, Duration::from_secs(60)).await?;
        primary.kill9();
        let _ = writer.stop().await;
        promote_applied(&replica).await?;
        revenant::sandbox::replicate_from(&other, &replica).await?;
        let writer = Writer::start(&replica, "pp", "t", &["a", "b", "c", "d"], true).await?;
        let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", replica.port);
        if let Err(e) = lines.wait(Duration::from_secs(60), "the adoption", |l| l.contains(&adopted_on)) {
            let _ = writer.stop().await;
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        // The cut-over happens on the new primary once approved there (the flag file is still in place).
        let stderr = finish_on(&replica, "pp", &fx, &mut child, &mut lines, writer).await?;
        // The re-pointed replica holds the same migrated tables.
        revenant::sandbox::wait_caught_up(&other, &replica, Duration::from_secs(60)).await?;
        let mut o = other.conn().await?;
        let (old, migrated) = (table_checksum(&mut o, "pp", "_t_del", &COLS).await?, table_checksum(&mut o, "pp", "t", &COLS).await?);
        assert_eq!(old, migrated, "the other replica, re-pointed to the new primary, has identical tables");
        // finish_on compared `t` with `_t_del` there: the swap happened on the new primary.
        assert!(stderr.contains(&format!("adopted on 127.0.0.1:{} at GTID", replica.port)), "{stderr}");
        assert!(stderr.contains("resumed at"), "the adoption resumed past the copy as --resume does:\n{stderr}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_host_back_after_a_crash_is_adopted_again() {
    each_flavor(|flavor| async move {
        let mut server = Server::start(flavor).await?;
        seed(&server, "back", 60_000).await?;
        let fx = Fixture::new("failover", "back", server.port)?;
        let mut child = revenant(&server, "back", &fx, true, &["--retry-seconds", "2", "--failover-timeout", "2m"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "2000 rows copied", |l| copied_or_past(l, 2000))?;
        server.kill9();
        lines.wait(Duration::from_secs(30), "waiting for a new primary", |l| l.contains("\"waiting\":true") && l.contains("unreachable"))?;
        // No candidate but --host itself: once the server is back (crash recovery done) the run continues there.
        server.restart().await?;
        let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", server.port);
        if let Err(e) = lines.wait(Duration::from_secs(60), "the adoption", |l| l.contains(&adopted_on)) {
            let _ = child.kill();
            bail!("{e:#}\n{}", stderr_of(&mut child));
        }
        let writer = Writer::start(&server, "back", "t", &["a", "b", "c", "d"], true).await?;
        finish_on(&server, "back", &fx, &mut child, &mut lines, writer).await?;
        let runs = read_trace(&fx.trace);
        let (adoptions, redone) = check_bound(&runs, flavor == Flavor::MariaDb)?;
        assert_eq!((adoptions, redone <= slice_count(&runs)), (1, true), "one adoption, at most one chunk redone per slice: {redone}");
        Ok(())
    })
    .await;
}
