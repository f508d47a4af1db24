//! `acme`: a certificate from an ACME CA (RFC 8555) through HTTP-01 with
//! the challenge files in a webroot, then the gate and install of
//! [`install`]. The account's credentials are kept in `ssl_acme_account`
//! (mode 0600, never printed); the new key is kept as NAME's pending key
//! until the certificate that matches it is installed; the issued chain
//! is kept in `DIR/.acme/NAME.pem` and the name recorded as ACME-managed
//! in `DIR/.acme/NAME.json` (what `list` and `renew` read).

mod client;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};
use pysk_common::atomic;
use pysk_common::error::{cause, write_err};
use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::{self, Reporter};
use rcgen::KeyPair;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::csr;
use crate::error::SslError;
use crate::install::{self, Installed};
use crate::keys::{self, KeyType};
use crate::reload;
use crate::store::Store;
use client::{account, exchange, existing_account, read_credentials};

/// What `acme` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The DNS names, NAME first (checked; no wildcards: HTTP-01 cannot
    /// prove them).
    pub sans: Vec<String>,
    /// Where `.well-known/acme-challenge/` is served from.
    pub webroot: PathBuf,
    /// The ACME directory URL.
    pub directory: String,
    /// The account's credentials (`ssl_acme_account`).
    pub account: PathBuf,
    /// The type of the new key.
    pub key_type: KeyType,
    /// Check and show the plan; order nothing.
    pub dry_run: bool,
    /// How long the CA may take to answer one request.
    pub request_limit: Duration,
    /// The certificate this order replaces (RFC 9773), named when the CA
    /// offers renewal information.
    pub replaces: Option<CertificateIdentifier<'static>>,
    /// The install that follows (its `cert` is where the issued chain is
    /// kept; its `ca_file` is also what the connection to the CA trusts).
    pub install: install::Options,
}

/// The CA's suggested renewal window of a certificate (RFC 9773, ACME
/// Renewal Information).
#[derive(Debug, Clone)]
pub struct Renewal {
    /// When the window opens (Unix time): renew from then on.
    pub start: i64,
    /// When it closes.
    pub end: i64,
    /// The certificate's identifier, which the replacing order names.
    pub id: CertificateIdentifier<'static>,
}

/// What `DIR/.acme/NAME.json` records: how the name was issued (what
/// `renew` orders again).
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// The record's format: 1.
    pub version: u32,
    /// The DNS names, NAME first.
    pub sans: Vec<String>,
    /// The webroot of the challenges.
    pub webroot: PathBuf,
    /// The ACME directory URL.
    pub directory: String,
}

/// How long the CA may take to validate and to issue.
const RETRIES: RetryPolicy = RetryPolicy::new().timeout(Duration::from_secs(120));

/// The `--json` document of `acme`: what was ordered and installed, or
/// with `dry_run` what would be ordered.
#[derive(Debug, Serialize)]
pub struct Ordered {
    /// The name.
    pub name: String,
    /// Whether this is a dry run's plan.
    pub dry_run: bool,
    /// The DNS names ordered, NAME first.
    pub sans: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// The account's credentials file.
    pub account: PathBuf,
    /// Whether the account was (or would be) created by this run.
    pub account_created: bool,
    /// Where the challenges are written.
    pub webroot: PathBuf,
    /// What was installed (none for a dry run, which orders nothing).
    pub installed: Option<Installed>,
}

/// Orders the certificate, then installs it as `install` does; a dry run
/// checks what it can without the CA and shows the plan.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let (outcome, ordered) = if options.dry_run {
        (Outcome::Success, plan(options, out)?)
    } else {
        order_and_install(options, report, out)?
    };
    if options.install.json {
        report::print_json(&ordered)?;
    }
    Ok(outcome)
}

