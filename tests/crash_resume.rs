//! Crash safety, proven with real processes and real servers on every selected flavour (needs the `failpoints`
//! feature, as scripts/test builds it): kill -9 of revenant at seeded random moments under a concurrent writer
//! (copy, catch-up, postponed cut-over), resuming after each; kill -9 of the database server mid-copy; fail points
//! at every cut-over step (atomic, and two-step between its renames); SIGTERM with a state dump and --resume-state;
//! bad resumes refused; the single-run lock kept when its connection is killed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Proc};
use std::time::{Duration, Instant};

use color_eyre::eyre::{bail, eyre, Result};
use common::run::{Fixture, PACED};
use common::trace::{check_bound, read_trace};
use common::{each_flavor, exec_all, seed, stderr_of, table_checksum, Server, Writer};
use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};

const ALTER: &str = "ADD COLUMN f INT NOT NULL DEFAULT 1";

/// revenant with the postpone flag file (created when missing: the cut-over waits until the test removes it).
fn revenant(server: &Server, db: &str, fx: &Fixture, extra: &[&str]) -> Proc {
    common::run::migrate(server, db, fx, true, &[&["--alter", ALTER], &PACED[..], extra].concat())
}

/// revenant without a postponed cut-over.
fn revenant_unpostponed(server: &Server, db: &str, fx: &Fixture, extra: &[&str]) -> Proc {
    common::run::migrate(server, db, fx, false, &[&["--alter", ALTER], &PACED[..], extra].concat())
}

/// Reads status-JSON lines until `pred` holds on one (or the process ends); returns the stdout reader thread's lines.
fn wait_for_line(child: &mut Child, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Keep draining after the reader stops listening, so the process never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let hit = pred(&line);
                seen.push(line);
                if hit {
                    return Ok(seen);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(seen),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            bail!("timed out; last lines: {:?}", &seen[seen.len().saturating_sub(3)..]);
        }
    }
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_random_moments_then_resume() {
    each_flavor(|flavor| async move {
        let kills: usize = std::env::var("REVENANT_SOAK").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
        let seed: u64 = std::env::var("REVENANT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261122);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let server = Server::start(flavor).await?;
        seed_table(&server).await?;
        let fx = Fixture::new("crash", "kill", server.port)?;
        std::fs::write(&fx.postpone, b"")?;
        let writer = Writer::start(&server, "crash", "t", &["a", "b", "c", "d"], true).await?;
        let mut phases_killed: Vec<String> = Vec::new();
        for k in 0..kills {
            let mut cmd = revenant(&server, "crash", &fx, if k == 0 { &[] } else { &["--resume"] });
            let mut child = cmd.spawn()?;
            // The first half of the kills land at random moments of the copy; the second half at random moments
            // after it (catch-up, and the postponed cut-over).
            if k < kills / 2 {
                let wait_ms = rng.gen_range(150..700);
                let _ = wait_for_line(&mut child, Duration::from_millis(wait_ms), |_| false);
            } else {
                let _ = wait_for_line(&mut child, Duration::from_secs(120), |l| {
                    l.contains("\"phase\":\"catch-up\"") || l.contains("\"phase\":\"ready-to-cut-over\"")
                });
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..800)));
            }
            let phase = read_phase(&server).await.unwrap_or_default();
            child.kill()?; // SIGKILL
            let status = child.wait()?;
            if status.success() {
                bail!("run {k} finished before it was killed");
            }
            phases_killed.push(phase);
        }
        // The last run: let it reach the postponed cut-over, stop the writer, release the cut-over.
        let (child, ops) = resume_until_ready(&server, &fx, writer, kills).await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        release_cut_over(&fx, child)?;
        let mut c = server.conn().await?;
        let cols = ["id", "a", "b", "c", "d"];
        let old = table_checksum(&mut c, "crash", "_t_del", &cols).await?;
        let new = table_checksum(&mut c, "crash", "t", &cols).await?;
        assert_eq!(old, new, "rows differ after {kills} kills and resumes ({ops} writer ops)");
        let runs = read_trace(&fx.trace);
        let (resumes, redone) = check_bound(&runs, flavor == common::Flavor::MariaDb)?;
        // A run killed during its start-up traces nothing (it committed nothing); most runs get further.
        assert!(resumes * 2 >= kills, "only {resumes} of {kills} runs got past their start-up before the kill");
        eprintln!(
            "[{flavor}] {kills} kills (seed {seed}) in phases {phases_killed:?}; {resumes} resumes; {redone} chunks redone; {ops} writer ops; {} rows",
            old.0
        );
        assert!(phases_killed.iter().any(|p| p == "copy"), "no kill landed in the copy: {phases_killed:?}");
        assert!(
            phases_killed.iter().any(|p| p == "ready" || p == "catchup"),
            "no kill landed after the copy: {phases_killed:?}"
        );
        Ok(())
    })
    .await;
}

