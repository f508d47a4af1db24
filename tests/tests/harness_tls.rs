//! The TLS harness itself: the test CA against OpenSSL, real handshakes
//! (plain and after STARTTLS) and pebble's directory over HTTPS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pysk_tests::tls::{
    Intermediate, Leaf, LeafFiles, Pebble, SServer, StartTls, TestCa, Validity, openssl,
    openssl_public_key, openssl_stdout, openssl_verify, run_bounded, s_client,
};
use pysk_tests::{require, scratch};

const NAME: &str = "www.example.test";

/// A root written to `dir/root.pem` and a leaf for [`NAME`] behind one
/// intermediate, written as `dir/www*`.
fn leaf_set(dir: &Path, leaf: Validity) -> (Leaf, LeafFiles) {
    let ca = TestCa::new();
    ca.write_root(&dir.join("root.pem"));
    let leaf = ca.intermediate(Validity::CA).leaf(&[NAME], leaf);
    let files = leaf.write(dir, "www");
    (leaf, files)
}

#[test]
fn test_ca_chain_verifies_and_an_expired_leaf_does_not() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let ca = TestCa::new();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let intermediate = ca.intermediate(Validity::CA);
    let good = intermediate
        .leaf(&[NAME], Validity::LEAF)
        .write(dir.path(), "good");
    assert_eq!(
        openssl_verify(&openssl, &root, &good.chain, &good.cert),
        Ok(())
    );
    let expired = intermediate
        .leaf(&[NAME], Validity::EXPIRED)
        .write(dir.path(), "expired");
    let err = openssl_verify(&openssl, &root, &expired.chain, &expired.cert)
        .expect_err("an expired leaf does not verify");
    assert!(err.contains("certificate has expired"), "{err}");
    let stranger = TestCa::new();
    stranger.write_root(&dir.path().join("stranger.pem"));
    let err = openssl_verify(
        &openssl,
        &dir.path().join("stranger.pem"),
        &good.chain,
        &good.cert,
    )
    .expect_err("another root does not anchor the chain");
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );
}

#[test]
fn a_reversed_combined_file_is_refused_before_any_handshake() {
    let Some(_) = openssl() else { return };
    let dir = scratch();
    let (_, files) = leaf_set(dir.path(), Validity::LEAF);
    // The intermediate comes first, so it is the certificate the key must
    // match: s_server exits, and the harness fails showing its log.
    let refused = std::panic::catch_unwind(|| {
        SServer::start(dir.path(), &files.reversed, None, &files.key, None)
    });
    let text = refused
        .err()
        .and_then(|panic| panic.downcast::<String>().ok())
        .map(|text| *text)
        .unwrap_or_default();
    assert!(text.contains("exited early"), "{text}");
    assert!(text.contains("key values mismatch"), "{text}");
}

#[test]
fn a_misordered_chain_behind_the_leaf_is_served_as_it_is() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let (leaf, files) = leaf_set(dir.path(), Validity::LEAF);
    let server = SServer::start(
        dir.path(),
        &files.cert,
        Some(&files.reversed),
        &files.key,
        None,
    )
    .expect("openssl is there");
    let seen = s_client(
        &openssl,
        server.addr,
        NAME,
        &dir.path().join("root.pem"),
        None,
    );
    // OpenSSL builds its own path from what it is sent, so only the served
    // chain shows the leaf twice: a test asserts on `chain`, not on the
    // verdict alone.
    assert!(seen.verified, "{}", seen.output);
    assert_eq!(
        seen.chain,
        vec![leaf.cert.clone(), leaf.chain.clone(), leaf.cert.clone()]
    );
}

/// Whether `openssl x509 -checkend` says `cert` is still valid `seconds`
/// from now.
fn valid_in(openssl: &Path, cert: &Path, seconds: u64) -> bool {
    let mut cmd = Command::new(openssl);
    cmd.args(["x509", "-noout", "-checkend", &seconds.to_string(), "-in"])
        .arg(cert);
    run_bounded(cmd, Duration::from_secs(20)).status.success()
}

#[test]
fn an_intermediate_expiring_tomorrow_is_valid_today_only() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let ca = TestCa::new();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let leaf = ca
        .intermediate(Validity::EXPIRES_TOMORROW)
        .leaf(&[NAME], Validity::LEAF);
    let files = leaf.write(dir.path(), "www");
    assert_eq!(
        openssl_verify(&openssl, &root, &files.chain, &files.cert),
        Ok(())
    );
    assert!(valid_in(&openssl, &files.chain, 3600));
    assert!(!valid_in(&openssl, &files.chain, 2 * 86_400));
    assert!(valid_in(&openssl, &files.cert, 30 * 86_400));
}

