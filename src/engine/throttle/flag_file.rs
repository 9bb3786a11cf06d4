//! Flag files (`--postpone-cut-over-flag-file`, `--throttle-flag-file`, `--panic-flag-file`, ...) and other files
//! revenant writes: created exclusively (`O_EXCL`, never through a symlink), never adopted or removed when they
//! belong to another user, and written with mode 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Who owns an existing path, or why it is refused; `Ok(None)` when nothing is there.
fn existing_owner(path: &Path) -> Result<Option<u32>, String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(format!("{} is a symbolic link; revenant does not follow it", path.display())),
        Ok(m) if !m.file_type().is_file() => Err(format!("{} exists and is not a regular file", path.display())),
        Ok(m) => Ok(Some(m.uid())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot inspect {}: {e}", path.display())),
    }
}

/// The effective user id of this process.
pub fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a throttle or panic flag file is set: a regular file (not followed through a symlink) of this user or
/// root. One of another user's is ignored (with one warning per path), so no other user can throttle or stop the
/// migration by creating the file after it started.
pub fn is_set(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() && (m.uid() == my_uid() || m.uid() == 0) => true,
        Ok(m) => {
            static WARNED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
            if let Ok(mut w) = WARNED.lock() {
                if !w.iter().any(|p| p == path) {
                    w.push(path.to_path_buf());
                    tracing::warn!(
                        "ignoring flag file {}: not a regular file of uid {} or root (uid {}, {:?})",
                        path.display(),
                        my_uid(),
                        m.uid(),
                        m.file_type()
                    );
                }
            }
            false
        }
        Err(_) => false,
    }
}

/// Refuses a flag file that exists but is not a regular file of this user (another user could otherwise throttle,
/// postpone or stop the migration, or have revenant delete their file). A missing path is fine.
pub fn check_not_foreign(flag: &str, path: &Path) -> Result<(), String> {
    match existing_owner(path) {
        Ok(Some(uid)) if uid != my_uid() => Err(format!(
            "{flag} {} belongs to another user (uid {uid}, revenant runs as uid {}); refusing to use it",
            path.display(),
            my_uid()
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

/// Creates a flag file exclusively (mode 0600, `O_EXCL | O_NOFOLLOW`), or adopts one this user already owns.
/// Returns true when it was created now.
pub fn create_or_adopt(flag: &str, path: &Path) -> Result<bool, String> {
    check_not_foreign(flag, path)?;
    match OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(_) => Ok(true),
        // Appeared since the check: check again what it is, then adopt it only if it is ours.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check_not_foreign(flag, path).map(|_| false),
        Err(e) => Err(format!("{flag}: cannot create {}: {e}", path.display())),
    }
}

/// Removes a flag file only when it is a regular file of this user; anything else is left alone (and said so).
pub fn remove_own(path: &Path) -> Result<(), String> {
    match existing_owner(path)? {
        None => Ok(()),
        Some(uid) if uid != my_uid() => Err(format!("{} belongs to uid {uid}; not removing it", path.display())),
        Some(_) => std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display())),
    }
}

/// Writes `bytes` to a file this user owns, mode 0600, never through a symlink: a new file is created
/// exclusively; an existing regular file of this user is truncated; anything else is refused.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    check_not_foreign("the file", path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open {} for writing: {e}", path.display()))?;
    let meta = f.metadata().map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if meta.uid() != my_uid() || !meta.is_file() {
        return Err(format!("{} is not a regular file of this user; not writing to it", path.display()));
    }
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("cannot set mode 0600 on {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("revenant-flag-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn created_exclusively_adopted_when_ours_and_refused_otherwise() {
        let d = dir("own");
        let f = d.join("postpone");
        assert_eq!(create_or_adopt("--x", &f), Ok(true));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(create_or_adopt("--x", &f), Ok(false), "our own file is adopted");
        let link = d.join("link");
        std::os::unix::fs::symlink(&f, &link).expect("symlink");
        let e = create_or_adopt("--x", &link).expect_err("symlink");
        assert!(e.contains("symbolic link"), "{e}");
        assert!(write_private(&link, b"x").is_err(), "never written through a symlink");
        assert!(remove_own(&link).is_err() && f.exists(), "a symlink is not removed, nor its target");
        let e = create_or_adopt("--x", &d).expect_err("a directory");
        assert!(e.contains("not a regular file"), "{e}");
        remove_own(&f).expect("remove ours");
        assert!(!f.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_of_another_user_is_refused_and_kept() {
        if my_uid() != 0 {
            eprintln!("skipped: needs root to chown a file to another user");
            return;
        }
        let d = dir("foreign");
        let f = d.join("theirs");
        std::fs::write(&f, b"theirs").expect("write");
        std::os::unix::fs::chown(&f, Some(65534), Some(65534)).expect("chown");
        let e = create_or_adopt("--postpone-cut-over-flag-file", &f).expect_err("foreign");
        assert!(e.contains("belongs to another user (uid 65534"), "{e}");
        assert!(remove_own(&f).is_err() && f.exists(), "another user's file is never removed");
        assert!(write_private(&f, b"x").is_err());
        assert_eq!(std::fs::read(&f).expect("read"), b"theirs");
        assert!(!is_set(&f), "another user's flag file neither throttles nor stops the migration");
        std::os::unix::fs::chown(&f, Some(0), Some(0)).expect("chown");
        assert!(is_set(&f), "root's does");
        let link = d.join("link");
        std::os::unix::fs::symlink(&f, &link).expect("symlink");
        assert!(!is_set(&link), "a symlink is not followed");
        let _ = std::fs::remove_dir_all(&d);
    }
}