/// The parallel copy (`--copy-threads 3`): kill -9 at random moments of the copy under a writer, resume each time;
/// every slice resumes at its own last committed chunk (at most one chunk per slice copied again) and the tables
/// end identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_copy_killed_at_random_moments_resumes_every_slice() {
    each_flavor(|flavor| async move {
        let kills = 6;
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261207);
        let server = Server::start(flavor).await?;
        seed_table(&server).await?;
        let fx = Fixture::new("crash", "parallel", server.port)?;
        let writer = Writer::start(&server, "crash", "t", &["a", "b", "c", "d"], true).await?;
        for k in 0..kills {
            let resume: &[&str] = if k == 0 { &[] } else { &["--resume"] };
            let mut child = revenant(&server, "crash", &fx, &[&["--copy-threads", "3"], resume].concat()).spawn()?;
            let _ = wait_for_line(&mut child, Duration::from_millis(rng.gen_range(300..900)), |_| false);
            child.kill()?;
            if child.wait()?.success() {
                bail!("run {k} finished before it was killed");
            }
        }
        let (child, ops) = resume_until_ready(&server, &fx, writer, kills).await?;
        let mut c = server.conn().await?;
        let slices: Vec<String> = c.query("SELECT id FROM crash._t_ghk WHERE id LIKE 'copy%' ORDER BY id").await?;
        assert_eq!(slices, ["copy", "copy#2", "copy#3"], "three slices, each with its own watermark row");
        release_cut_over(&fx, child)?;
        let cols = ["id", "a", "b", "c", "d"];
        let old = table_checksum(&mut c, "crash", "_t_del", &cols).await?;
        let new = table_checksum(&mut c, "crash", "t", &cols).await?;
        assert_eq!(old, new, "rows differ after {kills} kills of a parallel copy ({ops} writer ops)");
        let runs = read_trace(&fx.trace);
        assert!(runs.iter().any(|r| r.slice_starts.len() == 3), "the runs traced three slices: {:?}", runs.iter().map(|r| &r.slice_starts).collect::<Vec<_>>());
        let sliced: std::collections::BTreeSet<usize> = runs.iter().flat_map(|r| r.committed_slice.iter().copied()).collect();
        assert_eq!(sliced.len(), 3, "chunks of all three slices committed: {sliced:?}");
        let (resumes, redone) = check_bound(&runs, flavor == common::Flavor::MariaDb)?;
        assert!(resumes * 2 >= kills, "only {resumes} of {kills} runs got past their start-up before the kill");
        eprintln!("[{flavor}] parallel copy: {kills} kills, {resumes} resumes, {redone} chunks redone over 3 slices; {ops} writer ops; {} rows", old.0);
        Ok(())
    })
    .await;
}