#[test]
fn a_real_handshake_verifies_and_shows_the_served_chain() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let (leaf, files) = leaf_set(dir.path(), Validity::LEAF);
    let root = dir.path().join("root.pem");
    let server = SServer::start(
        dir.path(),
        &files.cert,
        Some(&files.chain),
        &files.key,
        None,
    )
    .expect("openssl is there");
    let seen = s_client(&openssl, server.addr, NAME, &root, None);
    assert!(seen.verified, "{}", seen.output);
    assert_eq!(seen.chain, vec![leaf.cert.clone(), leaf.chain.clone()]);
    let wrong = s_client(&openssl, server.addr, "other.example.test", &root, None);
    assert!(!wrong.verified, "{}", wrong.output);
    drop(server);
    let server =
        SServer::combined(dir.path(), &files.combined, &files.key, None).expect("openssl is there");
    let seen = s_client(&openssl, server.addr, NAME, &root, None);
    assert!(seen.verified, "{}", seen.output);
    assert_eq!(seen.chain, vec![leaf.cert.clone(), leaf.chain.clone()]);
}

#[test]
fn a_chain_without_its_intermediate_fails_the_handshake() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let (_, files) = leaf_set(dir.path(), Validity::LEAF);
    let server =
        SServer::start(dir.path(), &files.cert, None, &files.key, None).expect("openssl is there");
    let seen = s_client(
        &openssl,
        server.addr,
        NAME,
        &dir.path().join("root.pem"),
        None,
    );
    assert!(!seen.verified, "{}", seen.output);
    assert!(
        seen.output
            .contains("unable to get local issuer certificate"),
        "{}",
        seen.output
    );
}

#[test]
fn starttls_smtp_imap_and_pop3_handshakes_verify() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let (leaf, files) = leaf_set(dir.path(), Validity::LEAF);
    let root = dir.path().join("root.pem");
    for protocol in [StartTls::Smtp, StartTls::Imap, StartTls::Pop3] {
        let server = SServer::start(
            dir.path(),
            &files.cert,
            Some(&files.chain),
            &files.key,
            Some(protocol),
        )
        .expect("openssl is there");
        let seen = s_client(&openssl, server.addr, NAME, &root, Some(protocol));
        assert!(seen.verified, "{protocol:?}: {}", seen.output);
        assert_eq!(seen.chain, vec![leaf.cert.clone(), leaf.chain.clone()]);
    }
}

#[test]
fn pebble_serves_its_directory_over_https_with_the_test_root() {
    let dir = scratch();
    let Some(pebble) = Pebble::start(dir.path(), &[NAME]) else {
        return;
    };
    let (status, body) =
        pysk_tests::tls::https_get(pebble.addr, "/dir", &pebble.ca_file).expect("GET /dir");
    assert_eq!(status, 200, "{body}");
    let dir_doc: serde_json::Value = serde_json::from_str(&body).expect("a JSON directory");
    assert!(dir_doc["newNonce"].as_str().is_some(), "{body}");
    assert!(pebble.directory.ends_with("/dir"));
    let root = std::fs::read_to_string(&pebble.issuer_root).expect("pebble's root");
    assert!(root.starts_with("-----BEGIN CERTIFICATE-----"), "{root}");
}

#[test]
fn pebble_resolves_the_test_names_and_reaches_the_webroot() {
    let dir = scratch();
    let Some(pebble) = Pebble::start(dir.path(), &[NAME]) else {
        return;
    };
    let challenge = pebble.webroot.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenge).expect("create the challenge directory");
    std::fs::write(challenge.join("token"), "token.thumbprint").expect("write a token");
    let mut conn = TcpStream::connect(pebble.http01).expect("connect to the webroot");
    write!(
        conn,
        "GET /.well-known/acme-challenge/token HTTP/1.0\r\nHost: {NAME}\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("\r\n\r\ntoken.thumbprint"), "{response}");
    let Some(dig) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let answers = |name: &str| {
        let mut cmd = Command::new(&dig);
        cmd.arg(format!("@{}", pebble.dns.ip())).args([
            "-p",
            &pebble.dns.port().to_string(),
            "+short",
            name,
            "A",
        ]);
        String::from_utf8_lossy(&run_bounded(cmd, Duration::from_secs(20)).stdout).into_owned()
    };
    assert_eq!(answers(NAME), "127.0.0.1\n");
    assert_eq!(answers("other.example.test"), "");
}

