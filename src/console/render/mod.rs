//! Drawing one frame from an owned snapshot. Pure: the same state, snapshot and theme give the same cells.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::engine::status::{format_duration, Eta, Status};
use crate::engine::Phase;

use super::keymap::footer_hints;
use super::state::{fmt_hz, ConsoleState, Popup};
use super::theme::Theme;

mod panes;
mod popups;

use panes::*;
use popups::*;

/// Below this the console shows only a notice.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;
/// From this width on, the panes sit in two columns.
pub const WIDE_WIDTH: u16 = 120;

/// `1,234,567`.
pub fn fmt_int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cuts `s` to `width` characters, ending with `…` when cut.
pub fn shorten(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

pub(super) fn width_of(spans: &[Span<'_>]) -> usize {
    spans.iter().map(|s| s.width()).sum()
}

/// Draws the whole console.
pub fn render(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    frame.render_widget(Block::default().style(theme.base), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let y = area.y + area.height / 2;
        let line = Rect::new(area.x, y, area.width, 1.min(area.height));
        frame.render_widget(
            Paragraph::new(format!("terminal too small: need {MIN_WIDTH}x{MIN_HEIGHT}"))
                .style(theme.error)
                .alignment(Alignment::Center),
            line,
        );
        return;
    }
    let notice_h = u16::from(state.notice.is_some() || state.disconnected);
    let [header, strip, body, notice, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(notice_h),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(frame, header, state, status, theme);
    render_strip(frame, strip, status, theme);
    render_body(frame, body, state, status, theme);
    if notice_h > 0 {
        render_notice(frame, notice, state, theme);
    }
    render_footer(frame, footer, state, status, theme);
    match &state.popup {
        Popup::None | Popup::Prompt { .. } | Popup::Filter { .. } => {}
        Popup::Help => render_help(frame, area, state, status, theme),
        Popup::Quit => render_quit(frame, area, state, status, theme),
        Popup::Confirm { kind, input } => render_confirm(frame, area, state, status, theme, *kind, input),
    }
}

pub(super) fn phase_badge(status: &Status, theme: &Theme) -> Span<'static> {
    match status.phase {
        None => Span::styled(" STARTING ", theme.badge_phase),
        Some(Phase::Failed) => Span::styled(" FAILED ", theme.badge_error),
        Some(Phase::Stopped) => Span::styled(" STOPPED ", theme.badge_warn),
        Some(Phase::Done) => Span::styled(" DONE ", theme.badge_ok),
        Some(Phase::ReadyToCutOver) if status.cutover.postponed => {
            Span::styled(" READY (postponed) ", theme.badge_warn)
        }
        Some(p) => Span::styled(format!(" {} ", p.label().to_uppercase()), theme.badge_phase),
    }
}

pub(super) fn throttle_badge(status: &Status, theme: &Theme) -> Option<Span<'static>> {
    let running = status.phase.is_some_and(Phase::is_running);
    if status.paused {
        return Some(Span::styled(" PAUSED ", theme.badge_warn));
    }
    if !running {
        return None;
    }
    if status.failover.waiting {
        let f = &status.failover;
        return Some(Span::styled(format!(" WAITING FOR A NEW PRIMARY ({}, {} candidates tried) ", format_duration(f.waited_seconds), f.candidates_tried.len()), theme.badge_warn));
    }
    if status.throttle.throttled {
        let reason = if status.throttle.reason.is_empty() { "throttled".to_string() } else { status.throttle.reason.clone() };
        Some(Span::styled(format!(" THROTTLED: {reason} "), theme.badge_warn))
    } else {
        Some(Span::styled(" not throttled ", theme.badge_ok))
    }
}

pub(super) fn render_header(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    let w = area.width as usize;
    let t = &status.target;
    // Row 0: where, what server; badges on the right.
    let mut right: Vec<Span> = Vec::new();
    if state.read_only {
        right.push(Span::styled("[RO]", theme.badge_ro));
        right.push(Span::raw(" "));
    }
    if state.frozen {
        right.push(Span::styled("[FROZEN]", theme.frozen));
        right.push(Span::raw(" "));
    }
    if t.dry_run {
        right.push(Span::styled("[DRY RUN]", theme.badge_warn));
        right.push(Span::raw(" "));
    }
    right.push(phase_badge(status, theme));
    let table = if t.database.is_empty() { t.table.clone() } else { format!("{}.{}", t.database, t.table) };
    let server = format!("{} {}", t.flavor, t.version).trim().to_string();
    let mut left = vec![
        Span::styled(" revenant ", theme.title),
        Span::styled(table, theme.accent),
        Span::styled(format!("  {}", t.host), theme.value),
    ];
    if !server.is_empty() {
        left.push(Span::styled(format!("  {server}"), theme.dim));
    }
    if !t.applier_host.is_empty() {
        left.push(Span::styled(format!("  → {}", t.applier_host), theme.value));
    }
    frame.render_widget(Paragraph::new(fit_row(left, right, w)), Rect { height: 1, ..area });

    // Row 1: the ALTER, elapsed, ETA, throttle.
    let mut right: Vec<Span> = vec![
        Span::styled("elapsed ", theme.label),
        Span::styled(format_duration(status.elapsed_seconds), theme.value),
        Span::styled("  ETA ", theme.label),
        Span::styled(
            match status.eta {
                Eta::Measuring => "measuring".to_string(),
                Eta::Due => "due".to_string(),
                Eta::Time(s) => format_duration(s),
            },
            theme.value,
        ),
        Span::raw(" "),
    ];
    if let Some(b) = throttle_badge(status, theme) {
        right.push(Span::raw(" "));
        right.push(b);
    }
    let room = w.saturating_sub(width_of(&right) + 8);
    let left = vec![Span::styled(" ALTER ", theme.label), Span::styled(shorten(&t.alter, room), theme.value)];
    if area.height > 1 {
        frame.render_widget(Paragraph::new(fit_row(left, right, w)), Rect { y: area.y + 1, height: 1, ..area });
    }
}

/// One row: `left` (cut to fit) then padding then `right`.
pub(super) fn fit_row<'a>(left: Vec<Span<'a>>, right: Vec<Span<'a>>, width: usize) -> Line<'a> {
    let rw = width_of(&right);
    let room = width.saturating_sub(rw + 1);
    let mut spans = Vec::new();
    let mut used = 0;
    for s in left {
        let sw = s.width();
        if used + sw <= room {
            used += sw;
            spans.push(s);
        } else {
            let cut = shorten(&s.content, room.saturating_sub(used));
            used += cut.chars().count();
            spans.push(Span::styled(cut, s.style));
            break;
        }
    }
    spans.push(Span::raw(" ".repeat(width.saturating_sub(used + rw))));
    spans.extend(right);
    Line::from(spans)
}

pub(super) fn render_strip(frame: &mut Frame, area: Rect, status: &Status, theme: &Theme) {
    let w = area.width as usize;
    let current = status.phase;
    // Where a terminal failure/stop happened: the last phase with a recorded time.
    let reached = match current {
        Some(p) if p.strip_index().is_some() => p.strip_index(),
        _ => status.phase_seconds.iter().filter_map(|(p, _)| p.strip_index()).max(),
    };
    let seconds = |p: Phase| status.phase_seconds.iter().rev().find(|(q, _)| *q == p).map(|(_, s)| *s);
    // How much to shorten the labels that are not current: nothing, those already passed, all of them.
    #[derive(Clone, Copy, PartialEq)]
    enum Short {
        None,
        Passed,
        All,
    }
    let build = |times: bool, sep: &'static str, short: Short| -> Vec<Span<'static>> {
        let mut spans = vec![Span::raw(" ")];
        for (i, p) in Phase::STRIP.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(sep, theme.dim));
            }
            let is_current = current == Some(*p);
            let passed = reached.is_some_and(|r| i < r);
            let abbreviate = !is_current && (short == Short::All || (short == Short::Passed && passed));
            let mut label = if abbreviate { p.label().chars().take(4).collect() } else { p.label().to_string() };
            if let Some(s) = seconds(*p).filter(|_| times || is_current) {
                label.push(' ');
                label.push_str(&format_duration(s));
            }
            let style = if is_current {
                theme.strip_current
            } else if reached.is_some_and(|r| i < r) || (reached == Some(i) && current.is_some_and(Phase::is_terminal)) {
                theme.strip_done
            } else {
                theme.strip_pending
            };
            if is_current {
                spans.push(Span::styled(format!(" {label} "), style));
            } else {
                spans.push(Span::styled(label, style));
            }
        }
        match current {
            Some(Phase::Failed) => spans.push(Span::styled("  ✗ failed ", theme.badge_error)),
            Some(Phase::Stopped) => spans.push(Span::styled("  ■ stopped ", theme.badge_warn)),
            _ => {}
        }
        spans
    };
    let mut spans = build(true, " › ", Short::None);
    let narrower = [
        (true, "›", Short::None),
        (false, " › ", Short::None),
        (false, "›", Short::None),
        (false, "›", Short::Passed),
        (false, "›", Short::All),
    ];
    for (times, sep, short) in narrower {
        if width_of(&spans) <= w {
            break;
        }
        spans = build(times, sep, short);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub(super) fn render_footer(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    let w = area.width as usize;
    let line = match &state.popup {
        Popup::Prompt { input } => Line::from(vec![
            Span::styled(" :", theme.key),
            Span::styled(format!("{input}▏"), theme.input),
            Span::styled("   Enter sends · Esc cancels · e.g. chunk-size=500, max-lag-millis=2000, throttle", theme.dim),
        ]),
        Popup::Filter { input } => Line::from(vec![
            Span::styled(" /", theme.key),
            Span::styled(format!("{input}▏"), theme.input),
            Span::styled("   Enter keeps · Esc clears", theme.dim),
        ]),
        _ => {
            let rate = format!("{} Hz ", fmt_hz(state.refresh_hz));
            let mut spans = vec![Span::raw(" ")];
            for (key, hint) in footer_hints(status, state.read_only, w.saturating_sub(rate.len() + 2)) {
                spans.push(Span::styled(key, theme.key));
                spans.push(Span::styled(format!(" {hint}  "), theme.hint));
            }
            let used = width_of(&spans);
            spans.push(Span::raw(" ".repeat(w.saturating_sub(used + rate.len()))));
            spans.push(Span::styled(rate, theme.dim));
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

