//! The one keymap: dispatch, footer hints and the `?` overlay all read [`KEYMAP`].

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::{Phase, Status};

/// What a key does; [`super::ConsoleState::handle_key`] turns it into state changes and [`super::Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionId {
    Help,
    Quit,
    FocusNext,
    FocusPrev,
    ToggleThrottle,
    Pause,
    Resume,
    Checkpoint,
    Verify,
    CutOver,
    Abort,
    Prompt,
    Filter,
    Freeze,
    Faster,
    Slower,
    MaximiseLog,
    LogPageUp,
    LogPageDown,
    LogFollow,
}

/// One row of the keymap.
pub struct KeyBinding {
    /// The keys that trigger it (shift is implied by an upper-case char).
    pub keys: &'static [KeyCode],
    /// How the key is written in hints and help.
    pub label: &'static str,
    pub action: ActionId,
    /// Footer hint (one or two words); empty to keep it out of the footer.
    pub hint: &'static str,
    /// The `?` overlay's description.
    pub help: &'static str,
    /// Sends a command to the migration: disabled on a read-only console.
    pub sends: bool,
    /// When the key does something, given the latest snapshot.
    pub enabled: fn(&Status) -> bool,
    /// Says when it is enabled, for the message shown when it is not.
    pub when: &'static str,
}

fn always(_: &Status) -> bool {
    true
}
fn running(s: &Status) -> bool {
    s.phase.is_some_and(Phase::is_running)
}
fn running_not_paused(s: &Status) -> bool {
    running(s) && !s.paused
}
fn running_paused(s: &Status) -> bool {
    running(s) && s.paused
}
fn ready(s: &Status) -> bool {
    s.phase.is_some_and(Phase::can_cut_over)
}
fn not_terminal(s: &Status) -> bool {
    s.phase.is_some_and(|p| !p.is_terminal())
}

/// Every key of the console, in footer priority order.
pub static KEYMAP: &[KeyBinding] = &[
    KeyBinding {
        keys: &[KeyCode::Char('?'), KeyCode::F(1)],
        label: "?",
        action: ActionId::Help,
        hint: "help",
        help: "show or hide this help",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Char('q')],
        label: "q",
        action: ActionId::Quit,
        hint: "quit",
        help: "quit: detach (the migration keeps running) or stop with a checkpoint",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Char('C')],
        label: "C",
        action: ActionId::CutOver,
        hint: "cut-over",
        help: "start the cut-over (type the table name to confirm)",
        sends: true,
        enabled: ready,
        when: "only when the migration is ready to cut over",
    },
    KeyBinding {
        keys: &[KeyCode::Char('t')],
        label: "t",
        action: ActionId::ToggleThrottle,
        hint: "throttle",
        help: "throttle the copy by hand, or lift the manual throttle",
        sends: true,
        enabled: running,
        when: "while rows or events still move",
    },
    KeyBinding {
        keys: &[KeyCode::Char('p')],
        label: "p",
        action: ActionId::Pause,
        hint: "pause",
        help: "pause copy and apply",
        sends: true,
        enabled: running_not_paused,
        when: "while running and not paused",
    },
    KeyBinding {
        keys: &[KeyCode::Char('r')],
        label: "r",
        action: ActionId::Resume,
        hint: "resume",
        help: "resume after a pause",
        sends: true,
        enabled: running_paused,
        when: "while paused",
    },
    KeyBinding {
        keys: &[KeyCode::Char('c')],
        label: "c",
        action: ActionId::Checkpoint,
        hint: "checkpoint",
        help: "write a checkpoint now and show the recorded position",
        sends: true,
        enabled: running,
        when: "while rows or events still move",
    },
    KeyBinding {
        keys: &[KeyCode::Char('X')],
        label: "X",
        action: ActionId::Abort,
        hint: "abort",
        help: "abort now (type the table name to confirm); resumable, nothing is dropped",
        sends: true,
        enabled: not_terminal,
        when: "while the migration runs",
    },
    KeyBinding {
        keys: &[KeyCode::Char('v')],
        label: "v",
        action: ActionId::Verify,
        hint: "verify",
        help: "verify original and ghost again (checksums per chunk) while the cut-over waits",
        sends: true,
        enabled: ready,
        when: "only when the migration is ready to cut over",
    },
    KeyBinding {
        keys: &[KeyCode::Char(':')],
        label: ":",
        action: ActionId::Prompt,
        hint: "command",
        help: "type a gh-ost socket command (chunk-size=500, max-lag-millis=2000, throttle, ...)",
        sends: true,
        enabled: not_terminal,
        when: "while the migration runs",
    },
    KeyBinding {
        keys: &[KeyCode::Char('/')],
        label: "/",
        action: ActionId::Filter,
        hint: "filter",
        help: "filter the log pane (Enter keeps, Esc clears)",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Char('f')],
        label: "f",
        action: ActionId::Freeze,
        hint: "freeze",
        help: "freeze the view (stop taking new snapshots) or unfreeze it",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Char('L')],
        label: "L",
        action: ActionId::MaximiseLog,
        hint: "log",
        help: "maximise the log pane or restore the layout",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Tab],
        label: "Tab",
        action: ActionId::FocusNext,
        hint: "focus",
        help: "focus the next pane",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::BackTab],
        label: "S-Tab",
        action: ActionId::FocusPrev,
        hint: "",
        help: "focus the previous pane",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Char('+'), KeyCode::Char('=')],
        label: "+",
        action: ActionId::Faster,
        hint: "",
        help: "refresh faster (0.5, 1, 2, 4 Hz)",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::Char('-')],
        label: "-",
        action: ActionId::Slower,
        hint: "",
        help: "refresh slower",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::PageUp],
        label: "PgUp",
        action: ActionId::LogPageUp,
        hint: "",
        help: "scroll the log back a page",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::PageDown],
        label: "PgDn",
        action: ActionId::LogPageDown,
        hint: "",
        help: "scroll the log forward a page",
        sends: false,
        enabled: always,
        when: "always",
    },
    KeyBinding {
        keys: &[KeyCode::End],
        label: "End",
        action: ActionId::LogFollow,
        hint: "",
        help: "follow the end of the log again",
        sends: false,
        enabled: always,
        when: "always",
    },
];

/// The binding a key event triggers, if any. Upper-case letters match with or without the shift flag; other
/// modifiers (Ctrl, Alt) never match.
pub fn lookup(key: &KeyEvent) -> Option<&'static KeyBinding> {
    if key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SUPER) {
        return None;
    }
    KEYMAP.iter().find(|b| b.keys.contains(&key.code))
}

/// Whether a binding can be used now.
pub fn usable(b: &KeyBinding, status: &Status, read_only: bool) -> bool {
    !(b.sends && read_only) && (b.enabled)(status)
}

/// Footer hints that fit `width` columns: `(key, hint)` pairs of usable bindings, in keymap order.
pub fn footer_hints(status: &Status, read_only: bool, width: usize) -> Vec<(&'static str, &'static str)> {
    let mut used = 0;
    let mut out = Vec::new();
    for b in KEYMAP.iter().filter(|b| !b.hint.is_empty() && usable(b, status, read_only)) {
        let w = b.label.chars().count() + 1 + b.hint.chars().count() + 2;
        if used + w > width {
            break;
        }
        used += w;
        out.push((b.label, b.hint));
    }
    out
}
