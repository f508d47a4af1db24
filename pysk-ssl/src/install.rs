//! `install`: the gate. The key, the chain, the expiry and the names are
//! checked before anything is written; a failed check is named (exit 65)
//! and nothing changes. Then the set is installed ([`Store::install`]),
//! the pending key it took is removed, and `ssl_reload_command` runs.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pysk_common::atomic;
use pysk_common::error::write_err;
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};
use serde::Serialize;

use crate::certs::{self, Cert};
use crate::chain::{self, Failure};
use crate::error::SslError;
use crate::keys;
use crate::reload;
use crate::served;
use crate::store::{Part, Set, Store};

/// What `install` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The certificate's name (checked).
    pub name: String,
    /// The signed certificate.
    pub cert: PathBuf,
    /// The intermediates.
    pub chain: Option<PathBuf>,
    /// The private key, else the pending or live key.
    pub key: Option<PathBuf>,
    /// The trust anchors (`None`: the system's store).
    pub ca_file: Option<PathBuf>,
    /// No certificate of the chain may expire within this many days.
    pub warn_days: u64,
    /// Run after the install (split at blanks; empty: none).
    pub reload: String,
    /// The certificate directory.
    pub store: Store,
    /// The probe of the served certificate after the reload
    /// (`ssl_check_after_reload`), if any.
    pub check_after_reload: Option<served::Options>,
    /// Show what would be installed; change nothing.
    pub dry_run: bool,
    /// Print the `--json` document instead of lines.
    pub json: bool,
    /// For `acme`: its record of the name (`.acme/NAME.json`), written
    /// right after the set, before the reload, so that a name whose reload
    /// fails is still renewed. `None` (an install by hand) ends ACME's
    /// management of the name (`renew` would replace the certificate).
    pub acme_record: Option<Vec<u8>>,
    /// How long to wait for the lock.
    pub wait: Duration,
}

/// The `--json` document of `install` (and part of `acme`'s): what was
/// installed, or with `dry_run` what would be.
#[derive(Debug, Serialize)]
pub struct Installed {
    /// The name.
    pub name: String,
    /// Whether this is a dry run's plan.
    pub dry_run: bool,
    /// The certificate directory.
    pub dir: PathBuf,
    /// The leaf's subject.
    pub leaf: String,
    /// The leaf's expiry, `YYYY-MM-DD`.
    pub expires: String,
    /// The intermediates' subjects, as installed (leaf's issuer first).
    pub intermediates: Vec<String>,
    /// The trust anchor the chain leads to (not installed).
    pub anchor: String,
    /// Where the key came from.
    pub key_from: PathBuf,
    /// The reload command, if any.
    pub reload: Option<String>,
    /// Whether the name was ACME-managed and no longer is (installed by
    /// hand).
    pub acme_ended: bool,
}

/// The key that matches the certificate, and where it came from.
struct Key {
    pem: Vec<u8>,
    path: PathBuf,
    pending: bool,
}

/// Checks, then installs (or shows, for a dry run) the certificate; with
/// `json`, the document on stdout instead of the lines.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let store = &options.store;
    let given = given(options)?;
    reload::check(&options.reload)?;
    let _lock = if options.dry_run {
        Lock::existing(&store.lock_path(), options.wait)?
    } else {
        // A refused certificate changes nothing, not even by making the
        // directory or its lock file: the gate runs first, and again
        // under the lock.
        gate(options, given.clone())?;
        store.create()?;
        let lock = Lock::acquire(&store.lock_path(), options.wait)?;
        atomic::remove_stale_in(store.written_dirs(&options.name), report)?;
        Some(lock)
    };
    let (outcome, installed) = locked(options, given, report, out)?;
    if options.json {
        report::print_json(&installed)?;
    }
    Ok(outcome)
}

