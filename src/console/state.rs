//! The console's pure core: keys -> actions -> state. No terminal, no I/O.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tui_logger::{TuiWidgetEvent, TuiWidgetState};

use crate::control::{ghost_status, parse_text_command, sup_line, ControlOptions, Info, TextCommand};
use crate::engine::{Command, CommandReply, Status};

use super::keymap::{lookup, usable, ActionId};
use super::ConsoleExit;

/// The refresh rates `+`/`-` step through, in Hz.
pub const REFRESH_RATES: [f64; 4] = [0.5, 1.0, 2.0, 4.0];

/// What the run loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a command to the migration; the reply is shown when it comes.
    Send(Command),
    /// Send a command, wait for the reply and, if accepted, leave the console.
    SendThenQuit(Command, ConsoleExit),
    /// Leave the console.
    Quit(ConsoleExit),
}

/// Panes that take the focus (Tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Copy,
    Lag,
    Binlog,
    Tables,
    Log,
}

/// Which confirmation is being typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmKind {
    CutOver,
    Abort,
}

impl ConfirmKind {
    pub fn command(self) -> Command {
        match self {
            ConfirmKind::CutOver => Command::CutOver,
            ConfirmKind::Abort => Command::Abort,
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            ConfirmKind::CutOver => "cut-over",
            ConfirmKind::Abort => "abort",
        }
    }
}

/// The one popup or input line open at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    None,
    Help,
    Quit,
    Confirm { kind: ConfirmKind, input: String },
    Prompt { input: String },
    Filter { input: String },
}

/// A line shown above the footer: a command's reply or a local notice.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

/// Everything the console remembers between frames.
pub struct ConsoleState {
    pub focus: Focus,
    pub popup: Popup,
    /// Text the log pane is filtered by (empty: everything).
    pub filter: String,
    /// Not taking new snapshots.
    pub frozen: bool,
    pub log_maximised: bool,
    pub refresh_hz: f64,
    pub read_only: bool,
    /// What the user must type to confirm a cut-over or an abort.
    pub table_name_for_confirm: String,
    /// Set when this console throttled by hand (so `t` lifts it).
    pub manual_throttle: bool,
    pub notice: Option<Notice>,
    /// Show log timestamps (off in snapshot tests).
    pub log_timestamps: bool,
    /// The status source closed (engine gone or socket lost).
    pub disconnected: bool,
    /// For the `:` prompt's parser.
    pub control: ControlOptions,
    /// Scroll state of the log widget.
    pub log_state: TuiWidgetState,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState")
            .field("focus", &self.focus)
            .field("popup", &self.popup)
            .field("filter", &self.filter)
            .field("frozen", &self.frozen)
            .field("log_maximised", &self.log_maximised)
            .field("refresh_hz", &self.refresh_hz)
            .field("read_only", &self.read_only)
            .field("notice", &self.notice)
            .finish_non_exhaustive()
    }
}

impl ConsoleState {
    pub fn new(table_name_for_confirm: impl Into<String>, read_only: bool, refresh_hz: f64) -> Self {
        let table: String = table_name_for_confirm.into();
        Self {
            focus: Focus::Copy,
            popup: Popup::None,
            filter: String::new(),
            frozen: false,
            log_maximised: false,
            refresh_hz: nearest_rate(refresh_hz),
            read_only,
            control: ControlOptions::new(table.clone()),
            table_name_for_confirm: table,
            manual_throttle: false,
            notice: None,
            log_timestamps: true,
            disconnected: false,
            log_state: TuiWidgetState::new(),
        }
    }

    fn notice(&mut self, ok: bool, text: impl Into<String>) {
        self.notice = Some(Notice { ok, text: text.into() });
    }

    /// Records the engine's answer to a command this console sent.
    pub fn on_reply(&mut self, command: &Command, reply: &CommandReply) {
        let name = command_name(command);
        if reply.ok {
            match command {
                Command::Throttle => self.manual_throttle = true,
                Command::NoThrottle => self.manual_throttle = false,
                _ => {}
            }
        }
        let text = if reply.message.is_empty() {
            format!("{name}: {}", if reply.ok { "done" } else { "refused" })
        } else {
            format!("{name}: {}", reply.message)
        };
        self.notice(reply.ok, text);
    }

    /// Panes that exist for this snapshot, in Tab order.
    pub fn panes(&self, status: &Status) -> Vec<Focus> {
        let mut v = vec![Focus::Copy];
        if !status.tables.is_empty() {
            v.push(Focus::Tables);
        }
        v.extend([Focus::Lag, Focus::Binlog, Focus::Log]);
        v
    }

    fn cycle_focus(&mut self, status: &Status, forward: bool) {
        let panes = self.panes(status);
        let i = panes.iter().position(|p| *p == self.focus).unwrap_or(0);
        let n = panes.len();
        let j = if forward { (i + 1) % n } else { (i + n - 1) % n };
        self.focus = panes[j];
    }

