//! Private keys: the types `csr` makes (ECDSA through rcgen, RSA through
//! its `aws_lc_rs` backend, as ring cannot generate RSA keys), reading one
//! from PEM without ever echoing it, the group that may read them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rcgen::{KeyPair, RsaKeySize};

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

/// The private key in the PEM text `bytes` read from `path` (PKCS #8,
/// PKCS #1 or SEC1). The error never quotes the file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<KeyPair, SslError> {
    let bad = |reason: &str| SslError::Input {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not a PEM private key"))?;
    if !text.contains("PRIVATE KEY-----") {
        return Err(bad("not a PEM private key"));
    }
    KeyPair::from_pem(text)
        .map_err(|_| bad("not a usable private key (PEM, unencrypted RSA or ECDSA)"))
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
}