/// The gate, then the install (or, for a dry run, what it would install),
/// the reload and the probe, for a caller that holds the directory's lock
/// (`install`, `acme`); the lines unless `json`, and the `--json`
/// document for the caller to print.
pub fn locked(
    options: &Options,
    given: Given,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(Outcome, Installed), SslError> {
    let store = &options.store;
    let (served, key) = gate(options, given)?;
    let installed = summary(options, &served, &key);
    if options.dry_run {
        if !options.json {
            show(options, &served, &key, &installed, out)?;
        }
        return Ok((Outcome::Success, installed));
    }
    let set = Set {
        key: key.pem.clone(),
        cert: served.leaf.pem().into_bytes(),
        chain: served
            .chain
            .iter()
            .map(Cert::pem)
            .collect::<String>()
            .into_bytes(),
    };
    store.install(&options.name, &set)?;
    if key.pending {
        fs::remove_file(&key.path).map_err(write_err(&key.path))?;
    }
    if !options.json {
        report.info(format_args!(
            "{}: installed in {} (leaf \"{}\", expires {}, {} intermediate(s))",
            options.name,
            store.dir().display(),
            served.leaf.subject,
            chain::date(served.leaf.not_after),
            served.chain.len()
        ));
    }
    if installed.acme_ended {
        end_acme(options, report)?;
    }
    if let Some(record) = &options.acme_record {
        store.write_public(&store.acme_record(&options.name), record)?;
    }
    reload::run(store.dir(), &options.reload)?;
    let outcome = match &options.check_after_reload {
        Some(check) => served::confirm(check, report)?,
        None => Outcome::Success,
    };
    Ok((outcome, installed))
}

/// The `--json` document of an install that passed the gate.
fn summary(options: &Options, served: &chain::Served, key: &Key) -> Installed {
    let reload = options.reload.trim();
    Installed {
        name: options.name.clone(),
        dry_run: options.dry_run,
        dir: options.store.dir().to_owned(),
        leaf: served.leaf.subject.clone(),
        expires: chain::date(served.leaf.not_after),
        intermediates: served.chain.iter().map(|c| c.subject.clone()).collect(),
        anchor: served.anchor.subject.clone(),
        key_from: key.path.clone(),
        reload: (!reload.is_empty()).then(|| reload.to_owned()),
        acme_ended: options.acme_record.is_none()
            && options.store.acme_record(&options.name).exists(),
    }
}

/// A certificate installed by hand ends ACME's management of the name:
/// its record and issued chain are removed, so that `renew` does not
/// replace the certificate with an ordered one.
fn end_acme(options: &Options, report: &Reporter) -> Result<(), SslError> {
    let (store, name) = (&options.store, &options.name);
    let record = store.acme_record(name);
    for path in [store.acme_chain(name), record.clone()] {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(write_err(&path)(e).into());
            }
            _ => {}
        }
    }
    if !options.json {
        report.info(format_args!(
            "{name}: installed by hand, no longer renewed by ACME ({} removed)",
            record.display()
        ));
    }
    Ok(())
}

/// What the command line gave, read once (each file may be a pipe).
#[derive(Debug, Clone)]
pub struct Given {
    /// The certificates of `--cert` and `--chain`.
    certs: Vec<Cert>,
    /// The bytes of `--key`.
    key: Option<Vec<u8>>,
}

/// Reads `--cert`, `--chain` and `--key` once, so that the gate can run
/// before the lock and again under it.
pub fn given(options: &Options) -> Result<Given, SslError> {
    let mut certs = certs::read_named(&options.cert)?;
    if let Some(chain) = &options.chain {
        certs.extend(certs::read_named(chain)?);
    }
    let key = options.key.as_deref().map(certs::read_given).transpose()?;
    Ok(Given { certs, key })
}

/// The checks, in the order key, chain, expiry, names: the chain to serve
/// and the key that matches it, or the first failed check as
/// [`SslError::Refused`].
fn gate(options: &Options, given: Given) -> Result<(chain::Served, Key), SslError> {
    let (leaf, pool) = chain::split_leaf(given.certs)
        .ok_or_else(|| pysk_common::Error::Internal("no certificate read".to_owned()))?;
    let refused = |f: Failure| SslError::Refused {
        name: options.name.clone(),
        check: f.check,
        reason: f.reason,
    };
    let key = matching_key(options, given.key.as_deref(), &leaf)?.map_err(refused)?;
    let anchors = chain::anchors(options.ca_file.as_deref())?;
    let served = chain::build(leaf, pool, &anchors).map_err(refused)?;
    let now = chain::now();
    chain::expiry(&served, now, options.warn_days).map_err(refused)?;
    chain::covers(&served.leaf, &options.name).map_err(refused)?;
    Ok((served, key))
}

