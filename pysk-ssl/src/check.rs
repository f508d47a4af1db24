//! `check`: every certificate in the directory with its chain, its key and
//! its combined file, judged against the warning and critical thresholds.
//! A file that cannot be read or parsed, or is foreign (not a regular
//! file, a CA's certificate), is reported for its name as unknown; nothing
//! stops the others. A name's problems are kept worst first. The directory
//! has problems of its own: a reload that failed after the last install
//! (critical) and no certificate at all (unknown). With `--nagios`, a
//! short status line and one line per directory problem and flagged name
//! (`nagios_text`); every error of the run is a status line too
//! ([`nagios`]).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Serialize, Serializer};

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::certs::{self, Cert};
use crate::chain;
use crate::error::SslError;
use crate::keys;
use crate::reload;
use crate::store::{Part, Store};

/// What `check` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The certificate directory.
    pub dir: PathBuf,
    /// The trust anchors (`None`: the system's store).
    pub ca_file: Option<PathBuf>,
    /// Warn when a certificate of a chain expires within this many days.
    pub warn_days: u64,
    /// Critical within this many days.
    pub crit_days: u64,
    /// Nagios' status line, long output and exit codes.
    pub nagios: bool,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// How bad a name's state is, in Nagios' order of codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// A file could not be judged (unreadable, not a certificate, not a
    /// server's certificate).
    Unknown,
    /// Expires within the warning threshold.
    Warning,
    /// Expires within the critical threshold, or is broken (key, chain).
    Critical,
}

impl Status {
    /// Nagios' exit code.
    fn nagios(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

/// One name's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The name.
    pub name: String,
    /// How bad.
    pub status: Status,
    /// The first expiry of its leaf and chain (`YYYY-MM-DD`), when read.
    pub expires: Option<String>,
    /// Whole days until then.
    pub days_left: Option<i64>,
    /// What needs attention, worst first.
    pub problems: Vec<Problem>,
}

/// One thing that needs attention, and how bad it is; `--json` writes its
/// text alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// How bad.
    pub status: Status,
    /// What it is.
    pub text: String,
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    certificates: &'a [Verdict],
    attention: usize,
    /// The directory's own problems.
    problems: &'a [Problem],
}

/// Checks every name and reports (lines, `--json` or `--nagios`).
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let store = Store::new(options.dir.clone(), 0);
    let anchors = chain::anchors(options.ca_file.as_deref())?;
    let now = chain::now();
    // Each name on rayon's pool, the verdicts kept in the names' order.
    let verdicts: Vec<Verdict> = store
        .names()?
        .par_iter()
        .map(|name| judge(&store, name, &anchors, now, options))
        .collect();
    let dir_problems = directory_problems(&options.dir, verdicts.is_empty());
    let attention = verdicts.iter().filter(|v| v.status != Status::Ok).count();
    let worst = verdicts
        .iter()
        .map(|v| v.status)
        .chain(dir_problems.iter().map(|p| p.status))
        .max()
        .unwrap_or(Status::Ok);
    if options.nagios {
        let text = nagios_text(&dir_problems, &verdicts, worst);
        out.write_all(text.as_bytes())
            .map_err(pysk_common::Error::Stdout)?;
        return Ok(Outcome::Foreign(worst.nagios()));
    }
    if options.json {
        report::print_json(&Summary {
            certificates: &verdicts,
            attention,
            problems: &dir_problems,
        })?;
    } else {
        tell(&dir_problems, &verdicts, report);
    }
    Ok(if attention == 0 && dir_problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// `check --nagios`: the run `body`, any of whose errors (the settings,
/// the directory, the trust anchors) becomes `SSL UNKNOWN - <error>` on
/// stdout and Nagios' unknown (3), so that the monitoring reads a status
/// line whatever failed.
pub fn nagios(
    out: &mut dyn Write,
    body: impl FnOnce(&mut dyn Write) -> Result<Outcome, SslError>,
) -> Result<Outcome, SslError> {
    match body(out) {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            let line = certs::escape(&e.to_string());
            writeln!(out, "SSL UNKNOWN - {line}").map_err(pysk_common::Error::Stdout)?;
            Ok(Outcome::Foreign(Status::Unknown.nagios()))
        }
    }
}

