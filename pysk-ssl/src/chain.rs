//! The checks a set of certificates must pass: the path from the leaf up
//! to a trust anchor, each signature verified (a chain given out of order
//! is reordered, one that reaches no anchor refused), expiry, the names,
//! the key. Each failure names its check.

use std::path::Path;

use pysk_common::date::civil_from_days;

use crate::certs::{self, Cert};
use crate::error::SslError;
use crate::names;

/// Most intermediates between a leaf and its anchor.
const MAX_DEPTH: usize = 8;

/// A failed check: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `key`, `chain`, `expiry` or `names`.
    pub check: &'static str,
    /// Why.
    pub reason: String,
}

fn fail<T>(check: &'static str, reason: String) -> Result<T, Failure> {
    Err(Failure { check, reason })
}

/// A leaf with its chain in serving order, and the anchor it reaches.
#[derive(Debug, Clone)]
pub struct Served {
    /// The server's certificate.
    pub leaf: Cert,
    /// The intermediates, each issued by the next (the anchor left out):
    /// first the path to the anchor, then any cross-signed certificates
    /// given for older clients (the anchor's key certified by an older
    /// root).
    pub chain: Vec<Cert>,
    /// How many of `chain` lead to the anchor.
    pub path: usize,
    /// The trust anchor that issued the last one of the path.
    pub anchor: Cert,
}

/// The trust anchors: `ca_file`'s certificates, or the system's store (a
/// certificate of the store that does not parse is not trusted).
pub fn anchors(ca_file: Option<&Path>) -> Result<Vec<Cert>, SslError> {
    let roots = pysk_common::tls::roots(ca_file)?;
    Ok(roots
        .iter()
        .filter_map(|der| certs::parse(der).ok())
        .collect())
}

/// The leaf among `given` (the first that is not a CA, else the first)
/// and the rest as the pool its chain is taken from.
pub fn split_leaf(mut given: Vec<Cert>) -> Option<(Cert, Vec<Cert>)> {
    let at = given.iter().position(|c| !c.is_ca).unwrap_or(0);
    (!given.is_empty()).then(|| {
        let leaf = given.remove(at);
        (leaf, given)
    })
}

/// The path from `leaf` through `pool` to one of `anchors`: each step the
/// anchor that issued the current certificate, else the CA of the pool
/// that did (each used once, so a loop ends). Cross-signed certificates
/// that continue beyond the anchor (a Sectigo or an old Let's Encrypt
/// bundle) are kept after the path; self-signed certificates left in the
/// pool are dropped (the anchor is not served); any other left over is
/// refused.
pub fn build(leaf: Cert, mut pool: Vec<Cert>, anchors: &[Cert]) -> Result<Served, Failure> {
    let mut chain: Vec<Cert> = Vec::new();
    let anchor = loop {
        let current = chain.last().unwrap_or(&leaf);
        if let Some(anchor) = anchors.iter().find(|a| certs::issued(current, a)) {
            break anchor.clone();
        }
        if chain.len() == MAX_DEPTH {
            return fail("chain", format!("more than {MAX_DEPTH} intermediates"));
        }
        let Some(at) = pool
            .iter()
            .position(|c| c.is_ca && certs::issued(current, c))
        else {
            return fail("chain", unanchored(current, &chain));
        };
        let next = pool.remove(at);
        if next.self_signed() {
            let why = format!(
                "it ends at \"{}\", a root that is not a trust anchor",
                next.subject
            );
            return fail("chain", why);
        }
        chain.push(next);
    };
    let path = chain.len();
    cross_signed(&leaf, &mut chain, &mut pool)?;
    if let Some(stray) = pool.iter().find(|c| !c.self_signed()) {
        let why = format!(
            "\"{}\" is not on the path from the leaf to its anchor",
            stray.subject
        );
        return fail("chain", why);
    }
    Ok(Served {
        leaf,
        chain,
        path,
        anchor,
    })
}

