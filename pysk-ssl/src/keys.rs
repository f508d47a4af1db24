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
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
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
    let (label, der) = block(path, bytes)?;
    let pair = pair(path, &der)?;
    let pem = encode(label, pair.serialized_der()).into_bytes();
    Ok(PrivateKey { pair, pem })
}

/// The public key of the private key in the PEM text `bytes` read from
/// `path` (the block [`read`] takes, refused as it refuses it), as a
/// certificate's SubjectPublicKeyInfo holds it: the `RSAPublicKey` DER of
/// an RSA key, the uncompressed point of an ECDSA key, what rcgen's
/// `public_key_raw` gives. What `check` compares with the certificate:
/// read from the key's structure where it carries it — the modulus and
/// public exponent of an RSA key (PKCS #1, or inside PKCS #8), the public
/// point an ECDSA key keeps beside its private scalar (SEC1, or inside
/// PKCS #8) — since the full parse validates the whole private key, which
/// for RSA costs as much as the rest of a check. Only the kinds and sizes
/// the full parse accepts are read so (RSA of 2048 to 8192 bits, an odd
/// modulus, an odd exponent of at most 33 bits; P-256, P-384, P-521);
/// anything else (an Ed25519 key, an EC key without its public point, an
/// unusual encoding) goes through the full parse, which gives the same
/// public key or refuses the key as [`read`] does. `install` keeps the
/// full parse: it is the gate that vouches for the key itself.
pub fn public_key(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, SslError> {
    let (label, der) = block(path, bytes)?;
    if let Some(public) = public_half(label, &der) {
        return Ok(public);
    }
    Ok(pair(path, &der)?.public_key_raw().to_vec())
}

/// Why a key is refused when its block is found but is no key rcgen uses.
const UNUSABLE: &str = "not a usable private key (PEM, unencrypted RSA or ECDSA)";

/// The one private key block of `bytes` (see [`read`]): its label and DER,
/// one DER structure of the kind its label says.
fn block(path: &Path, bytes: &[u8]) -> Result<(&'static str, Vec<u8>), SslError> {
    let bad = |reason: String| SslError::Input {
        path: path.to_owned(),
        reason,
    };
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
                    "PEM block {at} is labelled {other}: {UNUSABLE}"
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
    let kind_ok = whole
        && matches!(
            (PrivateKeyDer::try_from(der.as_slice()), label),
            (Ok(PrivateKeyDer::Pkcs8(_)), "PRIVATE KEY")
                | (Ok(PrivateKeyDer::Pkcs1(_)), "RSA PRIVATE KEY")
                | (Ok(PrivateKeyDer::Sec1(_)), "EC PRIVATE KEY")
        );
    if !kind_ok {
        return Err(bad(UNUSABLE.to_owned()));
    }
    Ok((label, der))
}

/// The key pair of `der` (a [`block`]'s), fully parsed and validated.
fn pair(path: &Path, der: &[u8]) -> Result<KeyPair, SslError> {
    PrivateKeyDer::try_from(der)
        .ok()
        .and_then(|key| KeyPair::try_from(&key).ok())
        .ok_or_else(|| SslError::Input {
            path: path.to_owned(),
            reason: UNUSABLE.to_owned(),
        })
}

/// `rsaEncryption` (1.2.840.113549.1.1.1), the content of its OID.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `id-ecPublicKey` (1.2.840.10045.2.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// The named curves the full parse takes, with their size in bytes:
/// P-256 (1.2.840.10045.3.1.7), P-384 (1.3.132.0.34), P-521
/// (1.3.132.0.35).
const CURVES: [(&[u8], usize); 3] = [
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], 32),
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], 48),
    (&[0x2b, 0x81, 0x04, 0x00, 0x23], 66),
];

/// The public key carried by the private key `der` under `label`, when it
/// is one read without the full parse (see [`public_key`]); `None`
/// otherwise.
fn public_half(label: &str, der: &[u8]) -> Option<Vec<u8>> {
    match label {
        "RSA PRIVATE KEY" => rsa_public(der),
        "EC PRIVATE KEY" => ec_public(der, None),
        _ => pkcs8_public(der),
    }
}

