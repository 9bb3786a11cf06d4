//! TLS settings from the flags (`--ssl`, `--ssl-ca`, `--ssl-cert`, `--ssl-key`, `--ssl-allow-insecure`,
//! `--ssl-mode`, and the move target's `--target-ssl*`) and the option files' `ssl-ca`, `ssl-cert`, `ssl-key`,
//! `ssl-mode` keys: flags win over the files; checked (files readable, PEM, pairs complete, modes known) before
//! anything connects. The result is the engine's [`TlsConfig`], used by every connection to that server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result};
use color_eyre::Section;

use crate::engine::config::{TlsConfig, TlsVerify};

/// The TLS flags of one server, whichever spelling (`--ssl...` or `--target-ssl...`) they came from.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    /// The flag prefix for messages: `ssl` or `target-ssl`.
    pub prefix: &'static str,
    pub ssl: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub allow_insecure: bool,
    pub mode: Option<String>,
}

impl TlsFlags {
    /// Whether any of the flags was given.
    pub fn any(&self) -> bool {
        self.ssl || self.allow_insecure || self.mode.is_some() || self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// The client's ssl-mode values revenant honours, as a verification level (None: DISABLED).
fn parse_mode(flag: &str, value: &str) -> Result<Option<TlsVerify>> {
    match value.trim().to_ascii_uppercase().as_str() {
        "DISABLED" => Ok(None),
        "REQUIRED" => Ok(Some(TlsVerify::Insecure)),
        "VERIFY_CA" => Ok(Some(TlsVerify::CaOnly)),
        "VERIFY_IDENTITY" => Ok(Some(TlsVerify::Identity)),
        "PREFERRED" => Err(eyre!("{flag} PREFERRED is not supported: revenant never falls back to plain text silently"))
            .suggestion("give VERIFY_IDENTITY (or VERIFY_CA, REQUIRED) to use TLS, or DISABLED; nothing was changed"),
        _ => Err(eyre!("{flag} '{}' is not an ssl-mode", value.trim()))
            .suggestion("give DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY; nothing was changed"),
    }
}

/// The MariaDB client's keys: `ssl` (bare or true: TLS on; false: off) and `ssl-verify-server-cert` (the name is
/// checked too). None when neither is there.
fn mariadb_client_mode(file: &HashMap<String, String>) -> Result<Option<Option<TlsVerify>>> {
    let on = |key: &str| -> Result<Option<bool>> {
        match file.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v.is_empty() || v == "1" || v == "on" || v == "true" => Ok(Some(true)),
            Some(v) if v == "0" || v == "off" || v == "false" => Ok(Some(false)),
            Some(v) => Err(eyre!("{key} = '{v}' in an option file is neither on nor off"))
                .suggestion("write it bare, or as 1 / 0; nothing was changed"),
        }
    };
    Ok(match (on("ssl")?, on("ssl-verify-server-cert")?) {
        (Some(false), _) => Some(None),
        (_, Some(true)) => Some(Some(TlsVerify::Identity)),
        (Some(true), _) if file.contains_key("ssl-ca") => Some(Some(TlsVerify::CaOnly)),
        (Some(true), _) => Some(Some(TlsVerify::Identity)),
        _ => None,
    })
}

/// The TLS settings for one server: `flags` over `file` (the option files' keys). `Ok(None)`: plain TCP.
pub fn resolve(flags: &TlsFlags, file: &HashMap<String, String>) -> Result<Option<TlsConfig>> {
    let p = flags.prefix;
    let needs_ssl = |what: &str| {
        Err(eyre!("--{p}{what} requires --{p} (as in gh-ost)")).suggestion(format!("add --{p}, or --{p}-mode VERIFY_CA; nothing was changed"))
    };
    let explicit = flags.ssl || flags.mode.is_some();
    if !explicit {
        if flags.allow_insecure {
            return needs_ssl("-allow-insecure");
        }
        if flags.ca.is_some() || flags.cert.is_some() || flags.key.is_some() {
            return needs_ssl(&format!("-ca, --{p}-cert and --{p}-key"));
        }
    }
    let file_path = |k: &str| file.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let ca = flags.ca.clone().or_else(|| file_path("ssl-ca"));
    let cert = flags.cert.clone().or_else(|| file_path("ssl-cert"));
    let key = flags.key.clone().or_else(|| file_path("ssl-key"));
    let mode = match (&flags.mode, file.get("ssl-mode")) {
        (Some(m), _) => Some(parse_mode(&format!("--{p}-mode"), m)?),
        (None, Some(m)) if !flags.ssl => Some(parse_mode("ssl-mode (option file)", m)?),
        (None, None) if !flags.ssl => mariadb_client_mode(file)?,
        _ => None,
    };
    let verify = match (mode, flags.ssl) {
        (Some(None), true) => {
            return Err(eyre!("--{p} and ssl-mode DISABLED contradict each other"))
                .suggestion("leave out one of them; nothing was changed")
        }
        (Some(None), false) => return Ok(None),
        (Some(Some(v)), _) => v,
        (None, true) => TlsVerify::Identity,
        // An option file's ssl-ca without ssl-mode: the mysql client verifies the CA then (VERIFY_CA).
        (None, false) if ca.is_some() => TlsVerify::CaOnly,
        (None, false) => return Ok(None),
    };
    let verify = if flags.allow_insecure { TlsVerify::Insecure } else { verify };
    if cert.is_some() != key.is_some() {
        return Err(eyre!("a client certificate needs both --{p}-cert and --{p}-key (or ssl-cert and ssl-key)"))
            .suggestion("give both files, or neither; nothing was changed");
    }
    check_pem(&format!("--{p}-ca"), ca.as_deref(), "CERTIFICATE")?;
    check_pem(&format!("--{p}-cert"), cert.as_deref(), "CERTIFICATE")?;
    check_pem(&format!("--{p}-key"), key.as_deref(), "PRIVATE KEY")?;
    Ok(Some(TlsConfig { ca, cert, key, verify }))
}

/// Refuses a file that cannot be read or holds no PEM block of `kind` (before anything connects). Never shows the
/// file's content (a key's file holds a secret).
fn check_pem(flag: &str, path: Option<&Path>, kind: &str) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read(path)
        .map_err(|e| eyre!("{flag} {}: {e}", path.display()))
        .suggestion("give a readable PEM file; nothing was changed")?;
    let found = String::from_utf8_lossy(&text).lines().any(|l| l.starts_with("-----BEGIN ") && l.contains(kind));
    if !found {
        return Err(eyre!("{flag} {}: no PEM {kind} in the file", path.display())).suggestion("give a PEM file (-----BEGIN ...-----); nothing was changed");
    }
    Ok(())
}