/// Moves from `pool` to the end of `chain` each CA certificate, not
/// self-signed, that issued the chain's last one (the leaf's when the
/// chain is empty): an anchor's key certified by an older root, served for
/// clients that do not trust the anchor yet.
fn cross_signed(leaf: &Cert, chain: &mut Vec<Cert>, pool: &mut Vec<Cert>) -> Result<(), Failure> {
    loop {
        let last = chain.last().unwrap_or(leaf);
        let Some(at) = pool
            .iter()
            .position(|c| c.is_ca && !c.self_signed() && certs::issued(last, c))
        else {
            return Ok(());
        };
        if chain.len() == MAX_DEPTH {
            return fail("chain", format!("more than {MAX_DEPTH} intermediates"));
        }
        chain.push(pool.remove(at));
    }
}

/// Why `current`, the last of `chain` (or the leaf), reaches no anchor.
fn unanchored(current: &Cert, chain: &[Cert]) -> String {
    if let Some(issuer) = chain.iter().find(|c| certs::issued(current, c)) {
        return format!(
            "the chain goes round: \"{}\" was issued by \"{}\", which comes before it, \
             and no trust anchor issued either",
            current.subject, issuer.subject
        );
    }
    if current.self_signed() {
        return format!(
            "\"{}\" is self-signed and not a trust anchor",
            current.subject
        );
    }
    format!(
        "incomplete: nothing given or trusted issued \"{}\" (its issuer is \"{}\"); \
         is an intermediate certificate missing?",
        current.subject, current.issuer
    )
}

/// No certificate of the path (leaf and intermediates up to the anchor;
/// not the cross-signed ones after it, which only older clients use) is
/// outside its validity within `warn_days` of `now`.
pub fn expiry(served: &Served, now: i64, warn_days: u64) -> Result<(), Failure> {
    let limit = now.saturating_add(i64::try_from(warn_days).unwrap_or(i64::MAX / 2) * 86_400);
    for cert in std::iter::once(&served.leaf).chain(&served.chain[..served.path]) {
        if cert.not_before > now {
            let why = format!(
                "\"{}\" is not valid before {}",
                cert.subject,
                date(cert.not_before)
            );
            return fail("expiry", why);
        }
        if cert.not_after < limit {
            let why = format!(
                "\"{}\" expires {} ({}; the limit is {warn_days} days)",
                cert.subject,
                date(cert.not_after),
                days_left(cert.not_after, now)
            );
            return fail("expiry", why);
        }
    }
    Ok(())
}

/// The leaf's DNS names cover `name`.
pub fn covers(leaf: &Cert, name: &str) -> Result<(), Failure> {
    if leaf
        .names
        .iter()
        .any(|pattern| names::covers(pattern, name))
    {
        return Ok(());
    }
    let why = match leaf.names.len() {
        0 => "the certificate has no DNS names (subjectAltName)".to_owned(),
        n if n <= 5 => format!("the certificate is for {}", leaf.names.join(", ")),
        n => format!("none of the certificate's {n} names covers it"),
    };
    fail("names", why)
}

/// Whether the public key `key` (a private key's) is the leaf's.
pub fn key_matches(leaf: &Cert, key: &[u8]) -> bool {
    leaf.public_key == key
}

/// Now, as the Unix time certificates' dates are compared with.
pub fn now() -> i64 {
    i64::try_from(pysk_common::date::unix_now()).unwrap_or(i64::MAX)
}

/// `2026-12-01` for the instant `at`.
pub fn date(at: i64) -> String {
    let (y, m, d) = civil_from_days(at.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whole days from `now` to `at` (negative once past).
pub fn days(at: i64, now: i64) -> i64 {
    (at - now).div_euclid(86_400)
}

/// `in 12 days`, `today`, `3 days ago`.
fn days_left(at: i64, now: i64) -> String {
    match days(at, now) {
        0 if at >= now => "today".to_owned(),
        n if n >= 0 => format!("in {n} day{}", if n == 1 { "" } else { "s" }),
        n => format!("{} day{} ago", -n, if n == -1 { "" } else { "s" }),
    }
}
