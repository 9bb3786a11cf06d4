//! The log pane: tui-logger's widget (fed by `tui_logger::TuiTracingSubscriberLayer`) with a compact formatter,
//! optional timestamps and the `/` text filter.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};
use tui_logger::{ExtLogRecord, LogFormatter, TuiLoggerWidget, TuiWidgetState};

use super::theme::Theme;

/// Marks formatted lines of records the filter hides; such rows are dropped after rendering.
const HIDDEN: &str = "\u{a4}";
/// How many rows are rendered off-screen to find enough matching records.
const FILTER_SCAN_ROWS: u16 = 600;

struct ConsoleLogFormatter {
    timestamps: bool,
    styles: [Style; 5],
    /// Lower-cased filter text, if any.
    filter: Option<String>,
}

impl LogFormatter for ConsoleLogFormatter {
    fn min_width(&self) -> u16 {
        12
    }

    fn format(&self, width: usize, evt: &ExtLogRecord) -> Vec<Line<'_>> {
        let level = evt.level.as_str();
        let style = match level {
            "ERROR" => self.styles[0],
            "WARN" => self.styles[1],
            "INFO" => self.styles[2],
            "DEBUG" => self.styles[3],
            _ => self.styles[4],
        };
        let mut text = String::new();
        if self.timestamps {
            text.push_str(&evt.timestamp.strftime("%H:%M:%S").to_string());
            text.push(' ');
        }
        text.push_str(&format!("{level:<5} {}", evt.msg().trim_start()));
        if let Some(f) = &self.filter {
            if !text.to_lowercase().contains(f.as_str()) {
                return vec![Line::raw(HIDDEN)];
            }
        }
        wrap(&text, width.max(4))
            .into_iter()
            .map(|l| Line::from(Span::styled(l, style)))
            .collect()
    }
}

/// Splits on newlines and wraps at `width` characters; continuation lines are indented by two spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let mut chars: Vec<char> = raw.chars().collect();
        if i > 0 {
            chars.splice(0..0, "  ".chars());
        }
        let mut first = true;
        while !chars.is_empty() || first {
            let w = if first { width } else { width.saturating_sub(2).max(1) };
            let take = chars.len().min(w);
            let piece: String = chars.drain(..take).collect();
            out.push(if first { piece } else { format!("  {piece}") });
            first = false;
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// Renders the log pane with `block` around it.
pub fn render_log(
    area: Rect,
    buf: &mut Buffer,
    block: Block<'_>,
    theme: &Theme,
    state: &TuiWidgetState,
    filter: &str,
    timestamps: bool,
) {
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let filter = filter.trim().to_lowercase();
    let formatter = ConsoleLogFormatter {
        timestamps,
        styles: [theme.log_error, theme.log_warn, theme.log_info, theme.log_debug, theme.log_trace],
        filter: (!filter.is_empty()).then_some(filter),
    };
    let filtering = formatter.filter.is_some();
    let widget = TuiLoggerWidget::default().style(theme.base).formatter(Box::new(formatter)).state(state);
    if !filtering {
        widget.render(inner, buf);
        return;
    }
    // Render far more rows than fit off-screen, keep the rows of matching records, show the last of them.
    let scratch_area = Rect::new(0, 0, inner.width, FILTER_SCAN_ROWS.max(inner.height));
    let mut scratch = Buffer::empty(scratch_area);
    widget.render(scratch_area, &mut scratch);
    let mut rows = Vec::new();
    for y in 0..scratch_area.height {
        let first = scratch.cell((0, y)).map(|c| c.symbol().to_string()).unwrap_or_default();
        if first == HIDDEN {
            continue;
        }
        let blank = (0..scratch_area.width).all(|x| scratch.cell((x, y)).is_none_or(|c| c.symbol() == " "));
        if blank {
            continue;
        }
        rows.push(y);
    }
    let shown = rows.len().saturating_sub(inner.height as usize);
    for (dy, y) in rows[shown..].iter().enumerate() {
        for x in 0..inner.width {
            if let (Some(src), Some(dst)) = (scratch.cell((x, *y)).cloned(), buf.cell_mut((inner.x + x, inner.y + dy as u16))) {
                *dst = src;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(buf: &Buffer) -> Vec<String> {
        let a = buf.area;
        (a.y..a.bottom())
            .map(|y| (a.x..a.right()).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>().trim_end().to_string())
            .collect()
    }

    #[test]
    fn filter_shows_only_matching_records() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(tui_logger::TuiTracingSubscriberLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("copy chunk 1 done");
            tracing::warn!("lag 2.1s above max-lag");
            tracing::info!("copy chunk 2 done");
            tracing::info!("checkpoint written");
        });
        tui_logger::move_events();
        let theme = Theme::unstyled();
        let state = TuiWidgetState::new();
        let area = Rect::new(0, 0, 40, 6);
        let mut buf = Buffer::empty(area);
        render_log(area, &mut buf, Block::bordered(), &theme, &state, "CHUNK", false);
        let shown = rows(&buf);
        assert!(shown[1].contains("INFO  copy chunk 1 done"), "{shown:?}");
        assert!(shown[2].contains("INFO  copy chunk 2 done"), "{shown:?}");
        assert!(!shown.iter().any(|r| r.contains("lag") || r.contains("checkpoint") || r.contains(HIDDEN)), "{shown:?}");

        let mut buf = Buffer::empty(area);
        render_log(area, &mut buf, Block::bordered(), &theme, &state, "", false);
        let all = rows(&buf).join("\n");
        assert!(all.contains("WARN  lag 2.1s above max-lag") && all.contains("checkpoint written"), "{all}");
    }

    #[test]
    fn wraps_with_indent() {
        assert_eq!(wrap("abcdefgh", 4), vec!["abcd", "  ef", "  gh"]);
        assert_eq!(wrap("", 4), vec![""]);
        assert_eq!(wrap("ab\ncd", 10), vec!["ab", "  cd"]);
    }
}
