//! my.cnf-style option files, read as the mysql client reads them: `[group]` lines, `key = value` (or a bare
//! `key`), comments (`#` and `;` lines, `#` after a value), single- or double-quoted values with the client's
//! escapes (`\b \t \n \r \s \\` and the quotes), `!include FILE` and `!includedir DIR` (its `*.cnf` files in name
//! order; a relative path is taken from the including file's directory), later values winning. Key names take `-`
//! for `_`. A world-writable file is refused (the client ignores one), and so is a world-readable file that holds a
//! password, each with the reason; a secret's value never appears in a message.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result, WrapErr};
use color_eyre::Section;

/// How deep `!include` may nest (a file including itself stops here with a message).
const MAX_DEPTH: usize = 10;

/// The options of `groups` in `path` and the files it includes; later values win.
pub fn read_groups(path: &Path, groups: &[&str]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    read_into(path, groups, &mut out, 0)?;
    Ok(out)
}

fn read_into(path: &Path, groups: &[&str], out: &mut HashMap<String, String>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(eyre!("{}: !include nests more than {MAX_DEPTH} deep", path.display())).suggestion("check for a file that includes itself");
    }
    let mode = std::fs::metadata(path).wrap_err_with(|| format!("reading {}", path.display()))?.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(eyre!("{} is world-writable: any local user could change where revenant connects and as whom", path.display()))
            .suggestion(format!("chmod o-w {} (0600 when it holds a password); the mysql client ignores such a file too", path.display()));
    }
    let text = std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?;
    let mut group = String::new();
    let mut holds_password = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        if let Some(rest) = line.strip_prefix("!includedir") {
            for f in cnf_files(&relative_to(path, rest.trim())).wrap_err_with(at)? {
                read_into(&f, groups, out, depth + 1)?;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("!include") {
            read_into(&relative_to(path, rest.trim()), groups, out, depth + 1).wrap_err_with(at)?;
            continue;
        }
        if line.starts_with('[') {
            group = group_name(line).ok_or_else(|| eyre!("{}: a group line needs a closing ]", at()))?;
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), parse_value(v).map_err(|e| eyre!("{}: {e}", at()))?),
            None => (strip_comment(line).trim(), String::new()),
        };
        let key = key.replace('_', "-").to_ascii_lowercase();
        holds_password |= key == "password";
        if groups.contains(&group.as_str()) {
            out.insert(key, value);
        }
    }
    if holds_password && mode & 0o004 != 0 {
        return Err(eyre!("{} holds a password and every local user can read it", path.display()))
            .suggestion(format!("chmod 0600 {}", path.display()));
    }
    Ok(())
}

/// `[ name ]` (a comment may follow) to the lower-case name.
fn group_name(line: &str) -> Option<String> {
    let end = line.find(']')?;
    let rest = line[end + 1..].trim();
    if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
        return None;
    }
    Some(line[1..end].trim().to_ascii_lowercase())
}

/// `path` of an include, taken from the including file's directory when relative.
fn relative_to(including: &Path, path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    match (p.is_relative(), including.parent()) {
        (true, Some(dir)) => dir.join(p),
        _ => p,
    }
}

/// The `*.cnf` files of an `!includedir`, in name order (the client's rule on Unix).
fn cnf_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .wrap_err_with(|| format!("!includedir {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "cnf"))
        .collect();
    files.sort();
    Ok(files)
}

/// The text before an unquoted `#`.
fn strip_comment(s: &str) -> &str {
    s.find('#').map_or(s, |i| &s[..i])
}

/// A value after `=`: quoted (up to the matching quote; a comment may follow) or bare (up to `#`), escapes applied.
fn parse_value(v: &str) -> std::result::Result<String, String> {
    let v = v.trim_start();
    let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(unescape(strip_comment(v).trim_end()));
    };
    let mut out = String::new();
    let mut chars = v[1..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => push_escape(&mut out, e),
                None => out.push('\\'),
            },
            c if c == q => {
                let rest = chars.as_str().trim();
                if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
                    return Ok(out);
                }
                return Err(format!("text after the closing quote: {rest:?}"));
            }
            c => out.push(c),
        }
    }
    Err(format!("no closing {q} for the quoted value"))
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(e)) => {
                chars.next();
                push_escape(&mut out, e);
            }
            (c, _) => out.push(c),
        }
    }
    out
}