/// The parallel apply (`--apply-threads 3`, batches of 20 row events): kill -9 at random moments while a writer's
/// changes are applied (catch-up and the postponed cut-over), resume each time. Every resumed run streams from
/// between the last batch all writers committed and the one begun after it (at most one batch applied again:
/// `check_bound`), the last resume runs with the default writers (the position rows are spread to their number),
/// and the tables end identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_apply_killed_at_random_moments_redoes_at_most_one_batch() {
    each_flavor(|flavor| async move {
        let kills = 8;
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261208);
        let server = Server::start(flavor).await?;
        seed(&server, "crash", 20_000).await?;
        let fx = Fixture::new("crash", "apply", server.port)?;
        std::fs::write(&fx.postpone, b"")?;
        let writer = Writer::start(&server, "crash", "t", &["a", "b", "c", "d"], true).await?;
        for k in 0..kills {
            let resume: &[&str] = if k == 0 { &[] } else { &["--resume"] };
            let mut child = revenant(&server, "crash", &fx, &[&["--apply-threads", "3", "--dml-batch-size", "20"], resume].concat()).spawn()?;
            let _ = wait_for_line(&mut child, Duration::from_secs(120), |l| {
                l.contains("\"phase\":\"catch-up\"") || l.contains("\"phase\":\"ready-to-cut-over\"")
            });
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..1500)));
            child.kill()?;
            if child.wait()?.success() {
                bail!("run {k} finished before it was killed");
            }
        }
        let mut c = server.conn().await?;
        let rows: Vec<String> = c.query("SELECT id FROM crash._t_ghk WHERE id LIKE 'apply%' ORDER BY id").await?;
        assert_eq!(rows, ["apply", "apply#2", "apply#3"], "one position row per writer");
        let (child, ops) = resume_until_ready(&server, &fx, writer, kills).await?;
        let rows: Vec<String> = c.query("SELECT id FROM crash._t_ghk WHERE id LIKE 'apply%' ORDER BY id").await?;
        let writers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        assert_eq!(rows.len(), writers, "the rows were spread to the default writers: {rows:?}");
        release_cut_over(&fx, child)?;
        let cols = ["id", "a", "b", "c", "d"];
        let old = table_checksum(&mut c, "crash", "_t_del", &cols).await?;
        let new = table_checksum(&mut c, "crash", "t", &cols).await?;
        assert_eq!(old, new, "rows differ after {kills} kills of a parallel apply ({ops} writer ops)");
        let runs = read_trace(&fx.trace);
        let (resumes, _) = check_bound(&runs, flavor == common::Flavor::MariaDb)?;
        let batches: usize = runs.iter().map(|r| r.batches.len()).sum();
        let apart = runs.windows(2).filter(|w| w[0].batches_begun.last().is_some_and(|b| w[0].batches.last() != Some(b))).count();
        assert!(resumes * 2 >= kills, "only {resumes} of {kills} runs got past their start-up before the kill");
        assert!(batches > 100, "only {batches} batches were applied");
        eprintln!("[{flavor}] parallel apply: {kills} kills, {resumes} resumes, {batches} batches, {apart} kills with a batch in flight; {ops} writer ops; {} rows", old.0);
        Ok(())
    })
    .await;
}

/// The last run after `kills` kills: resumed until it waits at the postponed cut-over; the writer is stopped then
/// (its operation count returned).
async fn resume_until_ready(server: &Server, fx: &Fixture, writer: Writer, kills: usize) -> Result<(Child, u64)> {
    let mut child = revenant(server, "crash", fx, &["--resume"]).spawn()?;
    let ready = wait_for_line(&mut child, Duration::from_secs(180), |l| l.contains("\"phase\":\"ready-to-cut-over\""));
    let ops = writer.stop().await?;
    if let Err(e) = ready {
        let _ = child.kill();
        bail!("never got ready after {kills} kills: {e:#}\n{}", stderr_of(&mut child));
    }
    Ok((child, ops))
}

/// Removes the postpone flag file and waits for the run to finish its cut-over.
fn release_cut_over(fx: &Fixture, mut child: Child) -> Result<()> {
    std::fs::remove_file(&fx.postpone)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("final run failed: {status}\n{}", stderr_of(&mut child));
    }
    Ok(())
}

async fn seed_table(server: &Server) -> Result<()> {
    seed(server, "crash", 120_000).await
}

async fn read_phase(server: &Server) -> Result<String> {
    let mut c = server.conn().await?;
    let p: Option<Option<String>> = c.query_first("SELECT phase FROM crash._t_ghk WHERE id = 'summary'").await.unwrap_or(None);
    Ok(p.flatten().unwrap_or_default())
}

