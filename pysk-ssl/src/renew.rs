//! `renew`: every ACME-managed name (`DIR/.acme/NAME.json`) whose
//! certificate has less than a third of its lifetime left, or whose CA's
//! renewal window (RFC 9773) has opened, is ordered again
//! through [`acme`] with the names, webroot and CA of its record, and
//! installed through the same gate. One failing name does not stop the
//! others: each failure is reported and the run exits 1.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use instant_acme::CertificateIdentifier;
use pysk_common::error::read_err;
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::acme::{self, Record};
use crate::certs::{self, Cert};
use crate::chain;
use crate::error::SslError;
use crate::install;
use crate::keys::KeyType;
use crate::names;
use crate::reload;
use crate::served;
use crate::store::{Part, Store};

/// What `renew` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The certificate directory.
    pub store: Store,
    /// The account's credentials (`ssl_acme_account`).
    pub account: PathBuf,
    /// The type of each new key.
    pub key_type: KeyType,
    /// The trust anchors (`None`: the system's store), also trusted for
    /// the connection to the CA.
    pub ca_file: Option<PathBuf>,
    /// No certificate of a new chain may expire within this many days.
    pub warn_days: u64,
    /// Run after each install (split at blanks; empty: none).
    pub reload: String,
    /// The probe after each reload (`ssl_check_after_reload`), its name
    /// set to the name renewed.
    pub check_after_reload: Option<served::Options>,
    /// How long the CA may take to answer one request.
    pub request_limit: Duration,
    /// Say which names are due; order nothing.
    pub dry_run: bool,
    /// Print the `--json` document instead of lines.
    pub json: bool,
    /// How long to wait for the lock.
    pub wait: Duration,
}

/// A certificate is due when less than this fraction (1/N) of its
/// lifetime is left.
const DUE_FRACTION: i64 = 3;

/// What became of one name, for `--json`.
#[derive(Debug, Serialize)]
struct Renewed {
    name: String,
    /// `not-due`, `due` (a dry run), `renewed` or `failed`.
    status: &'static str,
    /// From when it is due (`YYYY-MM-DD`; none when it failed before).
    due_from: Option<String>,
    /// The rule that made it due.
    by: Option<&'static str>,
    /// The installed certificate's expiry (the new one's when renewed).
    expires: Option<String>,
    /// Why it failed.
    error: Option<String>,
}

/// The `--json` document of `renew`.
#[derive(Debug, Serialize)]
struct Summary {
    dry_run: bool,
    names: Vec<Renewed>,
    renewed: usize,
    failed: usize,
    /// Whether a reload that failed earlier was (or, for a dry run, would
    /// be) run again.
    reload_retried: bool,
}

