//! One settings layer for every tool: a command-line value beats the
//! switch, which beats the built-in default written once, in the tool's
//! [`Spec`] list.
//!
//! A tool declares each key it reads as a [`Spec`] (key, built-in default,
//! help line, and the option that overrides it, if any), builds one
//! [`Settings`] from its switches, and resolves every subcommand's options
//! through the typed getters in its `settings.rs`. Every bad value is
//! reported where it came from: `<file>:<line>: <key>: <why>` for a switch,
//! `--<option>: <why>` for the command line (exit 2, as for any usage
//! error), `<key> (built-in default): <why>` for a default. Typed values are
//! read with surrounding blanks ignored; strings and paths exactly as given.
//! Asking for a key that is not in the list is a fault of the tool
//! ([`Error::Internal`]), which each tool's unit tests rule out by
//! resolving every subcommand.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Origin};
use crate::switches::{Switch, Switches, shell_quote};

/// A switch a tool reads: its key, built-in default and meaning, and the
/// command-line option that overrides it, for `--help`, the README and
/// `pysk-<tool> config`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The key, for example `logs_spool`.
    pub key: &'static str,
    /// The value used when neither the command line nor a file sets it.
    pub default: &'static str,
    /// One line saying what it controls.
    pub help: &'static str,
    /// The option that beats the switch, for example `--spool`.
    pub option: Option<&'static str>,
    /// The key this one replaced in an earlier release, which files may
    /// still set: named in the warning about it.
    pub replaces: Option<&'static str>,
}

impl Spec {
    /// A switch `key` with its built-in `default` and `help` line, for a
    /// tool's `const` switch list.
    pub const fn new(key: &'static str, default: &'static str, help: &'static str) -> Spec {
        Spec {
            key,
            default,
            help,
            option: None,
            replaces: None,
        }
    }

    /// The same switch, overridden by the command-line `option`.
    pub const fn option(self, option: &'static str) -> Spec {
        Spec {
            option: Some(option),
            ..self
        }
    }

    /// The same switch, which replaced the key `old` (files that still set
    /// `old` are told the new name).
    pub const fn replaces(self, old: &'static str) -> Spec {
        Spec {
            replaces: Some(old),
            ..self
        }
    }
}

/// The resolved view of a tool's settings: its [`Spec`] list and the
/// switches of the host.
#[derive(Debug, Clone)]
pub struct Settings {
    specs: &'static [Spec],
    switches: Switches,
}

impl Settings {
    /// The settings of a tool whose keys are `specs`, with `switches` from
    /// the files.
    pub fn new(specs: &'static [Spec], switches: Switches) -> Settings {
        Settings { specs, switches }
    }

