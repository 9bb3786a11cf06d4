//! `--config FILE`: the same settings as the flags, from TOML (keys are the flag names). The file's values are
//! turned into flags placed before the command line's own, so flags override the file, and are checked as the
//! flags are (ranges, gh-ost flags that revenant refuses: by name). Unknown keys are errors that name the key.

use std::path::Path;

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;

/// Reads `path` and returns the flags it stands for. `known` lists the long flag names the command takes, with
/// whether each takes a value.
pub fn flags_from_toml(path: &Path, known: &[(String, bool)]) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("reading --config {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).wrap_err_with(|| format!("parsing {} as TOML", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        if name == "config" || name == "password" {
            return Err(eyre!("{}: key '{key}' is not allowed in a config file", path.display())).suggestion(
                "keep passwords out of config files: use --conf (a my.cnf file with mode 0600), MYSQL_PWD or --ask-pass",
            );
        }
        let Some((_, takes_value)) = known.iter().find(|(k, _)| *k == name) else {
            return Err(eyre!("{}: unknown key '{key}'", path.display()))
                .suggestion("keys are the long flag names of the command (see --help), e.g. chunk-size = 1000");
        };
        match (value, takes_value) {
            (toml::Value::Boolean(b), false) => {
                if b {
                    out.push(format!("--{name}"));
                } else if crate::cli::ghost_compat::DEFAULT_ON.contains(&name.as_str()) {
                    // A switch that is on unless turned off (`panic-on-warnings = false`).
                    out.push(format!("--no-{name}"));
                }
            }
            // A flag with a true/false value (`checksum = false`); any other flag refuses the word itself.
            (toml::Value::Boolean(b), true) => out.push(format!("--{name}={b}")),
            (_, false) => return Err(eyre!("{}: key '{key}' is a switch: write {key} = true", path.display())),
            (toml::Value::String(s), true) => out.push(format!("--{name}={s}")),
            (toml::Value::Integer(i), true) => out.push(format!("--{name}={i}")),
            (toml::Value::Float(f), true) => out.push(format!("--{name}={f}")),
            (toml::Value::Array(items), true) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push(format!("--{name}={}", parts.join(",")));
            }
            (other, true) => return Err(eyre!("{}: key '{key}' has an unsupported value {other}", path.display())),
        }
    }
    Ok(out)
}