/// The directory's own problems: a reload that failed after the last
/// install (`DIR/.reload-pending`, see [`reload::pending`]) is critical,
/// since the servers may still present the certificates it replaced; a
/// directory without any certificate is unknown (one that should hold
/// them holds none: nothing can be judged).
fn directory_problems(dir: &Path, empty: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mark = reload::pending(dir);
    if std::fs::symlink_metadata(&mark).is_ok() {
        problems.push(Problem {
            status: Status::Critical,
            text: format!(
                "ssl_reload_command failed after an install ({}): the servers may still serve \
                 the old certificates",
                mark.display()
            ),
        });
    }
    if empty {
        problems.push(Problem {
            status: Status::Unknown,
            text: format!("no certificates in {}", dir.display()),
        });
    }
    problems
}

/// `n` and `word`, with an `s` unless `n` is 1.
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The lines on stderr: problems always, each with its state
/// (`NAME: warning: …`), the rest unless `-q`.
fn tell(dir_problems: &[Problem], verdicts: &[Verdict], report: &Reporter) {
    for problem in dir_problems {
        report.warn(format_args!("{}: {}", lower(problem.status), problem.text));
    }
    for v in verdicts {
        for problem in &v.problems {
            report.warn(format_args!(
                "{}: {}: {}",
                v.name,
                lower(problem.status),
                problem.text
            ));
        }
        if let (Status::Ok, Some(expires), Some(days)) = (v.status, &v.expires, v.days_left) {
            report.info(format_args!(
                "{}: ok, expires {expires} (in {days} days)",
                v.name
            ));
        }
    }
    let attention = verdicts.iter().filter(|v| v.status != Status::Ok).count();
    if attention > 0 {
        report.warn(format_args!(
            "{attention} of {} {}",
            count(verdicts.len(), "certificate"),
            if attention == 1 {
                "needs attention"
            } else {
                "need attention"
            }
        ));
    }
}

/// Most flagged names the status line names; the others are counted.
const NAGIOS_NAMED: usize = 3;
/// Most bytes of a name on the status line.
const NAGIOS_NAME_BYTES: usize = 128;
/// Most bytes of a problem on the status line.
const NAGIOS_PROBLEM_BYTES: usize = 256;

/// `check --nagios`'s output, in Nagios' plugin format: a status line
/// short enough for Nagios to keep whole (it keeps about 4 KB of it, and
/// this stays under 2 KB), then the long output, one line per directory
/// problem and per flagged name. The status line starts with the
/// directory's problems, then counts the flagged names by state and names
/// the worst [`NAGIOS_NAMED`] with their worst problem, each cut short
/// ([`NAGIOS_NAME_BYTES`], [`NAGIOS_PROBLEM_BYTES`]):
///
/// ```text
/// SSL CRITICAL - 1 critical, 2 warning of 40 certificates: a.example (…), b.example (…), and 1 more
/// CRITICAL: a.example: …; …
/// WARNING: b.example: …
/// WARNING: c.example: …
/// ```
///
/// Names are in order of state (critical, warning, unknown), then of
/// name. Every line is one line: a control character in a name or a
/// path is written as an escape.
fn nagios_text(dir_problems: &[Problem], verdicts: &[Verdict], worst: Status) -> String {
    let mut bad: Vec<&Verdict> = verdicts.iter().filter(|v| v.status != Status::Ok).collect();
    let mut parts: Vec<String> = dir_problems
        .iter()
        .map(|p| cut(&one_line(&p.text), NAGIOS_PROBLEM_BYTES))
        .collect();
    let mut long = String::new();
    for p in dir_problems {
        let _ = writeln!(long, "{}: {}", word(p.status), one_line(&p.text));
    }
    if bad.is_empty() {
        if !verdicts.is_empty() {
            parts.push(count(verdicts.len(), "certificate"));
        }
        return format!("SSL {} - {}\n{long}", word(worst), parts.join("; "));
    }
    bad.sort_by_key(|v| std::cmp::Reverse(v.status));
    let counts: Vec<String> = [Status::Critical, Status::Warning, Status::Unknown]
        .into_iter()
        .filter_map(|status| {
            let n = bad.iter().filter(|v| v.status == status).count();
            (n > 0).then(|| format!("{n} {}", word(status).to_ascii_lowercase()))
        })
        .collect();
    let mut named: Vec<String> = bad
        .iter()
        .take(NAGIOS_NAMED)
        .map(|v| {
            let name = cut(&one_line(&v.name), NAGIOS_NAME_BYTES);
            match v.problems.first() {
                Some(problem) => format!(
                    "{name} ({})",
                    cut(&one_line(&problem.text), NAGIOS_PROBLEM_BYTES)
                ),
                None => name,
            }
        })
        .collect();
    if bad.len() > NAGIOS_NAMED {
        named.push(format!("and {} more", bad.len() - NAGIOS_NAMED));
    }
    parts.push(format!(
        "{} of {}: {}",
        counts.join(", "),
        count(verdicts.len(), "certificate"),
        named.join(", ")
    ));
    let mut text = format!("SSL {} - {}\n{long}", word(worst), parts.join("; "));
    for v in bad {
        let problems: Vec<String> = v.problems.iter().map(|p| one_line(&p.text)).collect();
        let _ = writeln!(
            text,
            "{}: {}: {}",
            word(v.status),
            one_line(&v.name),
            problems.join("; ")
        );
    }
    text
}