    /// The tool's switch list.
    pub fn specs(&self) -> &'static [Spec] {
        self.specs
    }

    /// The switches the files set.
    pub fn switches(&self) -> &Switches {
        &self.switches
    }

    /// Switches set in the files that look like this tool's (same prefix
    /// as its keys, such as `logs_`) but are none of them: a misspelt or
    /// retired key, each as `<file>:<line>: <key>: …` for a warning.
    pub fn unknown(&self) -> Vec<String> {
        let Some(prefix) = self
            .specs
            .first()
            .and_then(|s| s.key.split_once('_'))
            .map(|(p, _)| format!("{p}_"))
        else {
            return Vec::new();
        };
        self.switches
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .filter(|(key, _)| !self.specs.iter().any(|s| s.key == *key))
            .map(|(key, s)| {
                let why = match self.specs.iter().find(|s| s.replaces == Some(key)) {
                    Some(new) if self.switches.get(new.key).is_some() => {
                        format!("renamed to {}, which is set too; ignored", new.key)
                    }
                    Some(new) => format!(
                        "renamed to {}; read as {} for this release, rename it",
                        new.key, new.key
                    ),
                    None => {
                        "not a switch this tool reads (misspelt, or retired?); ignored".to_owned()
                    }
                };
                format!("{}:{}: {key}: {why}", s.path.display(), s.line)
            })
            .collect()
    }

    fn spec(&self, key: &str) -> Result<&'static Spec, Error> {
        self.specs
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| Error::Internal(format!("setting {key:?} is not in the switch list")))
    }

    /// The text of `key` and where it came from: `cli` when given, else the
    /// switch (or, for one release, the key it replaced), else the
    /// built-in default.
    fn source<'a>(&'a self, key: &str, cli: Option<&'a str>) -> Result<(&'a str, Origin), Error> {
        let spec = self.spec(key)?;
        let switch = self
            .switches
            .get(key)
            .or_else(|| spec.replaces.and_then(|old| self.switches.get(old)));
        Ok(match (cli, switch) {
            (Some(text), _) => (text, Origin::Option(spec.option.unwrap_or(key).to_owned())),
            (None, Some(Switch { value, path, line })) => (
                value.as_str(),
                Origin::Switch {
                    path: path.clone(),
                    line: *line,
                },
            ),
            (None, None) => (spec.default, Origin::Default),
        })
    }

    /// `key` parsed by `parse`, which says in its error what is wrong; the
    /// error is reported with the value and where it came from.
    pub fn with<T>(
        &self,
        key: &str,
        cli: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, Error> {
        let (text, origin) = self.source(key, cli)?;
        parse(text).map_err(|why| Error::Setting {
            key: key.to_owned(),
            origin,
            reason: format!("{text:?}: {why}"),
        })
    }

    /// An error about `key`'s current value found after it was read (say,
    /// a range whose ends do not fit together), naming where the value
    /// came from.
    pub fn invalid(&self, key: &str, cli: Option<&str>, reason: impl Into<String>) -> Error {
        match self.source(key, cli) {
            Ok((_, origin)) => Error::Setting {
                key: key.to_owned(),
                origin,
                reason: reason.into(),
            },
            Err(fault) => fault,
        }
    }

    /// `key` as a string, exactly as given.
    pub fn string(&self, key: &str, cli: Option<&str>) -> Result<String, Error> {
        self.with(key, cli, |t| Ok(t.to_owned()))
    }

    /// `key` as a string; `None` when empty.
    pub fn optional_string(&self, key: &str, cli: Option<&str>) -> Result<Option<String>, Error> {
        self.with(key, cli, |t| Ok((!t.is_empty()).then(|| t.to_owned())))
    }

    /// `key` as a path; the command line's path wins as it is (relative to
    /// the working directory, as any command's). A switch must give an
    /// absolute path: a relative one would depend on the directory cron
    /// happens to run the tool in, and an empty one would be that
    /// directory.
    pub fn path(&self, key: &str, cli: Option<PathBuf>) -> Result<PathBuf, Error> {
        match cli {
            Some(path) if path.as_os_str().is_empty() => {
                Err(self.invalid(key, Some(""), "empty; give a path"))
            }
            Some(path) => self.spec(key).map(|_| path),
            None => self.with(key, None, absolute),
        }
    }

    /// `key` as a path; `None` when empty. A switch must give an absolute
    /// path, as for [`Settings::path`].
    pub fn optional_path(&self, key: &str, cli: Option<PathBuf>) -> Result<Option<PathBuf>, Error> {
        match cli {
            Some(path) if !path.as_os_str().is_empty() => self.spec(key).map(|_| Some(path)),
            Some(_) => Ok(None),
            None => self.with(key, None, |t| {
                if t.is_empty() {
                    Ok(None)
                } else {
                    absolute(t).map(Some)
                }
            }),
        }
    }

    /// `key` as yes or no (see [`parse_flag`]); a flag given on the command
    /// line (`cli`) means yes.
    pub fn flag(&self, key: &str, cli: bool) -> Result<bool, Error> {
        if cli {
            return self.spec(key).map(|_| true);
        }
        self.with(key, None, parse_flag)
    }

    /// `key` as a size in bytes (see [`parse_size`]).
    pub fn size(&self, key: &str, cli: Option<&str>) -> Result<u64, Error> {
        self.with(key, cli, parse_size)
    }

    /// `key` as a number of seconds (see [`parse_seconds`]).
    pub fn seconds(&self, key: &str, cli: Option<&str>) -> Result<Duration, Error> {
        self.with(key, cli, parse_seconds)
    }

    /// `key` as a timeout: seconds, more than zero (a zero timeout would
    /// make every attempt fail).
    pub fn timeout(&self, key: &str, cli: Option<&str>) -> Result<Duration, Error> {
        self.with(key, cli, |t| match parse_seconds(t)? {
            d if d.is_zero() => Err("expected seconds from more than 0 to 86400".to_owned()),
            d => Ok(d),
        })
    }

    /// `key` as a whole number within `range` (a count, a limit): the
    /// error states the range.
    pub fn count<T>(
        &self,
        key: &str,
        cli: Option<&str>,
        range: RangeInclusive<T>,
    ) -> Result<T, Error>
    where
        T: Copy + Into<u64> + TryFrom<u64>,
    {
        let (min, max) = ((*range.start()).into(), (*range.end()).into());
        self.with(key, cli, |t| {
            parse_count(t, min..=max).and_then(|n| {
                T::try_from(n).map_err(|_| format!("expected a whole number from {min} to {max}"))
            })
        })
    }

    /// `key` parsed as `T` (a number, an address, …).
    pub fn parsed<T: FromStr>(&self, key: &str, cli: Option<&str>) -> Result<T, Error>
    where
        T::Err: std::fmt::Display + 'static,
    {
        self.with(key, cli, |t| {
            t.trim().parse().map_err(|e: T::Err| why_not(&e))
        })
    }

    /// The effective settings in shell syntax, for `pysk-<tool> config`:
    /// every key a file sets and every key of the tool once, sorted, each
    /// with a comment naming the file and line it came from or saying it
    /// is the built-in default. Sourcing the output in bash gives back the
    /// same values.
    pub fn render(&self, host: &str) -> String {
        let mut lines: BTreeMap<&str, String> = BTreeMap::new();
        for spec in self.specs {
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
        for (key, s) in self.switches.iter() {
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
}

/// A path from a switch: absolute, or an error saying why it must be.
fn absolute(text: &str) -> Result<PathBuf, String> {
    match text {
        "" => Err("empty; give an absolute path".to_owned()),
        t if t.starts_with('/') => Ok(PathBuf::from(t)),
        _ => Err(
            "not an absolute path (a relative one would depend on the directory the tool runs in)"
                .to_owned(),
        ),
    }
}

/// Why a value did not parse, in words for the admin: a number's error
/// says what a number must look like; others say what their type says.
fn why_not<E: std::fmt::Display + 'static>(err: &E) -> String {
    use std::num::IntErrorKind;
    match (err as &dyn std::any::Any).downcast_ref::<std::num::ParseIntError>() {
        Some(e) => match e.kind() {
            IntErrorKind::PosOverflow => "too large".to_owned(),
            IntErrorKind::NegOverflow => "too small".to_owned(),
            _ => "expected a whole number".to_owned(),
        },
        None => err.to_string(),
    }
}

/// The epilogue of a tool's `--help`: each switch with its built-in default,
/// the option that beats it and what it controls, derived from the same
/// `specs` that `config` prints so the two cannot drift apart, then the
/// tool's exit codes (see [`crate::exit::help`]).
pub fn help(specs: &[Spec], exit_codes: &str) -> String {
    let mut out = String::from(
        "Switches (in <config-dir>/serverconfig/default or /<fqdn>; options beat them):\n",
    );
    for spec in specs {
        let option = spec
            .option
            .map(|o| format!("  [option {o}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}=\"{}\"{option}\n      {}\n",
            spec.key, spec.default, spec.help
        ));
    }
    out.push('\n');
    out.push_str(exit_codes);
    out
}

/// Parses a yes/no value: `yes`, `true`, `on`, `1` or `no`, `false`, `off`,
/// `0`, any case.
pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err("expected yes or no".to_owned()),
    }
}

