//! Where the password comes from, without putting it in argv: `--conf` (my.cnf style), `~/.my.cnf`, `MYSQL_PWD`,
//! `--ask-pass`; `--password` works but warns (it is visible in the process list).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;

/// The `[client]` (and `[mysql]`, `[revenant]`) options of a my.cnf file.
pub fn read_my_cnf(path: &Path) -> Result<HashMap<String, String>> {
    read_sections(path, &["client", "mysql", "revenant"])
}

/// The options of the named sections of a my.cnf-style file (keys with `-`, lower case; later ones win).
pub fn read_sections(path: &Path, sections: &[&str]) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_ascii_lowercase();
            continue;
        }
        if !sections.contains(&section.as_str()) {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        let v = v.trim_matches('"').trim_matches('\'');
        out.insert(k.replace('_', "-").to_ascii_lowercase(), v.to_string());
    }
    Ok(out)
}

/// What was found, and where from (for the log; never the password itself).
#[derive(Debug, Default)]
pub struct Found {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password_source: &'static str,
    /// The option files' TLS keys (`ssl-ca`, `ssl-cert`, `ssl-key`, `ssl-mode`), later files winning.
    pub tls_options: HashMap<String, String>,
}

/// The option-file keys that hold TLS settings.
pub const TLS_KEYS: &[&str] = &["ssl-ca", "ssl-cert", "ssl-key", "ssl-mode"];

/// Resolves credentials: explicit --password > --ask-pass > MYSQL_PWD > --conf > ~/.my.cnf.
pub fn resolve(password_flag: Option<String>, ask_pass: bool, conf: Option<&PathBuf>) -> Result<Found> {
    let mut found = Found::default();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".my.cnf");
        if p.exists() {
            files.push(p);
        }
    }
    if let Some(c) = conf {
        if !c.exists() {
            return Err(eyre!("--conf {} does not exist", c.display())).suggestion("give the path of a my.cnf-style file with a [client] section");
        }
        files.push(c.clone());
    }
    // Later files win (--conf over ~/.my.cnf).
    for f in &files {
        let m = read_my_cnf(f)?;
        if let Some(u) = m.get("user") {
            found.user = Some(u.clone());
        }
        if let Some(p) = m.get("password") {
            found.password = Some(p.clone());
            found.password_source = if Some(f) == conf { "--conf" } else { "~/.my.cnf" };
        }
        if let Some(h) = m.get("host") {
            found.host = Some(h.clone());
        }
        if let Some(p) = m.get("port").and_then(|p| p.parse().ok()) {
            found.port = Some(p);
        }
        for k in TLS_KEYS {
            if let Some(v) = m.get(*k) {
                found.tls_options.insert(k.to_string(), v.clone());
            }
        }
    }
    if let Ok(p) = std::env::var("MYSQL_PWD") {
        found.password = Some(p);
        found.password_source = "MYSQL_PWD";
    }
    if ask_pass {
        let p = rpassword::prompt_password("Password: ").wrap_err("reading the password from the terminal")?;
        found.password = Some(p);
        found.password_source = "--ask-pass";
    }
    if let Some(p) = password_flag {
        tracing::warn!("--password is visible to other users in the process list; prefer --conf, MYSQL_PWD or --ask-pass");
        eprintln!("warning: --password is visible to other users in the process list; prefer --conf, MYSQL_PWD or --ask-pass");
        found.password = Some(p);
        found.password_source = "--password";
    }
    Ok(found)
}