    /// Handles one key. `status` is the latest snapshot (for gating). Returns what the run loop must do, if
    /// anything beyond redrawing.
    pub fn handle_key(&mut self, key: KeyEvent, status: &Status) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        match std::mem::replace(&mut self.popup, Popup::None) {
            Popup::None => {}
            Popup::Help => {
                if !matches!(key.code, KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::F(1)) {
                    self.popup = Popup::Help;
                }
                return None;
            }
            Popup::Quit => return self.quit_popup_key(key, status),
            Popup::Confirm { kind, input } => return self.confirm_key(key, kind, input),
            Popup::Prompt { input } => return self.prompt_key(key, input, status),
            Popup::Filter { input } => {
                self.filter_key(key, input);
                return None;
            }
        }
        if ctrl_c {
            return self.open_quit(status);
        }
        if key.code == KeyCode::Esc {
            self.notice = None;
            return None;
        }
        let binding = lookup(&key)?;
        if binding.sends && self.read_only {
            self.notice(false, format!("read-only console: `{}` ({}) is disabled", binding.label, binding.hint));
            return None;
        }
        if !usable(binding, status, self.read_only) {
            self.notice(false, format!("`{}` {}: {}", binding.label, binding.hint, binding.when));
            return None;
        }
        self.run_action(binding.action, status)
    }

    /// What a key bound to `action` does, once the keymap allowed it.
    fn run_action(&mut self, action: ActionId, status: &Status) -> Option<Action> {
        match action {
            ActionId::Help => {
                self.popup = Popup::Help;
                None
            }
            ActionId::Quit => self.open_quit(status),
            ActionId::FocusNext => {
                self.cycle_focus(status, true);
                None
            }
            ActionId::FocusPrev => {
                self.cycle_focus(status, false);
                None
            }
            ActionId::ToggleThrottle => {
                let manual_on = self.manual_throttle
                    || (status.throttle.throttled
                        && (status.throttle.reason.contains("commanded") || status.throttle.reason.contains("user")));
                Some(Action::Send(if manual_on { Command::NoThrottle } else { Command::Throttle }))
            }
            ActionId::Pause => Some(Action::Send(Command::Pause)),
            ActionId::Resume => Some(Action::Send(Command::Resume)),
            ActionId::Checkpoint => Some(Action::Send(Command::Checkpoint)),
            ActionId::Verify => Some(Action::Send(Command::Verify)),
            ActionId::CutOver => {
                self.popup = Popup::Confirm { kind: ConfirmKind::CutOver, input: String::new() };
                None
            }
            ActionId::Abort => {
                self.popup = Popup::Confirm { kind: ConfirmKind::Abort, input: String::new() };
                None
            }
            ActionId::Prompt => {
                self.popup = Popup::Prompt { input: String::new() };
                None
            }
            ActionId::Filter => {
                self.popup = Popup::Filter { input: self.filter.clone() };
                None
            }
            ActionId::Freeze => {
                self.frozen = !self.frozen;
                None
            }
            ActionId::Faster => {
                self.refresh_hz = step_rate(self.refresh_hz, true);
                self.notice(true, format!("refresh rate {} Hz", fmt_hz(self.refresh_hz)));
                None
            }
            ActionId::Slower => {
                self.refresh_hz = step_rate(self.refresh_hz, false);
                self.notice(true, format!("refresh rate {} Hz", fmt_hz(self.refresh_hz)));
                None
            }
            ActionId::MaximiseLog => {
                self.log_maximised = !self.log_maximised;
                if self.log_maximised {
                    self.focus = Focus::Log;
                }
                None
            }
            ActionId::LogPageUp => {
                self.log_state.transition(TuiWidgetEvent::PrevPageKey);
                None
            }
            ActionId::LogPageDown => {
                self.log_state.transition(TuiWidgetEvent::NextPageKey);
                None
            }
            ActionId::LogFollow => {
                self.log_state.transition(TuiWidgetEvent::EscapeKey);
                None
            }
        }
    }

    fn open_quit(&mut self, status: &Status) -> Option<Action> {
        if let Some(p) = status.phase.filter(|p| p.is_terminal()) {
            return Some(Action::Quit(ConsoleExit::Finished(p)));
        }
        self.popup = Popup::Quit;
        None
    }

    fn quit_popup_key(&mut self, key: KeyEvent, status: &Status) -> Option<Action> {
        match key.code {
            KeyCode::Char('d') => Some(Action::Quit(ConsoleExit::Detached)),
            KeyCode::Char('s') if self.read_only => {
                self.popup = Popup::Quit;
                self.notice(false, "read-only console: stop is disabled; press d to detach");
                None
            }
            KeyCode::Char('s') if status.phase.is_some_and(|p| p.is_terminal()) => {
                self.notice(false, "the migration already ended");
                None
            }
            KeyCode::Char('s') => {
                self.notice(true, "stopping at a safe point, writing a checkpoint…");
                Some(Action::SendThenQuit(Command::Stop, ConsoleExit::Stopped))
            }
            KeyCode::Esc | KeyCode::Char('q') => None,
            _ => {
                self.popup = Popup::Quit;
                None
            }
        }
    }

    fn confirm_key(&mut self, key: KeyEvent, kind: ConfirmKind, mut input: String) -> Option<Action> {
        match key.code {
            KeyCode::Esc => {
                self.notice(true, format!("{} cancelled; nothing was sent", kind.verb()));
                None
            }
            KeyCode::Enter => {
                if input == self.table_name_for_confirm {
                    self.notice(true, format!("{} requested…", kind.verb()));
                    Some(Action::Send(kind.command()))
                } else {
                    self.notice(
                        false,
                        format!("{} cancelled: `{input}` is not `{}`; nothing was sent", kind.verb(), self.table_name_for_confirm),
                    );
                    None
                }
            }
            KeyCode::Backspace => {
                input.pop();
                self.popup = Popup::Confirm { kind, input };
                None
            }
            KeyCode::Char(c) if !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) => {
                if input.chars().count() < 256 {
                    input.push(c);
                }
                self.popup = Popup::Confirm { kind, input };
                None
            }
            _ => {
                self.popup = Popup::Confirm { kind, input };
                None
            }
        }
    }

    fn prompt_key(&mut self, key: KeyEvent, mut input: String, status: &Status) -> Option<Action> {
        match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => {
                if input.trim().is_empty() {
                    return None;
                }
                match parse_text_command(&input, &self.control) {
                    Err(e) => {
                        self.notice(false, e);
                        None
                    }
                    Ok(TextCommand::Help) => {
                        self.popup = Popup::Help;
                        None
                    }
                    Ok(TextCommand::Status | TextCommand::Sup) => {
                        self.notice(true, sup_line(status));
                        None
                    }
                    Ok(TextCommand::Info(what)) => {
                        let text = match what {
                            Info::Coordinates => ghost_status::coordinates(status),
                            Info::Applier | Info::Inspector => ghost_status::host_line(status, what == Info::Applier),
                        };
                        self.notice(true, text);
                        None
                    }
                    Ok(TextCommand::Deprecated(say)) => {
                        self.notice(true, say);
                        None
                    }
                    Ok(TextCommand::Engine(cmd)) if self.read_only && !matches!(cmd, Command::Get { .. }) => {
                        self.notice(false, "read-only console: commands are disabled");
                        None
                    }
                    Ok(TextCommand::Engine(cmd)) => Some(Action::Send(cmd)),
                }
            }
            KeyCode::Backspace => {
                input.pop();
                self.popup = Popup::Prompt { input };
                None
            }
            KeyCode::Char(c) if !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) => {
                input.push(c);
                self.popup = Popup::Prompt { input };
                None
            }
            _ => {
                self.popup = Popup::Prompt { input };
                None
            }
        }
    }

    fn filter_key(&mut self, key: KeyEvent, mut input: String) {
        match key.code {
            KeyCode::Esc => {
                self.filter.clear();
            }
            KeyCode::Enter => {
                self.filter = input;
            }
            KeyCode::Backspace => {
                input.pop();
                self.filter = input.clone();
                self.popup = Popup::Filter { input };
            }
            KeyCode::Char(c) if !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) => {
                input.push(c);
                self.filter = input.clone();
                self.popup = Popup::Filter { input };
            }
            _ => self.popup = Popup::Filter { input },
        }
    }

    /// Minimum time between two redraws caused by snapshots.
    pub fn frame_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(1.0 / self.refresh_hz.max(0.1))
    }
}

