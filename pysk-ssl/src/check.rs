//! `check`: every certificate in the directory with its chain and its key,
//! judged against the warning and critical thresholds. A file that cannot
//! be read or parsed, or is not a regular file, is reported for its name;
//! nothing stops the others.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use pysk_common::date::unix_now;
use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::certs::{self, Cert};
use crate::chain;
use crate::error::SslError;
use crate::keys;
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
    /// One status line and Nagios' exit codes.
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
    /// A file could not be judged (unreadable, not a certificate).
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
    /// What needs attention.
    pub problems: Vec<String>,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    certificates: &'a [Verdict],
    attention: usize,
}

/// Checks every name and reports (lines, `--json` or `--nagios`).
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let store = Store::new(options.dir.clone(), 0);
    let anchors = chain::anchors(options.ca_file.as_deref())?;
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    let verdicts: Vec<Verdict> = store
        .names()?
        .iter()
        .map(|name| judge(&store, name, &anchors, now, options))
        .collect();
    let attention = verdicts.iter().filter(|v| v.status != Status::Ok).count();
    let worst = verdicts
        .iter()
        .map(|v| v.status)
        .max()
        .unwrap_or(Status::Ok);
    if options.nagios {
        let line = nagios_line(&verdicts, worst);
        writeln!(out, "{line}").map_err(pysk_common::Error::Stdout)?;
        return Ok(Outcome::Foreign(worst.nagios()));
    }
    if options.json {
        report::print_json(&Summary {
            certificates: &verdicts,
            attention,
        })?;
    } else {
        tell(&verdicts, report);
    }
    Ok(if attention == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// The lines on stderr: problems always, the rest unless `-q`.
fn tell(verdicts: &[Verdict], report: &Reporter) {
    for v in verdicts {
        for problem in &v.problems {
            report.warn(format_args!("{}: {problem}", v.name));
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
            "{attention} of {} certificates need attention",
            verdicts.len()
        ));
    }
}

/// `SSL WARNING - 1 of 3 certificates: www.example.org: …`.
fn nagios_line(verdicts: &[Verdict], worst: Status) -> String {
    let word = match worst {
        Status::Ok => "OK",
        Status::Warning => "WARNING",
        Status::Critical => "CRITICAL",
        Status::Unknown => "UNKNOWN",
    };
    let bad: Vec<String> = verdicts
        .iter()
        .filter(|v| v.status != Status::Ok)
        .map(|v| format!("{}: {}", v.name, v.problems.join("; ")))
        .collect();
    if bad.is_empty() {
        return format!("SSL OK - {} certificates", verdicts.len());
    }
    format!(
        "SSL {word} - {} of {} certificates: {}",
        bad.len(),
        verdicts.len(),
        bad.join(", ")
    )
}

/// One name: its files read, chain built, key compared, expiry judged.
fn judge(store: &Store, name: &str, anchors: &[Cert], now: i64, options: &Options) -> Verdict {
    let mut verdict = Verdict {
        name: name.to_owned(),
        status: Status::Ok,
        expires: None,
        days_left: None,
        problems: Vec::new(),
    };
    let mut add = |v: &mut Verdict, status: Status, problem: String| {
        v.status = v.status.max(status);
        v.problems.push(problem);
    };
    let leaf = match certs::read(&store.live(name, Part::Cert)) {
        Ok(mut given) => given.remove(0),
        Err(e) => {
            add(&mut verdict, Status::Unknown, e.to_string());
            return verdict;
        }
    };
    let chain_file = store.live(name, Part::Chain);
    // The chain as NAME_chain.crt holds it; `None` when it could not be
    // read.
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
    if let Some(problem) = key_problem(store, name, &leaf) {
        add(&mut verdict, Status::Critical, problem);
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

/// What is wrong with `name`'s key, if anything.
fn key_problem(store: &Store, name: &str, leaf: &Cert) -> Option<String> {
    let path = store.live(name, Part::Key);
    let pem = match certs::read_limited(&path) {
        Ok(pem) => pem,
        Err(e) => return Some(format!("key: {e}")),
    };
    match keys::parse(&path, &pem) {
        Ok(key) if chain::key_matches(leaf, key.public_key_raw()) => None,
        Ok(_) => Some(format!(
            "{}: does not match the certificate",
            path.display()
        )),
        Err(e) => Some(e.to_string()),
    }
}
