//! move-tables following a failover (issue 16, docs/failover.md), with real processes, two servers and the
//! harness's GTID replication on every selected flavour (needs the `failpoints` feature for the run trace): the
//! target killed -9 mid-copy while an application writes to the source, and the target's replica promoted; then
//! the source killed -9 mid-copy and its replica promoted. Each time revenant adopts the new server by itself (no
//! command), finishes the move (fence, drain, hooks) and ends done; the oracle compares every moved table on the
//! target with the fenced source table by checksum, and the run trace shows at most one chunk copied again. And a
//! target that dies with no promotion within `--failover-timeout`: exit 3 with the resume command, which, pointed at
//! the replica once it is promoted, finishes the move. And the source killed mid-drain (the fence done, the drain
//! GTID recorded, the run held at the drain by the `move-mid-drain=hold` fail point): the drain is finished on the
//! promoted replica without renaming again. And the source killed inside the cut-over, before the fence and right
//! after it (its drain GTID not recorded yet): the move ends on the promoted replica, fencing there or not again.

mod common;
mod move_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, Result};
use common::follow::{promote_applied, Lines};
use common::trace::{check_bound, read_trace};
use common::{each_flavor, stderr_of, Flavor, Server};
use move_support::{scratch, seed, verify_moved, AppWriter};

