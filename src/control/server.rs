//! The listener side of the control socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::WrapErr;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::status::{Command, EngineHandle};

use super::security::{self, TcpToken};
use super::ghost_status;
use super::text::{check_named, help_text, parse_text_command, sup_line, validate_setting, Info, TextCommand};
use super::{parse_hello, CommandLine, ControlOptions, Hello, ReplyLine, ServerLine, JSONL_HELLO, JSONL_VERSION};

/// Longest accepted line (a command, or a JSON command line).
const MAX_LINE: u64 = 64 * 1024;
/// Minimum spacing of streamed snapshots (10 per second at most).
const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// Serves the control socket until `shutdown` is cancelled. `table` is the migrated table, for named
/// `unpostpone`/`panic`; use [`serve_with`] to turn on `--force-named-cut-over` / `--force-named-panic`.
pub async fn serve(
    handle: EngineHandle,
    socket_path: PathBuf,
    tcp_port: Option<u16>,
    table: String,
    shutdown: CancellationToken,
) -> color_eyre::Result<()> {
    serve_with(handle, socket_path, tcp_port, ControlOptions::new(table), shutdown).await
}

/// [`serve`] with every option: [`bind`], then [`serve_listener`].
pub async fn serve_with(
    handle: EngineHandle,
    socket_path: PathBuf,
    tcp_port: Option<u16>,
    opts: ControlOptions,
    shutdown: CancellationToken,
) -> color_eyre::Result<()> {
    let listener = bind(socket_path, tcp_port).await?;
    serve_listener(listener, handle, opts, shutdown).await
}

/// The control socket (and TCP port) bound before the engine starts, so a refusal changes nothing.
pub struct ControlListener {
    unix: UnixListener,
    path: PathBuf,
    tcp: Option<(TcpListener, Arc<TcpToken>)>,
}

impl ControlListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The file holding the TCP port's token, when `--serve-tcp-port` is on.
    pub fn token_file(&self) -> Option<&Path> {
        self.tcp.as_ref().map(|(_, t)| t.file.as_path())
    }
}

/// Binds the Unix socket (mode 0600 from the start: see [`security::bind_private`]) and the TCP port on 127.0.0.1,
/// whose clients must first send `token=<the token>`, read from a new 0600 file next to the socket.
pub async fn bind(socket_path: PathBuf, tcp_port: Option<u16>) -> color_eyre::Result<ControlListener> {
    security::refuse_squatted(&socket_path).await?;
    let unix = security::bind_private(&socket_path)?;
    let tcp = match tcp_port {
        Some(port) => {
            let l = TcpListener::bind(("127.0.0.1", port)).await.wrap_err_with(|| format!("cannot listen on 127.0.0.1:{port}"));
            let token = l.and_then(|l| Ok((l, Arc::new(TcpToken::create(&socket_path)?))));
            match token {
                Ok(t) => Some(t),
                Err(e) => {
                    let _ = std::fs::remove_file(&socket_path);
                    return Err(e);
                }
            }
        }
        None => None,
    };
    Ok(ControlListener { unix, path: socket_path, tcp })
}

/// Serves a bound [`ControlListener`] until `shutdown` is cancelled; removes the socket and token file at the end.
pub async fn serve_listener(
    listener: ControlListener,
    handle: EngineHandle,
    mut opts: ControlOptions,
    shutdown: CancellationToken,
) -> color_eyre::Result<()> {
    let ControlListener { unix, path: socket_path, tcp } = listener;
    opts.tcp_token_file = tcp.as_ref().map(|(l, t)| (l.local_addr().map(|a| a.port()).unwrap_or(0), t.file.clone()));
    opts.served.socket = Some(socket_path.clone());
    opts.served = std::mem::take(&mut opts.served).now();
    tracing::info!(socket = %socket_path.display(), "control socket listening");
    if let Some((port, file)) = &opts.tcp_token_file {
        tracing::info!("control TCP port 127.0.0.1:{port}: clients send `token=<contents of {}>` first", file.display());
    }
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            accepted = unix.accept() => match accepted {
                Ok((stream, _)) => match security::peer_allowed(&stream) {
                    Ok(()) => spawn_connection(stream, None, &handle, &opts, &shutdown),
                    Err(e) => tracing::warn!("control socket: {e}"),
                },
                Err(e) => tracing::warn!("control socket accept failed: {e}"),
            },
            accepted = accept_tcp(tcp.as_ref().map(|(l, _)| l)) => match accepted {
                Ok(stream) => spawn_connection(stream, tcp.as_ref().map(|(_, t)| t.clone()), &handle, &opts, &shutdown),
                Err(e) => tracing::warn!("control tcp accept failed: {e}"),
            },
        }
    };
    drop(unix);
    for p in std::iter::once(&socket_path).chain(tcp.as_ref().map(|(_, t)| &t.file)) {
        if let Err(e) = std::fs::remove_file(p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", p.display());
            }
        }
    }
    result
}

