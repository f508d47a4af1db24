//! Private keys: the types `csr` makes (ECDSA through rcgen, RSA through
//! its `aws_lc_rs` backend, as ring cannot generate RSA keys), reading one
//! from PEM without ever echoing it, the group that may read them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{KeyPair, RsaKeySize};
use rustls_pki_types::PrivateKeyDer;
use x509_parser::der_parser::der::parse_der;
use x509_parser::pem::Pem;

use crate::error::SslError;

/// The key types `csr` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 (the default: small, fast, accepted everywhere).
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 4096 bits.
    Rsa4096,
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(text: &str) -> Result<KeyType, String> {
        match text {
            "ec-p256" => Ok(KeyType::EcP256),
            "ec-p384" => Ok(KeyType::EcP384),
            "rsa2048" => Ok(KeyType::Rsa2048),
            "rsa4096" => Ok(KeyType::Rsa4096),
            _ => Err("expected ec-p256, ec-p384, rsa2048 or rsa4096".to_owned()),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa4096 => "rsa4096",
        })
    }
}

/// A new private key of `kind`.
pub fn generate(kind: KeyType) -> Result<KeyPair, SslError> {
    let made = match kind {
        KeyType::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    };
    made.map_err(|e| pysk_common::Error::Internal(format!("generating a {kind} key: {e}")).into())
}

/// A private key read from a file: the pair, and the PEM it is installed
/// as.
pub struct PrivateKey {
    /// The key pair.
    pub pair: KeyPair,
    /// One PEM block written from the key's DER alone, under the label it
    /// was given with (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`):
    /// nothing else of the file (comments, parameters, other blocks) is
    /// copied.
    pub pem: Vec<u8>,
}

/// The private key in the PEM text `bytes` read from `path`, with
/// [`PrivateKey::pem`] (see [`read`]).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<KeyPair, SslError> {
    read(path, bytes).map(|key| key.pair)
}

/// The private key in the PEM text `bytes` read from `path`: the one block
/// labelled `PRIVATE KEY` (PKCS #8), `RSA PRIVATE KEY` (PKCS #1) or
/// `EC PRIVATE KEY` (SEC1); other blocks (the `EC PARAMETERS` of `openssl
/// ecparam -genkey`, certificates) and text around them are skipped. A
/// second private key, an encrypted or unsupported one, or a block that
/// is not PEM is an error. The error never quotes the file.
pub fn read(path: &Path, bytes: &[u8]) -> Result<PrivateKey, SslError> {
    let bad = |reason: String| SslError::Input {
        path: path.to_owned(),
        reason,
    };
    let unusable = "not a usable private key (PEM, unencrypted RSA or ECDSA)";
    let mut found: Option<(usize, &'static str, Vec<u8>)> = None;
    for (n, block) in Pem::iter_from_buffer(bytes).enumerate() {
        let at = n + 1;
        let block = block.map_err(|_| bad(format!("PEM block {at} is not valid PEM")))?;
        let label = match block.label.as_str() {
            "PRIVATE KEY" => "PRIVATE KEY",
            "RSA PRIVATE KEY" => "RSA PRIVATE KEY",
            "EC PRIVATE KEY" => "EC PRIVATE KEY",
            other if other.ends_with("PRIVATE KEY") => {
                return Err(bad(format!(
                    "PEM block {at} is labelled {other}: {unusable}"
                )));
            }
            _ => continue,
        };
        if let Some((first, ..)) = found {
            return Err(bad(format!(
                "more than one private key in it (PEM blocks {first} and {at})"
            )));
        }
        found = Some((at, label, block.contents));
    }
    let Some((_, label, der)) = found else {
        return Err(bad("not a PEM private key".to_owned()));
    };
    // One DER structure, nothing after it, of the kind its label says.
    let whole = matches!(parse_der(&der), Ok((rest, _)) if rest.is_empty());
    let key = match PrivateKeyDer::try_from(der.as_slice()) {
        Ok(key) if whole => key,
        _ => return Err(bad(unusable.to_owned())),
    };
    let kind_ok = matches!(
        (&key, label),
        (PrivateKeyDer::Pkcs8(_), "PRIVATE KEY")
            | (PrivateKeyDer::Pkcs1(_), "RSA PRIVATE KEY")
            | (PrivateKeyDer::Sec1(_), "EC PRIVATE KEY")
    );
    if !kind_ok {
        return Err(bad(unusable.to_owned()));
    }
    let pair = KeyPair::try_from(&key).map_err(|_| bad(unusable.to_owned()))?;
    let pem = encode(label, pair.serialized_der()).into_bytes();
    Ok(PrivateKey { pair, pem })
}

/// The PEM block `label` holding `der`: base64 in lines of 64.
fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// The gid of the group named `name` (`ssl_key_group`).
pub fn group_id(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err("no such group".to_owned()),
        Err(e) => Err(format!("cannot look the group up: {}", e.desc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_parses_back_and_garbage_is_refused_without_echo() {
        let path = Path::new("k.pem");
        for kind in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048] {
            let key = generate(kind).expect("generate");
            let back = parse(path, key.serialize_pem().as_bytes()).expect("parse");
            assert_eq!(back.public_key_raw(), key.public_key_raw(), "{kind}");
            assert_eq!(kind.to_string().parse::<KeyType>(), Ok(kind));
        }
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let err = parse(path, secret.as_bytes()).expect_err("garbage");
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    /// The named curve P-256, as `openssl ecparam -genkey` writes it
    /// before the key.
    const EC_PARAMETERS: &str =
        "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";

    #[test]
    fn the_key_block_is_picked_by_its_label_and_written_alone() {
        let path = Path::new("k.pem");
        let key = generate(KeyType::EcP256).expect("generate");
        let pem = key.serialize_pem();
        let other = generate(KeyType::EcP256).expect("generate").serialize_pem();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .and_then(|p| p.self_signed(&key))
            .expect("a certificate")
            .pem();
        for text in [
            format!("{EC_PARAMETERS}{pem}"),
            format!("# the key of a.example\n{pem}trailing words\n{cert}"),
            format!("{cert}{pem}"),
        ] {
            let read = read(path, text.as_bytes()).expect(&text);
            assert_eq!(read.pair.public_key_raw(), key.public_key_raw());
            assert_eq!(String::from_utf8(read.pem).expect("text"), pem, "{text}");
        }
        let refused = |text: String| read(path, text.as_bytes()).err().map(|e| e.to_string());
        assert_eq!(
            refused(format!("{pem}{EC_PARAMETERS}{other}")),
            Some("k.pem: more than one private key in it (PEM blocks 1 and 3)".to_owned())
        );
        let encrypted = pem.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        assert_eq!(
            refused(encrypted),
            Some(
                "k.pem: PEM block 1 is labelled ENCRYPTED PRIVATE KEY: not a usable private key \
                 (PEM, unencrypted RSA or ECDSA)"
                    .to_owned()
            )
        );
        // PKCS #8 under the SEC1 label: the label names what is written.
        let mislabelled = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert_eq!(
            refused(mislabelled),
            Some("k.pem: not a usable private key (PEM, unencrypted RSA or ECDSA)".to_owned())
        );
        assert_eq!(
            refused(EC_PARAMETERS.to_owned()),
            Some("k.pem: not a PEM private key".to_owned())
        );
        assert_eq!(
            refused(format!("{pem}-----BEGIN PRIVATE KEY-----\n@@\n")),
            Some("k.pem: PEM block 2 is not valid PEM".to_owned())
        );
    }
}
