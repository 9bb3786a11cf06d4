//! How a run reports an error: as plain text for the status snapshot, and with the resume command as a suggestion.

use color_eyre::Section;

use crate::engine::config::MigrationConfig;

/// A report as plain text with its suggestions (for the status snapshot: no colours, no backtrace).
pub(crate) fn plain_report(e: &color_eyre::Report) -> String {
    let mut text = format!("{e:#}");
    for section in format!("{e:?}").lines() {
        let clean: String = strip_ansi(section);
        if let Some(s) = clean.trim().strip_prefix("Suggestion:") {
            text.push_str(&format!("\nSuggestion: {}", s.trim()));
        }
    }
    text
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}


pub(crate) trait WithResume {
    fn with_resume(self, cfg: &MigrationConfig) -> Self;
}

impl WithResume for color_eyre::Report {
    fn with_resume(self, cfg: &MigrationConfig) -> Self {
        match &cfg.run.resume_command {
            Some(c) => self.suggestion(format!("the migration is resumable: {c}")),
            None => self.suggestion("the migration is resumable: run the same command with --resume"),
        }
    }
}