/// Parses a size: a number of bytes, or with a binary suffix `K`, `M`, `G`
/// or `T` (`KiB`, `MB`, … read the same).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err("expected a size like 256M".to_owned()),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a size like 256M".to_owned())?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| "too large".to_owned())
}

/// Parses a whole number within `range`; the error states the range.
pub fn parse_count(text: &str, range: RangeInclusive<u64>) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "expected a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

/// Parses a number of seconds, fractions allowed, up to a day.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err("expected seconds from 0 to 86400".to_owned()),
    }
}

/// Parses permission bits written in octal, such as `0750`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| "expected an octal mode like 0750".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    const SPECS: &[Spec] = &[
        Spec::new("t_memory", "256M", "sort memory").option("--memory"),
        Spec::new("t_name", "plain", "a name"),
        Spec::new("t_file", "", "a file (empty: none)").option("--file"),
        Spec::new("t_dir", "/var/lib/t", "a directory").option("--dir"),
        Spec::new("t_on", "no", "a flag").option("--on"),
        Spec::new("t_wait", "15", "seconds").replaces("t_old_wait"),
        Spec::new("t_count", "8", "a number"),
        Spec::new("t_broken", "many", "a default that does not parse"),
    ];

    /// Settings with `text` as `serverconfig/default`, and that file's path.
    fn settings(text: &str) -> (Settings, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serverconfig/default");
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        let switches = Switches::load(dir.path(), "h.example").expect("load");
        (Settings::new(SPECS, switches), path, dir)
    }

    fn origin_of(err: Error) -> Origin {
        match err {
            Error::Setting { origin, .. } => origin,
            other => panic!("not a setting error: {other:?}"),
        }
    }

    #[test]
    fn command_line_beats_switch_beats_default() {
        let (s, _, _dir) = settings("t_memory=\"1G\"\n");
        assert_eq!(s.size("t_memory", Some("64M")).expect("cli"), 64 << 20);
        assert_eq!(s.size("t_memory", None).expect("switch"), 1 << 30);
        let (bare, _, _dir) = settings("");
        assert_eq!(bare.size("t_memory", None).expect("default"), 256 << 20);
    }

    #[test]
    fn strings_and_paths_are_taken_exactly_and_empty_means_none() {
        let (s, _, _dir) = settings("t_name=\" two words \"\nt_dir=/srv/t\n");
        assert_eq!(s.string("t_name", None).expect("string"), " two words ");
        assert_eq!(s.string("t_name", Some("x")).expect("cli"), "x");
        assert_eq!(s.path("t_dir", None).expect("path"), Path::new("/srv/t"));
        assert_eq!(
            s.path("t_dir", Some(PathBuf::from("/o"))).expect("cli"),
            Path::new("/o")
        );
        assert_eq!(s.optional_path("t_file", None).expect("empty"), None);
        assert_eq!(
            s.optional_path("t_file", Some(PathBuf::from("/f")))
                .expect("cli"),
            Some(PathBuf::from("/f"))
        );
        assert_eq!(s.optional_string("t_file", None).expect("empty"), None);
    }

    #[test]
    fn flags_read_yes_and_no_and_a_given_flag_means_yes() {
        let (s, _, _dir) = settings("t_on=Yes\n");
        assert!(s.flag("t_on", false).expect("switch"));
        let (s, path, _dir) = settings("t_on=perhaps\n");
        assert!(s.flag("t_on", true).expect("cli wins"));
        assert_eq!(
            origin_of(s.flag("t_on", false).expect_err("bad")),
            Origin::Switch { path, line: 1 }
        );
        let (bare, _, _dir) = settings("");
        assert!(!bare.flag("t_on", false).expect("default"));
    }

    #[test]
    fn seconds_and_numbers_ignore_surrounding_blanks() {
        let (s, _, _dir) = settings("t_wait=\" 2.5 \"\nt_count=\" 12\"\n");
        assert_eq!(
            s.seconds("t_wait", None).expect("seconds"),
            Duration::from_millis(2500)
        );
        assert_eq!(s.parsed::<u32>("t_count", None).expect("number"), 12);
        assert_eq!(s.seconds("t_wait", Some("0")).expect("cli"), Duration::ZERO);
    }

    #[test]
    fn a_bad_switch_is_named_with_its_file_and_line() {
        let (s, path, _dir) = settings("# sizes\nt_memory=\"lots\"\n");
        let err = s.size("t_memory", None).expect_err("bad size");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: t_memory: \"lots\": expected a size like 256M",
                path.display()
            )
        );
        assert_eq!(crate::exit::ToolError::exit_code(&err), crate::exit::CONFIG);
    }

    #[test]
    fn a_bad_option_is_named_as_the_option() {
        let (s, _, _dir) = settings("");
        let err = s.parsed::<u32>("t_memory", Some("x")).expect_err("bad");
        assert_eq!(origin_of(err), Origin::Option("--memory".into()));
        let err = s.seconds("t_wait", Some("-1")).expect_err("negative");
        assert_eq!(
            err.to_string(),
            "t_wait: \"-1\": expected seconds from 0 to 86400"
        );
        assert_eq!(crate::exit::ToolError::exit_code(&err), crate::exit::USAGE);
    }

    #[test]
    fn a_bad_built_in_default_is_named_as_such() {
        let (s, _, _dir) = settings("");
        let err = s.parsed::<u32>("t_broken", None).expect_err("bad default");
        assert_eq!(
            err.to_string(),
            "t_broken (built-in default): \"many\": expected a whole number"
        );
        let later = s.invalid("t_count", None, "must be below t_wait");
        assert_eq!(
            later.to_string(),
            "t_count (built-in default): must be below t_wait"
        );
        let (s, _, _dir) = settings("t_count=99999999999\n");
        let err = s.parsed::<u32>("t_count", None).expect_err("too large");
        assert!(
            err.to_string()
                .ends_with(": t_count: \"99999999999\": too large"),
            "{err}"
        );
    }

    #[test]
    fn a_key_not_in_the_list_is_an_internal_fault_never_an_empty_value() {
        let (s, _, _dir) = settings("t_misspelt=1\n");
        for err in [
            s.string("t_mispelt", None).expect_err("unknown"),
            s.path("t_nope", Some(PathBuf::from("/x")))
                .expect_err("unknown"),
            s.flag("t_nope", true).expect_err("unknown"),
            s.invalid("t_nope", None, "x"),
        ] {
            assert!(matches!(err, Error::Internal(_)), "{err:?}");
            assert_eq!(
                crate::exit::ToolError::exit_code(&err),
                crate::exit::SOFTWARE
            );
        }
    }

    #[test]
    fn a_renamed_key_is_read_for_one_release_unless_the_new_one_is_set() {
        let (s, path, _dir) = settings("t_old_wait=3\n");
        assert_eq!(
            s.seconds("t_wait", None).expect("old key"),
            Duration::from_secs(3)
        );
        let err = s.with("t_wait", None, |_| Err::<(), _>("no".to_owned()));
        assert_eq!(
            origin_of(err.expect_err("bad")),
            Origin::Switch { path, line: 1 }
        );
        let (s, path, _dir) = settings("t_old_wait=3\nt_wait=4\n");
        assert_eq!(
            s.seconds("t_wait", None).expect("new key"),
            Duration::from_secs(4)
        );
        assert_eq!(
            s.unknown(),
            [format!(
                "{}:1: t_old_wait: renamed to t_wait, which is set too; ignored",
                path.display()
            )]
        );
    }

    #[test]
    fn counts_and_timeouts_state_their_range() {
        let (s, path, _dir) = settings("t_count=0\nt_wait=0\n");
        let err = s.count::<u16>("t_count", None, 1..=64).expect_err("zero");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1: t_count: \"0\": expected a whole number from 1 to 64",
                path.display()
            )
        );
        assert_eq!(
            s.count::<u16>("t_count", Some("64"), 1..=64).expect("cli"),
            64
        );
        assert!(s.count::<u16>("t_count", Some("65"), 1..=64).is_err());
        assert!(s.timeout("t_wait", None).is_err());
        assert_eq!(
            s.timeout("t_wait", Some("0.5")).expect("half a second"),
            Duration::from_millis(500)
        );
        assert_eq!(parse_count(" 7 ", 1..=10), Ok(7));
        assert!(parse_count("-1", 0..=10).is_err());
    }

    #[test]
    fn switches_give_absolute_paths_and_the_command_line_any() {
        let (s, path, _dir) = settings("t_dir=\"spool\"\nt_file=\"rel/x\"\n");
        let err = s.path("t_dir", None).expect_err("relative");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1: t_dir: \"spool\": not an absolute path (a relative one would depend on \
                 the directory the tool runs in)",
                path.display()
            )
        );
        assert!(s.optional_path("t_file", None).is_err());
        assert_eq!(
            s.path("t_dir", Some(PathBuf::from("spool"))).expect("cli"),
            Path::new("spool")
        );
        let (s, _, _dir) = settings("t_dir=\"\"\n");
        assert!(s.path("t_dir", None).is_err(), "empty");
        assert!(
            s.path("t_dir", Some(PathBuf::new())).is_err(),
            "empty option"
        );
    }

    #[test]
    fn unknown_keys_with_the_tools_prefix_are_listed_for_a_warning() {
        let (s, path, _dir) = settings("t_misspelt=1\nother_key=2\nt_name=x\nt_old_wait=3\n");
        assert_eq!(
            s.unknown(),
            [
                format!(
                    "{}:1: t_misspelt: not a switch this tool reads (misspelt, or retired?); ignored",
                    path.display()
                ),
                format!(
                    "{}:4: t_old_wait: renamed to t_wait; read as t_wait for this release, rename it",
                    path.display()
                )
            ]
        );
    }

    #[test]
    fn value_parsers_accept_what_they_document() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2048k"), Ok(2 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("0855").is_err());
        assert!(parse_mode("17777").is_err());
        assert_eq!(parse_flag("OFF"), Ok(false));
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("86401").is_err());
    }

    #[test]
    fn help_lists_every_key_with_its_default_and_option() {
        let specs = [Spec::new("dns_ns", "", "name servers").option("--ns")];
        assert!(
            help(&specs, "Exit codes: 0 ok.").ends_with(
                "\n  dns_ns=\"\"  [option --ns]\n      name servers\n\nExit codes: 0 ok."
            )
        );
    }

    #[test]
    fn rendered_config_shows_file_values_and_defaults() {
        let (s, path, _dir) = settings("t_dir=\"/srv/t\"\n");
        let text = s.render("h.example");
        assert!(text.starts_with("# effective switches for h.example\n"));
        assert!(text.contains(&format!("t_dir=\"/srv/t\"  # {}:1\n", path.display())));
        assert!(text.contains("t_memory=\"256M\"  # built-in default: sort memory\n"));
    }
}