/// Renews every due ACME-managed name; `Partial` (exit 1) when any failed.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let mut names = Vec::new();
    for name in managed(&options.store)? {
        let mut entry = Renewed {
            name: name.clone(),
            status: "failed",
            due_from: None,
            by: None,
            expires: None,
            error: None,
        };
        if let Err(e) = renew(options, &mut entry, report, out) {
            if !options.json {
                report.warn(format_args!("{name}: {e}"));
            }
            entry.status = "failed";
            entry.error = Some(e.to_string());
        }
        names.push(entry);
    }
    let reload_retried = retry_reload(options, report, out)?;
    let count = |status| names.iter().filter(|n| n.status == status).count();
    let (renewed, failed) = (count("renewed"), count("failed"));
    if options.json {
        report::print_json(&Summary {
            dry_run: options.dry_run,
            names,
            renewed,
            failed,
            reload_retried,
        })?;
    }
    Ok(if failed == 0 {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}

/// The reload that failed after an earlier install, run again under the
/// directory's lock (only when its lock file exists: there is nothing to
/// reload otherwise).
fn retry_reload(
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<bool, SslError> {
    let dir = options.store.dir();
    if !reload::pending(dir).exists() {
        return Ok(false);
    }
    let _lock = Lock::existing(&options.store.lock_path(), options.wait)?;
    let (dry_run, json) = (options.dry_run, options.json);
    reload::retry(dir, &options.reload, dry_run, json, report, out)?;
    Ok(true)
}

/// The names with an ACME record, sorted.
fn managed(store: &Store) -> Result<Vec<String>, SslError> {
    let dir = store.acme_dir();
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).map_err(read_err(&dir))? {
        let entry = entry.map_err(read_err(&dir))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".json") {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// One name: skipped when not due, else shown (dry run) or renewed;
/// `entry` says which.
fn renew(
    options: &Options,
    entry: &mut Renewed,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(), SslError> {
    let store = &options.store;
    let name = entry.name.clone();
    let record = record(store, &name)?;
    let leaf = certs::read(&store.live(&name, Part::Cert))?
        .into_iter()
        .next()
        .ok_or_else(|| pysk_common::Error::Internal("no certificate read".to_owned()))?;
    let mut order = order(options, &name, record);
    let due = due(&order, &leaf, report);
    entry.due_from = Some(chain::date(due.from));
    entry.by = Some(due.by);
    entry.expires = Some(chain::date(leaf.not_after));
    let now = chain::now();
    if now < due.from {
        entry.status = "not-due";
        if !options.json {
            report.info(format_args!(
                "{name}: not due (renewed from {}, {})",
                chain::date(due.from),
                due.by
            ));
        }
        return Ok(());
    }
    entry.status = "due";
    if options.dry_run {
        if !options.json {
            writeln!(
                out,
                "would renew {name} (expires {}; due from {}, {}) from {}",
                chain::date(leaf.not_after),
                chain::date(due.from),
                due.by,
                order.directory
            )
            .map_err(pysk_common::Error::Stdout)?;
        }
        return Ok(());
    }
    order.replaces = due.replaces;
    let (_, ordered) = acme::order_and_install(&order, report, out)?;
    entry.status = "renewed";
    entry.expires = ordered.installed.map(|i| i.expires);
    Ok(())
}

/// The moment in the CA's window a certificate is renewed at: RFC 9773
/// asks for a random one, so that a fleet does not renew at once. It is
/// drawn from the certificate's digest, so that it is the same on every
/// run (cron asks daily) and spread evenly over the window across
/// certificates.
fn point_in(window: &acme::Renewal, der: &[u8]) -> i64 {
    let span = u64::try_from(window.end.saturating_sub(window.start)).unwrap_or(0);
    if span == 0 {
        return window.start;
    }
    let digest = Sha256::digest(der);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let offset = u64::from_be_bytes(first) % span;
    window
        .start
        .saturating_add(i64::try_from(offset).unwrap_or(0))
}

/// When a certificate is due, and by which rule.
struct Due {
    /// Renew from this Unix time on.
    from: i64,
    /// The rule, in words.
    by: &'static str,
    /// The certificate's identifier for the new order, when the CA offers
    /// renewal information.
    replaces: Option<CertificateIdentifier<'static>>,
}

/// When `leaf` is due: once a third of its lifetime is left, or earlier
/// when the CA's renewal window (RFC 9773) opens earlier — a CA moves the
/// window forward when it must revoke. A CA that cannot say is no reason
/// to fail: the lifetime rule stands.
fn due(order: &acme::Options, leaf: &Cert, report: &Reporter) -> Due {
    let by_lifetime = Due {
        from: leaf.not_after - (leaf.not_after - leaf.not_before) / DUE_FRACTION,
        by: "a third of its lifetime left",
        replaces: None,
    };
    match acme::renewal_info(order, &leaf.der) {
        Ok(None) => by_lifetime,
        Ok(Some(window)) => {
            let at = point_in(&window, &leaf.der);
            Due {
                from: at.min(by_lifetime.from),
                by: if at < by_lifetime.from {
                    "the CA's renewal window"
                } else {
                    by_lifetime.by
                },
                replaces: Some(window.id),
            }
        }
        Err(e) => {
            let why = match e {
                SslError::Acme { reason, .. } => reason,
                other => other.to_string(),
            };
            report.info(format_args!(
                "{}: no renewal information from the CA ({why}); due by its lifetime",
                order.install.name
            ));
            by_lifetime
        }
    }
}

/// The record of `name`, its names checked as the command line's are.
fn record(store: &Store, name: &str) -> Result<Record, SslError> {
    let path = store.acme_record(name);
    let bytes = certs::read_limited(&path)?;
    let bad = |reason: String| SslError::Input {
        path: path.clone(),
        reason,
    };
    let record: Record =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not an ACME record: {e}")))?;
    if record.version != 1 || record.sans.first().map(String::as_str) != Some(name) {
        return Err(bad(format!("not a version 1 record for {name}")));
    }
    for san in &record.sans {
        names::checked("a record's name", san, false)?;
    }
    Ok(record)
}

/// The `acme` run that renews `name` as its record says.
fn order(options: &Options, name: &str, record: Record) -> acme::Options {
    let store = options.store.clone();
    let check_after_reload = options.check_after_reload.clone().map(|mut probe| {
        for endpoint in &mut probe.endpoints {
            endpoint.sni = name.to_owned();
            endpoint.expect = name.to_owned();
        }
        probe
    });
    acme::Options {
        sans: record.sans,
        webroot: record.webroot,
        directory: record.directory,
        account: options.account.clone(),
        key_type: options.key_type,
        dry_run: false,
        request_limit: options.request_limit,
        replaces: None,
        install: install::Options {
            name: name.to_owned(),
            cert: store.acme_chain(name),
            chain: None,
            key: None,
            ca_file: options.ca_file.clone(),
            warn_days: options.warn_days,
            reload: options.reload.clone(),
            store,
            check_after_reload,
            dry_run: false,
            json: options.json,
            acme_record: None,
            wait: options.wait,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: i64, end: i64) -> acme::Renewal {
        acme::Renewal {
            start,
            end,
            id: CertificateIdentifier::new(
                rustls::pki_types::Der::from_slice(b"aki"),
                rustls::pki_types::Der::from_slice(b"serial"),
            )
            .into_owned(),
        }
    }

    #[test]
    fn the_point_in_the_window_is_stable_and_spread_over_it() {
        let w = window(1_000_000, 1_000_000 + 86_400);
        let points: Vec<i64> = (0u32..400)
            .map(|n| point_in(&w, &n.to_be_bytes()))
            .collect();
        assert!(points.iter().all(|p| (w.start..w.end).contains(p)));
        assert_eq!(points[7], point_in(&w, &7u32.to_be_bytes()), "stable");
        let halves = points.iter().filter(|p| **p < w.start + 43_200).count();
        assert!(
            (150..250).contains(&halves),
            "{halves} of 400 in the first half"
        );
        assert_eq!(point_in(&window(5, 5), b"x"), 5);
        assert_eq!(point_in(&window(9, 5), b"x"), 9, "a window that ends first");
    }
}
