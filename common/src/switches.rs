//! Configuration switches: the shell-compatible `serverconfig` files.
//!
//! ```text
//! <config-dir>/serverconfig/default          key="value" lines, # comments
//! <config-dir>/serverconfig/<fqdn>           overrides for one server
//! <config-dir>/serverconfig/exclude/<fqdn>   paths the config push must not overwrite
//! ```
//!
//! Shell scripts source these files (`. /etc/pysk/serverconfig/default`), so
//! we accept exactly the subset of shell whose meaning needs no shell:
//! `key=value`, `key="value"`, `key='value'`, blank lines and comments
//! (whole-line, or after a value). Inside double quotes `\"`, `\\`, `\$` and
//! `` \` `` are escapes and any other backslash stays, as in bash. Anything
//! that would make a shell expand, run or continue something (`$`, a
//! backtick, `~`, a second word, an unclosed quote, a line continuation) is a
//! configuration error naming the file and line, never silently misread.
//!
//! The host file overrides `default`. Every key has a built-in default in
//! the tool that reads it, so every tool runs with no file at all; tools
//! read values through [`crate::settings::Settings`], never from here
//! directly. The exclude list is read only by the tool that pushes
//! configuration ([`exclude`]), so a malformed one fails no other tool.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::Error;

/// One key's value and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// The value, with quotes and escapes resolved.
    pub value: String,
    /// The file that set it.
    pub path: PathBuf,
    /// The 1-based line in that file.
    pub line: usize,
}

/// The merged switches for one host: `default` overridden by `<fqdn>`.
#[derive(Debug, Clone, Default)]
pub struct Switches {
    values: BTreeMap<String, Switch>,
}

impl Switches {
    /// Loads `serverconfig/default` and `serverconfig/<host>` under
    /// `config_dir`; a missing file is simply not there, an unreadable or
    /// malformed one is an error.
    pub fn load(config_dir: &Path, host: &str) -> Result<Switches, Error> {
        let base = config_dir.join("serverconfig");
        let mut switches = Switches::default();
        for path in [base.join("default"), base.join(host)] {
            if let Some(text) = read_optional(&path)? {
                for (key, switch) in parse(&text, &path)? {
                    switches.values.insert(key, switch);
                }
            }
        }
        Ok(switches)
    }

    /// The switch set for `key`, if any file set it.
    pub fn get(&self, key: &str) -> Option<&Switch> {
        self.values.get(key)
    }

    /// All switches set by files, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Switch)> {
        self.values.iter().map(|(k, s)| (k.as_str(), s))
    }
}

/// The paths the configuration push must not overwrite on `host`:
/// `serverconfig/exclude/<host>` under `config_dir`, one absolute path a
/// line, `#` comments; none when the file is missing.
pub fn exclude(config_dir: &Path, host: &str) -> Result<Vec<PathBuf>, Error> {
    let path = config_dir.join("serverconfig/exclude").join(host);
    match read_optional(&path)? {
        Some(text) => parse_exclude(&text, &path),
        None => Ok(Vec::new()),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Config {
                path: path.to_owned(),
                line: 0,
                reason: "file is not valid UTF-8".into(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses one switches file; `path` is only used in the errors and to
/// record where each value came from. A key set twice keeps its last value,
/// as in the shell.
pub fn parse(text: &str, path: &Path) -> Result<Vec<(String, Switch)>, Error> {
    let mut out = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let lineno = index + 1;
        let err = |reason: String| Error::Config {
            path: path.to_owned(),
            line: lineno,
            reason,
        };
        if let Some((key, value)) = parse_line(line).map_err(err)? {
            out.push((
                key,
                Switch {
                    value,
                    path: path.to_owned(),
                    line: lineno,
                },
            ));
        }
    }
    Ok(out)
}

/// Characters an unquoted value may hold: none of them means anything to
/// the shell in an assignment.
fn plain_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./:,@%+=-#".contains(c)
}

fn parse_line(line: &str) -> Result<Option<(String, String)>, String> {
    if let Some(c) = line.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(if c == '\r' {
            "carriage return in line (DOS line endings?)".into()
        } else {
            format!("control character {c:?} in line")
        });
    }
    let line = line.trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let key_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let key = &line[..key_len];
    let rest = &line[key_len..];
    let key_ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !key_ok || !rest.starts_with('=') {
        return Err(format!(
            "expected key=value (no spaces around =), found {line:?}"
        ));
    }
    let rest = &rest[1..];
    let (value, after) = match rest.chars().next() {
        Some('"') => double_quoted(&rest[1..])?,
        Some('\'') => {
            let body = &rest[1..];
            let end = body
                .find('\'')
                .ok_or("unterminated single quote (values must fit on one line)")?;
            (body[..end].to_owned(), &body[end + 1..])
        }
        _ => {
            let end = rest.find([' ', '\t']).unwrap_or(rest.len());
            let word = &rest[..end];
            if let Some(bad) = word.chars().find(|&c| !plain_value_char(c)) {
                return Err(format!(
                    "character {bad:?} needs quoting in value of {key}; write {key}=\"...\""
                ));
            }
            (word.to_owned(), &rest[end..])
        }
    };
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return Err(format!(
            "text right after the closing quote of {key}; use one quoted value"
        ));
    }
    let after = after.trim_start_matches([' ', '\t']);
    if !after.is_empty() && !after.starts_with('#') {
        return Err(format!(
            "unexpected {after:?} after the value of {key}; a shell would run it as a command"
        ));
    }
    Ok(Some((key.to_owned(), value)))
}

