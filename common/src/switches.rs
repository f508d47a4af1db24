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
//! Every key has a built-in default in the tool that reads it, so every tool
//! runs with no file at all; the host file overrides `default`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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

/// A switch a tool reads: its key, built-in default and meaning, for
/// `--help`, the README and `pysk-<tool> config`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The key, for example `logs_spool`.
    pub key: &'static str,
    /// The value used when no file sets the key.
    pub default: &'static str,
    /// One line saying what it controls.
    pub help: &'static str,
}

impl Spec {
    /// A switch `key` with its built-in `default` and `help` line, for a
    /// tool's `const` switch list.
    pub const fn new(key: &'static str, default: &'static str, help: &'static str) -> Spec {
        Spec { key, default, help }
    }
}

/// The merged switches for one host: `default` overridden by `<fqdn>`, and
/// the host's exclude list.
#[derive(Debug, Clone, Default)]
pub struct Switches {
    values: BTreeMap<String, Switch>,
    exclude: Vec<PathBuf>,
}

impl Switches {
    /// Loads `serverconfig/default`, `serverconfig/<host>` and
    /// `serverconfig/exclude/<host>` under `config_dir`; a missing file is
    /// simply not there, an unreadable or malformed one is an error.
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
        let exclude = base.join("exclude").join(host);
        if let Some(text) = read_optional(&exclude)? {
            switches.exclude = parse_exclude(&text, &exclude)?;
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

    /// The paths the configuration push must not overwrite on this host.
    pub fn exclude(&self) -> &[PathBuf] {
        &self.exclude
    }

    /// The string value of `key`, or `default`.
    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key)
            .map_or_else(|| default.to_owned(), |s| s.value.clone())
    }

    /// The value of `key`, or its built-in default from `specs` (the
    /// tool's switch list).
    pub fn setting(&self, specs: &[Spec], key: &str) -> String {
        self.string(key, default_of(specs, key))
    }

    /// The value of `key` parsed as `T`, or its built-in default from
    /// `specs` parsed; a value that does not parse is an error at its file
    /// and line (or naming the built-in default).
    pub fn setting_parsed<T: FromStr>(&self, specs: &[Spec], key: &str) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        let (value, path, line) = match self.get(key) {
            Some(s) => (s.value.as_str(), s.path.clone(), s.line),
            None => (default_of(specs, key), PathBuf::from("built-in default"), 0),
        };
        value.trim().parse().map_err(|e| Error::Config {
            path,
            line,
            reason: format!("{key}: invalid value {value:?}: {e}"),
        })
    }

    /// The value of `key` as a path, or `default`.
    pub fn path(&self, key: &str, default: &str) -> PathBuf {
        PathBuf::from(self.string(key, default))
    }

    /// The value of `key` parsed as `T` (a number, an address, …), or
    /// `default`; a value that does not parse is an error at its file and
    /// line.
    pub fn parsed<T: FromStr>(&self, key: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(s) => s.value.parse().map_err(|e| Error::Config {
                path: s.path.clone(),
                line: s.line,
                reason: format!("{key}: invalid value {:?}: {e}", s.value),
            }),
        }
    }

    /// The value of `key` as a yes/no switch (`yes`, `true`, `on`, `1` or
    /// `no`, `false`, `off`, `0`, any case), or `default`.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, Error> {
        let Some(s) = self.get(key) else {
            return Ok(default);
        };
        match s.value.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Ok(true),
            "no" | "false" | "off" | "0" => Ok(false),
            _ => Err(Error::Config {
                path: s.path.clone(),
                line: s.line,
                reason: format!("{key}: expected yes or no, found {:?}", s.value),
            }),
        }
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

/// The built-in default of `key` in `specs`; empty for a key not listed.
pub fn default_of(specs: &[Spec], key: &str) -> &'static str {
    specs
        .iter()
        .find(|s| s.key == key)
        .map_or("", |s| s.default)
}

/// The epilogue of a tool's `--help`: each switch with its built-in
/// default and what it controls, derived from the same `specs` that
/// `config` prints so the two cannot drift apart, then the tool's
/// `exit_codes` paragraph.
pub fn help(specs: &[Spec], exit_codes: &str) -> String {
    let mut out = String::from(
        "Switches (in <config-dir>/serverconfig/default or /<fqdn>; options beat them):\n",
    );
    for spec in specs {
        out.push_str(&format!(
            "  {}=\"{}\"\n      {}\n",
            spec.key, spec.default, spec.help
        ));
    }
    out.push('\n');
    out.push_str(exit_codes);
    out
}