/// The client's escapes; any other `\x` keeps its backslash (as in a Windows path).
fn push_escape(out: &mut String, e: char) {
    match e {
        'b' => out.push('\u{8}'),
        't' => out.push('\t'),
        'n' => out.push('\n'),
        'r' => out.push('\r'),
        's' => out.push(' '),
        '\\' | '"' | '\'' => out.push(e),
        other => {
            out.push('\\');
            out.push(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rvn-optfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        Dir(d)
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    const CLIENT: &[&str] = &["client", "mysql"];

    #[test]
    fn groups_comments_quotes_and_escapes_read_as_the_client_does() {
        let d = dir("syntax");
        let f = d.0.join("my.cnf");
        let text = "# a comment\n; another\n[mysqld]\nport = 1\n[client] # the client's group\nuser = dba   # trailing comment\n\
                    password = \"p#ss w\\\"d\"\nhost='db1'\nssl_ca = /etc/ca\\sdir/ca.pem\nno-auto-rehash\n[mysql]\nport=3307\n\
                    [client]\nport = 3308\n";
        write(&f, text, 0o600);
        let m = read_groups(&f, CLIENT).expect("read");
        assert_eq!(m.get("user").map(String::as_str), Some("dba"));
        assert_eq!(m.get("password").map(String::as_str), Some("p#ss w\"d"));
        assert_eq!(m.get("host").map(String::as_str), Some("db1"));
        assert_eq!(m.get("ssl-ca").map(String::as_str), Some("/etc/ca dir/ca.pem"));
        assert_eq!(m.get("no-auto-rehash").map(String::as_str), Some(""));
        // Later values win, across groups read; [mysqld] is not read.
        assert_eq!(m.get("port").map(String::as_str), Some("3308"));
        let e = read_groups(&{ write(&f, "[client]\nuser = 'dba\n", 0o600); f.clone() }, CLIENT).expect_err("unclosed");
        assert!(format!("{e:?}").contains("line 2: no closing '"), "{e:?}");
    }

    #[test]
    fn include_and_includedir_are_followed_in_order() {
        let d = dir("include");
        let sub = d.0.join("conf.d");
        std::fs::create_dir_all(&sub).expect("mkdir");
        write(&sub.join("b.cnf"), "[client]\nport = 2\nhost = from-b\n", 0o600);
        write(&sub.join("a.cnf"), "[client]\nport = 1\nuser = from-a\n", 0o600);
        write(&sub.join("c.txt"), "[client]\nport = 99\n", 0o600);
        write(&d.0.join("extra.cnf"), "[client]\nhost = from-extra\n", 0o600);
        let top = d.0.join("my.cnf");
        write(&top, "[client]\nuser = top\n!includedir conf.d\n!include extra.cnf\n", 0o600);
        let m = read_groups(&top, CLIENT).expect("read");
        // a.cnf then b.cnf (not c.txt), then extra.cnf: later wins.
        assert_eq!(m.get("port").map(String::as_str), Some("2"));
        assert_eq!(m.get("user").map(String::as_str), Some("from-a"));
        assert_eq!(m.get("host").map(String::as_str), Some("from-extra"));
        write(&top, "!include my.cnf\n", 0o600);
        let e = read_groups(&top, CLIENT).expect_err("loop");
        assert!(format!("{e:?}").contains("nests more than"), "{e:?}");
    }

    #[test]
    fn a_world_writable_file_or_a_world_readable_password_is_refused_without_showing_it() {
        let d = dir("perms");
        let f = d.0.join("my.cnf");
        write(&f, "[client]\nuser = dba\npassword = Sekr1t\n", 0o644);
        let e = format!("{:?}", read_groups(&f, CLIENT).expect_err("world-readable password"));
        assert!(e.contains("holds a password and every local user can read it"), "{e}");
        assert!(!e.contains("Sekr1t"), "the password is in the message: {e}");
        write(&f, "[client]\nuser = dba\n", 0o646);
        let e = format!("{:?}", read_groups(&f, CLIENT).expect_err("world-writable"));
        assert!(e.contains("is world-writable"), "{e}");
        // Readable by all without a password is fine; a password in an included file is checked on that file.
        write(&f, "[client]\nuser = dba\n!include inc.cnf\n", 0o644);
        write(&d.0.join("inc.cnf"), "[client]\npassword = Sekr1t\n", 0o640);
        assert_eq!(read_groups(&f, CLIENT).expect("0640 include").get("password").map(String::as_str), Some("Sekr1t"));
        write(&d.0.join("inc.cnf"), "[client]\npassword = Sekr1t\n", 0o604);
        assert!(format!("{:?}", read_groups(&f, CLIENT).expect_err("included")).contains("inc.cnf holds a password"));
    }
}
