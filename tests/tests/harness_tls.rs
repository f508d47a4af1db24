//! The TLS harness itself: the test CA against OpenSSL, real handshakes
//! (plain and after STARTTLS) and pebble's directory over HTTPS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pysk_tests::tls::{
    Leaf, LeafFiles, Pebble, SServer, StartTls, TestCa, Validity, openssl, openssl_verify,
    run_bounded, s_client,
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
