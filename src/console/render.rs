//! Drawing one frame from an owned snapshot. Pure: the same state, snapshot and theme give the same cells.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, SparklineBar, Table, Wrap};
use ratatui::Frame;

use crate::engine::status::{format_duration, Eta, Status};
use crate::engine::Phase;

use super::keymap::{footer_hints, usable, KEYMAP};
use super::log::render_log;
use super::state::{fmt_hz, ConfirmKind, ConsoleState, Focus, Popup};
use super::theme::Theme;

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

fn width_of(spans: &[Span<'_>]) -> usize {
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

fn phase_badge(status: &Status, theme: &Theme) -> Span<'static> {
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

fn throttle_badge(status: &Status, theme: &Theme) -> Option<Span<'static>> {
    let running = status.phase.is_some_and(Phase::is_running);
    if status.paused {
        return Some(Span::styled(" PAUSED ", theme.badge_warn));
    }
    if !running {
        return None;
    }
    if status.throttle.throttled {
        let reason = if status.throttle.reason.is_empty() { "throttled".to_string() } else { status.throttle.reason.clone() };
        Some(Span::styled(format!(" THROTTLED: {reason} "), theme.badge_warn))
    } else {
        Some(Span::styled(" not throttled ", theme.badge_ok))
    }
}

fn render_header(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
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
fn fit_row<'a>(left: Vec<Span<'a>>, right: Vec<Span<'a>>, width: usize) -> Line<'a> {
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

fn render_strip(frame: &mut Frame, area: Rect, status: &Status, theme: &Theme) {
    let w = area.width as usize;
    let current = status.phase;
    // Where a terminal failure/stop happened: the last phase with a recorded time.
    let reached = match current {
        Some(p) if p.strip_index().is_some() => p.strip_index(),
        _ => status.phase_seconds.iter().filter_map(|(p, _)| p.strip_index()).max(),
    };
    let seconds = |p: Phase| status.phase_seconds.iter().rev().find(|(q, _)| *q == p).map(|(_, s)| *s);
    let build = |times: bool, sep: &'static str, abbreviate: bool| -> Vec<Span<'static>> {
        let mut spans = vec![Span::raw(" ")];
        for (i, p) in Phase::STRIP.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(sep, theme.dim));
            }
            let is_current = current == Some(*p);
            let mut label = if abbreviate && !is_current { p.label().chars().take(4).collect() } else { p.label().to_string() };
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
    let mut spans = build(true, " › ", false);
    for (times, sep, abbreviate) in [(false, " › ", false), (false, "›", false), (false, "›", true)] {
        if width_of(&spans) <= w {
            break;
        }
        spans = build(times, sep, abbreviate);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn pane_block<'a>(title: &'a str, focus: Focus, state: &ConsoleState, theme: &Theme) -> Block<'a> {
    let focused = state.focus == focus;
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused { theme.border_focused } else { theme.border })
        .title(Span::styled(format!(" {title} "), if focused { theme.title.add_modifier(Modifier::BOLD) } else { theme.title }))
}

/// What the body shows, with heights wanted and minimal.
struct PaneSpec {
    kind: PaneKind,
    want: u16,
    min: u16,
}

#[derive(Clone, Copy, PartialEq)]
enum PaneKind {
    Result,
    Copy,
    Tables,
    Lag,
    Binlog,
    Log,
}

fn fit_heights(specs: &mut [PaneSpec], avail: u16) {
    loop {
        let total: u16 = specs.iter().map(|s| s.want).sum();
        if total <= avail {
            return;
        }
        // Shrink the pane with the most slack above its minimum.
        let Some(s) = specs.iter_mut().filter(|s| s.want > s.min).max_by_key(|s| s.want - s.min) else {
            return;
        };
        s.want -= 1;
    }
}

/// Rows a paragraph of `lines` needs when wrapped at `width`.
fn wrapped_height(lines: &[Line<'_>], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    lines.iter().map(|l| l.width().max(1).div_ceil(w) as u16).sum()
}

fn render_body(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    if state.log_maximised {
        render_pane(frame, area, PaneKind::Log, state, status, theme);
        return;
    }
    let wide = area.width >= WIDE_WIDTH;
    let result = result_lines(status, theme);
    let result_h = if result.is_empty() { 0 } else { wrapped_height(&result, area.width.saturating_sub(2)) + 2 };
    let tables_n = status.tables.len() as u16;
    let copy_h = if status.copy.complete { 3 } else { 4 };
    if wide {
        // Top: the result (if any) across; then two columns (copy + lag | binlog + tables); the log below, full width.
        let [result_area, rest] =
            Layout::vertical([Constraint::Length(result_h.min(area.height / 3)), Constraint::Min(0)]).areas(area);
        if result_h > 0 {
            render_pane(frame, result_area, PaneKind::Result, state, status, theme);
        }
        let half = rest.width / 2;
        let binlog_h = binlog_lines(status, theme, usize::from(half)).len() as u16 + 2;
        let lag_h = 7 + status.throttle.signals.len().min(6) as u16;
        let left_h = copy_h + lag_h;
        let right_h = binlog_h + if tables_n > 0 { tables_n.min(8) + 2 } else { 0 };
        let top_h = left_h.max(right_h).min(rest.height.saturating_sub(5));
        let [top, log] = Layout::vertical([Constraint::Length(top_h), Constraint::Min(0)]).areas(rest);
        let [left, right] = Layout::horizontal([Constraint::Length(half), Constraint::Min(0)]).areas(top);
        let specs = vec![
            PaneSpec { kind: PaneKind::Copy, want: copy_h, min: 3 },
            PaneSpec { kind: PaneKind::Lag, want: lag_h, min: 3 },
        ];
        stack(frame, left, specs, true, state, status, theme);
        let mut specs = vec![PaneSpec { kind: PaneKind::Binlog, want: binlog_h, min: 4 }];
        if tables_n > 0 {
            specs.push(PaneSpec { kind: PaneKind::Tables, want: tables_n.min(8) + 2, min: 3 });
        }
        stack(frame, right, specs, true, state, status, theme);
        render_pane(frame, log, PaneKind::Log, state, status, theme);
    } else {
        let binlog_h = binlog_lines(status, theme, usize::from(area.width.saturating_sub(2))).len() as u16 + 2;
        let mut specs = vec![];
        if result_h > 0 {
            specs.push(PaneSpec { kind: PaneKind::Result, want: result_h, min: result_h.min(area.height / 2) });
        }
        specs.push(PaneSpec { kind: PaneKind::Copy, want: copy_h, min: 3 });
        if tables_n > 0 {
            specs.push(PaneSpec { kind: PaneKind::Tables, want: tables_n.min(4) + 2, min: 3 });
        }
        specs.push(PaneSpec { kind: PaneKind::Lag, want: 5, min: 3 });
        specs.push(PaneSpec { kind: PaneKind::Binlog, want: binlog_h, min: 4 });
        specs.push(PaneSpec { kind: PaneKind::Log, want: 3, min: 3 });
        stack(frame, area, specs, true, state, status, theme);
    }
}

/// Stacks panes vertically; the last one takes what is left when `last_fills`, else the log does.
fn stack(
    frame: &mut Frame,
    area: Rect,
    mut specs: Vec<PaneSpec>,
    last_fills: bool,
    state: &ConsoleState,
    status: &Status,
    theme: &Theme,
) {
    fit_heights(&mut specs, area.height);
    let total: u16 = specs.iter().map(|s| s.want).sum();
    let extra = area.height.saturating_sub(total);
    if let Some(last) = specs.last_mut() {
        if last_fills || last.kind == PaneKind::Log {
            last.want += extra;
        }
    }
    let mut y = area.y;
    for s in &specs {
        let h = s.want.min(area.bottom().saturating_sub(y));
        if h == 0 {
            break;
        }
        render_pane(frame, Rect::new(area.x, y, area.width, h), s.kind, state, status, theme);
        y += h;
    }
}

fn render_pane(frame: &mut Frame, area: Rect, kind: PaneKind, state: &ConsoleState, status: &Status, theme: &Theme) {
    match kind {
        PaneKind::Result => {
            let title = match status.phase {
                Some(Phase::Failed) => "Failed",
                Some(Phase::Stopped) => "Stopped",
                _ => "Result",
            };
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(if status.phase == Some(Phase::Failed) { theme.error } else { theme.border_focused })
                .title(Span::styled(format!(" {title} "), theme.title));
            frame.render_widget(Paragraph::new(result_lines(status, theme)).block(block).wrap(Wrap { trim: false }), area);
        }
        PaneKind::Copy => {
            let block = pane_block("Copy", Focus::Copy, state, theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(Paragraph::new(copy_lines(status, theme, inner.width as usize)), inner);
        }
        PaneKind::Tables => {
            let block = pane_block("Tables", Focus::Tables, state, theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(Paragraph::new(table_lines(status, theme, inner.width as usize, inner.height as usize)), inner);
        }
        PaneKind::Lag => render_lag(frame, area, state, status, theme),
        PaneKind::Binlog => {
            let block = pane_block("Binlog & cut-over", Focus::Binlog, state, theme);
            let inner = block.inner(area);
            frame.render_widget(block, area);
            frame.render_widget(Paragraph::new(binlog_lines(status, theme, inner.width as usize)), inner);
        }
        PaneKind::Log => {
            let title = if state.filter.is_empty() { "Log".to_string() } else { format!("Log  filter: {}", state.filter) };
            let focused = state.focus == Focus::Log;
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(if focused { theme.border_focused } else { theme.border })
                .title(Span::styled(format!(" {title} "), theme.title));
            render_log(area, frame.buffer_mut(), block, theme, &state.log_state, &state.filter, state.log_timestamps);
        }
    }
}

fn result_lines(status: &Status, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    match status.phase {
        Some(Phase::Done) => {
            lines.push(Line::from(vec![
                Span::styled("Migration complete", theme.success.add_modifier(Modifier::BOLD)),
                Span::styled(format!(" in {}", format_duration(status.elapsed_seconds)), theme.value),
            ]));
            if let Some(m) = &status.message {
                lines.push(Line::styled(m.clone(), theme.value));
            }
        }
        Some(Phase::Failed) | Some(Phase::Stopped) => {
            let style = if status.phase == Some(Phase::Failed) { theme.error } else { theme.value };
            lines.push(Line::styled(status.message.clone().unwrap_or_else(|| "no message".into()), style));
            if let Some(cmd) = &status.resume_command {
                lines.push(Line::from(vec![Span::styled("resume with: ", theme.label), Span::styled(cmd.clone(), theme.accent)]));
            }
        }
        _ => {}
    }
    lines
}

fn bar(fraction: f64, width: usize, theme: &Theme) -> Vec<Span<'static>> {
    let fraction = fraction.clamp(0.0, 1.0);
    let filled = ((width as f64) * fraction).round() as usize;
    vec![
        Span::styled("█".repeat(filled.min(width)), theme.gauge_filled),
        Span::styled("░".repeat(width.saturating_sub(filled)), theme.gauge_empty),
    ]
}

fn copy_lines(status: &Status, theme: &Theme, width: usize) -> Vec<Line<'static>> {
    let c = &status.copy;
    let pct = c.percent();
    let est = if c.rows_estimate_exact { fmt_int(c.rows_estimate) } else { format!("~{}", fmt_int(c.rows_estimate)) };
    let label = format!(" {pct:5.1}%  {} / {est} rows", fmt_int(c.rows_copied));
    let bar_w = width.saturating_sub(label.chars().count() + 1).max(5);
    let mut first = bar(pct / 100.0, bar_w, theme);
    first.push(Span::styled(label, theme.value));
    let mut second = vec![
        Span::styled(" rows/s ", theme.label),
        Span::styled(fmt_int(c.rows_per_second.round() as u64), theme.value),
        Span::styled("  chunk ", theme.label),
        Span::styled(fmt_int(c.chunk_size), theme.value),
        Span::styled("  copy time ", theme.label),
        Span::styled(format_duration(status.elapsed_copy_seconds), theme.value),
    ];
    if c.complete {
        second.push(Span::styled("  ✓ copy complete", theme.success));
    }
    vec![Line::from(first), Line::from(second)]
}

fn table_lines(status: &Status, theme: &Theme, width: usize, height: usize) -> Vec<Line<'static>> {
    let name_w = status.tables.iter().map(|t| t.table.chars().count()).max().unwrap_or(5).clamp(5, 24);
    let done = status.tables.iter().filter(|t| t.complete).count();
    let mut lines = Vec::new();
    let rows: Vec<_> = status.tables.iter().collect();
    let show = if rows.len() > height { height.saturating_sub(1) } else { rows.len() };
    for t in rows.iter().take(show) {
        let frac = if t.complete {
            1.0
        } else if t.rows_estimate == 0 {
            0.0
        } else {
            (t.rows_copied as f64 / t.rows_estimate as f64).min(0.999)
        };
        let mark = if t.complete { Span::styled("✓ ", theme.success) } else { Span::styled("· ", theme.dim) };
        let counts = format!(" {:5.1}%  {}/{}", frac * 100.0, fmt_int(t.rows_copied), fmt_int(t.rows_estimate));
        let bar_w = width.saturating_sub(2 + name_w + 1 + counts.chars().count()).clamp(0, 30);
        let mut spans = vec![mark, Span::styled(format!("{:<name_w$} ", shorten(&t.table, name_w)), theme.accent)];
        spans.extend(bar(frac, bar_w, theme));
        spans.push(Span::styled(counts, theme.value));
        lines.push(Line::from(spans));
    }
    if show < rows.len() {
        lines.push(Line::styled(format!("… {} more ({done}/{} tables complete)", rows.len() - show, rows.len()), theme.dim));
    }
    lines
}

fn render_lag(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    let block = pane_block("Lag & throttle", Focus::Lag, state, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let has_signals = !status.throttle.signals.is_empty();
    let table_h = status.throttle.signals.len() as u16 + 1;
    // Tall enough: head line, sparkline, signals table stacked; otherwise sparkline left, table right.
    let (left, right) = if has_signals && inner.height >= table_h + 3 {
        let [l, r] = Layout::vertical([Constraint::Min(0), Constraint::Length(table_h)]).areas(inner);
        (l, r)
    } else {
        let spark_w = if has_signals { (inner.width * 2 / 5).max(24).min(inner.width) } else { inner.width };
        let [l, r] = Layout::horizontal([Constraint::Length(spark_w), Constraint::Min(0)]).spacing(2).areas(inner);
        (l, r)
    };
    let lag = status.lag_history.last().copied();
    let mut head = vec![
        Span::styled("lag ", theme.label),
        Span::styled(lag.map(|l| format!("{l:.2}s")).unwrap_or_else(|| "–".into()), theme.value),
        Span::styled(" max ", theme.label),
        Span::styled(format!("{:.2}s", status.max_lag_seconds), theme.value),
    ];
    if let Some(hb) = status.heartbeat_lag_seconds {
        head.push(Span::styled(" hb ", theme.label));
        head.push(Span::styled(format!("{hb:.2}s"), theme.value));
    }
    frame.render_widget(Paragraph::new(Line::from(head)), Rect { height: 1, ..left });
    if left.height > 1 {
        let spark_area = Rect { y: left.y + 1, height: left.height - 1, width: left.width.saturating_sub(1), ..left };
        let n = spark_area.width as usize;
        let samples = &status.lag_history[status.lag_history.len().saturating_sub(n)..];
        let max_ms = (status.max_lag_seconds * 1000.0).round() as u64;
        let peak = samples.iter().map(|s| (s * 1000.0).round() as u64).max().unwrap_or(0);
        let bars: Vec<SparklineBar> = samples
            .iter()
            .map(|s| {
                let v = (s.max(0.0) * 1000.0).round() as u64;
                let style = if max_ms > 0 && v > max_ms { theme.spark_over } else { theme.spark };
                SparklineBar::from(v).style(Some(style))
            })
            .collect();
        frame.render_widget(
            Sparkline::default().data(bars).max(peak.max(max_ms).max(1)).style(theme.spark),
            spark_area,
        );
    }
    if has_signals && right.width > 10 {
        let header = Row::new(vec!["signal", "value", "threshold", "state"]).style(theme.label);
        let rows: Vec<Row> = status
            .throttle
            .signals
            .iter()
            .map(|s| {
                let (st, style) = if s.throttling { ("THROTTLING", theme.signal_throttling) } else { ("ok", theme.signal_ok) };
                Row::new(vec![
                    Cell::from(Span::styled(s.name.clone(), theme.value)),
                    Cell::from(Span::styled(s.value.clone(), theme.value)),
                    Cell::from(Span::styled(s.threshold.clone(), theme.dim)),
                    Cell::from(Span::styled(st, style)),
                ])
            })
            .collect();
        let table = Table::new(
            rows,
            [Constraint::Min(15), Constraint::Fill(1), Constraint::Fill(1), Constraint::Length(10)],
        )
        .header(header)
        .column_spacing(1);
        frame.render_widget(table, right);
    }
}

fn binlog_lines(status: &Status, theme: &Theme, width: usize) -> Vec<Line<'static>> {
    let b = &status.binlog;
    let label_w = 11;
    let val_w = width.saturating_sub(label_w);
    let kv = |label: &str, value: String, style: Style| -> Line<'static> {
        Line::from(vec![
            Span::styled(format!("{label:<label_w$}"), theme.label),
            Span::styled(shorten(&value, val_w), style),
        ])
    };
    let mut lines = cutover_lines(status, theme, &kv);
    let applied = if b.applied_file.is_empty() { "–".to_string() } else { format!("{}:{}", b.applied_file, b.applied_pos) };
    let mut first = kv("applied", applied, theme.accent);
    if !b.streaming && status.phase.is_some_and(|p| !p.is_terminal()) {
        first.spans.push(Span::styled("  stream disconnected", theme.error));
    }
    lines.push(first);
    lines.push(kv("gtid set", if b.applied_gtid_set.is_empty() { "–".into() } else { b.applied_gtid_set.clone() }, theme.value));
    lines.push(kv(
        "events",
        format!(
            "{} applied  {}/s  backlog {}/{}",
            fmt_int(b.events_applied),
            fmt_int(b.events_per_second.round() as u64),
            fmt_int(b.backlog),
            fmt_int(b.backlog_capacity)
        ),
        theme.value,
    ));
    let ck = &status.checkpoint;
    let ckpt = match ck.age_seconds {
        None => "none yet".to_string(),
        Some(age) => {
            let at = if ck.gtid_set.is_empty() { ck.watermark.clone() } else { ck.gtid_set.clone() };
            format!("{} ago  at {at}", format_duration(age))
        }
    };
    lines.push(kv("checkpoint", ckpt, theme.value));
    if let Some(from) = &ck.resumed_from {
        lines.push(kv("resumed", from.clone(), theme.dim));
    }
    lines
}