/// A state as Nagios' status line spells it.
fn word(status: Status) -> &'static str {
    match status {
        Status::Ok => "OK",
        Status::Warning => "WARNING",
        Status::Critical => "CRITICAL",
        Status::Unknown => "UNKNOWN",
    }
}

/// A state as `check`'s lines spell it (`warning`).
fn lower(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Critical => "critical",
        Status::Unknown => "unknown",
    }
}

/// `text` with its control characters [`certs::escape`]d (a name or a
/// path that holds a line break would otherwise start a line of its own);
/// the rest, text escaped already included, as it is.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                certs::escape(&c.to_string())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` cut to at most `max` bytes on a character boundary, `…` (3
/// bytes more) saying so.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One name judged ([`judge_in_order`]), its problems worst first (in
/// the order found among equals).
fn judge(store: &Store, name: &str, anchors: &[Cert], now: i64, options: &Options) -> Verdict {
    let mut verdict = judge_in_order(store, name, anchors, now, options);
    verdict
        .problems
        .sort_by_key(|p| std::cmp::Reverse(p.status));
    verdict
}

/// One name: its files read, chain built, key compared and its mode
/// judged, the combined file compared with both, expiry judged; the
/// problems in the order found.
fn judge_in_order(
    store: &Store,
    name: &str,
    anchors: &[Cert],
    now: i64,
    options: &Options,
) -> Verdict {
    let mut verdict = Verdict {
        name: name.to_owned(),
        status: Status::Ok,
        expires: None,
        days_left: None,
        problems: Vec::new(),
    };
    let mut add = |v: &mut Verdict, status: Status, text: String| {
        v.status = v.status.max(status);
        v.problems.push(Problem { status, text });
    };
    let cert_file = store.live(name, Part::Cert);
    let leaf = match certs::read(&cert_file) {
        // A CA's certificate (a bundle kept beside the sets) is no
        // server's: a foreign file, not a broken name.
        Ok(given) if given[0].is_ca => {
            let why = format!("{}: a CA certificate, not a server's", cert_file.display());
            add(&mut verdict, Status::Unknown, why);
            return verdict;
        }
        Ok(mut given) => given.remove(0),
        Err(e) => {
            add(&mut verdict, Status::Unknown, e.to_string());
            return verdict;
        }
    };
    let chain_file = store.live(name, Part::Chain);
    // The chain as NAME_chain.crt holds it; `None` when it could not be
    // read, so the combined file is not compared with a guess.
    let chain = match certs::read(&chain_file) {
        Ok(chain) => Some(chain),
        Err(_) if std::fs::metadata(&chain_file).is_ok_and(|m| m.is_file() && m.len() == 0) => {
            Some(Vec::new())
        }
        Err(e) if not_found(&e) => Some(Vec::new()),
        Err(e) => {
            add(&mut verdict, Status::Unknown, e.to_string());
            None
        }
    };
    if let Some((status, problem)) = key_problem(store, name, &leaf) {
        add(&mut verdict, status, problem);
    }
    if let Some((status, problem)) = key_mode_problem(&store.live(name, Part::Key)) {
        add(&mut verdict, status, problem);
    }
    if let Some((status, problem)) = combined_problem(store, name, &leaf, chain.as_deref()) {
        add(&mut verdict, status, problem);
    }
    if let Err(f) = chain::covers(&leaf, name) {
        add(&mut verdict, Status::Critical, f.reason);
    }
    let pool = chain.clone().unwrap_or_default();
    let first = std::iter::once(&leaf)
        .chain(&pool)
        .map(|c| c.not_after)
        .min()
        .unwrap_or(leaf.not_after);
    verdict.expires = Some(chain::date(first));
    verdict.days_left = Some(chain::days(first, now));
    if chain.is_none() {
        // The chain could not be read (said above): no path to judge, but
        // the leaf's own expiry still counts.
        let alone = chain::Served {
            leaf: leaf.clone(),
            chain: Vec::new(),
            path: 0,
            anchor: leaf,
        };
        expiry(&mut verdict, &alone, now, options, &mut add);
        return verdict;
    }
    match chain::build(leaf, pool, anchors) {
        Ok(served) => expiry(&mut verdict, &served, now, options, &mut add),
        Err(f) => add(
            &mut verdict,
            Status::Critical,
            format!("chain: {}", f.reason),
        ),
    }
    verdict
}

