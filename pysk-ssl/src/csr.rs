//! `csr`: a new private key (or the existing one) and a certificate
//! signing request for a name, under the directory's lock. The new key is
//! written as the pending key: the live key is replaced only by `install`,
//! together with a certificate that matches it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use pysk_common::atomic;
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};
use serde::Serialize;

use crate::certs::read_limited;
use crate::error::SslError;
use crate::keys::{self, KeyType};
use crate::store::{Part, Store};

/// What `csr` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The certificate's name (checked).
    pub name: String,
    /// Its DNS names, `name` first (checked, without duplicates).
    pub sans: Vec<String>,
    /// The type of a new key.
    pub key_type: KeyType,
    /// Sign with the existing key instead of making one.
    pub reuse_key: bool,
    /// Replace a pending key that is there already.
    pub new_key: bool,
    /// The certificate directory.
    pub store: Store,
    /// Say what would be written; write nothing.
    pub dry_run: bool,
    /// Print the `--json` document instead of lines.
    pub json: bool,
    /// How long to wait for the lock.
    pub wait: Duration,
}

/// The `--json` document of `csr`: what was written, or with `dry_run`
/// what would be.
#[derive(Debug, Serialize)]
struct Written<'a> {
    name: &'a str,
    dry_run: bool,
    sans: &'a [String],
    csr: PathBuf,
    key: PathBuf,
    new_key: Option<String>,
}

/// Makes the key (unless reused) and the CSR, each written atomically:
/// the key before the CSR, so that a CSR never names a key that is not
/// on disk.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let store = &options.store;
    if options.dry_run {
        let _lock = Lock::existing(&store.lock_path(), options.wait)?;
        keep_pending(options)?;
        let key = if options.reuse_key {
            existing_key(options)?.1
        } else {
            store.pending_key(&options.name)
        };
        if options.json {
            report::print_json(&written(options, key))?;
            return Ok(Outcome::Success);
        }
        return show(options, &key, out);
    }
    store.create()?;
    let _lock = Lock::acquire(&store.lock_path(), options.wait)?;
    atomic::remove_stale_in(store.written_dirs(&options.name), report)?;
    keep_pending(options)?;
    let (key, from) = if options.reuse_key {
        existing_key(options)?
    } else {
        let key = keys::generate(options.key_type)?;
        let path = store.pending_key(&options.name);
        store.write_key(&path, key.serialize_pem().as_bytes())?;
        (key, path)
    };
    let pem = request(&options.sans, &key)?;
    let csr = store.csr(&options.name);
    store.write_public(&csr, pem.as_bytes())?;
    if options.json {
        report::print_json(&written(options, from))?;
    } else {
        report.info(format_args!(
            "{}: CSR for {} written; key {}",
            csr.display(),
            options.sans.join(", "),
            from.display()
        ));
    }
    Ok(Outcome::Success)
}

/// A new key would replace the pending one: refused unless `--new-key`,
/// since the CSR made with it may be at a CA, and the certificate it
/// brings back would then match no key.
fn keep_pending(options: &Options) -> Result<(), SslError> {
    let pending = options.store.pending_key(&options.name);
    if options.reuse_key || options.new_key || !pending.exists() {
        return Ok(());
    }
    Err(SslError::Exists {
        path: pending,
        reason: "a pending key is there already, its CSR perhaps at a CA: --reuse-key signs \
                 a new CSR with it, --new-key replaces it"
            .to_owned(),
    })
}

/// The `--json` document, the key being `key`.
fn written(options: &Options, key: PathBuf) -> Written<'_> {
    Written {
        name: &options.name,
        dry_run: options.dry_run,
        sans: &options.sans,
        csr: options.store.csr(&options.name),
        key,
        new_key: (!options.reuse_key).then(|| options.key_type.to_string()),
    }
}

/// The dry run's plan: the files `csr` would write (a key as `***`).
fn show(options: &Options, key: &Path, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let store = &options.store;
    let text = format!(
        "would write {}: CSR for {}\n{} {}: ***{}\n",
        store.csr(&options.name).display(),
        options.sans.join(", "),
        if options.reuse_key {
            "signed with"
        } else {
            "would write"
        },
        key.display(),
        if options.reuse_key {
            String::new()
        } else {
            format!(" (a new {} key)", options.key_type)
        },
    );
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}

/// The pending key of the name, else its live key.
fn existing_key(options: &Options) -> Result<(KeyPair, PathBuf), SslError> {
    let store = &options.store;
    let candidates = [
        store.pending_key(&options.name),
        store.live(&options.name, Part::Key),
    ];
    for path in candidates {
        if path.exists() {
            let key = keys::parse(&path, &read_limited(&path)?)?;
            return Ok((key, path));
        }
    }
    Err(SslError::Input {
        path: store.live(&options.name, Part::Key),
        reason: "--reuse-key: no pending or live key to reuse".to_owned(),
    })
}

/// The PEM request for `sans` (the first as common name) signed by `key`.
fn request(sans: &[String], key: &KeyPair) -> Result<String, SslError> {
    let internal = |e: rcgen::Error| pysk_common::Error::Internal(format!("making the CSR: {e}"));
    Ok(signed(sans, key)?.pem().map_err(internal)?)
}

/// The DER request for `sans` signed by `key` (what an ACME order is
/// finalized with).
pub fn request_der(sans: &[String], key: &KeyPair) -> Result<Vec<u8>, SslError> {
    Ok(signed(sans, key)?.der().to_vec())
}

/// The request for `sans` (the first as common name) signed by `key`.
fn signed(sans: &[String], key: &KeyPair) -> Result<rcgen::CertificateSigningRequest, SslError> {
    let internal = |e: rcgen::Error| pysk_common::Error::Internal(format!("making the CSR: {e}"));
    let mut params = CertificateParams::new(sans.to_vec()).map_err(internal)?;
    let mut dn = DistinguishedName::new();
    if let Some(first) = sans.first() {
        dn.push(DnType::CommonName, first.as_str());
    }
    params.distinguished_name = dn;
    Ok(params.serialize_request(key).map_err(internal)?)
}