#[test]
fn pebble_issues_through_the_webroot_to_an_independent_client() {
    let dir = scratch();
    let Some(pebble) = Pebble::start(dir.path(), &[NAME]) else {
        return;
    };
    let (Some(lego), Some(openssl)) = (require("lego", "lego"), openssl()) else {
        return;
    };
    let store = dir.path().join("lego");
    let mut cmd = Command::new(lego);
    cmd.args(["--server", &pebble.directory, "--accept-tos"])
        .args(["--email", "hostmaster@example.test", "--domains", NAME])
        .args(["--key-type", "ec256", "--http", "--http.webroot"])
        .arg(&pebble.webroot)
        .arg("--path")
        .arg(&store)
        .arg("run")
        .env("LEGO_CA_CERTIFICATES", &pebble.ca_file);
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "lego: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = store.join("certificates");
    let leaf = certs.join(format!("{NAME}.crt"));
    let issuer = certs.join(format!("{NAME}.issuer.crt"));
    assert_eq!(
        openssl_verify(&openssl, &pebble.issuer_root, &issuer, &leaf),
        Ok(())
    );
}

#[test]
fn every_process_is_stopped_on_drop() {
    let dir = scratch();
    let Some(pebble) = Pebble::start(dir.path(), &[NAME]) else {
        return;
    };
    let (_, files) = leaf_set(dir.path(), Validity::LEAF);
    let server = SServer::start(
        dir.path(),
        &files.cert,
        Some(&files.chain),
        &files.key,
        Some(StartTls::Smtp),
    )
    .expect("openssl is there");
    let addrs = [pebble.addr, pebble.http01, pebble.dns, server.addr];
    drop(pebble);
    drop(server);
    for addr in addrs {
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "{addr} still listens"
        );
    }
}