/// Whether `e` is a file that does not exist.
fn not_found(e: &SslError) -> bool {
    matches!(e, SslError::Common(pysk_common::Error::Read { source, .. })
        if source.kind() == io::ErrorKind::NotFound)
}

/// Whether `e` is a file that exists but could not be read (permission
/// denied, an I/O error): nothing can be said of its content.
fn unreadable(e: &SslError) -> bool {
    matches!(e, SslError::Common(pysk_common::Error::Read { .. })) && !not_found(e)
}

/// The expiry of the served chain against both thresholds.
fn expiry(
    verdict: &mut Verdict,
    served: &chain::Served,
    now: i64,
    options: &Options,
    add: &mut impl FnMut(&mut Verdict, Status, String),
) {
    if let Err(f) = chain::expiry(served, now, options.crit_days) {
        add(verdict, Status::Critical, f.reason);
    } else if let Err(f) = chain::expiry(served, now, options.warn_days) {
        add(verdict, Status::Warning, f.reason);
    }
}

/// What is wrong with `name`'s key, if anything: a key that does not
/// match, is missing or is not a key is critical (the server cannot use
/// it); one this user may not read is unknown (monitoring often runs as a
/// user outside the keys' group).
fn key_problem(store: &Store, name: &str, leaf: &Cert) -> Option<(Status, String)> {
    let path = store.live(name, Part::Key);
    let pem = match certs::read_limited(&path) {
        Ok(pem) => pem,
        Err(e) if unreadable(&e) => return Some((Status::Unknown, format!("key: {e}"))),
        Err(e) => return Some((Status::Critical, format!("key: {e}"))),
    };
    match keys::public_key(&path, &pem) {
        Ok(key) if chain::key_matches(leaf, &key) => None,
        Ok(_) => Some((
            Status::Critical,
            format!("{}: does not match the certificate", path.display()),
        )),
        Err(e) => Some((Status::Critical, e.to_string())),
    }
}

/// Whether the key at `path` (its target, for a link) may be read by
/// others or written by anyone but its owner: critical, as any local user
/// (or a web application's) could take the key, or replace it. A key that
/// cannot be found is said by [`key_problem`].
fn key_mode_problem(path: &Path) -> Option<(Status, String)> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    let mut what = Vec::new();
    if mode & 0o004 != 0 {
        what.push("readable by others");
    }
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => what.push("writable by its group and others"),
        (true, false) => what.push("writable by its group"),
        (false, true) => what.push("writable by others"),
        (false, false) => {}
    }
    if what.is_empty() {
        return None;
    }
    Some((
        Status::Critical,
        format!(
            "key: {}: {} (mode {mode:04o}); run chmod 640 on it",
            path.display(),
            what.join(" and ")
        ),
    ))
}

