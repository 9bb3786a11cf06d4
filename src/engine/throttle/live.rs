//! Live changes of the settings that reach outside revenant (`throttle-query=`, `postpone-cut-over-flag-file=`),
//! checked as strictly as the flags: a throttle query is one read-only SELECT, a postpone flag file is a new path
//! or a file of this user, never an existing file of someone else's.

use std::path::PathBuf;

use crate::engine::shared::Shared;

use super::{flag_file, query};

/// Applies `throttle-query=` or `postpone-cut-over-flag-file=` (empty clears); the error says why it is refused.
pub fn set(shared: &Shared, name: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    match name {
        "throttle-query" if v.is_empty() => {
            shared.update_throttle_settings(|t| t.throttle_query = None);
            Ok("throttle-query cleared".into())
        }
        "throttle-query" => {
            let q = query::check_throttle_query(v)?;
            shared.update_throttle_settings(|t| t.throttle_query = Some(q.clone()));
            Ok(format!("throttle-query={q}"))
        }
        "postpone-cut-over-flag-file" if v.is_empty() => {
            shared.update_throttle_settings(|t| t.postpone_flag_file = None);
            Ok("postpone-cut-over-flag-file cleared".into())
        }
        "postpone-cut-over-flag-file" => {
            let path = check_flag_path(v)?;
            // Like at start: created when missing, so setting it postpones the cut-over.
            flag_file::create_or_adopt(name, &path)?;
            shared.update_throttle_settings(|t| t.postpone_flag_file = Some(path));
            Ok(format!("postpone-cut-over-flag-file={v}"))
        }
        other => Err(format!("'{other}' is not a setting of this kind")),
    }
}

/// A flag file path given live: absolute, one line, no `..` (so it names what it seems to name).
pub fn check_flag_path(v: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(v);
    if v.contains('\n') || v.contains('\0') {
        return Err("postpone-cut-over-flag-file must be a single-line path".into());
    }
    if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("postpone-cut-over-flag-file `{v}` must be an absolute path without `..`"));
    }
    Ok(p)
}
