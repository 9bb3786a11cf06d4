//! Throwaway database servers on 127.0.0.1: the test harness's servers and `revenant demo`'s sandbox.
//!
//! Each server gets a free port, a data directory copied from one template initialised per flavour per process,
//! binlog ROW/FULL with GTIDs, `event_scheduler=ON` and a unique server id; everything else is the server's default.
//! Servers stop on drop; a server also dies with the thread that started it (PR_SET_PDEATHSIG), so a test process
//! killed by a panic-abort or a signal leaves nothing running.

mod server;
mod topology;

pub use server::{Flavor, Server, ServerOptions, ServerTls};
pub use topology::{primary_with_replicas, replica_status, replicate_from, two_servers, wait_caught_up};

use color_eyre::eyre::{bail, Result};

/// The flavours selected by `REVENANT_TEST_FLAVORS` (comma separated: `mariadb`, `mysql`; default both).
pub fn selected_flavors() -> Result<Vec<Flavor>> {
    let raw = std::env::var("REVENANT_TEST_FLAVORS").unwrap_or_else(|_| "mariadb,mysql".to_string());
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name.parse::<Flavor>() {
            Ok(f) => {
                if !out.contains(&f) {
                    out.push(f)
                }
            }
            Err(e) => bail!("REVENANT_TEST_FLAVORS: {e}"),
        }
    }
    Ok(out)
}
