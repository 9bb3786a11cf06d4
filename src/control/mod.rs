//! The control socket.
//!
//! One listener (a Unix socket with mode 0600, and optionally TCP on 127.0.0.1) speaks two protocols, chosen by
//! the first line a client sends:
//!
//! Over TCP (`--serve-tcp-port`, 127.0.0.1 only) the first line must be `token=<token>`, the token being the
//! contents of the 0600 file `<socket>.token` (see [`security`]).
//!
//! * **gh-ost's text protocol** (anything but the handshake): one command, one answer, then the server closes the
//!   connection, so `echo status | nc -U /tmp/revenant.sock` works as with gh-ost. See [`parse_text_command`].
//! * **JSON lines** (`revenant attach`): the client's first line is the handshake
//!   `{"hello":"revenant-jsonl","version":1}` (optionally `"read_only":true`). The server answers
//!   `{"hello":"revenant-jsonl","version":1,"table":"db.tbl"}`, then sends `{"status":<Status>}` at once and on every
//!   snapshot change (at most 10 per second). The client sends `{"id":N,"command":<Command>}` lines (e.g.
//!   `{"id":1,"command":{"command":"set","name":"chunk-size","value":"500"}}`) and gets
//!   `{"reply":{"id":N,"ok":true,"message":"..."}}` back, in any order.

mod client;
pub mod ghost_status;
pub mod metrics;
pub mod security;
pub mod statsd;
mod server;
mod text;

use serde::{Deserialize, Serialize};

use crate::engine::status::{Command, Status};

pub use client::{attach, attach_with};
pub use server::{bind, serve, serve_listener, serve_with, ControlListener};
pub use ghost_status::Served;
pub use text::{help_text, parse_text_command, sup_line, validate_setting, Info, TextCommand, SETTINGS};

/// The handshake word of the JSON-lines protocol.
pub const JSONL_HELLO: &str = "revenant-jsonl";
/// The JSON-lines protocol version.
pub const JSONL_VERSION: u32 = 1;

/// How text commands are checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlOptions {
    /// The migrated table (`orders` or `shop.orders`), for `unpostpone <table>` / `panic <table>`.
    pub table: String,
    /// gh-ost's `--force-named-cut-over`: `unpostpone` must name the table.
    pub force_named_cut_over: bool,
    /// gh-ost's `--force-named-panic`: `panic` must name the table.
    pub force_named_panic: bool,
    /// The TCP port and the file holding its token, shown in `status` (set by the server).
    pub tcp_token_file: Option<(u16, std::path::PathBuf)>,
    /// The socket, the flag files and the start time, for `status`'s gh-ost header.
    pub served: Served,
}

impl ControlOptions {
    pub fn new(table: impl Into<String>) -> Self {
        Self { table: table.into(), ..Self::default() }
    }
}

/// The handshake, both ways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub hello: String,
    #[serde(default)]
    pub version: u32,
    /// Client side: refuse this connection's commands.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Server side: the migrated table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// A command line of the JSON-lines protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandLine {
    pub id: u64,
    pub command: Command,
    /// The table a `cut_over` or `abort` names (required by `--force-named-cut-over` / `--force-named-panic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// The answer to one [`CommandLine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyLine {
    pub id: u64,
    pub ok: bool,
    pub message: String,
}

/// What the server sends after the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerLine {
    Status(Box<Status>),
    Reply(ReplyLine),
}

/// True when a first line is the JSON-lines handshake.
pub fn parse_hello(line: &str) -> Option<Hello> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Hello>(line).ok().filter(|h| h.hello == JSONL_HELLO)
}