/// A move of `orders` and `items` from `source` to `target`, followed (`--retry-seconds 3`; the tests give
/// `--failover-timeout`), with the run trace and a hooks directory in `dir`.
fn revenant(source: &Server, target: &Server, db: &str, dir: &Path, extra: &[&str]) -> Proc {
    let mut p = Proc::new(env!("CARGO_BIN_EXE_revenant"));
    p.args(["move-tables", "--host", "127.0.0.1", "--port", &source.port.to_string(), "--user", "root", "--database", db])
        .args(["--tables", "orders,items", "--target-host", "127.0.0.1", "--target-port", &target.port.to_string()])
        .args(["--target-user", "root", "--status-json", "--chunk-size", "200", "--chunk-time-millis", "20", "--nice-ratio", "3"])
        .args(["--max-lag-millis", "10000", "--default-retries", "5", "--retry-seconds", "3"])
        .arg(format!("--hooks-path={}", dir.join("hooks").display()))
        .arg(format!("--serve-socket-file={}", dir.join("ctl.sock").display()))
        .args(extra)
        .env("REVENANT_TRACE_FILE", dir.join("trace.log"))
        .env_remove("REVENANT_FAILPOINTS")
        .env_remove("MYSQL_PWD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    p
}

/// A revenant-on-failover hook that writes its environment to `dir/hook.env`.
fn failover_hook(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let script = hooks.join("revenant-on-failover");
    std::fs::write(&script, format!("#!/bin/sh\nenv > '{}'\n", dir.join("hook.env").display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A move of `db` that follows its source to `replica`, held at the fail point `failpoint` (`name=hold...`) while
/// the returned hold file exists, its cut-over postponed by the returned flag file.
fn spawn_held(source: &Server, replica: &Server, target: &Server, db: &str, dir: &Path, failpoint: &str) -> Result<(Child, Lines, PathBuf, PathBuf)> {
    let (flag, hold) = (dir.join("postpone.flag"), dir.join("hold"));
    std::fs::write(&hold, "")?;
    let candidates = format!("--failover-candidates=127.0.0.1:{}", replica.port);
    let postpone = format!("--postpone-cut-over-flag-file={}", flag.display());
    let mut cmd = revenant(source, target, db, dir, &[&candidates, "--failover-timeout", "3m", &postpone]);
    cmd.env("REVENANT_FAILPOINTS", failpoint).env("REVENANT_FAILPOINT_HOLD", &hold);
    let mut child = cmd.spawn()?;
    let lines = Lines::of(&mut child)?;
    Ok((child, lines, flag, hold))
}

/// The held move's source killed -9 once its replica has everything, the replica promoted; the hold is let go
/// once the watch gave the source up (--retry-seconds 3), so the held step sees the attempt ended. Waits for the
/// adoption and the end of the move; its stderr.
async fn fail_over_held_source(source: &mut Server, replica: &Server, hold: &Path, child: &mut Child, lines: &mut Lines) -> Result<String> {
    revenant::sandbox::wait_caught_up(replica, source, Duration::from_secs(60)).await?;
    source.kill9();
    promote_applied(replica).await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    std::fs::remove_file(hold)?;
    adopted_then_done(child, lines, "source", replica)
}

/// A status line of the copy with at least `rows` copied, the second table not complete yet.
fn copied(l: &str, rows: u64) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { return false };
    v["phase"] == "copy" && v["copy"]["rows_copied"].as_u64().is_some_and(|n| n >= rows) && v["tables"][1]["complete"] == false
}

/// Waits for the adoption on `new` (the `side` named), then for the move to end; its stderr.
fn adopted_then_done(child: &mut Child, lines: &mut Lines, side: &str, new: &Server) -> Result<String> {
    let adopted_on = format!("\"adopted_on\":\"127.0.0.1:{}\"", new.port);
    if let Err(e) = lines.wait(Duration::from_secs(120), "the adoption", |l| l.contains(&adopted_on) && l.contains(&format!("\"side\":\"{side}\""))) {
        let _ = child.kill();
        bail!("{e:#}\n{}", stderr_of(child));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("the move did not end within 300s after the adoption\n{}", stderr_of(child));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = stderr_of(child);
    if !status.success() {
        bail!("the followed move failed: {status}\n{stderr}");
    }
    Ok(stderr)
}

/// What the trace, the log and the hook say after one adoption on `new` of `side` (given up: `old`).
fn check_adoption(dir: &Path, flavor: Flavor, stderr: &str, side: &str, old: u16, new: u16) -> Result<()> {
    assert!(stderr.contains(&format!("{side} adopted on 127.0.0.1:{new} at GTID")), "the log says where it adopted:\n{stderr}");
    assert!(stderr.contains("unreachable for") && stderr.contains("waiting up to"), "the log says why and that it waits:\n{stderr}");
    let runs = read_trace(&dir.join("trace.log"));
    let (adoptions, redone) = check_bound(&runs, flavor == Flavor::MariaDb)?;
    assert_eq!(adoptions, 1, "one failover, one adoption: {runs:?}");
    assert!(redone <= 1, "at most one chunk copied again (move-tables copies with one worker): {redone}");
    assert!(runs[0].committed.len() > 1, "the kill came after some chunks were copied (else the test proves little)");
    assert_ne!(runs[1].start_watermark, "start", "the adopted run continued a table's copy (the kill came mid-copy): {runs:?}");
    let env = std::fs::read_to_string(dir.join("hook.env")).map_err(|e| eyre!("revenant-on-failover did not run: {e}"))?;
    assert!(env.contains(&format!("REVENANT_OLD_PRIMARY=127.0.0.1:{old}")), "{env}");
    assert!(env.contains(&format!("REVENANT_NEW_PRIMARY=127.0.0.1:{new}")), "{env}");
    assert!(env.contains(&format!("REVENANT_FAILOVER_SIDE={side}")), "{env}");
    assert!(!env.contains("PASSWORD") && !env.contains("MYSQL_PWD"), "no secret in the hook's environment: {env}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_killed_mid_copy_the_promoted_target_replica_is_adopted() {
    each_flavor(|flavor| async move {
        let source = Server::start(flavor).await?;
        let (mut target, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        seed(&source, &target, "mtt", 30_000).await?;
        let dir = scratch("failover-target", source.port)?;
        failover_hook(&dir)?;
        let w1 = AppWriter::start(&source, "mtt", "orders", 5).await?;
        let w2 = AppWriter::start(&source, "mtt", "items", 9).await?;
        let candidates = format!("--target-failover-candidates=127.0.0.1:{}", replica.port);
        let mut child = revenant(&source, &target, "mtt", &dir, &[&candidates, "--failover-timeout", "3m"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "3000 rows copied", |l| copied(l, 3000))?;

        // The target dies mid-copy (the source and its writers go on); its replica applies what it received and
        // is promoted. revenant is told nothing.
        target.kill9();
        promote_applied(&replica).await?;
        let ended = adopted_then_done(&mut child, &mut lines, "target", &replica);
        let (ok1, _) = w1.stop().await?;
        let (ok2, _) = w2.stop().await?;
        let stderr = ended?;
        let counts = verify_moved(&source, &replica, "mtt").await?;
        eprintln!("[{flavor}] moved {counts:?} rows onto the promoted target ({} writes on the source)", ok1 + ok2);
        check_adoption(&dir, flavor, &stderr, "target", target.port, replica.port)?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_killed_mid_copy_the_promoted_source_replica_is_adopted() {
    each_flavor(|flavor| async move {
        let (mut source, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        let target = Server::start(flavor).await?;
        seed(&source, &target, "mts", 30_000).await?;
        let dir = scratch("failover-source", source.port)?;
        failover_hook(&dir)?;
        let w1 = AppWriter::start(&source, "mts", "orders", 5).await?;
        let w2 = AppWriter::start(&source, "mts", "items", 9).await?;
        let candidates = format!("--failover-candidates=127.0.0.1:{}", replica.port);
        let mut child = revenant(&source, &target, "mts", &dir, &[&candidates, "--failover-timeout", "3m"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "3000 rows copied", |l| copied(l, 3000))?;

        // The application stops writing and the replica catches up, then the source dies mid-copy (revenant's own
        // heartbeats go on until the kill) and the replica is promoted; the application writes there.
        let (ok1, _) = w1.stop().await?;
        let (ok2, _) = w2.stop().await?;
        revenant::sandbox::wait_caught_up(&replica, &source, Duration::from_secs(60)).await?;
        source.kill9();
        promote_applied(&replica).await?;
        let w1 = AppWriter::start(&replica, "mts", "orders", 7).await?;
        let w2 = AppWriter::start(&replica, "mts", "items", 11).await?;
        let ended = adopted_then_done(&mut child, &mut lines, "source", &replica);
        let (ok3, _) = w1.stop().await?;
        let (ok4, _) = w2.stop().await?;
        let stderr = ended?;
        let counts = verify_moved(&replica, &target, "mts").await?;
        eprintln!("[{flavor}] moved {counts:?} rows from the promoted source ({} writes before, {} after)", ok1 + ok2, ok3 + ok4);
        check_adoption(&dir, flavor, &stderr, "source", source.port, replica.port)?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_target_within_the_timeout_stops_resumably_then_resumes_there() {
    each_flavor(|flavor| async move {
        let source = Server::start(flavor).await?;
        let (mut target, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        seed(&source, &target, "mtn", 30_000).await?;
        let dir = scratch("failover-timeout", source.port)?;
        failover_hook(&dir)?;
        let candidates = format!("--target-failover-candidates=127.0.0.1:{}", replica.port);
        let mut child = revenant(&source, &target, "mtn", &dir, &[&candidates, "--failover-timeout", "8s"]).spawn()?;
        let mut lines = Lines::of(&mut child)?;
        lines.wait(Duration::from_secs(90), "3000 rows copied", |l| copied(l, 3000))?;
        target.kill9();
        // The replica still replicates (from a dead server): it is no primary, and the wait ends after 8s.
        let waiting = lines.wait(Duration::from_secs(30), "waiting for the target's new primary", |l| l.contains("\"waiting\":true") && l.contains("\"side\":\"target\""))?;
        assert!(waiting.contains("candidates_tried"), "{waiting}");
        let status = child.wait()?;
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(3), "a resumable stop after the timeout:\n{stderr}");
        assert!(stderr.contains("no new primary within --failover-timeout (8s) after the target"), "{stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{}: replicates from", replica.port)), "the candidate's verdict is given:\n{stderr}");
        assert!(stderr.contains("resume with: revenant move-tables") && stderr.contains("--resume"), "the resume command is printed:\n{stderr}");
        assert!(!dir.join("hook.env").exists(), "no adoption, no revenant-on-failover");
        // Once the replica is promoted, the command pointed at it (--target-port) finishes the move there.
        promote_applied(&replica).await?;
        let out = revenant(&source, &replica, "mtn", &dir, &["--resume", "--failover-timeout", "0"]).output()?;
        assert!(out.status.success(), "resume on the promoted target: {}", String::from_utf8_lossy(&out.stderr));
        let counts = verify_moved(&source, &replica, "mtn").await?;
        eprintln!("[{flavor}] resumed by hand on the promoted target: {counts:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_killed_mid_drain_the_drain_finishes_on_the_promoted_replica() {
    each_flavor(|flavor| async move {
        let (mut source, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        let target = Server::start(flavor).await?;
        seed(&source, &target, "mtd", 2_000).await?;
        let dir = scratch("failover-drain", source.port)?;
        failover_hook(&dir)?;
        let w1 = AppWriter::start(&source, "mtd", "orders", 5).await?;
        let w2 = AppWriter::start(&source, "mtd", "items", 9).await?;
        let (mut child, mut lines, flag, hold) = spawn_held(&source, &replica, &target, "mtd", &dir, "move-mid-drain=hold")?;
        lines.wait(Duration::from_secs(120), "ready to cut over", |l| l.contains("\"phase\":\"ready-to-cut-over\""))?;
        std::fs::remove_file(&flag)?;
        // The fence renames the source tables and the drain GTID is recorded; the run holds at the drain.
        lines.wait(Duration::from_secs(60), "the drain", |l| l.contains("\"step\":\"drain\""))?;
        let (_, missing1) = w1.stop().await?;
        let (_, missing2) = w2.stop().await?;
        let stderr = fail_over_held_source(&mut source, &replica, &hold, &mut child, &mut lines).await?;
        let counts = verify_moved(&replica, &target, "mtd").await?;
        eprintln!("[{flavor}] drained on the promoted source: {counts:?} ({} writes refused after the fence)", missing1 + missing2);
        assert!(stderr.contains(&format!("source adopted on 127.0.0.1:{} at GTID", replica.port)), "{stderr}");
        assert!(stderr.contains("fenced before the interruption: draining, never renaming again"), "the resume drained without a second rename:\n{stderr}");
        let env = std::fs::read_to_string(dir.join("hook.env")).map_err(|e| eyre!("revenant-on-failover did not run: {e}"))?;
        assert!(env.contains("REVENANT_FAILOVER_SIDE=source"), "{env}");
        Ok(())
    })
    .await;
}

/// The source killed -9 inside the move's cut-over, at `point` (held there by a fail point), the writers stopped
/// first: before the fence (`move-gate`: on the promoted replica the source tables still serve, and the fence is
/// done there) or right after it, before the drain GTID was recorded (`move-after-rename`: the replica has the
/// renamed tables, so the drain targets its executed set, never renaming again). The move ends done on the
/// promoted replica with the moved tables identical to the fenced source tables.
async fn source_killed_inside_the_fence(flavor: Flavor, point: &str) -> Result<()> {
    let (mut source, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
    let replica = replicas.remove(0);
    let target = Server::start(flavor).await?;
    seed(&source, &target, "mtf", 2_000).await?;
    let dir = scratch(&format!("failover-{point}"), source.port)?;
    failover_hook(&dir)?;
    let w1 = AppWriter::start(&source, "mtf", "orders", 5).await?;
    let w2 = AppWriter::start(&source, "mtf", "items", 9).await?;
    let (mut child, mut lines, flag, hold) = spawn_held(&source, &replica, &target, "mtf", &dir, &format!("{point}=hold@1"))?;
    lines.wait(Duration::from_secs(120), "ready to cut over", |l| l.contains("\"phase\":\"ready-to-cut-over\""))?;
    w1.stop().await?;
    w2.stop().await?;
    std::fs::remove_file(&flag)?;
    lines.wait(Duration::from_secs(60), "the cut-over", |l| l.contains("\"phase\":\"cut-over\""))?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stderr = fail_over_held_source(&mut source, &replica, &hold, &mut child, &mut lines).await?;
    let counts = verify_moved(&replica, &target, "mtf").await?;
    assert!(stderr.contains(&format!("fail point {point} hit (hold)")), "the first attempt was held at {point}:\n{stderr}");
    if point == "move-after-rename" {
        assert!(stderr.contains("fenced before the interruption"), "the adopted run found the fence done and did not rename again:\n{stderr}");
    }
    eprintln!("[{flavor}] source killed at {point}: moved {counts:?} on the promoted replica");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_killed_inside_the_fence_the_move_ends_on_the_promoted_replica() {
    each_flavor(|flavor| async move {
        source_killed_inside_the_fence(flavor, "move-gate").await?;
        source_killed_inside_the_fence(flavor, "move-after-rename").await
    })
    .await;
}
