//! Who may drive a migration: the control socket is bound 0600 from the start (inside a private directory, then
//! linked into place, so no other user ever sees it open), a path someone else made is refused instead of
//! adopted, Unix clients must be the same user (or root), and TCP clients must first send a token that only the
//! owner can read.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, WrapErr};
use color_eyre::Section;
use tokio::net::{UnixListener, UnixStream};

use crate::engine::throttle::flag_file::{my_uid, write_private};

/// Refuses a socket path that is not free: a symlink or other file, a socket of another user (squatted), or a
/// socket something listens on. A stale socket of this user (nothing listens) is removed.
pub async fn refuse_squatted(path: &Path) -> color_eyre::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(eyre!("cannot inspect control socket path {}: {e}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!("control socket path {} exists and is not a socket; refusing to replace it", path.display());
    }
    if meta.uid() != my_uid() {
        return Err(eyre!(
            "control socket path {} already exists and belongs to another user (uid {}); refusing to use it",
            path.display(),
            meta.uid()
        ))
        .suggestion("someone else made this path: remove it as root after checking, or give --serve-socket-file a path in a directory only you can write");
    }
    match tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(path)).await {
        Ok(Ok(_)) => bail!(
            "another process is listening on control socket {} (is another migration of this table running?)",
            path.display()
        ),
        Ok(Err(_)) | Err(_) => {
            tracing::info!("removing stale control socket {}", path.display());
            std::fs::remove_file(path).wrap_err_with(|| format!("cannot remove stale control socket {}", path.display()))
        }
    }
}

/// Binds the socket inside a new directory only this user can enter, sets it 0600, then hard-links it to `path`
/// (`link` never replaces or follows what is there: a path squatted meanwhile fails) and removes the directory.
pub fn bind_private(path: &Path) -> color_eyre::Result<UnixListener> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = parent.join(format!(".revenant-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .wrap_err_with(|| format!("cannot create a private directory {} for the control socket", dir.display()))?;
    let inner = dir.join("s");
    let bound = (|| -> color_eyre::Result<UnixListener> {
        let l = UnixListener::bind(&inner).wrap_err_with(|| format!("cannot listen on {}", inner.display()))?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
            .wrap_err_with(|| format!("cannot set mode 0600 on {}", inner.display()))?;
        std::fs::hard_link(&inner, path).wrap_err_with(|| {
            format!("cannot create control socket {} (did someone create it just now?)", path.display())
        })?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&dir);
    bound
}

/// A Unix client must be this user or root.
pub fn peer_allowed(stream: &UnixStream) -> Result<(), String> {
    let cred = stream.peer_cred().map_err(|e| format!("cannot read the client's credentials: {e}"))?;
    if cred.uid() == my_uid() || cred.uid() == 0 {
        Ok(())
    } else {
        Err(format!("refused a client of uid {} (the migration runs as uid {})", cred.uid(), my_uid()))
    }
}

/// Before attaching: the socket must belong to this user, and so must the process listening on it.
pub fn check_socket_owner(path: &Path, stream: &UnixStream) -> color_eyre::Result<()> {
    let meta = std::fs::metadata(path).wrap_err_with(|| format!("cannot inspect control socket {}", path.display()))?;
    let server = stream.peer_cred().map(|c| c.uid()).map_err(|e| eyre!("cannot read the server's credentials: {e}"))?;
    if meta.uid() != my_uid() || server != my_uid() {
        return Err(eyre!(
            "control socket {} belongs to uid {} (served by uid {server}), not to you (uid {}); refusing to attach",
            path.display(),
            meta.uid(),
            my_uid()
        ))
        .suggestion("attach as the user who runs the migration");
    }
    Ok(())
}

/// The TCP port's token: 32 random bytes in hex, in a 0600 file next to the socket (`<socket>.token`).
pub struct TcpToken {
    secret: String,
    pub file: PathBuf,
}

impl TcpToken {
    /// Writes a new token file (never through a symlink, never over another user's file).
    pub fn create(socket: &Path) -> color_eyre::Result<TcpToken> {
        let mut name = socket.as_os_str().to_owned();
        name.push(".token");
        let file = PathBuf::from(name);
        let secret = hex::encode(rand::random::<[u8; 32]>());
        write_private(&file, format!("{secret}\n").as_bytes())
            .map_err(|e| eyre!("--serve-tcp-port: cannot write its token file: {e}"))
            .suggestion("the token file goes next to the socket; give --serve-socket-file a path in a directory you own")?;
        Ok(TcpToken { secret, file })
    }

    /// True when `line` is `token=<secret>` (compared in constant time).
    pub fn matches(&self, line: &str) -> bool {
        let Some(given) = line.trim().strip_prefix("token=") else { return false };
        let (a, b) = (given.trim().as_bytes(), self.secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
