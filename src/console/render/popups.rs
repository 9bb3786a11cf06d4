//! What opens above the panes: the notice line, the help overlay, the quit and confirmation popups.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::engine::status::Status;

use super::super::keymap::{usable, KEYMAP};
use super::super::state::{ConfirmKind, ConsoleState};
use super::super::theme::Theme;
use super::*;

pub(super) fn render_notice(frame: &mut Frame, area: Rect, state: &ConsoleState, theme: &Theme) {
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

pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

pub(super) fn popup_block<'a>(title: String, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.popup_border)
        .style(theme.popup)
        .title(Span::styled(format!(" {title} "), theme.popup_border))
}

pub(super) fn render_help(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
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
    let hint = " In popups: Esc cancels. Confirmations need the table name typed exactly. ";
    if lines.len() < inner.height as usize {
        lines.push(Line::styled(hint, theme.dim));
    } else {
        // No line left (80x24): the hint goes on the bottom border instead of being cut off.
        frame.render_widget(Block::default().title_bottom(Span::styled(hint, theme.dim)), rect);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

pub(super) fn render_quit(frame: &mut Frame, area: Rect, state: &ConsoleState, status: &Status, theme: &Theme) {
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

pub(super) fn render_confirm(
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

