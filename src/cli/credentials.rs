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

/// The options of the named sections of a my.cnf-style file, read by the client's rules (src/cli/option_file.rs).
pub fn read_sections(path: &Path, sections: &[&str]) -> Result<HashMap<String, String>> {
    super::option_file::read_groups(path, sections)
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
/// `ssl` and `ssl-verify-server-cert` are the MariaDB client's: TLS on, and the server's name checked too.
pub const TLS_KEYS: &[&str] = &["ssl-ca", "ssl-cert", "ssl-key", "ssl-mode", "ssl", "ssl-verify-server-cert"];

/// TLS keys of the clients that revenant does not apply: said once, never silently dropped.
const TLS_KEYS_NOT_APPLIED: &[&str] = &["ssl-capath", "ssl-cipher", "tls-version", "ssl-crl", "ssl-crlpath", "tls-ciphersuites"];

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
        if let Some(p) = m.get("port") {
            let port = p.parse().map_err(|_| eyre!("{}: port '{p}' is not a port number", f.display())).suggestion("give 1 to 65535")?;
            found.port = Some(port);
        }
        for k in TLS_KEYS {
            if let Some(v) = m.get(*k) {
                found.tls_options.insert(k.to_string(), v.clone());
            }
        }
        for k in TLS_KEYS_NOT_APPLIED.iter().filter(|k| m.contains_key(**k)) {
            eprintln!(
                "warning: {}: `{k}` is not applied by revenant (rustls picks its own modern ciphers and TLS 1.2/1.3; \
                 trust comes from ssl-ca)",
                f.display()
            );
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