/// Reads a double-quoted body up to its closing quote; returns the value
/// and what follows the quote.
fn double_quoted(body: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\' | '$' | '`'))) => value.push(e),
                Some((_, e)) => {
                    value.push('\\');
                    value.push(e);
                }
                None => return Err("line continuation (\\ at end of line) is not supported".into()),
            },
            '$' => {
                return Err("$ would be expanded by the shell; write \\$ for a dollar sign".into());
            }
            '`' => {
                return Err("` would run a command in the shell; write \\` for a backtick".into());
            }
            c => value.push(c),
        }
    }
    Err("unterminated double quote (values must fit on one line)".into())
}

fn parse_exclude(text: &str, path: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with('/') {
            return Err(Error::Config {
                path: path.to_owned(),
                line: index + 1,
                reason: format!("excluded path {line:?} is not absolute"),
            });
        }
        out.push(PathBuf::from(line));
    }
    Ok(out)
}

/// Quotes `value` in double quotes so that a shell reads back exactly
/// `value`: `\`, `"`, `$` and `` ` `` are escaped.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Settings, Spec};
    use std::process::Command;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        path
    }

    /// What bash makes of `path`: every variable the file sets, read back
    /// with `declare -p`-free NUL-separated output.
    fn bash_values(path: &Path, keys: &[&str]) -> Vec<(String, String)> {
        let mut script = String::from("set -eu; . \"$1\"; ");
        for key in keys {
            script.push_str(&format!("printf '%s\\0%s\\0' {key} \"${key}\"; "));
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .arg("bash")
            .arg(path)
            .env_clear()
            .output()
            .expect("run bash");
        assert!(out.status.success(), "bash failed: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let parts: Vec<&str> = text.split('\0').collect();
        parts
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_owned(), c[1].to_owned()))
            .collect()
    }

    const EVERY_FORM: &str = r#"# a comment line
   # an indented comment

plain=simple.value
path=/etc/mysql/my.small.cnf
double="two words"
single='it is $HOME and `x` and \n, literally'
empty=
empty_double=""
empty_single=''
escapes="quote \" backslash \\ dollar \$ tick \` other \n kept"
trailing="value"   # a comment after a value
hash_inside=a#b
tabbed="	tab inside"
	indented=yes
