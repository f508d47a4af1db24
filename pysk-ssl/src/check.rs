//! `check`: every certificate in the directory with its chain, its key and
//! its combined file, judged against the warning and critical thresholds.
//! A file that cannot be read or parsed, or is foreign (not a regular
//! file, a CA's certificate), is reported for its name as unknown; nothing
//! stops the others. With `--nagios`, every error of the run is a status
//! line too ([`nagios`]).

use std::io::{self, Write};
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

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
    let now = chain::now();
    // Each name on rayon's pool, the verdicts kept in the names' order.
    let verdicts: Vec<Verdict> = store
        .names()?
        .par_iter()
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

/// One name: its files read, chain built, key compared, the combined
/// file compared with both, expiry judged.
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
    if let Some((status, problem)) = combined_problem(store, name, &leaf, chain.as_deref()) {
        add(&mut verdict, status, problem);
    }
    if let Err(f) = chain::covers(&leaf, name) {
        // The verdict is the name's already: say the why alone.
        let prefix = format!("{name}: ");
        let why = f.reason.strip_prefix(&prefix).unwrap_or(&f.reason);
        add(&mut verdict, Status::Critical, why.to_owned());
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
