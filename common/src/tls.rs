//! The trust anchors of every TLS client pysk runs: the certificates of a
//! CA file the admin names (`--ca-file` or a tool's switch), or else the
//! system's store.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::Error;

/// The certificates to trust: every certificate in the PEM file `ca_file`
/// (an unreadable file, a damaged PEM block or a file without certificate
/// is an error naming it), or, without one, those of the system's store (a
/// system certificate that cannot be loaded is simply not trusted).
pub fn roots(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, Error> {
    let Some(path) = ca_file else {
        return Ok(rustls_native_certs::load_native_certs().certs);
    };
    let bad = |reason: String| Error::CaFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read(path).map_err(crate::error::read_err(path))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").expect("write");
        let err = roots(Some(&empty)).expect_err("no certificate");
        assert_eq!(
            err.to_string(),
            format!("{}: no certificate in it", empty.display())
        );
        let missing = dir.path().join("missing.pem");
        assert!(matches!(roots(Some(&missing)), Err(Error::Read { .. })));
    }

    #[test]
    fn a_ca_file_gives_its_certificates() {
        // A real certificate (the ISRG Root X1 self-signed root, public).
        let pem = include_str!("../fixtures/isrg-root-x1.pem");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem).expect("write");
        assert_eq!(roots(Some(&path)).expect("roots").len(), 1);
    }
}