/// The cut-over and drain lines: they head the binlog pane, since they matter most when they exist.
fn cutover_lines(
    status: &Status,
    theme: &Theme,
    kv: &dyn Fn(&str, String, Style) -> Line<'static>,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let co = &status.cutover;
    match status.phase {
        Some(Phase::ReadyToCutOver) => {
            let text = if co.postponed {
                format!("postponed {}: press C or `unpostpone`", format_duration(co.waiting_seconds))
            } else {
                format!("ready, waiting {}", format_duration(co.waiting_seconds))
            };
            lines.push(kv("cut-over", text, theme.signal_throttling));
        }
        Some(Phase::CutOver) => {
            let mut text = format!("step {}  attempt {}", if co.step.is_empty() { "–" } else { &co.step }, co.attempts);
            if let Some(ms) = co.last_stall_ms {
                text.push_str(&format!("  last stall {ms}ms"));
            }
            lines.push(kv("cut-over", text, theme.accent));
        }
        _ => {
            if co.attempts > 0 {
                let mut text = format!("{} attempt(s)", co.attempts);
                if let Some(ms) = co.last_stall_ms {
                    text.push_str(&format!("  last stall {ms}ms"));
                }
                lines.push(kv("cut-over", text, theme.value));
            }
        }
    }
    if let Some(reason) = &co.blocked_reason {
        lines.push(kv("blocked", reason.clone(), theme.error));
    }
    if let Some(gtid) = &co.drain_gtid {
        let left = co.events_left_to_drain.map(|n| format!("{} events left", fmt_int(n))).unwrap_or_else(|| "measuring".into());
        lines.push(kv("drain", left, theme.signal_throttling));
        lines.push(kv("drain to", gtid.clone(), theme.value));
    }
    lines
}