async fn accept_tcp(tcp: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match tcp {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

fn spawn_connection<S>(stream: S, token: Option<Arc<TcpToken>>, handle: &EngineHandle, opts: &ControlOptions, shutdown: &CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let handle = handle.clone();
    let opts = opts.clone();
    let cancel = shutdown.child_token();
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            r = handle_connection(stream, token, handle, opts) => {
                if let Err(e) = r {
                    tracing::debug!("control connection ended: {e}");
                }
            }
        }
    });
}

async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, buf: &mut String) -> std::io::Result<usize> {
    buf.clear();
    let mut limited = tokio::io::AsyncReadExt::take(&mut *reader, MAX_LINE);
    limited.read_line(buf).await
}

async fn handle_connection<S>(stream: S, token: Option<Arc<TcpToken>>, handle: EngineHandle, opts: ControlOptions) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut first = String::new();
    if read_line_limited(&mut reader, &mut first).await? == 0 {
        return Ok(());
    }
    if let Some(token) = token {
        if !token.matches(&first) {
            let answer = format!(
                "ERROR: refused: this TCP control port needs the token first: send `token=<contents of {}>` as the first line\n",
                token.file.display()
            );
            write.write_all(answer.as_bytes()).await?;
            return write.shutdown().await;
        }
        if read_line_limited(&mut reader, &mut first).await? == 0 {
            return Ok(());
        }
    }
    if let Some(hello) = parse_hello(&first) {
        return serve_jsonl(reader, write, handle, opts, hello).await;
    }
    let answer = answer_text(&first, &handle, &opts).await;
    write.write_all(answer.as_bytes()).await?;
    write.flush().await?;
    write.shutdown().await
}

