//! `list`: the installed certificates, one line each (or `--json`).

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};

use crate::certs;
use crate::chain;
use crate::error::SslError;
use crate::store::{Part, Store};

/// What `list` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The certificate directory.
    pub dir: PathBuf,
    /// The `--json` document instead of lines.
    pub json: bool,
}

/// One installed certificate.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// Its DNS names.
    pub sans: Vec<String>,
    /// Its issuer.
    pub issuer: String,
    /// Its key's type (`ec-p256`, `rsa2048`, …).
    pub key_type: String,
    /// When it expires (`YYYY-MM-DD`).
    pub not_after: String,
    /// Whole days until then.
    pub days_left: i64,
    /// Whether `acme` manages it (renewed by `renew`).
    pub acme: bool,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct Summary {
    certificates: Vec<Entry>,
}

/// Lists every name whose certificate parses; one that does not is warned
/// about (exit 1) and `check` says more.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let store = Store::new(options.dir.clone(), 0);
    let now = chain::now();
    let mut entries = Vec::new();
    let mut outcome = Outcome::Success;
    for name in store.names()? {
        match certs::read(&store.live(&name, Part::Cert)) {
            Ok(given) => {
                let acme = store.acme_record(&name).exists();
                entries.push(entry(name, &given[0], now, acme));
            }
            Err(e) => {
                report.warn(e);
                outcome = Outcome::Partial;
            }
        }
    }
    if options.json {
        report::print_json(&Summary {
            certificates: entries,
        })?;
        return Ok(outcome);
    }
    for e in &entries {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.name,
            e.not_after,
            e.days_left,
            e.key_type,
            if e.acme { "acme" } else { "-" },
            e.issuer,
            e.sans.join(",")
        )
        .map_err(pysk_common::Error::Stdout)?;
    }
    Ok(outcome)
}

fn entry(name: String, leaf: &certs::Cert, now: i64, acme: bool) -> Entry {
    Entry {
        name,
        sans: leaf.names.clone(),
        issuer: leaf.issuer.clone(),
        key_type: leaf.key_type.clone(),
        not_after: chain::date(leaf.not_after),
        days_left: chain::days(leaf.not_after, now),
        acme,
    }
}