/// PKCS #8 `PrivateKeyInfo` (version 0, no attributes): `{version,
/// {algorithm, parameters}, privateKey}`, an RSA key with NULL parameters
/// or an EC key on a named curve.
fn pkcs8_public(der: &[u8]) -> Option<Vec<u8>> {
    let mut info = Fields::sequence(der)?;
    if info.integer()? != [0] {
        return None;
    }
    let mut algorithm = Fields(info.take(Class::Universal, Tag::Sequence, true)?);
    let key = info.take(Class::Universal, Tag::OctetString, false)?;
    info.end()?;
    let oid = algorithm.take(Class::Universal, Tag::Oid, false)?;
    if oid == RSA_ENCRYPTION {
        algorithm
            .take(Class::Universal, Tag::Null, false)?
            .is_empty()
            .then_some(())?;
        algorithm.end()?;
        rsa_public(key)
    } else if oid == EC_PUBLIC_KEY {
        let curve = algorithm.take(Class::Universal, Tag::Oid, false)?;
        algorithm.end()?;
        ec_public(key, Some(curve))
    } else {
        None
    }
}

/// PKCS #1 `RSAPrivateKey` of two primes (version 0): the `RSAPublicKey`
/// `{modulus, publicExponent}` DER, for a key the full parse would take.
fn rsa_public(der: &[u8]) -> Option<Vec<u8>> {
    let mut key = Fields::sequence(der)?;
    if key.integer()? != [0] {
        return None;
    }
    let modulus = key.integer()?;
    let exponent = key.integer()?;
    // privateExponent, prime1, prime2, exponent1, exponent2, coefficient.
    for _ in 0..6 {
        key.integer()?;
    }
    key.end()?;
    let usable = positive(modulus).is_some_and(|bits| (2048..=8192).contains(&bits))
        && positive(exponent).is_some_and(|bits| (2..=33).contains(&bits))
        && modulus.last().is_some_and(|b| b & 1 == 1)
        && exponent.last().is_some_and(|b| b & 1 == 1);
    if !usable {
        return None;
    }
    let mut fields = tlv(0x02, modulus);
    fields.extend(tlv(0x02, exponent));
    Some(tlv(0x30, &fields))
}

/// SEC1 `ECPrivateKey` (version 1) `{version, privateKey, [0] parameters,
/// [1] publicKey}` on a curve of [`CURVES`] (its `[0]` named curve, which
/// must be `outer`, PKCS #8's, when both are given): the uncompressed
/// public point, when the key carries it.
fn ec_public(der: &[u8], outer: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut key = Fields::sequence(der)?;
    if key.integer()? != [1] {
        return None;
    }
    let private = key.take(Class::Universal, Tag::OctetString, false)?;
    let parameters = key.optional(Class::ContextSpecific, Tag(0), true);
    let public = key.take(Class::ContextSpecific, Tag(1), true)?;
    key.end()?;
    let curve = match (parameters, outer) {
        (Some(parameters), outer) => {
            let mut parameters = Fields(parameters);
            let curve = parameters.take(Class::Universal, Tag::Oid, false)?;
            parameters.end()?;
            if outer.is_some_and(|outer| outer != curve) {
                return None;
            }
            curve
        }
        (None, outer) => outer?,
    };
    let size = CURVES.iter().find(|(oid, _)| *oid == curve)?.1;
    let mut public = Fields(public);
    let bits = public.take(Class::Universal, Tag::BitString, false)?;
    public.end()?;
    // No unused bits, then 0x04 (uncompressed) and both coordinates.
    let point = bits.strip_prefix(&[0])?;
    (private.len() == size && point.len() == 1 + 2 * size && point[0] == 0x04)
        .then(|| point.to_vec())
}

/// The bits of the minimally encoded, positive DER INTEGER `content`;
/// `None` when it is not one.
fn positive(content: &[u8]) -> Option<usize> {
    let (&first, rest) = content.split_first()?;
    let digits = match (first, rest.first()) {
        (0, Some(&next)) if next & 0x80 != 0 => rest,
        (0, _) => return None,
        (first, _) if first & 0x80 != 0 => return None,
        _ => content,
    };
    let top = usize::try_from(u8::BITS - digits[0].leading_zeros()).ok()?;
    Some((digits.len() - 1) * 8 + top)
}