/// Runs revenant to the postponed cut-over with `failpoint` set (an `=exit` point kills the process like kill -9),
/// checks the original table still serves (or the migration completed), then resumes to completion.
async fn cutover_failpoint_case(server: &Server, db: &str, failpoint: &str) -> Result<()> {
    seed(server, db, 3000).await?;
    let fx = Fixture::new("crash", &format!("fp-{db}"), server.port)?;
    let writer = Writer::start(server, db, "t", &["a", "b", "c", "d"], true).await?;
    let mut cmd = revenant(server, db, &fx, &["--default-retries", "1"]);
    cmd.env("REVENANT_FAILPOINTS", failpoint);
    let mut child = cmd.spawn()?;
    let ready = wait_for_line(&mut child, Duration::from_secs(120), |l| l.contains("\"phase\":\"ready-to-cut-over\""));
    let ops = writer.stop().await?;
    ready?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_file(&fx.postpone)?;
    let status = child.wait()?;
    let err = stderr_of(&mut child);
    assert!(!status.success(), "{failpoint}: the fail point did not stop the run: {err}");
    // Never a missing table, never a lost row: the original serves (or the swap is complete).
    let mut c = server.conn().await?;
    let tables: Vec<String> = c
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (db,))
        .await?;
    assert!(tables.contains(&"t".to_string()), "{failpoint}: table t is missing after the crash: {tables:?}");
    let n: Option<u64> = c.query_first(format!("SELECT COUNT(*) FROM {db}.t")).await?;
    assert!(n.unwrap_or(0) > 0, "{failpoint}: t is empty");
    // Resume to the end (the flag file is gone: no postponement).
    let out = revenant_unpostponed(server, db, &fx, &["--resume"]).output()?;
    assert!(
        out.status.success(),
        "{failpoint}: resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cols = ["id", "a", "b", "c", "d"];
    let old = table_checksum(&mut c, db, "_t_del", &cols).await?;
    let new = table_checksum(&mut c, db, "t", &cols).await?;
    assert_eq!(old, new, "{failpoint}: rows differ after crash + resume ({ops} writer ops)");
    let leftovers: Vec<String> = c
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('_t_gho','_t_ghc','_t_ghk')",
            (db,),
        )
        .await?;
    assert!(leftovers.is_empty(), "{failpoint}: artifacts left after the resumed migration: {leftovers:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_cut_over_step_leaves_a_serving_table_and_resumes() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        let points = [
            "cutover-after-sentry=exit",
            "cutover-after-lock=exit",
            "cutover-after-rename-queued=exit",
            "cutover-before-unlock=exit",
            "after-swap=exit",
            "cutover-after-lock",
            "cutover-before-unlock",
        ];
        for (i, fp) in points.iter().enumerate() {
            cutover_failpoint_case(&server, &format!("fp{i}"), fp).await.map_err(|e| e.wrap_err(format!("fail point {fp}")))?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_dumps_state_and_resume_state_checks_it() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "sig", 60_000).await?;
        let fx = Fixture::new("crash", "sig", server.port)?;
        let state = fx.dir.join("state.json");
        let writer = Writer::start(&server, "sig", "t", &["a", "b", "c", "d"], true).await?;
        let mut child = revenant(&server, "sig", &fx, &[&format!("--state-file={}", state.display())]).spawn()?;
        let _ = wait_for_line(&mut child, Duration::from_secs(60), |l| l.contains("\"phase\":\"copy\""));
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait()?;
        assert_eq!(status.code(), Some(3), "SIGTERM exits with 3 (stopped, resumable): {}", stderr_of(&mut child));
        let dump: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state)?)?;
        assert_eq!(dump["table"], "t");
        assert!(dump["resume_command"].as_str().unwrap_or("").contains("--resume"));
        assert!(!dump.to_string().to_lowercase().contains("password"), "no password in the dump");
        // A tampered dump is refused before anything is changed.
        let mut bad = dump.clone();
        bad["applied_gtid_set"] = serde_json::Value::String("0-1-1".into());
        let tampered = fx.dir.join("tampered.json");
        std::fs::write(&tampered, bad.to_string())?;
        let out = revenant(&server, "sig", &fx, &[&format!("--resume-state={}", tampered.display())]).output()?;
        assert_eq!(out.status.code(), Some(2), "tampered dump refused: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("disagrees with the checkpoint"));
        // The real dump resumes; run a while, stop again: the first dump is now stale and refused.
        let mut child = revenant(&server, "sig", &fx, &[&format!("--resume-state={}", state.display()), &format!("--state-file={}.2", state.display())]).spawn()?;
        let _ = wait_for_line(&mut child, Duration::from_secs(60), |l| l.contains("\"rows_copied\"") && !l.contains("\"rows_copied\":0,"));
        std::thread::sleep(Duration::from_millis(500));
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait()?;
        assert_eq!(status.code(), Some(3), "second SIGTERM: {}", stderr_of(&mut child));
        let out = revenant(&server, "sig", &fx, &[&format!("--resume-state={}", state.display())]).output()?;
        assert_eq!(out.status.code(), Some(2), "stale dump refused: {}", String::from_utf8_lossy(&out.stderr));
        let ops = writer.stop().await?;
        std::fs::remove_file(&fx.postpone)?;
        let out = revenant_unpostponed(&server, "sig", &fx, &[&format!("--resume-state={}.2", state.display())]).output()?;
        assert!(out.status.success(), "resume from the fresh dump: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = server.conn().await?;
        let cols = ["id", "a", "b", "c", "d"];
        assert_eq!(
            table_checksum(&mut c, "sig", "_t_del", &cols).await?,
            table_checksum(&mut c, "sig", "t", &cols).await?,
            "rows differ after SIGTERM + resume ({ops} writer ops)"
        );
        Ok(())
    })
    .await;
}