/// A short name for a command in notices.
pub fn command_name(c: &Command) -> String {
    match c {
        Command::Throttle => "throttle".into(),
        Command::NoThrottle => "no-throttle".into(),
        Command::Pause => "pause".into(),
        Command::Resume => "resume".into(),
        Command::Checkpoint => "checkpoint".into(),
        Command::CutOver => "cut-over".into(),
        Command::Verify => "verify".into(),
        Command::Stop => "stop".into(),
        Command::Abort => "abort".into(),
        Command::Set { name, value } => format!("{name}={value}"),
        Command::Get { name } => format!("{name}=?"),
    }
}

fn nearest_rate(hz: f64) -> f64 {
    let hz = if hz.is_finite() { hz } else { 1.0 };
    REFRESH_RATES
        .iter()
        .copied()
        .min_by(|a, b| (a - hz).abs().total_cmp(&(b - hz).abs()))
        .unwrap_or(1.0)
}

fn step_rate(current: f64, up: bool) -> f64 {
    let i = REFRESH_RATES.iter().position(|r| *r == nearest_rate(current)).unwrap_or(1);
    let j = if up { (i + 1).min(REFRESH_RATES.len() - 1) } else { i.saturating_sub(1) };
    REFRESH_RATES[j]
}

pub fn fmt_hz(hz: f64) -> String {
    if hz.fract() == 0.0 {
        format!("{hz:.0}")
    } else {
        format!("{hz}")
    }
}
