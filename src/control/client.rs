//! `revenant attach`: a local [`EngineHandle`] backed by the JSON-lines protocol.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use color_eyre::eyre::{bail, eyre, WrapErr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::status::{Command, CommandReply, CommandRequest, EngineHandle, Status};

use super::{CommandLine, Hello, ServerLine, JSONL_HELLO, JSONL_VERSION};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<CommandReply>>>>;

/// Connects to a running migration's control socket. The returned handle's commands go over the socket; its status
/// watch is fed by the streamed snapshots and closes when the connection does.
pub async fn attach(socket: PathBuf) -> color_eyre::Result<EngineHandle> {
    attach_with(socket, false).await
}

/// [`attach`]; with `read_only` the server refuses this connection's commands too.
pub async fn attach_with(socket: PathBuf, read_only: bool) -> color_eyre::Result<EngineHandle> {
    let stream = UnixStream::connect(&socket)
        .await
        .wrap_err_with(|| format!("cannot connect to control socket {}", socket.display()))?;
    super::security::check_socket_owner(&socket, &stream)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let (answer, first_status) = handshake(&socket, &mut reader, &mut write, read_only).await?;
    tracing::info!(table = ?answer.table, "attached to {}", socket.display());
    let (status_tx, status_rx) = watch::channel(first_status);
    let (cmd_tx, cmd_rx) = mpsc::channel::<CommandRequest>(16);
    let pending: Pending = Arc::default();
    tokio::spawn(read_lines(reader, status_tx, pending.clone()));
    tokio::spawn(write_commands(write, cmd_rx, pending, answer.table));
    Ok(EngineHandle { commands: cmd_tx, status: status_rx })
}

/// Sends the hello, reads the server's and the first status (within [`HANDSHAKE_TIMEOUT`]).
async fn handshake(
    socket: &std::path::Path,
    reader: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
    read_only: bool,
) -> color_eyre::Result<(Hello, Status)> {
    let hello = Hello { hello: JSONL_HELLO.into(), version: JSONL_VERSION, read_only, table: None };
    let mut line = serde_json::to_string(&hello)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    write.flush().await?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut buf = String::new();
        if reader.read_line(&mut buf).await? == 0 {
            bail!("the control socket closed during the handshake");
        }
        let answer: Hello = serde_json::from_str(buf.trim())
            .wrap_err_with(|| format!("not a revenant control socket (answered {:?})", buf.trim()))?;
        if answer.hello != JSONL_HELLO {
            bail!("not a revenant control socket (answered {:?})", buf.trim());
        }
        buf.clear();
        if reader.read_line(&mut buf).await? == 0 {
            bail!("the control socket closed before the first status");
        }
        match serde_json::from_str::<ServerLine>(buf.trim()) {
            Ok(ServerLine::Status(s)) => Ok((answer, *s)),
            Ok(other) => Err(eyre!("expected a status line first, got {other:?}")),
            Err(e) => Err(eyre!("bad status line from the control socket: {e}")),
        }
    })
    .await
    .map_err(|_| eyre!("the control socket {} did not answer the handshake", socket.display()))?
}

/// The server's lines: snapshots into the watch, replies to their waiters. At the end every waiter is dropped
/// (it answers "ended before it answered") and the watch closes.
async fn read_lines(mut reader: BufReader<OwnedReadHalf>, status_tx: watch::Sender<Status>, pending: Pending) {
    let mut buf = String::new();
    loop {
        buf.clear();
        match reader.read_line(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        match serde_json::from_str::<ServerLine>(buf.trim()) {
            Ok(ServerLine::Status(s)) => {
                status_tx.send_replace(*s);
            }
            Ok(ServerLine::Reply(r)) => {
                let waiter = pending.lock().ok().and_then(|mut p| p.remove(&r.id));
                if let Some(w) = waiter {
                    let _ = w.send(CommandReply { ok: r.ok, message: r.message });
                }
            }
            Err(e) => tracing::warn!("ignoring a bad line from the control socket: {e}"),
        }
    }
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}

/// The handle's commands as numbered lines; a write that fails answers its command and ends the connection.
async fn write_commands(mut write: OwnedWriteHalf, mut cmd_rx: mpsc::Receiver<CommandRequest>, pending: Pending, table: Option<String>) {
    let mut next_id: u64 = 1;
    while let Some(req) = cmd_rx.recv().await {
        let id = next_id;
        next_id += 1;
        // The console asks for the table's name before a cut-over or panic; the server checks it against
        // --force-named-cut-over / --force-named-panic.
        let named = matches!(req.command, Command::CutOver | Command::Abort).then(|| table.clone()).flatten();
        let mut line = match serde_json::to_string(&CommandLine { id, command: req.command, table: named }) {
            Ok(l) => l,
            Err(e) => {
                let _ = req.reply.send(CommandReply::refused(format!("cannot encode the command: {e}")));
                continue;
            }
        };
        line.push('\n');
        if let Ok(mut p) = pending.lock() {
            p.insert(id, req.reply);
        }
        if write.write_all(line.as_bytes()).await.is_err() || write.flush().await.is_err() {
            if let Some(w) = pending.lock().ok().and_then(|mut p| p.remove(&id)) {
                let _ = w.send(CommandReply::refused("the control connection is closed"));
            }
            break;
        }
    }
    let _ = write.shutdown().await;
}