unicode="Grüße, 日本"
repeated=first
repeated=second
odd_chars=user@host:8080,a+b%c=d
"#;

    #[test]
    fn parser_reads_every_accepted_form_as_bash_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "default", EVERY_FORM);
        let parsed = parse(EVERY_FORM, &path).expect("parses");
        let mut ours: BTreeMap<String, String> = BTreeMap::new();
        for (k, s) in parsed {
            ours.insert(k, s.value);
        }
        let keys: Vec<&str> = ours.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 15);
        let theirs: BTreeMap<String, String> = bash_values(&path, &keys).into_iter().collect();
        assert_eq!(ours, theirs);
        assert_eq!(
            ours["escapes"],
            r#"quote " backslash \ dollar $ tick ` other \n kept"#
        );
        assert_eq!(ours["repeated"], "second");
    }

    #[test]
    fn rejects_shell_that_needs_a_shell_with_file_and_line() {
        let cases = [
            "a=$HOME",
            "a=\"$HOME\"",
            "a=`id`",
            "a=\"`id`\"",
            "a=~/x",
            "a = b",
            "a=b c",
            "a=\"b\"c",
            "a=\"unterminated",
            "a='unterminated",
            "a=\"x\\",
            "export a=b",
            "1a=b",
            "a=b;rm -rf /",
            "a=b\r",
            "just words",
        ];
        for case in cases {
            let text = format!("ok=1\n{case}\n");
            match parse(&text, Path::new("/etc/pysk/serverconfig/default")) {
                Err(Error::Config { path, line, reason }) => {
                    assert_eq!(line, 2, "{case}: {reason}");
                    assert_eq!(path, Path::new("/etc/pysk/serverconfig/default"));
                }
                other => panic!("{case:?} was accepted: {other:?}"),
            }
        }
    }

    /// The value a file set for `key`, or `fallback`.
    fn value(s: &Switches, key: &str, fallback: &str) -> String {
        s.get(key)
            .map_or_else(|| fallback.to_owned(), |v| v.value.clone())
    }

    #[test]
    fn host_file_overrides_default_and_exclude_is_read_on_demand() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "serverconfig/default",
            "mysql_conf=\"my.small.cnf\"\npostfix_conf=\"main.antispam.cf\"\n",
        );
        let host = write(
            dir.path(),
            "serverconfig/mikuru.igowo.de",
            "mysql_conf=\"my.innodb.cnf\"\n",
        );
        write(
            dir.path(),
            "serverconfig/exclude/mikuru.igowo.de",
            "# keep the local postfix\n/etc/postfix/main.cf\n",
        );
        let s = Switches::load(dir.path(), "mikuru.igowo.de").expect("load");
        assert_eq!(value(&s, "mysql_conf", "x"), "my.innodb.cnf");
        assert_eq!(s.get("mysql_conf").expect("set").path, host);
        assert_eq!(value(&s, "postfix_conf", "x"), "main.antispam.cf");
        assert!(s.get("unset").is_none());
        assert_eq!(
            exclude(dir.path(), "mikuru.igowo.de").expect("exclude"),
            [PathBuf::from("/etc/postfix/main.cf")]
        );

        let other = Switches::load(dir.path(), "kyon.igowo.de").expect("load");
        assert_eq!(value(&other, "mysql_conf", "x"), "my.small.cnf");
        assert!(
            exclude(dir.path(), "kyon.igowo.de")
                .expect("none")
                .is_empty()
        );
    }

    #[test]
    fn original_pysk_layout_fixture_loads_and_matches_bash() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pysk-original");
        let mikuru = Switches::load(&dir, "mikuru.igowo.de").expect("load");
        assert_eq!(value(&mikuru, "mysql_conf", ""), "my.innodb.cnf");
        assert_eq!(value(&mikuru, "postfix_conf", ""), "main.antispam.cf");
        assert!(exclude(&dir, "mikuru.igowo.de").expect("none").is_empty());
        let kyon = Switches::load(&dir, "kyon.igowo.de").expect("load");
        assert_eq!(value(&kyon, "mysql_conf", ""), "my.small.cnf");
        assert_eq!(
            exclude(&dir, "kyon.igowo.de").expect("exclude"),
            [PathBuf::from("/etc/postfix/main.cf")]
        );
        // A script sourcing default then the host file sees the same.
        let keys = ["mysql_conf", "postfix_conf"];
        let default = dir.join("serverconfig/default");
        let host = dir.join("serverconfig/mikuru.igowo.de");
        let script = format!(
            ". '{}'; . '{}'; printf '%s\\0%s\\0' \"$mysql_conf\" \"$postfix_conf\"",
            default.display(),
            host.display()
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .expect("bash");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let values: Vec<&str> = text.split('\0').take(keys.len()).collect();
        assert_eq!(
            values,
            [
                value(&mikuru, "mysql_conf", "").as_str(),
                value(&mikuru, "postfix_conf", "").as_str()
            ]
        );
    }

    #[test]
    fn no_config_at_all_gives_no_switches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Switches::load(&dir.path().join("missing"), "h").expect("load");
        assert_eq!(s.iter().count(), 0);
    }

    #[test]
    fn a_malformed_exclude_list_fails_only_its_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "serverconfig/exclude/h", "/ok\netc/passwd\n");
        assert!(Switches::load(dir.path(), "h").is_ok());
        assert!(matches!(
            exclude(dir.path(), "h"),
            Err(Error::Config { line: 2, .. })
        ));
    }

    #[test]
    fn rendered_config_reads_back_identically_in_bash() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "serverconfig/default", EVERY_FORM);
        let s = Switches::load(dir.path(), "h").expect("load");
        const SPECS: &[Spec] = &[Spec::new(
            "from_spec",
            "a \"quoted\" $default `x` \\",
            "a test key",
        )];
        let text = Settings::new(SPECS, s.clone()).render("h");
        let rendered = write(dir.path(), "rendered", &text);
        let mut keys: Vec<&str> = s.iter().map(|(k, _)| k).collect();
        keys.push("from_spec");
        let back: BTreeMap<String, String> = bash_values(&rendered, &keys).into_iter().collect();
        for (k, sw) in s.iter() {
            assert_eq!(back[k], sw.value, "{k}");
        }
        assert_eq!(back["from_spec"], SPECS[0].default);
        // Each key once, and re-parsed by us to the same values.
        let reparsed = parse(&text, &rendered).expect("our own output parses");
        assert_eq!(reparsed.len(), keys.len());
        assert!(text.contains("repeated=\"second\"  # "));
    }
}