/// What is wrong with `NAME_combined.crt`, the file nginx and Dovecot
/// load, if it exists: it must hold `NAME.crt`'s certificate first, then
/// `chain`'s (`NAME_chain.crt`'s; not compared when that could not be
/// read), nothing else. A server loading anything else presents another
/// chain, or another certificate, than the one checked.
fn combined_problem(
    store: &Store,
    name: &str,
    leaf: &Cert,
    chain: Option<&[Cert]>,
) -> Option<(Status, String)> {
    let path = store.live(name, Part::Combined);
    let given = match certs::read(&path) {
        Ok(given) => given,
        Err(e) if not_found(&e) => return None,
        Err(e) if unreadable(&e) => return Some((Status::Unknown, e.to_string())),
        Err(e) => return Some((Status::Critical, e.to_string())),
    };
    let combined = Part::Combined.file(name);
    let cert = Part::Cert.file(name);
    if given[0].der != leaf.der {
        let why = match given.iter().position(|c| c.der == leaf.der) {
            Some(at) => format!(
                "{combined} does not start with {cert}'s certificate (it is certificate {} of {}: \
                 servers would present the chain in the wrong order)",
                at + 1,
                given.len()
            ),
            None => format!(
                "{combined} does not start with {cert}'s certificate (it holds no copy of it: \
                 servers present another certificate)"
            ),
        };
        return Some((Status::Critical, why));
    }
    let chain = chain?;
    let rest = &given[1..];
    let chain_file = Part::Chain.file(name);
    let why = if rest.len() != chain.len() {
        format!(
            "{combined} does not continue with {chain_file}'s certificates: {} after the leaf, \
             {} in {chain_file}",
            rest.len(),
            chain.len()
        )
    } else if let Some(at) = rest.iter().zip(chain).position(|(a, b)| a.der != b.der) {
        format!(
            "{combined} does not continue with {chain_file}'s certificates: its certificate {} \
             is not {chain_file}'s certificate {}",
            at + 2,
            at + 1
        )
    } else {
        return None;
    };
    Some((Status::Critical, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(name: &str, status: Status, problems: &[&str]) -> Verdict {
        Verdict {
            name: name.to_owned(),
            status,
            expires: None,
            days_left: None,
            problems: problems
                .iter()
                .map(|p| Problem {
                    status,
                    text: (*p).to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_status_line_names_the_worst_three_and_the_long_output_all() {
        let verdicts = [
            verdict("a.example", Status::Warning, &["\"CN=a\" expires soon"]),
            verdict("b.example", Status::Ok, &[]),
            verdict(
                "c.example",
                Status::Unknown,
                &["c.example.crt: not a regular file"],
            ),
            verdict("d.example", Status::Critical, &["key: no", "chain: no"]),
            verdict(
                "e\nSSL OK - x",
                Status::Warning,
                &["/ssl/e\nSSL OK - x.crt: late"],
            ),
        ];
        assert_eq!(
            nagios_text(&[], &verdicts, Status::Critical),
            "SSL CRITICAL - 1 critical, 2 warning, 1 unknown of 5 certificates: \
             d.example (key: no), a.example (\"CN=a\" expires soon), \
             e\\nSSL OK - x (/ssl/e\\nSSL OK - x.crt: late), and 1 more\n\
             CRITICAL: d.example: key: no; chain: no\n\
             WARNING: a.example: \"CN=a\" expires soon\n\
             WARNING: e\\nSSL OK - x: /ssl/e\\nSSL OK - x.crt: late\n\
             UNKNOWN: c.example: c.example.crt: not a regular file\n"
        );
        assert_eq!(
            nagios_text(&[], &verdicts[1..2], Status::Ok),
            "SSL OK - 1 certificate\n"
        );
        assert_eq!(
            nagios_text(&[], &[verdicts[1].clone(), verdicts[1].clone()], Status::Ok),
            "SSL OK - 2 certificates\n"
        );
        assert_eq!(
            nagios_text(&[], &verdicts[..1], Status::Warning),
            "SSL WARNING - 1 warning of 1 certificate: a.example (\"CN=a\" expires soon)\n\
             WARNING: a.example: \"CN=a\" expires soon\n"
        );
    }

    #[test]
    fn the_status_line_stays_short_however_long_the_names_and_problems() {
        let long = "é".repeat(2_000);
        let verdicts: Vec<Verdict> = (0..5_000)
            .map(|n| verdict(&format!("{n}{long}"), Status::Critical, &[&long, &long]))
            .collect();
        let text = nagios_text(&[], &verdicts, Status::Critical);
        let first = text.lines().next().expect("a status line");
        assert!(first.len() < 1_500, "{}", first.len());
        assert!(first.starts_with("SSL CRITICAL - 5000 critical of 5000 certificates: 0éé"));
        assert!(first.ends_with("é…), and 4997 more"), "{first}");
        assert_eq!(text.lines().count(), 5_001);
        assert_eq!(cut("aé", 2), "a…");
        assert_eq!(cut("aé", 3), "aé");
    }

    #[test]
    fn the_directory_s_problems_come_first_on_the_status_line_and_in_the_long_output() {
        let pending = Problem {
            status: Status::Critical,
            text: "ssl_reload_command failed after an install (/ssl/.reload-pending): x".to_owned(),
        };
        let empty = Problem {
            status: Status::Unknown,
            text: "no certificates in /ssl\n".to_owned(),
        };
        assert_eq!(
            nagios_text(std::slice::from_ref(&empty), &[], Status::Unknown),
            "SSL UNKNOWN - no certificates in /ssl\\n\nUNKNOWN: no certificates in /ssl\\n\n"
        );
        assert_eq!(
            nagios_text(
                std::slice::from_ref(&pending),
                &[verdict("b.example", Status::Ok, &[])],
                Status::Critical
            ),
            "SSL CRITICAL - ssl_reload_command failed after an install (/ssl/.reload-pending): x; \
             1 certificate\n\
             CRITICAL: ssl_reload_command failed after an install (/ssl/.reload-pending): x\n"
        );
        assert_eq!(
            nagios_text(
                &[pending],
                &[
                    verdict("a.example", Status::Warning, &["late"]),
                    verdict("b.example", Status::Ok, &[])
                ],
                Status::Critical
            ),
            "SSL CRITICAL - ssl_reload_command failed after an install (/ssl/.reload-pending): x; \
             1 warning of 2 certificates: a.example (late)\n\
             CRITICAL: ssl_reload_command failed after an install (/ssl/.reload-pending): x\n\
             WARNING: a.example: late\n"
        );
    }

    #[test]
    fn a_key_others_may_read_or_anyone_but_its_owner_write_is_critical() {
        let dir = std::env::temp_dir().join(format!("pysk-ssl-check-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("a.key");
        std::fs::write(&key, "k").expect("key");
        let with = |mode: u32| {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
            key_mode_problem(&key).map(|(status, why)| {
                assert_eq!(status, Status::Critical);
                why.strip_prefix(&format!("key: {}: ", key.display()))
                    .expect("the key named")
                    .to_owned()
            })
        };
        assert_eq!(with(0o640), None);
        assert_eq!(with(0o600), None);
        assert_eq!(with(0o400), None);
        assert_eq!(
            with(0o644).as_deref(),
            Some("readable by others (mode 0644); run chmod 640 on it")
        );
        assert_eq!(
            with(0o660).as_deref(),
            Some("writable by its group (mode 0660); run chmod 640 on it")
        );
        assert_eq!(
            with(0o602).as_deref(),
            Some("writable by others (mode 0602); run chmod 640 on it")
        );
        assert_eq!(
            with(0o666).as_deref(),
            Some(
                "readable by others and writable by its group and others (mode 0666); \
                 run chmod 640 on it"
            )
        );
        assert_eq!(key_mode_problem(&dir.join("missing.key")), None);
        std::fs::remove_dir_all(&dir).expect("rm");
    }
}
