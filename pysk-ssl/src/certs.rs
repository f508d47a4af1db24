//! Certificates read without trusting them: a size limit before reading,
//! PEM or DER, every certificate parsed whole, a bounded number of names;
//! what the checks need kept as plain fields, and PEM written back from
//! the DER alone (nothing of the input's text is copied). The text kept
//! (subject, issuer, DNS names) has its control characters escaped, so a
//! certificate, a served one too, cannot forge lines of a report or send
//! a terminal its escape sequences.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{LazyLock, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::error::Error as DerError;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::nom;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

use pysk_common::error::read_err;

use crate::error::SslError;

/// Largest file read as certificates or a key: a chain of a few
/// certificates is a few kilobytes.
pub const MAX_FILE: u64 = 1 << 20;
/// Most certificates in one file.
pub const MAX_CERTS: usize = 16;
/// Most DNS names in one certificate (public CAs allow 100 to a few
/// hundred).
pub const MAX_NAMES: usize = 1_000;

/// One certificate, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// Its DER encoding.
    pub der: Vec<u8>,
    /// Its subject, as text ([`escape`]d).
    pub subject: String,
    /// Its issuer, as text ([`escape`]d).
    pub issuer: String,
    /// Its subject, encoded (compared with issuers).
    pub subject_raw: Vec<u8>,
    /// Its issuer, encoded.
    pub issuer_raw: Vec<u8>,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    /// Its DNS names (subjectAltName), lowercase, [`escape`]d.
    pub names: Vec<String>,
    /// Whether it may issue certificates (basicConstraints CA).
    pub is_ca: bool,
    /// The subject public key's bits (compared with a private key's).
    pub public_key: Vec<u8>,
    /// The key's type, as `list` shows it.
    pub key_type: String,
}

/// Reads the regular file `path` whole, refusing anything larger than
/// [`MAX_FILE`] before reading it. It is opened without blocking (a FIFO
/// left in a directory would otherwise wait for a writer forever) and
/// anything but a regular file is refused: a FIFO, a device, a socket, a
/// directory.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, SslError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_err(path))?;
    let meta = file.metadata().map_err(read_err(path))?;
    if !meta.is_file() {
        return Err(SslError::Input {
            path: path.to_owned(),
            reason: "not a regular file".to_owned(),
        });
    }
    read_at_most(path, file)
}

/// Reads a file the admin named on the command line (`--cert`, `--chain`,
/// `--key`): a regular file as [`read_limited`] does, and also a pipe
/// (`--cert <(…)`, `/dev/stdin`), waited for since someone is writing it;
/// a directory or a socket is refused.
pub fn read_given(path: &Path) -> Result<Vec<u8>, SslError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(read_err(path))?;
    let kind = file.metadata().map_err(read_err(path))?.file_type();
    if !(kind.is_file() || kind.is_fifo() || kind.is_char_device()) {
        return Err(SslError::Input {
            path: path.to_owned(),
            reason: "not a file or a pipe".to_owned(),
        });
    }
    read_at_most(path, file)
}

/// The whole of `file`, refused when larger than [`MAX_FILE`] (read no
/// further).
fn read_at_most(path: &Path, file: std::fs::File) -> Result<Vec<u8>, SslError> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err(path))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(SslError::Input {
            path: path.to_owned(),
            reason: format!(
                "larger than {} KiB: not a certificate or key file",
                MAX_FILE >> 10
            ),
        });
    }
    Ok(bytes)
}

/// The certificates of the file `path`.
pub fn read(path: &Path) -> Result<Vec<Cert>, SslError> {
    decode(path, &read_limited(path)?)
}

/// The certificates of a file named on the command line ([`read_given`]).
pub fn read_named(path: &Path) -> Result<Vec<Cert>, SslError> {
    decode(path, &read_given(path)?)
}

/// The certificates in `bytes` (one DER certificate, or PEM
/// `CERTIFICATE` blocks; text around the blocks is ignored, as openssl
/// does); anything else is an error naming `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<Cert>, SslError> {
    let bad = |reason: String| SslError::Input {
        path: path.to_owned(),
        reason,
    };
    if bytes.first() == Some(&0x30) {
        return Ok(vec![
            parse(bytes).map_err(|why| bad(format!("DER: {why}")))?,
        ]);
    }
    let mut certs = Vec::new();
    for (n, block) in Pem::iter_from_buffer(bytes).enumerate() {
        let at = n + 1;
        let block = block.map_err(|e| bad(format!("PEM block {at}: {e}")))?;
        if block.label != "CERTIFICATE" {
            let hint = if block.label.ends_with("PRIVATE KEY") {
                " (give a key with --key, in a file of its own)"
            } else {
                ""
            };
            return Err(bad(format!(
                "PEM block {at} is a {}, not a certificate{hint}",
                block.label
            )));
        }
        if certs.len() == MAX_CERTS {
            return Err(bad(format!("more than {MAX_CERTS} certificates")));
        }
        certs.push(parse(&block.contents).map_err(|why| bad(format!("certificate {at}: {why}")))?);
    }
    if certs.is_empty() {
        return Err(bad("no certificate in it (neither PEM nor DER)".to_owned()));
    }
    Ok(certs)
}

