//! Named fail points for crash tests. Built only with the `failpoints` feature; `REVENANT_FAILPOINTS=name,...`
//! makes the named points fail (`name`) or kill the process at once (`name=exit`, a crash without clean-up), or
//! wait there while the file `REVENANT_FAILPOINT_HOLD` exists (`name=hold`: a test does something meanwhile);
//! `name@N` / `name=exit@N` act on the point's N-th hit only (counted per process).

use color_eyre::eyre::Result;

/// Fails (or exits) here when this point is named in `REVENANT_FAILPOINTS`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> Result<()> {
    use color_eyre::eyre::bail;
    let Ok(list) = std::env::var("REVENANT_FAILPOINTS") else { return Ok(()) };
    for item in list.split(',').map(str::trim) {
        let (item, nth) = match item.split_once('@') {
            Some((i, n)) => (i, n.parse::<u64>().ok()),
            None => (item, None),
        };
        let (n, action) = item.split_once('=').unwrap_or((item, "error"));
        if n == name && nth.is_none_or(|want| nth_hit(name) == want) {
            tracing::warn!("fail point {name} hit ({action})");
            if action == "exit" {
                // Like kill -9: no destructors, no checkpoint.
                std::process::abort();
            }
            if action == "hold" {
                hold();
                return Ok(());
            }
            bail!("fail point {name}");
        }
    }
    Ok(())
}

/// Waits while the file named by `REVENANT_FAILPOINT_HOLD` exists, off the async workers (block_in_place) when on
/// a multi-threaded runtime, so the run's other tasks go on.
#[cfg(feature = "failpoints")]
fn hold() {
    let Some(path) = std::env::var_os("REVENANT_FAILPOINT_HOLD").map(std::path::PathBuf::from) else { return };
    let wait = || {
        while path.exists() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}

/// Counts this hit of `name` (1 for the first).
#[cfg(feature = "failpoints")]
fn nth_hit(name: &str) -> u64 {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static HITS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let Ok(mut guard) = HITS.lock() else { return 0 };
    let n = guard.get_or_insert_with(HashMap::new).entry(name.to_string()).or_insert(0);
    *n += 1;
    *n
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> Result<()> {
    Ok(())
}

/// Test builds: appends a line to `REVENANT_TRACE_FILE` (and syncs it), so crash tests can tell what a killed run
/// attempted from what it committed.
#[cfg(feature = "failpoints")]
pub fn trace(line: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("REVENANT_TRACE_FILE") else { return };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        // One write call per line: a kill -9 cannot leave half a line for the next run to continue.
        let text = format!("{} {line}\n", std::process::id());
        let _ = f.write_all(text.as_bytes());
        let _ = f.sync_data();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn trace(_line: &str) {}