/// Renders the effective switches for `host` in shell syntax: every key a
/// file sets and every key in `specs` once, sorted, each with a comment
/// naming the file and line it came from or saying it is the built-in
/// default. Sourcing the output in bash gives back the same values.
pub fn render(switches: &Switches, specs: &[Spec], host: &str) -> String {
    let mut lines: BTreeMap<&str, String> = BTreeMap::new();
    for spec in specs {
        lines.insert(
            spec.key,
            format!(
                "{}={}  # built-in default: {}",
                spec.key,
                shell_quote(spec.default),
                spec.help
            ),
        );
    }
    for (key, s) in switches.iter() {
        lines.insert(
            key,
            format!(
                "{key}={}  # {}:{}",
                shell_quote(&s.value),
                s.path.display(),
                s.line
            ),
        );
    }
    let mut out = format!("# effective switches for {host}\n");
    for line in lines.values() {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn help_lists_every_key_with_its_default() {
        let specs = [Spec {
            key: "dns_ns",
            default: "",
            help: "name servers",
        }];
        assert!(
            help(&specs, "Exit codes: 0 ok.")
                .ends_with("\n  dns_ns=\"\"\n      name servers\n\nExit codes: 0 ok.")
        );
    }

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

    #[test]
    fn host_file_overrides_default_and_exclude_is_read() {
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
        assert_eq!(s.string("mysql_conf", "x"), "my.innodb.cnf");
        assert_eq!(s.get("mysql_conf").expect("set").path, host);
        assert_eq!(s.string("postfix_conf", "x"), "main.antispam.cf");
        assert_eq!(s.string("unset", "fallback"), "fallback");
        assert_eq!(s.exclude(), [PathBuf::from("/etc/postfix/main.cf")]);

        let other = Switches::load(dir.path(), "kyon.igowo.de").expect("load");
        assert_eq!(other.string("mysql_conf", "x"), "my.small.cnf");
        assert!(other.exclude().is_empty());
    }

    #[test]
    fn original_pysk_layout_fixture_loads_and_matches_bash() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pysk-original");
        let mikuru = Switches::load(&dir, "mikuru.igowo.de").expect("load");
        assert_eq!(mikuru.string("mysql_conf", ""), "my.innodb.cnf");
        assert_eq!(mikuru.string("postfix_conf", ""), "main.antispam.cf");
        assert!(mikuru.exclude().is_empty());
        let kyon = Switches::load(&dir, "kyon.igowo.de").expect("load");
        assert_eq!(kyon.string("mysql_conf", ""), "my.small.cnf");
        assert_eq!(kyon.exclude(), [PathBuf::from("/etc/postfix/main.cf")]);
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
                mikuru.string("mysql_conf", "").as_str(),
                mikuru.string("postfix_conf", "").as_str()
            ]
        );
    }

    #[test]
    fn no_config_at_all_gives_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Switches::load(&dir.path().join("missing"), "h").expect("load");
        assert_eq!(s.iter().count(), 0);
        assert_eq!(s.parsed("n", 7u32).expect("default"), 7);
        assert!(s.flag("f", true).expect("default"));
    }

    #[test]
    fn typed_getters_report_bad_values_at_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "serverconfig/default",
            "workers=8\nbroken=eight\nenabled=Yes\nmaybe=perhaps\n",
        );
        let s = Switches::load(dir.path(), "h").expect("load");
        assert_eq!(s.parsed("workers", 1u32).expect("number"), 8);
        assert!(s.flag("enabled", false).expect("flag"));
        match s.parsed::<u32>("broken", 1) {
            Err(Error::Config {
                path: p, line: 2, ..
            }) => assert_eq!(p, path),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            s.flag("maybe", false),
            Err(Error::Config { line: 4, .. })
        ));
    }

    #[test]
    fn relative_exclude_path_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "serverconfig/exclude/h", "/ok\netc/passwd\n");
        assert!(matches!(
            Switches::load(dir.path(), "h"),
            Err(Error::Config { line: 2, .. })
        ));
    }

    #[test]
    fn rendered_config_reads_back_identically_in_bash() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "serverconfig/default", EVERY_FORM);
        let s = Switches::load(dir.path(), "h").expect("load");
        let specs = [Spec {
            key: "from_spec",
            default: "a \"quoted\" $default `x` \\",
            help: "a test key",
        }];
        let text = render(&s, &specs, "h");
        let rendered = write(dir.path(), "rendered", &text);
        let mut keys: Vec<&str> = s.iter().map(|(k, _)| k).collect();
        keys.push("from_spec");
        let back: BTreeMap<String, String> = bash_values(&rendered, &keys).into_iter().collect();
        for (k, sw) in s.iter() {
            assert_eq!(back[k], sw.value, "{k}");
        }
        assert_eq!(back["from_spec"], specs[0].default);
        // Each key once, and re-parsed by us to the same values.
        let reparsed = parse(&text, &rendered).expect("our own output parses");
        assert_eq!(reparsed.len(), keys.len());
        assert!(text.contains("repeated=\"second\"  # "));
    }
}
