//! The old table's name: `_<base>_del`, or with gh-ost's `--timestamp-old-table` `_<base>_<YYYYMMDDhhmmss>_del`
//! after the run's start time (local time, as gh-ost). The name is fixed when a migration starts and recorded in
//! its checkpoint (`old-table` row); every resumed run reads it back from there, with or without the flag, so a
//! crash between the two renames of a cut-over is always finished with the name the first run chose.

use std::ffi::CStr;

use color_eyre::eyre::Result;

use crate::engine::checkpoint;
use crate::engine::config::MigrationConfig;
use crate::engine::plan::preflight::refuse;

/// Sets `cfg.old_table_name` for this run (see the module doc); `timestamped`: `--timestamp-old-table` was given.
pub async fn resolve(cfg: &mut MigrationConfig, timestamped: bool) -> Result<()> {
    if cfg.run.resume {
        return take_recorded(cfg, timestamped).await;
    }
    if timestamped {
        let name = cfg.timestamped_old_table(&local_time(c"%Y%m%d%H%M%S"));
        if name.chars().count() > 64 {
            return Err(refuse(
                format!("the old table's name `{name}` (--timestamp-old-table) is longer than the server's 64 characters"),
                "give a shorter base for the helper tables with --force-table-names=NAME (at most 44 characters), or leave out --timestamp-old-table",
            ));
        }
        cfg.old_table_name = Some(name);
    }
    Ok(())
}

/// A resumed run: the name in the checkpoint (none there: the default, or the run's refusal comes later).
async fn take_recorded(cfg: &mut MigrationConfig, timestamped: bool) -> Result<()> {
    let mut conn = crate::engine::connection::connect(cfg.source.opts())
        .await
        .map_err(|e| refuse(format!("cannot connect to {}: {e}", cfg.source.display()), cfg.source.connect_hint()))?;
    let state = checkpoint::read(&mut conn, &cfg.database, &cfg.checkpoint_table()).await;
    let _ = conn.disconnect().await;
    match state?.and_then(|st| st.old_table) {
        Some(name) if name != cfg.default_old_table() => cfg.old_table_name = Some(name),
        Some(_) | None if timestamped => tracing::warn!(
            "the migration began without --timestamp-old-table: the original is renamed to {} as its first run decided",
            cfg.default_old_table()
        ),
        _ => {}
    }
    Ok(())
}

/// Now in the local time zone, formatted by strftime(3).
pub fn local_time(format: &CStr) -> String {
    // SAFETY: time(NULL), localtime_r into our own struct and strftime into our own buffer of the given length.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_is_gh_osts_fourteen_digits() {
        let stamp = local_time(c"%Y%m%d%H%M%S");
        assert_eq!(stamp.len(), 14, "{stamp}");
        assert!(stamp.chars().all(|c| c.is_ascii_digit()), "{stamp}");
        let source = crate::engine::config::ConnectionConfig {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "root".into(),
            password: Default::default(),
            socket: None,
            tls: None,
            gtid_domain_id: None,
        };
        let cfg = MigrationConfig::new(source, "d", "orders", "ADD COLUMN c INT");
        assert_eq!(cfg.timestamped_old_table("20261203140501"), "_orders_20261203140501_del");
        assert_eq!(cfg.old_table(), "_orders_del");
    }
}