/// The DER element of tag byte `tag` holding `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(content.len()) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let length = content.len().to_be_bytes();
            let skip = length.iter().take_while(|b| **b == 0).count();
            let count = u8::try_from(length.len() - skip).unwrap_or(u8::MAX);
            out.push(0x80 | count);
            out.extend_from_slice(&length[skip..]);
        }
    }
    out.extend_from_slice(content);
    out
}

/// The elements of a DER SEQUENCE's content, taken in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The fields of the SEQUENCE that is the whole of `der`.
    fn sequence(der: &'a [u8]) -> Option<Fields<'a>> {
        let mut outer = Fields(der);
        let content = outer.take(Class::Universal, Tag::Sequence, true)?;
        outer.end()?;
        Some(Fields(content))
    }

    /// The content of the next element, which must be of `class` and
    /// `tag`, constructed or not as said.
    fn take(&mut self, class: Class, tag: Tag, constructed: bool) -> Option<&'a [u8]> {
        let (rest, any) = Any::from_der(self.0).ok()?;
        let header = &any.header;
        if header.class() != class || header.tag() != tag || header.constructed() != constructed {
            return None;
        }
        self.0 = rest;
        Some(any.data)
    }

    /// The content of the next element when it is of `class` and `tag`
    /// (and constructed as said); nothing is taken otherwise.
    fn optional(&mut self, class: Class, tag: Tag, constructed: bool) -> Option<&'a [u8]> {
        let mut ahead = Fields(self.0);
        let content = ahead.take(class, tag, constructed)?;
        self.0 = ahead.0;
        Some(content)
    }

    /// The content of the next element, an INTEGER.
    fn integer(&mut self) -> Option<&'a [u8]> {
        self.take(Class::Universal, Tag::Integer, false)
    }

    /// `Some` when every element was taken.
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
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

    /// The PEM text of `der` under `label`.
    fn pem(label: &str, der: &[u8]) -> String {
        encode(label, der)
    }

    /// The fields of PKCS #8 `der`: its algorithm's parameters (the
    /// curve's OID content for EC, empty for RSA) and the inner key.
    fn unwrap_pkcs8(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut info = Fields::sequence(der).expect("PKCS #8");
        info.integer().expect("version");
        let mut algorithm = Fields(
            info.take(Class::Universal, Tag::Sequence, true)
                .expect("algorithm"),
        );
        let key = info
            .take(Class::Universal, Tag::OctetString, false)
            .expect("key");
        algorithm
            .take(Class::Universal, Tag::Oid, false)
            .expect("oid");
        let curve = algorithm
            .take(Class::Universal, Tag::Oid, false)
            .unwrap_or_default();
        (curve.to_vec(), key.to_vec())
    }

    /// SEC1 `ECPrivateKey` DER over the scalar and point of the EC PKCS #8
    /// `der`, with the curve's `[0]` when `named`, the point's `[1]` when
    /// `public`.
    fn sec1(der: &[u8], named: bool, public: bool) -> Vec<u8> {
        let (curve, inner) = unwrap_pkcs8(der);
        let mut key = Fields::sequence(&inner).expect("ECPrivateKey");
        key.integer().expect("version");
        let scalar = key
            .take(Class::Universal, Tag::OctetString, false)
            .expect("scalar");
        key.optional(Class::ContextSpecific, Tag(0), true);
        let point = key
            .take(Class::ContextSpecific, Tag(1), true)
            .expect("point");
        let mut fields = tlv(0x02, &[1]);
        fields.extend(tlv(0x04, scalar));
        if named {
            fields.extend(tlv(0xa0, &tlv(0x06, &curve)));
        }
        if public {
            fields.extend(tlv(0xa1, point));
        }
        tlv(0x30, &fields)
    }

    /// The public key of `text` read without the full parse (`None` when
    /// it goes through the full parse), and the one `public_key` gives.
    fn both(text: &str) -> (Option<Vec<u8>>, Vec<u8>) {
        let path = Path::new("k.pem");
        let (label, der) = block(path, text.as_bytes()).expect("a key block");
        let quick = public_half(label, &der);
        (
            quick,
            public_key(path, text.as_bytes()).expect("a public key"),
        )
    }

    #[test]
    fn the_public_key_is_read_from_the_key_as_the_full_parse_gives_it() {
        let path = Path::new("k.pem");
        for kind in [
            KeyType::EcP256,
            KeyType::EcP384,
            KeyType::Rsa2048,
            KeyType::Rsa4096,
        ] {
            let key = generate(kind).expect("generate");
            let full = key.public_key_raw().to_vec();
            let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
                .and_then(|p| p.self_signed(&key))
                .expect("a certificate");
            let cert = crate::certs::parse(cert.der()).expect("parse");
            assert_eq!(cert.public_key, full, "{kind}");
            let der = key.serialized_der();
            let mut forms = vec![("PKCS #8", key.serialize_pem())];
            if matches!(kind, KeyType::Rsa2048 | KeyType::Rsa4096) {
                let (_, pkcs1) = unwrap_pkcs8(der);
                forms.push(("PKCS #1", pem("RSA PRIVATE KEY", &pkcs1)));
            } else {
                forms.push(("SEC1", pem("EC PRIVATE KEY", &sec1(der, true, true))));
            }
            for (form, text) in forms {
                let (quick, public) = both(&text);
                assert_eq!(quick.as_ref(), Some(&full), "{kind} {form}");
                assert_eq!(public, full, "{kind} {form}");
                // The full parse agrees, and the key is its certificate's.
                let read = read(path, text.as_bytes()).expect("read");
                assert_eq!(read.pair.public_key_raw(), full, "{kind} {form}");
                assert!(crate::chain::key_matches(&cert, &public), "{kind} {form}");
            }
            // Another key of the same type does not match.
            let other = generate(kind).expect("generate").serialize_pem();
            let other = public_key(path, other.as_bytes()).expect("other");
            assert!(!crate::chain::key_matches(&cert, &other), "{kind}");
        }
    }

    #[test]
    fn a_key_without_its_public_half_goes_through_the_full_parse() {
        let path = Path::new("k.pem");
        let key = generate(KeyType::EcP384).expect("generate");
        let full = key.public_key_raw().to_vec();
        // SEC1 without the public point: the full parse derives it.
        let stripped = pem("EC PRIVATE KEY", &sec1(key.serialized_der(), true, false));
        assert_eq!(both(&stripped), (None, full.clone()));
        // SEC1 without the curve: the full parse tries each curve.
        let unnamed = pem("EC PRIVATE KEY", &sec1(key.serialized_der(), false, true));
        assert_eq!(both(&unnamed), (None, full));
        // An RSA key the full parse refuses (an even public exponent) is
        // refused, not read for its public half.
        let rsa = generate(KeyType::Rsa2048).expect("generate");
        let (_, mut pkcs1) = unwrap_pkcs8(rsa.serialized_der());
        let at = pkcs1
            .windows(5)
            .position(|w| w == [0x02, 0x03, 0x01, 0x00, 0x01])
            .expect("e = 65537");
        pkcs1[at + 4] = 0x02;
        let even = pem("RSA PRIVATE KEY", &pkcs1);
        let (label, der) = block(path, even.as_bytes()).expect("a key block");
        assert_eq!(public_half(label, &der), None);
        assert_eq!(
            public_key(path, even.as_bytes()).map_err(|e| e.to_string()),
            Err("k.pem: not a usable private key (PEM, unencrypted RSA or ECDSA)".to_owned())
        );
    }

    #[test]
    fn integers_and_lengths_are_read_and_written_as_der() {
        assert_eq!(positive(&[0x01, 0x00, 0x01]), Some(17));
        assert_eq!(positive(&[0x00, 0x80]), Some(8));
        assert_eq!(positive(&[0x00, 0x7f]), None);
        assert_eq!(positive(&[0x80]), None);
        assert_eq!(positive(&[0x00]), None);
        assert_eq!(positive(&[]), None);
        assert_eq!(tlv(0x04, &[7; 3]), [&[0x04, 3][..], &[7; 3]].concat());
        assert_eq!(tlv(0x04, &[7; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[7; 0x100])[..4], [0x04, 0x82, 0x01, 0x00]);
    }
}