/// The order and the install, under the directory's lock.
pub fn order_and_install(
    options: &Options,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(Outcome, Ordered), SslError> {
    let install = &options.install;
    let store = &install.store;
    let name = &install.name;
    store.create()?;
    let _lock = Lock::acquire(&store.lock_path(), install.wait)?;
    atomic::remove_stale_in(store.written_dirs(name), report)?;
    atomic::remove_stale_in([challenge_dir(&options.webroot)], report)?;
    let mut ordered = ordered(options)?;
    reload::check(&install.reload)?;
    fs::DirBuilder::new()
        .recursive(true)
        .create(store.acme_dir())
        .map_err(write_err(&store.acme_dir()))?;
    // The new key is ACME's own, not NAME's pending key: a CSR made by
    // `csr` and sent to another CA keeps its key.
    let key_path = acme_key(store, name);
    let key = keys::generate(options.key_type)?;
    store.write_key(&key_path, key.serialize_pem().as_bytes())?;
    let result = order_then_install(options, &key, &key_path, report, out);
    // Installed in the set, or of no use: the key is not left behind.
    if let Err(e) = fs::remove_file(&key_path) {
        report.warn(format_args!("{}: {}", key_path.display(), cause(&e)));
    }
    let (outcome, installed) = result?;
    ordered.installed = Some(installed);
    Ok((outcome, ordered))
}

/// Where `acme` keeps the key of its order until it is installed.
fn acme_key(store: &Store, name: &str) -> PathBuf {
    store.acme_dir().join(format!("{name}.key"))
}

/// The order over `key`, its chain kept, then the gate and install with
/// the ACME record written beside the set.
fn order_then_install(
    options: &Options,
    key: &KeyPair,
    key_path: &Path,
    report: &Reporter,
    out: &mut dyn Write,
) -> Result<(Outcome, Installed), SslError> {
    let request = csr::request_der(&options.sans, key)?;
    let chain = exchange("the order", issue(options, &request))?;
    let store = &options.install.store;
    store.write_public(&options.install.cert, chain.as_bytes())?;
    let record = Record {
        version: 1,
        sans: options.sans.clone(),
        webroot: options.webroot.clone(),
        directory: options.directory.clone(),
    };
    let text = serde_json::to_string_pretty(&record)
        .map_err(|e| pysk_common::Error::Internal(format!("the ACME record: {e}")))?;
    let install = install::Options {
        key: Some(key_path.to_owned()),
        acme_record: Some(format!("{text}\n").into_bytes()),
        ..options.install.clone()
    };
    install::locked(&install, install::given(&install)?, report, out)
}

/// The dry run: the lock waited for where it exists, the webroot and the
/// account checked, the plan shown (unless `--json`). Nothing is created
/// and the CA is not asked.
fn plan(options: &Options, out: &mut dyn Write) -> Result<Ordered, SslError> {
    let install = &options.install;
    let store = &install.store;
    let _lock = Lock::existing(&store.lock_path(), install.wait)?;
    let ordered = ordered(options)?;
    reload::check(&install.reload)?;
    if install.json {
        return Ok(ordered);
    }
    let account = if ordered.account_created {
        " (would be created, mode 0600)"
    } else {
        ""
    };
    let reload = install.reload.trim();
    let text = format!(
        "would order {sans} from {directory}\n\
         \x20 account: {path}{account}\n\
         \x20 challenges: {challenges}/\n\
         \x20 key: {key}: *** (a new {key_type} key)\n\
         \x20 then install it as install does (checks: key, chain, expiry, names){reload}\n",
        sans = options.sans.join(", "),
        directory = options.directory,
        path = options.account.display(),
        challenges = challenge_dir(&options.webroot).display(),
        key = acme_key(store, &install.name).display(),
        key_type = options.key_type,
        reload = if reload.is_empty() {
            String::new()
        } else {
            format!(", then run: {reload}")
        },
    );
    out.write_all(text.as_bytes())
        .map_err(pysk_common::Error::Stdout)?;
    Ok(ordered)
}

/// What a run orders, before it does: the webroot must be a directory,
/// and a kept account must be for this CA.
fn ordered(options: &Options) -> Result<Ordered, SslError> {
    if !fs::metadata(&options.webroot).is_ok_and(|m| m.is_dir()) {
        return Err(SslError::Input {
            path: options.webroot.clone(),
            reason: "the webroot is not a directory".to_owned(),
        });
    }
    challenge_dirs(&options.webroot, false)?;
    let account_created = !options.account.exists();
    if !account_created {
        let _checked = read_credentials(&options.account, &options.directory)?;
    }
    Ok(Ordered {
        name: options.install.name.clone(),
        dry_run: options.dry_run,
        sans: options.sans.clone(),
        directory: options.directory.clone(),
        account: options.account.clone(),
        account_created,
        webroot: options.webroot.clone(),
        installed: None,
    })
}

/// Checks `.well-known/acme-challenge/` in the webroot, making what is
/// missing when `create`: each must be a directory, not a symbolic link,
/// since whoever may write the webroot must not make this run write and
/// remove files elsewhere.
fn challenge_dirs(webroot: &Path, create: bool) -> Result<(), SslError> {
    let mut dir = webroot.to_owned();
    for part in [".well-known", "acme-challenge"] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(_) => {
                return Err(SslError::Input {
                    path: dir,
                    reason: "not a directory (a symbolic link is not followed)".to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                fs::create_dir(&dir).map_err(write_err(&dir))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(pysk_common::error::read_err(&dir)(e).into()),
        }
    }
    Ok(())
}

/// Where the challenge files are written: RFC 8555's path in the webroot.
fn challenge_dir(webroot: &Path) -> PathBuf {
    webroot.join(".well-known").join("acme-challenge")
}

/// The CA's renewal window for the certificate `leaf` (DER), `None` when
/// the CA offers no renewal information or no account is kept yet (a
/// read: nothing is created).
pub fn renewal_info(options: &Options, leaf: &[u8]) -> Result<Option<Renewal>, SslError> {
    if !options.account.exists() {
        return Ok(None);
    }
    let der = CertificateDer::from(leaf);
    let id = CertificateIdentifier::try_from(&der)
        .map_err(|why| acme_error("renewal information", why))?
        .into_owned();
    let info = exchange("renewal information", async {
        let account = existing_account(options).await?;
        match account.renewal_info(&id).await {
            Ok((info, _)) => Ok(Some(info)),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(acme_error("renewal information", e)),
        }
    })?;
    Ok(info.map(|info| Renewal {
        start: info.suggested_window.start.unix_timestamp(),
        end: info.suggested_window.end.unix_timestamp(),
        id,
    }))
}

/// The order: account, HTTP-01 for every name, finalization with the CSR;
/// the certificate chain (PEM). The challenge files are removed whatever
/// happens.
async fn issue(options: &Options, request: &[u8]) -> Result<String, SslError> {
    let account = account(options).await?;
    let identifiers: Vec<Identifier> = options
        .sans
        .iter()
        .map(|n| Identifier::Dns(n.clone()))
        .collect();
    let linked = match &options.replaces {
        Some(id) => {
            let new = NewOrder::new(&identifiers).replaces(id.clone());
            account.new_order(&new).await.ok()
        }
        None => None,
    };
    // A CA may refuse to link the order to the certificate it replaces
    // (RFC 9773: already replaced, or the link not kept): the certificate
    // is ordered all the same, unlinked.
    let mut order = match linked {
        Some(order) => Ok(order),
        None => account.new_order(&NewOrder::new(&identifiers)).await,
    }
    .map_err(|e| acme_error("new order", e))?;
    let mut written = Vec::new();
    let result = validate(&mut order, &options.webroot, &mut written).await;
    for path in &written {
        // A challenge file left behind is harmless: it names no secret.
        let _ = fs::remove_file(path);
    }
    result?;
    order
        .finalize_csr(request)
        .await
        .map_err(|e| acme_error("finalizing the order", e))?;
    order
        .poll_certificate(&RETRIES)
        .await
        .map_err(|e| acme_error("fetching the certificate", e))
}

/// Answers every pending authorization's HTTP-01 challenge with a file in
/// `webroot` (listed in `written`) and waits until the order is ready.
async fn validate(
    order: &mut Order,
    webroot: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), SslError> {
    let dir = challenge_dir(webroot);
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| acme_error("authorization", e))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(acme_error("authorization", format!("status {other:?}"))),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| acme_error("authorization", "the CA offers no HTTP-01 challenge"))?;
        let token = &challenge.token;
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(acme_error("challenge", "the CA sent a malformed token"));
        }
        challenge_dirs(webroot, true)?;
        let path = dir.join(token);
        let options = atomic::Options {
            mode: Some(0o644),
            ..atomic::Options::default()
        };
        written.push(path.clone());
        atomic::replace(
            &path,
            challenge.key_authorization().as_str().as_bytes(),
            options,
        )?;
        challenge
            .set_ready()
            .await
            .map_err(|e| acme_error("challenge", e))?;
    }
    match order.poll_ready(&RETRIES).await {
        Ok(OrderStatus::Ready) => Ok(()),
        Ok(status) => Err(acme_error("validation", order_failure(order, status))),
        Err(e) => Err(acme_error("validation", e)),
    }
}

/// Why an order is not ready: its status and the CA's problem, if any.
fn order_failure(order: &mut Order, status: OrderStatus) -> String {
    match &order.state().error {
        Some(problem) => format!("order {status:?}: {problem}"),
        None => format!("order {status:?}"),
    }
}

/// An ACME failure at `step`.
pub(crate) fn acme_error(step: &'static str, reason: impl std::fmt::Display) -> SslError {
    SslError::Acme {
        step,
        reason: reason.to_string(),
    }
}
