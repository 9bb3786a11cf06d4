//! The body of the console: its panes (copy, tables, lag, binlog, cut-over, result, log), stacked to fit.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, SparklineBar, Table, Wrap};
use ratatui::Frame;

use crate::engine::status::{format_duration, Status};
use crate::engine::Phase;

use super::super::log::render_log;
use super::super::state::{ConsoleState, Focus};
use super::super::theme::Theme;
use super::*;

pub(super) fn pane_block<'a>(title: &'a str, focus: Focus, state: &ConsoleState, theme: &Theme) -> Block<'a> {
    let focused = state.focus == focus;
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused { theme.border_focused } else { theme.border })
        .title(Span::styled(format!(" {title} "), if focused { theme.title.add_modifier(Modifier::BOLD) } else { theme.title }))
}

/// What the body shows, with heights wanted and minimal.
pub(super) struct PaneSpec {
    kind: PaneKind,
    want: u16,
    min: u16,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum PaneKind {
    Result,
    Copy,
    Tables,
    Lag,
    Binlog,
    Log,
}

pub(super) fn fit_heights(specs: &mut [PaneSpec], avail: u16) {
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
pub(super) fn wrapped_height(lines: &[Line<'_>], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    lines.iter().map(|l| l.width().max(1).div_ceil(w) as u16).sum()
}

pub(super) fn render_body(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
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
pub(super) fn stack(
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

pub(super) fn render_pane(frame: &mut Frame, area: Rect, kind: PaneKind, state: &ConsoleState, status: &Status, theme: &Theme) {
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

pub(super) fn result_lines(status: &Status, theme: &Theme) -> Vec<Line<'static>> {
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

pub(super) fn bar(fraction: f64, width: usize, theme: &Theme) -> Vec<Span<'static>> {
    let fraction = fraction.clamp(0.0, 1.0);
    let filled = ((width as f64) * fraction).round() as usize;
    vec![
        Span::styled("█".repeat(filled.min(width)), theme.gauge_filled),
        Span::styled("░".repeat(width.saturating_sub(filled)), theme.gauge_empty),
    ]
}

pub(super) fn copy_lines(status: &Status, theme: &Theme, width: usize) -> Vec<Line<'static>> {
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
    ];
    if c.slices > 1 {
        second.extend([Span::styled("  workers ", theme.label), Span::styled(c.slices.to_string(), theme.value)]);
    }
    second.extend([
        Span::styled("  copy time ", theme.label),
        Span::styled(format_duration(status.elapsed_copy_seconds), theme.value),
    ]);
    if c.complete {
        second.push(Span::styled("  ✓ copy complete", theme.success));
    }
    vec![Line::from(first), Line::from(second)]
}

pub(super) fn table_lines(status: &Status, theme: &Theme, width: usize, height: usize) -> Vec<Line<'static>> {
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

pub(super) fn render_lag(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
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

pub(super) fn binlog_lines(status: &Status, theme: &Theme, width: usize) -> Vec<Line<'static>> {
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
    if b.apply_writers > 1 {
        first.spans.extend([Span::styled("  writers ", theme.label), Span::styled(b.apply_writers.to_string(), theme.value)]);
    }
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

/// The deferred secondary indexes while they are added (after the copy), and how long that took once done.
fn index_lines(status: &Status, theme: &Theme, kv: &dyn Fn(&str, String, Style) -> Line<'static>) -> Vec<Line<'static>> {
    let ix = &status.indexes;
    if ix.deferred.is_empty() {
        return Vec::new();
    }
    let took = ix.build_seconds.map(format_duration).unwrap_or_default();
    match status.phase {
        Some(Phase::Indexes) => vec![kv("indexes", format!("adding {} in place  {took}", ix.deferred.join(", ")), theme.accent)],
        Some(Phase::Catchup | Phase::Verify | Phase::ReadyToCutOver) if ix.build_seconds.is_some() => {
            vec![kv("indexes", format!("{} added in {took}", ix.deferred.len()), theme.value)]
        }
        _ => Vec::new(),
    }
}

/// The verification: a gauge while a pass runs, then when the last one ended and what it found.
fn verify_lines(status: &Status, theme: &Theme, kv: &dyn Fn(&str, String, Style) -> Line<'static>) -> Vec<Line<'static>> {
    let v = &status.verify;
    let mut lines = Vec::new();
    if status.phase == Some(Phase::Verify) {
        let mut spans = vec![Span::styled(format!("{:<11}", "verify"), theme.label)];
        spans.extend(bar(v.fraction(), 20, theme));
        // A move verifies its tables one after the other: say which.
        let table = match (&v.table, status.tables.is_empty()) {
            (Some(t), false) => format!("  {t}"),
            _ => String::new(),
        };
        spans.push(Span::styled(
            format!(" {:5.1}%  round {}  chunks {}/{}  rows {}{table}", v.fraction() * 100.0, v.round.max(1), v.chunks_done, v.chunks_total, fmt_int(v.rows_verified)),
            theme.value,
        ));
        lines.push(Line::from(spans));
        if let Some(ms) = v.last_lock_ms {
            lines.push(kv("v. lock", format!("{ms}ms"), theme.value));
        }
    } else if let (Some(result), Some(Phase::ReadyToCutOver | Phase::CutOver)) = (&v.last_result, status.phase) {
        let when = v.last_ended_unix.map(|t| format!("{:02}:{:02}:{:02} UTC", t / 3600 % 24, t / 60 % 60, t % 60)).unwrap_or_default();
        let style = if result.starts_with("identical") { theme.success } else { theme.error };
        lines.push(kv("verified", format!("{when}  {result}"), style));
    }
    lines
}

/// The cut-over and drain lines: they head the binlog pane, since they matter most when they exist.
pub(super) fn cutover_lines(
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
    lines.extend(index_lines(status, theme, kv));
    lines.extend(verify_lines(status, theme, kv));
    if let Some(gtid) = &co.drain_gtid {
        let left = co.events_left_to_drain.map(|n| format!("{} events left", fmt_int(n))).unwrap_or_else(|| "measuring".into());
        lines.push(kv("drain", left, theme.signal_throttling));
        lines.push(kv("drain to", gtid.clone(), theme.value));
    }
    lines
}