/// The first of `--key` (its bytes `given`, read once), the pending key,
/// the live key that matches the leaf: a missing key is an error of its own, a key that does not match
/// the `key` check's failure. `--key` naming the pending key (the same
/// file) takes it as the pending key: it is removed once installed. Without
/// `--key`, a pending or live key that is not a usable key is passed over:
/// another that matches wins, and it is named in the failure only when
/// none does.
fn matching_key(
    options: &Options,
    given: Option<&[u8]>,
    leaf: &Cert,
) -> Result<Result<Key, Failure>, SslError> {
    use std::os::unix::fs::MetadataExt;
    let store = &options.store;
    let pending_key = store.pending_key(&options.name);
    let candidates: Vec<(PathBuf, bool)> = match &options.key {
        Some(path) => {
            let inode = |p: &std::path::Path| fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
            let pending = inode(path).is_some_and(|i| inode(&pending_key) == Some(i));
            vec![(path.clone(), pending)]
        }
        None => vec![
            (pending_key, true),
            (store.live(&options.name, Part::Key), false),
        ],
    };
    let mut tried = Vec::new();
    let mut unusable = Vec::new();
    for (path, pending) in candidates {
        if options.key.is_none() && !path.exists() {
            continue;
        }
        let read = match given {
            Some(bytes) => keys::read(&path, bytes),
            None => certs::read_limited(&path).and_then(|bytes| keys::read(&path, &bytes)),
        };
        let key = match read {
            Ok(key) => key,
            Err(e @ SslError::Input { .. }) if options.key.is_none() => {
                unusable.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        if chain::key_matches(leaf, key.pair.public_key_raw()) {
            let pem = key.pem;
            return Ok(Ok(Key { pem, path, pending }));
        }
        tried.push(path.display().to_string());
    }
    let mut reasons = Vec::new();
    if !tried.is_empty() {
        reasons.push(format!(
            "the certificate does not match the key {}",
            tried.join(" nor ")
        ));
    }
    reasons.extend(unusable);
    let reason = if reasons.is_empty() {
        format!("{} has no key: run csr first, or give --key", options.name)
    } else {
        reasons.join("; ")
    };
    Ok(Err(Failure {
        check: "key",
        reason,
    }))
}

/// The dry run's plan: what each live file would hold (the key as `***`).
fn show(
    options: &Options,
    served: &chain::Served,
    key: &Key,
    installed: &Installed,
    out: &mut dyn Write,
) -> Result<(), SslError> {
    let file = |part: Part| options.store.live(&options.name, part);
    let intermediates: Vec<&str> = served.chain.iter().map(|c| c.subject.as_str()).collect();
    let text = format!(
        "would install {name} (checks passed: key, chain, expiry, names):\n\
         \x20 {key_file}: *** (from {key_from})\n\
         \x20 {cert}: \"{leaf}\", expires {expires}\n\
         \x20 {chain_file}: {intermediates}\n\
         \x20 {combined}: the leaf and the chain\n\
         \x20 trust anchor (not installed): \"{anchor}\"\n{acme}{reload}",
        name = options.name,
        key_file = file(Part::Key).display(),
        key_from = key.path.display(),
        cert = file(Part::Cert).display(),
        leaf = served.leaf.subject,
        expires = chain::date(served.leaf.not_after),
        chain_file = file(Part::Chain).display(),
        intermediates = if intermediates.is_empty() {
            "empty".to_owned()
        } else {
            format!("{intermediates:?}")
        },
        combined = file(Part::Combined).display(),
        anchor = served.anchor.subject,
        acme = if installed.acme_ended {
            format!(
                "  {}: removed (no longer renewed by ACME)\n",
                options.store.acme_record(&options.name).display()
            )
        } else {
            String::new()
        },
        reload = if options.reload.trim().is_empty() {
            String::new()
        } else {
            format!("then run: {}\n", options.reload.trim())
        },
    );
    let text = match options
        .check_after_reload
        .as_ref()
        .and_then(|c| c.endpoints.first())
    {
        Some(endpoint) => format!("{text}then check that {endpoint} serves it\n"),
        None => text,
    };
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(())
}