/// Logs what was chosen; `--ssl-allow-insecure` (or ssl-mode REQUIRED) warns that nothing is verified.
pub fn announce(server: &str, tls: Option<&TlsConfig>) {
    match tls.map(|t| t.verify) {
        Some(TlsVerify::Insecure) => {
            let text = format!("TLS to {server} without verification (--ssl-allow-insecure / ssl-mode REQUIRED): the server's certificate and name are NOT checked, so anyone in the middle can pose as the server");
            tracing::warn!("{text}");
            eprintln!("warning: {text}");
        }
        Some(TlsVerify::CaOnly) => tracing::info!("TLS to {server}: the certificate chain is verified, not the host name (VERIFY_CA)"),
        Some(TlsVerify::Identity) => tracing::info!("TLS to {server}: the certificate chain and the host name are verified"),
        None => tracing::debug!("plain TCP to {server} (no TLS)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pem_dir(name: &str) -> Dir {
        let d = Dir(std::env::temp_dir().join(format!("rvn-tls-unit-{}-{name}", std::process::id())));
        std::fs::create_dir_all(d.path()).expect("mkdir");
        std::fs::write(d.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").expect("write");
        std::fs::write(d.path().join("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").expect("write");
        std::fs::write(d.path().join("junk.pem"), "hello\n").expect("write");
        d
    }

    fn flags() -> TlsFlags {
        TlsFlags { prefix: "ssl", ..Default::default() }
    }

    #[test]
    fn flags_and_modes_give_the_verification_they_name() {
        let d = pem_dir("modes");
        let ca = d.path().join("ca.pem");
        let none = HashMap::new();
        assert_eq!(resolve(&flags(), &none).expect("plain"), None);
        let t = resolve(&TlsFlags { ssl: true, ca: Some(ca.clone()), ..flags() }, &none).expect("ssl").expect("tls");
        assert_eq!((t.verify, t.ca.as_deref()), (TlsVerify::Identity, Some(ca.as_path())));
        let t = resolve(&TlsFlags { ssl: true, allow_insecure: true, ..flags() }, &none).expect("insecure").expect("tls");
        assert_eq!(t.verify, TlsVerify::Insecure);
        for (mode, want) in [("verify_ca", Some(TlsVerify::CaOnly)), ("REQUIRED", Some(TlsVerify::Insecure)), ("DISABLED", None)] {
            let got = resolve(&TlsFlags { mode: Some(mode.into()), ..flags() }, &none).expect(mode).map(|t| t.verify);
            assert_eq!(got, want, "{mode}");
        }
        // An option file's ssl-ca alone means VERIFY_CA (the client's rule); the flag's CA wins over the file's.
        let file = HashMap::from([("ssl-ca".to_string(), d.path().join("junk.pem").display().to_string())]);
        let t = resolve(&TlsFlags { ssl: true, ca: Some(ca.clone()), ..flags() }, &file).expect("flag wins").expect("tls");
        assert_eq!(t.ca.as_deref(), Some(ca.as_path()));
        let file = HashMap::from([("ssl-ca".to_string(), ca.display().to_string())]);
        assert_eq!(resolve(&flags(), &file).expect("file").map(|t| t.verify), Some(TlsVerify::CaOnly));
        // The MariaDB client's keys: a bare `ssl` turns TLS on (never silently off), ssl-verify-server-cert checks
        // the name, ssl = 0 turns it off.
        let keys = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        assert_eq!(resolve(&flags(), &keys(&[("ssl", "")])).expect("bare ssl").map(|t| t.verify), Some(TlsVerify::Identity));
        let with_ca = keys(&[("ssl", "1"), ("ssl-ca", &ca.display().to_string())]);
        assert_eq!(resolve(&flags(), &with_ca).expect("ssl + ca").map(|t| t.verify), Some(TlsVerify::CaOnly));
        let verify = keys(&[("ssl", ""), ("ssl-verify-server-cert", ""), ("ssl-ca", &ca.display().to_string())]);
        assert_eq!(resolve(&flags(), &verify).expect("verify").map(|t| t.verify), Some(TlsVerify::Identity));
        assert_eq!(resolve(&flags(), &keys(&[("ssl", "0")])).expect("off"), None);
        assert!(resolve(&flags(), &keys(&[("ssl", "maybe")])).is_err());
    }

    #[test]
    fn bad_tls_input_is_refused_with_the_reason() {
        let d = pem_dir("refusals");
        let none = HashMap::new();
        let cases: Vec<(TlsFlags, &str)> = vec![
            (TlsFlags { allow_insecure: true, ..flags() }, "--ssl-allow-insecure requires --ssl"),
            (TlsFlags { ca: Some(d.path().join("ca.pem")), ..flags() }, "requires --ssl"),
            (TlsFlags { mode: Some("PREFERRED".into()), ..flags() }, "PREFERRED is not supported"),
            (TlsFlags { mode: Some("sometimes".into()), ..flags() }, "'sometimes' is not an ssl-mode"),
            (TlsFlags { ssl: true, mode: Some("DISABLED".into()), ..flags() }, "contradict"),
            (TlsFlags { ssl: true, cert: Some(d.path().join("ca.pem")), ..flags() }, "needs both"),
            (TlsFlags { ssl: true, ca: Some(d.path().join("junk.pem")), ..flags() }, "no PEM CERTIFICATE"),
            (TlsFlags { ssl: true, ca: Some(d.path().join("missing.pem")), ..flags() }, "missing.pem"),
            (TlsFlags { ssl: true, cert: Some(d.path().join("ca.pem")), key: Some(d.path().join("ca.pem")), ..flags() }, "no PEM PRIVATE KEY"),
        ];
        for (f, want) in cases {
            let e = resolve(&f, &none).expect_err(want);
            assert!(format!("{e:?}").contains(want), "{want}: {e:?}");
        }
    }
}
