//! Console colours, loaded from TOML.
//!
//! A theme file sets any of the style slots below; each slot is a table with optional `fg`, `bg` (a colour name
//! such as `red`, `lightblue`, `darkgray`, `reset`, or `#rrggbb`) and `modifiers` (a list of `bold`, `dim`,
//! `italic`, `underlined`, `reversed`, `crossed_out`). `extends` names the shipped theme it starts from
//! (`default` when absent; `none` starts from no styling at all). Unknown keys are errors.

use color_eyre::eyre::{eyre, WrapErr};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// Shipped themes, embedded at compile time.
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    modifiers: Option<Vec<String>>,
}

impl StyleSpec {
    fn apply(&self, mut style: Style) -> Result<Style, String> {
        if let Some(fg) = &self.fg {
            style.fg = Some(parse_color(fg)?);
        }
        if let Some(bg) = &self.bg {
            style.bg = Some(parse_color(bg)?);
        }
        if let Some(mods) = &self.modifiers {
            let mut m = Modifier::empty();
            for name in mods {
                m |= parse_modifier(name)?;
            }
            style.add_modifier = m;
            style.sub_modifier = Modifier::empty();
        }
        Ok(style)
    }
}

/// Parses `red`, `lightblue`, `reset`, `#rrggbb`.
pub fn parse_color(s: &str) -> Result<Color, String> {
    let lc = s.trim().to_ascii_lowercase().replace(['-', '_', ' '], "");
    let c = match lc.as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        hex if hex.starts_with('#') && hex.len() == 7 => {
            let n = u32::from_str_radix(&hex[1..], 16).map_err(|_| format!("bad colour `{s}`"))?;
            Color::Rgb((n >> 16) as u8, (n >> 8) as u8, n as u8)
        }
        _ => return Err(format!("unknown colour `{s}` (use a name like `lightblue`, `reset` or `#rrggbb`)")),
    };
    Ok(c)
}

fn parse_modifier(s: &str) -> Result<Modifier, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        "crossed_out" | "crossed-out" => Modifier::CROSSED_OUT,
        other => {
            return Err(format!(
                "unknown modifier `{other}` (use bold, dim, italic, underlined, reversed, crossed_out)"
            ))
        }
    })
}

macro_rules! theme_slots {
    ($($slot:ident : $doc:literal),* $(,)?) => {
        /// Every style the console uses.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            pub name: String,
            $(#[doc = $doc] pub $slot: Style,)*
        }

        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ThemeFile {
            name: Option<String>,
            extends: Option<String>,
            $($slot: Option<StyleSpec>,)*
        }

        impl Theme {
            /// No styling at all.
            pub fn unstyled() -> Self {
                Self { name: "none".into(), $($slot: Style::default(),)* }
            }

            fn overlay(&mut self, file: &ThemeFile) -> Result<(), String> {
                if let Some(n) = &file.name {
                    self.name = n.clone();
                }
                $(
                    if let Some(spec) = &file.$slot {
                        self.$slot = spec.apply(self.$slot).map_err(|e| format!("{}: {e}", stringify!($slot)))?;
                    }
                )*
                Ok(())
            }
        }
    };
}

theme_slots! {
    base: "Background and default text.",
    title: "Pane titles.",
    border: "Pane borders.",
    border_focused: "The focused pane's border.",
    label: "Labels (`rows`, `ETA`, ...).",
    value: "Values next to labels.",
    dim: "Secondary text.",
    accent: "Emphasised values (table names, positions).",
    badge_phase: "The phase badge in the header.",
    badge_ok: "A good state (not throttled, done).",
    badge_warn: "A warning state (throttled, postponed, paused).",
    badge_error: "A bad state (failed, aborted).",
    badge_ro: "The read-only badge.",
    strip_done: "Phases already passed on the strip.",
    strip_current: "The current phase on the strip.",
    strip_pending: "Phases still ahead.",
    gauge_filled: "The filled part of the copy gauge.",
    gauge_empty: "The empty part of the copy gauge.",
    spark: "Lag sparkline under the threshold.",
    spark_over: "Lag sparkline over the threshold.",
    signal_ok: "A throttle signal that does not throttle.",
    signal_throttling: "A throttle signal that throttles.",
    key: "Key names in the footer and help.",
    key_disabled: "Keys not available now.",
    hint: "Footer hint text.",
    popup: "Popup text.",
    popup_border: "Popup borders.",
    input: "Text being typed.",
    error: "Error messages.",
    success: "Success messages.",
    log_error: "ERROR log lines.",
    log_warn: "WARN log lines.",
    log_info: "INFO log lines.",
    log_debug: "DEBUG log lines.",
    log_trace: "TRACE log lines.",
    frozen: "The [FROZEN] badge.",
}

impl Default for Theme {
    fn default() -> Self {
        Theme::builtin("default").unwrap_or_else(|_| Theme::unstyled())
    }
}

impl Theme {
    /// A shipped theme by name.
    pub fn builtin(name: &str) -> color_eyre::Result<Theme> {
        Self::builtin_depth(name, 0)
    }

    fn builtin_depth(name: &str, depth: usize) -> color_eyre::Result<Theme> {
        if name == "none" {
            return Ok(Theme::unstyled());
        }
        let text = SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| eyre!("unknown theme `{name}` (shipped: default, dark, light, mono; or give a path)"))?;
        Self::from_toml_depth(text, name, depth)
    }

    /// Parses a theme from TOML text; it overlays the theme named by its `extends` (default: `default`).
    pub fn from_toml(text: &str) -> color_eyre::Result<Theme> {
        Self::from_toml_depth(text, "theme", 0)
    }

    fn from_toml_depth(text: &str, origin: &str, depth: usize) -> color_eyre::Result<Theme> {
        if depth > 4 {
            return Err(eyre!("theme `{origin}`: `extends` nests too deeply"));
        }
        let file: ThemeFile = toml::from_str(text).map_err(|e| eyre!("theme `{origin}`: {}", e.to_string().trim()))?;
        let base_name = file.extends.clone().unwrap_or_else(|| "default".into());
        let mut theme = if origin == "default" && base_name == "default" {
            Theme::unstyled()
        } else {
            Self::builtin_depth(&base_name, depth + 1)?
        };
        theme.name = origin.to_string();
        theme.overlay(&file).map_err(|e| eyre!("theme `{origin}`: {e}"))?;
        Ok(theme)
    }

    /// A shipped theme name, or a path to a TOML file (anything with a `/` or ending in `.toml`).
    pub fn load(name_or_path: &str) -> color_eyre::Result<Theme> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            let text = std::fs::read_to_string(name_or_path)
                .wrap_err_with(|| format!("cannot read theme file {name_or_path}"))?;
            let mut t = Self::from_toml_depth(&text, name_or_path, 0)?;
            if t.name.is_empty() {
                t.name = name_or_path.into();
            }
            Ok(t)
        } else {
            Self::builtin(name_or_path)
        }
    }

    /// The theme to use: `mono` when `NO_COLOR` is set (non-empty), else `requested` (default: `default`).
    pub fn select(requested: Option<&str>) -> color_eyre::Result<Theme> {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if no_color {
            return Theme::builtin("mono");
        }
        Theme::load(requested.unwrap_or("default"))
    }

    /// The monochrome theme (no colours; bold/reversed/underlined only).
    pub fn mono() -> Theme {
        Theme::builtin("mono").unwrap_or_else(|_| Theme::unstyled())
    }
}