/// One DER certificate, whole (nothing may follow it).
pub fn parse(der: &[u8]) -> Result<Cert, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| match e {
        nom::Err::Incomplete(_) | nom::Err::Error(X509Error::Der(DerError::Incomplete(_))) => {
            "not a certificate: cut short".to_owned()
        }
        nom::Err::Error(X509Error::NomError(nom::error::ErrorKind::Eof))
        | nom::Err::Failure(X509Error::NomError(nom::error::ErrorKind::Eof)) => {
            "not a certificate: cut short".to_owned()
        }
        _ => "not a certificate (malformed DER)".to_owned(),
    })?;
    if !rest.is_empty() {
        return Err("bytes after the certificate".to_owned());
    }
    let names = dns_names(&cert)?;
    Ok(Cert {
        der: der[..der.len() - rest.len()].to_vec(),
        subject: escape(&cert.subject().to_string()),
        issuer: escape(&cert.issuer().to_string()),
        subject_raw: cert.subject().as_raw().to_vec(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
        is_ca: cert.is_ca(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
        key_type: key_type(&cert),
    })
}

/// The DNS names of `cert`'s subjectAltName, at most [`MAX_NAMES`].
fn dns_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, String> {
    let ext = cert
        .subject_alternative_name()
        .map_err(|e| format!("subjectAltName: {e}"))?;
    let Some(ext) = ext else {
        return Ok(Vec::new());
    };
    let names = &ext.value.general_names;
    if names.len() > MAX_NAMES {
        return Err(format!(
            "{} subjectAltNames: more than {MAX_NAMES} is not a server certificate",
            names.len()
        ));
    }
    Ok(names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(escape(&name.to_ascii_lowercase())),
            _ => None,
        })
        .collect())
}

/// `text` with every character that is not printable written as an
/// escape: `\n`, `\r`, `\t`, `\x1b` (other ASCII controls), `\u{9b}`
/// (C1 controls, and the invisible marks that reorder or hide text:
/// zero-width and bidirectional controls), and a backslash doubled so
/// that an escape is never ambiguous.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() || invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Format characters that hide or reorder text on a terminal: zero-width
/// spaces and joiners, the bidirectional marks, embeddings, overrides and
/// isolates, the byte-order mark.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
    )
}

/// `ec-p256`, `rsa2048`, … as `csr --key-type` spells them.
fn key_type(cert: &X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("rsa{}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => format!("ec-p{}", point.key_size()),
        Ok(_) | Err(_) => "other".to_owned(),
    }
}

/// The (certificate, issuer) pairs whose signature verified in this
/// process, each by the SHA-256 of the certificate's DER then of the
/// issuer's: a run checks each distinct signature once, however many names
/// share it (the intermediates and the root behind every leaf of a
/// directory). Only successes are kept, keyed by the exact bytes of both,
/// and verifying is a function of those bytes alone, so a hit is the answer
/// verifying again would give; a failure is verified again each time.
static VERIFIED: LazyLock<Mutex<HashSet<[u8; 64]>>> = LazyLock::new(Mutex::default);

/// Whether `issuer`'s key verifies `cert`'s signature (and its subject is
/// `cert`'s issuer); each pair verified once a process ([`VERIFIED`]).
pub fn issued(cert: &Cert, issuer: &Cert) -> bool {
    if cert.issuer_raw != issuer.subject_raw {
        return false;
    }
    let mut pair = [0; 64];
    pair[..32].copy_from_slice(&Sha256::digest(&cert.der));
    pair[32..].copy_from_slice(&Sha256::digest(&issuer.der));
    // The set is whole even if a thread panicked holding it.
    let verified = || VERIFIED.lock().unwrap_or_else(PoisonError::into_inner);
    if verified().contains(&pair) {
        return true;
    }
    let (Ok((_, child)), Ok((_, parent))) = (
        X509Certificate::from_der(&cert.der),
        X509Certificate::from_der(&issuer.der),
    ) else {
        return false;
    };
    let good = child.verify_signature(Some(parent.public_key())).is_ok();
    if good {
        verified().insert(pair);
    }
    good
}

impl Cert {
    /// Whether it is its own issuer (a root).
    pub fn self_signed(&self) -> bool {
        issued(self, self)
    }

    /// Its PEM text.
    pub fn pem(&self) -> String {
        let body = STANDARD.encode(&self.der);
        let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            text.push_str(&String::from_utf8_lossy(line));
            text.push('\n');
        }
        text.push_str("-----END CERTIFICATE-----\n");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_printable_is_escaped_and_the_rest_kept() {
        assert_eq!(
            escape("CN=a\nb\r\tc\x1b[31m\x7f\u{9b}d\u{202e}e\u{200b}\\x1b é, O=Ü"),
            "CN=a\\nb\\r\\tc\\x1b[31m\\x7f\\u{9b}d\\u{202e}e\\u{200b}\\\\x1b é, O=Ü"
        );
        assert_eq!(escape("CN=www.example.org"), "CN=www.example.org");
    }

    /// A CA named `name` over a new key: its certificate and issuer.
    fn ca(name: &str) -> (Cert, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("self-signed");
        let parsed = parse(cert.der()).expect("parse");
        (parsed, rcgen::Issuer::new(params, key))
    }

    #[test]
    fn a_signature_verified_once_is_remembered_by_the_exact_bytes_only() {
        let (root, issuer) = ca("Test Root");
        // Another CA of the same name: its key did not sign the leaf.
        let (impostor, _) = ca("Test Root");
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
        let leaf = parse(params.signed_by(&key, &issuer).expect("leaf").der()).expect("parse");
        // The same leaf with one bit of its signature changed.
        let mut forged = leaf.clone();
        let last = forged.der.len() - 1;
        forged.der[last] ^= 1;
        for round in 0..2 {
            assert!(issued(&leaf, &root), "round {round}");
            assert!(!issued(&leaf, &impostor), "round {round}");
            assert!(!issued(&forged, &root), "round {round}");
            assert!(
                root.self_signed() && impostor.self_signed(),
                "round {round}"
            );
            assert!(!issued(&root, &impostor), "round {round}");
        }
    }
}