/// Executes one text command and returns what to print (always ending in a newline). As gh-ost: a setting
/// changed, `throttle` and `no-throttle` answer with the whole `status` block.
pub(crate) async fn answer_text(line: &str, handle: &EngineHandle, opts: &ControlOptions) -> String {
    let mut out = match parse_text_command(line, opts) {
        Err(e) => format!("ERROR: {e}"),
        Ok(TextCommand::Help) => help_text(),
        Ok(TextCommand::Status) => status_answer(handle, opts).await,
        Ok(TextCommand::Sup) => sup_line(&handle.snapshot()),
        Ok(TextCommand::Info(Info::Coordinates)) => ghost_status::coordinates(&handle.snapshot()),
        Ok(TextCommand::Info(what)) => ghost_status::host_line(&handle.snapshot(), what == Info::Applier),
        Ok(TextCommand::Deprecated(say)) => say.to_string(),
        Ok(TextCommand::Engine(cmd)) => {
            let answers_with_status = matches!(cmd, Command::Set { .. } | Command::Throttle | Command::NoThrottle);
            let throttle = matches!(cmd, Command::Throttle);
            let reply = handle.send(cmd).await;
            match (reply.ok, answers_with_status) {
                (false, _) => format!("ERROR: {}", reply.message),
                (true, false) => reply.message,
                (true, true) if throttle => {
                    format!("# Note: the copy waits while throttled; keep the binary logs meanwhile\n{}", status_answer(handle, opts).await)
                }
                (true, true) => status_answer(handle, opts).await,
            }
        }
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The `status` block, with the live settings read from the engine now.
async fn status_answer(handle: &EngineHandle, opts: &ControlOptions) -> String {
    let mut live = Vec::new();
    for name in ghost_status::HEADER_SETTINGS {
        let reply = handle.send(Command::Get { name: name.to_string() }).await;
        if reply.ok {
            live.push((name.to_string(), reply.message));
        }
    }
    let tcp = opts.tcp_token_file.as_ref().map(|(port, file)| (*port, file.as_path()));
    ghost_status::status_block(&handle.snapshot(), &live, &opts.served, tcp)
}

async fn serve_jsonl<R, W>(
    mut reader: BufReader<R>,
    mut write: W,
    handle: EngineHandle,
    opts: ControlOptions,
    hello: Hello,
) -> std::io::Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let read_only = hello.read_only;
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let answer = Hello { hello: JSONL_HELLO.into(), version: JSONL_VERSION, read_only, table: Some(opts.table.clone()) };
    let mut first = to_line(&answer);
    // The first snapshot goes out with the handshake answer, so a client has a full picture at once.
    let mut status_rx = handle.status.clone();
    first.push_str(&to_line(&ServerLine::Status(Box::new(status_rx.borrow_and_update().clone()))));
    write.write_all(first.as_bytes()).await?;
    write.flush().await?;

    let mut writer = AbortOnDrop(tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() || write.flush().await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    }));

    let status_tx = tx.clone();
    let _streamer = AbortOnDrop(tokio::spawn(async move {
        while status_rx.changed().await.is_ok() {
            let snapshot = status_rx.borrow_and_update().clone();
            if status_tx.send(to_line(&ServerLine::Status(Box::new(snapshot)))).await.is_err() {
                break;
            }
            tokio::time::sleep(STATUS_INTERVAL).await;
        }
    }));

    let mut line = String::new();
    loop {
        match read_line_limited(&mut reader, &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<CommandLine, _> = serde_json::from_str(line.trim());
        let tx = tx.clone();
        match parsed {
            Err(e) => {
                let id = serde_json::from_str::<serde_json::Value>(line.trim())
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_u64()))
                    .unwrap_or(0);
                let reply = ReplyLine { id, ok: false, message: format!("invalid command line: {e}") };
                let _ = tx.send(to_line(&ServerLine::Reply(reply))).await;
            }
            Ok(CommandLine { id, command, table }) => {
                let handle = handle.clone();
                let opts = opts.clone();
                tokio::spawn(async move {
                    let reply = if read_only {
                        ReplyLine { id, ok: false, message: "this connection is read-only".into() }
                    } else if let Err(e) = check_command(&command, table.as_deref(), &opts) {
                        ReplyLine { id, ok: false, message: e }
                    } else {
                        let r = handle.send(command).await;
                        ReplyLine { id, ok: r.ok, message: r.message }
                    };
                    let _ = tx.send(to_line(&ServerLine::Reply(reply))).await;
                });
            }
        }
    }
    _streamer.0.abort();
    drop(tx);
    // Let pending replies drain briefly, then close.
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer.0).await;
    Ok(())
}

/// Aborts a connection's helper task when the connection ends or is cancelled (server shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Validates a structured command the same way the text protocol does (`--force-named-cut-over` and
/// `--force-named-panic` included: the command line's `table` must name the migrated table).
fn check_command(cmd: &Command, table: Option<&str>, opts: &ControlOptions) -> Result<(), String> {
    match cmd {
        Command::CutOver => check_named("unpostpone", table, opts.force_named_cut_over, "--force-named-cut-over", &opts.table),
        Command::Abort => check_named("panic", table, opts.force_named_panic, "--force-named-panic", &opts.table),
        Command::Set { name, value } => validate_setting(name, value),
        Command::Get { name } => {
            if super::SETTINGS.iter().any(|(s, _)| s == name) {
                Ok(())
            } else {
                Err(format!("unknown setting `{name}`"))
            }
        }
        _ => Ok(()),
    }
}

fn to_line<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