async fn count_tables(c: &mut mysql_async::Conn) -> Result<Option<u64>> {
    Ok(c.query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='bad'").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resumes_are_refused_and_drop_nothing() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "bad", 20_000).await?;
        let fx = Fixture::new("crash", "bad", server.port)?;
        // Start, then kill during the copy, once a chunk has committed (the ghost holds rows).
        let mut child = revenant(&server, "bad", &fx, &[]).spawn()?;
        let _ = wait_for_line(&mut child, Duration::from_secs(60), |l| {
            l.contains("\"phase\":\"copy\"") && !l.contains("\"rows_copied\":0,")
        });
        child.kill()?;
        child.wait()?;
        let mut c = server.conn().await?;
        let before = count_tables(&mut c).await?;
        // A different ALTER.
        let p = revenant(&server, "bad", &fx, &["--resume"]);
        let args: Vec<String> = p.get_args().map(|a| a.to_string_lossy().to_string()).collect();
        let mut p2 = Proc::new(env!("CARGO_BIN_EXE_revenant"));
        p2.args(args.iter().map(|a| if a == ALTER { "ADD COLUMN g INT" } else { a.as_str() }));
        let out = p2.output()?;
        assert_eq!(out.status.code(), Some(2), "different ALTER refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("ALTER differs"), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(count_tables(&mut c).await?, before, "nothing dropped");
        // The original table altered meanwhile.
        c.query_drop("ALTER TABLE bad.t ADD COLUMN z INT").await?;
        let out = revenant(&server, "bad", &fx, &["--resume"]).output()?;
        assert_eq!(out.status.code(), Some(2), "altered original refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("changed since the migration began"));
        c.query_drop("ALTER TABLE bad.t DROP COLUMN z").await?;
        // The ghost table missing.
        c.query_drop("RENAME TABLE bad._t_gho TO bad._t_gho_aside").await?;
        let out = revenant(&server, "bad", &fx, &["--resume"]).output()?;
        assert_eq!(out.status.code(), Some(2), "missing ghost refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("ghost table"));
        c.query_drop("RENAME TABLE bad._t_gho_aside TO bad._t_gho").await?;
        assert_eq!(count_tables(&mut c).await?, before, "nothing dropped by the refusals");
        // Purged binlogs: rotate and purge past the checkpoint's position.
        c.query_drop("FLUSH BINARY LOGS").await?;
        c.query_drop("INSERT INTO bad.t (a, b, c, d) VALUES (1, 'after', NOW(), 1)").await?;
        c.query_drop("FLUSH BINARY LOGS").await?;
        let (file, _) = revenant::engine::stream::binlog::binlog_file_pos(&mut c).await?;
        // A file a dump thread still reads is skipped by PURGE (MariaDB warns only): the killed run's or a refused
        // resume's stream may not have been noticed gone yet, so purge until the first file left is `file`.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            c.query_drop(format!("PURGE BINARY LOGS TO '{file}'")).await?;
            let logs: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await?;
            let first: Option<String> = logs.first().and_then(|r| r.get(0));
            if first.as_deref() == Some(file.as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "the binary logs before {file} were not purged: {first:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let out = revenant(&server, "bad", &fx, &["--resume", "--retry-seconds", "3"]).output()?;
        assert!(!out.status.success(), "resume past purged binlogs must fail");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains("purged") || err.contains("no longer available"), "purged binlogs named: {err}");
        let n: u64 = c.query_first("SELECT COUNT(*) FROM bad._t_gho").await?.unwrap_or(0);
        assert!(n > 0, "the ghost table was kept");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_server_killed_mid_copy_then_resumed() {
    each_flavor(|flavor| async move {
        let mut server = Server::start(flavor).await?;
        seed(&server, "srv", 120_000).await?;
        let fx = Fixture::new("crash", "srv", server.port)?;
        // Without following (tests/failover.rs has the server's return adopted by itself): the run stops.
        let mut child = revenant(&server, "srv", &fx, &["--retry-seconds", "5", "--failover-timeout", "0"]).spawn()?;
        let _ = wait_for_line(&mut child, Duration::from_secs(60), |l| l.contains("\"phase\":\"copy\""));
        std::thread::sleep(Duration::from_millis(400));
        server.kill9();
        let status = child.wait()?;
        let err = stderr_of(&mut child);
        assert!(!status.success(), "the migration cannot finish without its server");
        assert!(err.contains("--resume"), "the exact resume command is printed: {err}");
        server.restart().await?;
        std::fs::remove_file(&fx.postpone)?;
        let out = revenant_unpostponed(&server, "srv", &fx, &["--resume"]).output()?;
        assert!(out.status.success(), "resume after the server crash: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = server.conn().await?;
        let cols = ["id", "a", "b", "c", "d"];
        assert_eq!(
            table_checksum(&mut c, "srv", "_t_del", &cols).await?,
            table_checksum(&mut c, "srv", "t", &cols).await?,
            "rows differ after a server crash and resume"
        );
        Ok(())
    })
    .await;
}

/// Makes a replica the primary: replication stopped and forgotten, writable.
async fn promote(replica: &Server) -> Result<()> {
    let mut c = replica.conn().await?;
    match replica.flavor {
        common::Flavor::MariaDb => exec_all(&mut c, "STOP SLAVE;\nRESET SLAVE ALL;\nSET GLOBAL read_only = 0").await,
        common::Flavor::MySql => {
            exec_all(&mut c, "STOP REPLICA;\nRESET REPLICA ALL;\nSET GLOBAL super_read_only = 0;\nSET GLOBAL read_only = 0").await
        }
    }
}

/// Failover in the middle of a migration: revenant is killed (-9) mid-copy on the primary, the replica catches up
/// and is promoted, the old primary goes away, the application writes to the new primary, and the same command with
/// `--resume` and the new host continues there: the checkpoint rows and the ghost table replicated with the data,
/// and the stored position is a GTID set that the promoted replica's binary log holds. Oracle on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_a_promoted_replica_after_failover() {
    each_flavor(|flavor| async move {
        let (mut primary, mut replicas) = revenant::sandbox::primary_with_replicas(flavor, 1).await?;
        let replica = replicas.remove(0);
        seed(&primary, "fo", 60_000).await?;
        let fx = Fixture::new("crash", "fo", primary.port)?;
        let writer = Writer::start(&primary, "fo", "t", &["a", "b", "c", "d"], true).await?;
        let mut child = revenant(&primary, "fo", &fx, &[]).spawn()?;
        let seen = wait_for_line(&mut child, Duration::from_secs(60), |l| {
            l.contains("\"phase\":\"copy\"") && !l.contains("\"rows_copied\":0,")
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        child.kill()?;
        child.wait()?;
        seen?;
        let ops_before = writer.stop().await?;
        let mut pc = primary.conn().await?;
        let (copied_before,): (u64,) =
            // Every slice's row (two copy workers by default here: the first slice's row alone may still be 0).
            pc.query_first("SELECT CAST(COALESCE(SUM(rows_copied), 0) AS UNSIGNED) FROM fo._t_ghk WHERE id = 'copy' OR id LIKE 'copy#%'").await?.unwrap_or((0,));
        drop(pc);
        revenant::sandbox::wait_caught_up(&replica, &primary, Duration::from_secs(60)).await?;

        // Failover: the primary is gone, the replica takes its place and the application follows it.
        primary.stop();
        promote(&replica).await?;
        let writer = Writer::start(&replica, "fo", "t", &["a", "b", "c", "d"], true).await?;
        let fx2 = Fixture::new("crash", "fo-promoted", replica.port)?;
        let mut child = revenant(&replica, "fo", &fx2, &["--resume"]).spawn()?;
        let ready = wait_for_line(&mut child, Duration::from_secs(180), |l| l.contains("\"phase\":\"ready-to-cut-over\""));
        let ops_after = writer.stop().await?;
        if let Err(e) = ready {
            let _ = child.kill();
            bail!("the resumed run on the promoted replica never got ready: {e:#}\n{}", stderr_of(&mut child));
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        std::fs::remove_file(&fx2.postpone)?;
        let status = child.wait()?;
        let stderr = stderr_of(&mut child);
        if !status.success() {
            bail!("the resumed run failed: {status}\n{stderr}");
        }
        assert!(stderr.contains("resumed at"), "the resume says where it continued:\n{stderr}");
        assert!(copied_before > 0, "the kill came after some chunks were copied (else the test proves little)");
        let mut c = replica.conn().await?;
        let cols = ["id", "a", "b", "c", "d"];
        let old = table_checksum(&mut c, "fo", "_t_del", &cols).await?;
        let new = table_checksum(&mut c, "fo", "t", &cols).await?;
        assert_eq!(old, new, "rows differ after failover and resume ({ops_before} + {ops_after} writer ops)");
        assert!(old.0 >= 60_000 / 2, "the migrated table holds the rows: {old:?}");
        Ok(())
    })
    .await;
}

/// The tables of `db`, sorted.
async fn tables_of(c: &mut mysql_async::Conn, db: &str) -> Result<Vec<String>> {
    Ok(c.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1", (db,)).await?)
}

/// A two-step cut-over stopped at `failpoint` under a writer; `half` says whether it must have stopped between its
/// renames (no `t`: the original is `_t_del`). Either way `--resume` completes it with nothing lost.
async fn two_step_case(server: &Server, db: &str, failpoint: &str, half: bool) -> Result<()> {
    seed(server, db, 3000).await?;
    let fx = Fixture::new("crash", &format!("two-{db}"), server.port)?;
    let writer = Writer::start(server, db, "t", &["a", "b", "c", "d"], true).await?;
    let mut cmd = revenant(server, db, &fx, &["--default-retries", "1", "--cut-over", "two-step"]);
    cmd.env("REVENANT_FAILPOINTS", failpoint);
    let mut child = cmd.spawn()?;
    let ready = wait_for_line(&mut child, Duration::from_secs(120), |l| l.contains("\"phase\":\"ready-to-cut-over\""));
    let ops = writer.stop().await?;
    ready?;
    std::fs::remove_file(&fx.postpone)?;
    let status = child.wait()?;
    let err = stderr_of(&mut child);
    assert!(!status.success(), "{failpoint}: the fail point did not stop the run: {err}");
    let mut c = server.conn().await?;
    let tables = tables_of(&mut c, db).await?;
    assert_eq!(!tables.contains(&"t".to_string()), half, "{failpoint}: tables after the crash: {tables:?}; {err}");
    if !half {
        assert!(err.contains("renamed back and serves") || err.contains("fail point"), "{failpoint}: {err}");
    }
    let out = revenant_unpostponed(server, db, &fx, &["--resume", "--cut-over", "two-step"]).output()?;
    assert!(out.status.success(), "{failpoint}: resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let cols = ["id", "a", "b", "c", "d"];
    let old = table_checksum(&mut c, db, "_t_del", &cols).await?;
    let new = table_checksum(&mut c, db, "t", &cols).await?;
    assert_eq!(old, new, "{failpoint}: rows differ after crash + resume ({ops} writer ops)");
    let mut tables = tables_of(&mut c, db).await?;
    tables.sort();
    assert_eq!(tables, vec!["_t_del".to_string(), "t".to_string()], "{failpoint}: tables after the resume");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_cut_over_stopped_between_its_renames_is_finished_by_resume() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        // A crash right after `RENAME t TO _t_del` (before the fix: --resume refused, "table t does not exist").
        two_step_case(&server, "two0", "cutover-two-step-after-first-rename=exit", true).await?;
        // The second rename fails: the original is renamed back and serves (the old message claimed so without it).
        two_step_case(&server, "two1", "cutover-two-step-second-rename", false).await?;
        // A crash right after that rename back, before a checkpoint passed it: the resumed stream reads the
        // rename back (before the fix: "the original table was changed during the run", resume refused).
        two_step_case(&server, "two3", "cutover-two-step-second-rename,cutover-two-step-after-rollback=exit", false).await?;
        // A crash in the resumed run right before its rename: the next resume still finishes it.
        seed(&server, "two2", 2000).await?;
        let fx = Fixture::new("crash", "two2", server.port)?;
        let mut first = revenant_unpostponed(&server, "two2", &fx, &["--cut-over", "two-step"]);
        first.env("REVENANT_FAILPOINTS", "cutover-two-step-after-first-rename=exit");
        assert!(!first.output()?.status.success());
        let mut again = revenant_unpostponed(&server, "two2", &fx, &["--resume", "--cut-over", "two-step"]);
        again.env("REVENANT_FAILPOINTS", "before-finish-rename=exit");
        assert!(!again.output()?.status.success());
        let out = revenant_unpostponed(&server, "two2", &fx, &["--resume", "--cut-over", "two-step"]).output()?;
        assert!(out.status.success(), "second resume: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = server.conn().await?;
        let cols = ["id", "a", "b", "c", "d"];
        assert_eq!(table_checksum(&mut c, "two2", "_t_del", &cols).await?, table_checksum(&mut c, "two2", "t", &cols).await?);
        Ok(())
    })
    .await;
}

/// Who holds the named lock now (connection id), if anyone.
async fn lock_holder(c: &mut mysql_async::Conn, name: &str) -> Result<Option<u64>> {
    let v: Option<Option<u64>> = c.exec_first("SELECT IS_USED_LOCK(?)", (name,)).await?;
    Ok(v.flatten())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_run_lock_survives_a_kill_of_its_connection() {
    each_flavor(|flavor| async move {
        let server = Server::start(flavor).await?;
        seed(&server, "lk", 3000).await?;
        let fx = Fixture::new("crash", "lk", server.port)?;
        let mut child = revenant(&server, "lk", &fx, &[]).spawn()?;
        let ready = wait_for_line(&mut child, Duration::from_secs(120), |l| l.contains("\"phase\":\"ready-to-cut-over\""));
        ready?;
        let mut c = server.conn().await?;
        let name = "revenant.lk.t";
        let first = lock_holder(&mut c, name).await?.ok_or_else(|| eyre!("nobody holds {name}"))?;
        c.query_drop(format!("KILL {first}")).await?;
        // Before the fix nobody held the lock again, and a second run could take it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let again = loop {
            match lock_holder(&mut c, name).await? {
                Some(id) if id != first => break id,
                _ if Instant::now() > deadline => bail!("the lock was not taken again after its connection was killed"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let fx2 = Fixture::new("crash", "lk2", server.port)?;
        let second = revenant_unpostponed(&server, "lk", &fx2, &["--resume"]).output()?;
        let err = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(2), "a second run must be refused: {err}");
        assert!(err.contains("another migration of lk.t is running"), "{err}");
        assert_eq!(lock_holder(&mut c, name).await?, Some(again), "the refused run took nothing");
        // The first run still owns the migration and completes it.
        std::fs::remove_file(&fx.postpone)?;
        let status = child.wait()?;
        assert!(status.success(), "the first run: {}", stderr_of(&mut child));
        let cols = ["id", "a", "b", "c", "d"];
        assert_eq!(table_checksum(&mut c, "lk", "_t_del", &cols).await?, table_checksum(&mut c, "lk", "t", &cols).await?);
        Ok(())
    })
    .await;
}