fn render_notice(frame: &mut Frame, area: Rect, state: &ConsoleState, theme: &Theme) {
    let line = match (&state.notice, state.disconnected) {
        (Some(n), _) => {
            let (mark, style) = if n.ok { ("✓ ", theme.success) } else { ("✗ ", theme.error) };
            Line::from(vec![Span::styled(format!(" {mark}"), style), Span::styled(shorten(&n.text, area.width as usize - 3), style)])
        }
        (None, true) => Line::styled(" ✗ connection to the migration lost; showing the last snapshot (q quits)", theme.error),
        (None, false) => Line::default(),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn render_footer(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
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

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

fn popup_block<'a>(title: String, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.popup_border)
        .style(theme.popup)
        .title(Span::styled(format!(" {title} "), theme.popup_border))
}

fn render_help(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    let width = area.width.saturating_sub(4).min(92);
    let height = (KEYMAP.len() as u16 + 4).min(area.height.saturating_sub(2));
    let rect = centered(area, width, height);
    frame.render_widget(Clear, rect);
    let block = popup_block("Keys (Esc closes)".into(), theme);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let desc_w = inner.width.saturating_sub(8) as usize;
    let mut lines = Vec::new();
    for b in KEYMAP {
        let ok = usable(b, status, state.read_only);
        let note = if ok {
            String::new()
        } else if b.sends && state.read_only {
            " (read-only)".to_string()
        } else {
            " (not now)".to_string()
        };
        let (kstyle, dstyle) = if ok { (theme.key, theme.popup) } else { (theme.key_disabled, theme.dim) };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<6} ", b.label), kstyle),
            Span::styled(shorten(&format!("{}{note}", b.help), desc_w), dstyle),
        ]));
    }
    lines.push(Line::styled(" In popups: Esc cancels. Confirmations need the table name typed exactly.", theme.dim));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_quit(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
    let rect = centered(area, 64, 8);
    frame.render_widget(Clear, rect);
    let block = popup_block("Quit".into(), theme);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let phase = status.phase.map(|p| p.label()).unwrap_or("starting");
    let (skey, stext) = if state.read_only {
        (theme.key_disabled, Span::styled("stop with a checkpoint (disabled: read-only)", theme.dim))
    } else {
        (theme.key, Span::styled("stop at a safe point, write a checkpoint (resumable)", theme.popup))
    };
    let lines = vec![
        Line::styled(format!(" The migration is in phase {phase}."), theme.popup),
        Line::default(),
        Line::from(vec![
            Span::styled("  d    ", theme.key),
            Span::styled("detach: close the console, the migration keeps running", theme.popup),
        ]),
        Line::from(vec![Span::styled("  s    ", skey), stext]),
        Line::from(vec![Span::styled("  Esc  ", theme.key), Span::styled("cancel", theme.popup)]),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_confirm(
    frame: &mut Frame,
    area: Rect,
    state: &ConsoleState,
    status: &Status,
    theme: &Theme,
    kind: ConfirmKind,
    input: &str,
) {
    let rect = centered(area, 66, 9);
    frame.render_widget(Clear, rect);
    let title = match kind {
        ConfirmKind::CutOver => "Confirm cut-over",
        ConfirmKind::Abort => "Confirm ABORT",
    };
    let block = popup_block(title.into(), theme);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let t = &status.target;
    let what = match kind {
        ConfirmKind::CutOver => format!(
            " This swaps `{}` with its ghost table `{}`.",
            t.table,
            if t.ghost_table.is_empty() { "(ghost)" } else { &t.ghost_table }
        ),
        ConfirmKind::Abort => " This aborts the migration now. Nothing is dropped; --resume continues.".to_string(),
    };
    let lines = vec![
        Line::styled(shorten(&what, inner.width as usize), theme.popup),
        Line::default(),
        Line::from(vec![
            Span::styled(" Type the table name ", theme.popup),
            Span::styled(state.table_name_for_confirm.clone(), theme.accent),
            Span::styled(" and press Enter:", theme.popup),
        ]),
        Line::from(vec![Span::styled(" > ", theme.key), Span::styled(format!("{input}▏"), theme.input)]),
        Line::default(),
        Line::styled(" Esc cancels; any other text + Enter cancels too.", theme.dim),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}