#[test]
fn a_csr_made_elsewhere_is_signed_and_served() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let ca = TestCa::new();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let intermediate = ca.intermediate(Validity::CA);
    let key_types: [(&str, &[&str]); 2] = [
        ("ec", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ("rsa", &["rsa:2048"]),
    ];
    for (kind, newkey) in key_types {
        let key = dir.path().join(format!("{kind}.key"));
        let csr = dir.path().join(format!("{kind}.csr"));
        let mut req = Command::new(&openssl);
        req.args(["req", "-new", "-nodes", "-newkey"])
            .args(newkey)
            .args(["-subj", &format!("/CN={NAME}")])
            .args(["-addext", &format!("subjectAltName=DNS:{NAME}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr);
        let out = run_bounded(req, Duration::from_secs(20));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csr = std::fs::read_to_string(&csr).expect("read the CSR");
        let files = intermediate
            .sign_csr(&csr, Validity::LEAF)
            .write(dir.path(), kind);
        assert_eq!(
            openssl_verify(&openssl, &root, &files.chain, &files.cert),
            Ok(())
        );
        let server = SServer::start(dir.path(), &files.cert, Some(&files.chain), &key, None)
            .expect("openssl is there");
        let seen = s_client(&openssl, server.addr, NAME, &root, None);
        assert!(seen.verified, "{kind}: {}", seen.output);
    }
}

/// `subject=...` and `issuer=...` of the first certificate of `cert`, as
/// RFC 2253 names.
fn subject_and_issuer(openssl: &Path, cert: &Path) -> String {
    openssl_stdout(
        openssl,
        &[
            "x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253", "-in",
        ],
        cert,
    )
}

#[test]
fn an_intermediate_of_an_intermediate_chains_both_to_the_root() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let ca = TestCa::new();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let first = ca.intermediate(Validity::CA);
    let second = first.intermediate(Validity::CA);
    let leaf = second.leaf(&[NAME], Validity::LEAF);
    assert_eq!(leaf.chain, format!("{}{}", second.pem(), first.pem()));
    let files = leaf.write(dir.path(), "www");
    assert_eq!(
        openssl_verify(&openssl, &root, &files.chain, &files.cert),
        Ok(())
    );
    assert_eq!(
        subject_and_issuer(&openssl, &files.chain),
        format!(
            "subject=CN={}\nissuer=CN={}\n",
            second.common_name(),
            first.common_name()
        )
    );
    // Without the first intermediate the path stops at the second.
    let alone = dir.path().join("second.pem");
    std::fs::write(&alone, second.pem()).expect("write the second intermediate");
    let err = openssl_verify(&openssl, &root, &alone, &files.cert)
        .expect_err("the first intermediate is missing");
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );
}

#[test]
fn a_cross_signed_loop_issues_each_other_and_reaches_no_root() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let ca = TestCa::new();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let a = Intermediate::cross_signed_loop(Validity::CA);
    let leaf = a.leaf(&[NAME], Validity::LEAF);
    let certs = pysk_tests::tls::pem_certificates(&leaf.chain);
    assert_eq!(certs.len(), 2, "{}", leaf.chain);
    assert_eq!(certs[0], a.pem().replace("\r\n", "\n"));
    let files = leaf.write(dir.path(), "www");
    let b_by_a = dir.path().join("b.pem");
    std::fs::write(&b_by_a, &certs[1]).expect("write B");
    let b = subject_and_issuer(&openssl, &b_by_a);
    let b_name = b
        .strip_prefix("subject=CN=")
        .and_then(|rest| rest.split_once('\n'))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| panic!("no subject in {b}"));
    assert_ne!(b_name, a.common_name());
    assert_eq!(
        subject_and_issuer(&openssl, &files.chain),
        format!("subject=CN={}\nissuer=CN={b_name}\n", a.common_name())
    );
    assert_eq!(
        b,
        format!("subject=CN={b_name}\nissuer=CN={}\n", a.common_name())
    );
    assert_eq!(
        subject_and_issuer(&openssl, &files.cert),
        format!("subject=CN={NAME}\nissuer=CN={}\n", a.common_name())
    );
    // Each signature is good: trusting B alone, A's leaf verifies through
    // A, and trusting A alone, B verifies.
    let a_by_b = dir.path().join("a.pem");
    std::fs::write(&a_by_b, &certs[0]).expect("write A");
    let partial = |trusted: &Path, untrusted: &Path, cert: &Path| {
        let mut cmd = Command::new(&openssl);
        cmd.args(["verify", "-partial_chain", "-CAfile"])
            .arg(trusted)
            .arg("-untrusted")
            .arg(untrusted)
            .arg(cert);
        let out = run_bounded(cmd, Duration::from_secs(20));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    partial(&b_by_a, &a_by_b, &files.cert);
    partial(&a_by_b, &a_by_b, &b_by_a);
    let err = openssl_verify(&openssl, &root, &files.chain, &files.cert)
        .expect_err("no path to the root");
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );
}

#[test]
fn a_leaf_over_a_given_key_matches_it_in_pem_and_der() {
    let Some(openssl) = openssl() else { return };
    let dir = scratch();
    let ca = TestCa::new();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let intermediate = ca.intermediate(Validity::CA);
    let key = dir.path().join("given.key");
    let mut genpkey = Command::new(&openssl);
    genpkey
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .arg("-out")
        .arg(&key);
    assert!(
        run_bounded(genpkey, Duration::from_secs(20))
            .status
            .success()
    );
    let pem = std::fs::read_to_string(&key).expect("read the key");
    let leaf = intermediate.leaf_with_key(&pem, &[NAME, "mail.example.test"], Validity::LEAF);
    assert_eq!(leaf.key, pem);
    let files = leaf.write(dir.path(), "www");
    assert_eq!(
        openssl_verify(&openssl, &root, &files.chain, &files.cert),
        Ok(())
    );
    let public = openssl_public_key(&openssl, &key);
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    assert_eq!(openssl_public_key(&openssl, &files.cert), public);
    let other = intermediate
        .leaf(&[NAME], Validity::LEAF)
        .write(dir.path(), "other");
    assert_ne!(openssl_public_key(&openssl, &other.key), public);
    let text = openssl_stdout(
        &openssl,
        &["x509", "-noout", "-ext", "subjectAltName", "-in"],
        &files.cert,
    );
    assert!(
        text.contains("DNS:www.example.test, DNS:mail.example.test"),
        "{text}"
    );
    let der = dir.path().join("www.der");
    std::fs::write(&der, leaf.cert_der()).expect("write the DER leaf");
    let back = openssl_stdout(&openssl, &["x509", "-inform", "DER", "-in"], &der);
    assert_eq!(back, leaf.cert.replace("\r\n", "\n"));
}
