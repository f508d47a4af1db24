//! End-to-end tests of `pysk-ssl acme` against Debian's pebble (with
//! pebble-challtestsrv as its resolver and the webroot served on its
//! HTTP-01 port): a certificate issued, installed through the gate and
//! verified by `openssl verify`, the account kept 0600 and never printed,
//! the name listed as ACME-managed and passing `check`; `renew` leaving a
//! fresh certificate alone and ordering again one made due, a broken name
//! not stopping the others.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pysk_tests::tls::{Pebble, TestCa, Validity, openssl, openssl_verify};
use pysk_tests::{TempDir, scratch, stdout, tool, write_switches};

const NAME: &str = "www.example.test";
const SAN: &str = "example.test";

/// A scratch directory, a running pebble for the test names, switches
/// pointing the tool at `ssl/` and at an account file of its own.
struct Env {
    dir: TempDir,
    pebble: Pebble,
    openssl: PathBuf,
}

impl Env {
    fn new() -> Option<Env> {
        let dir = scratch();
        let pebble = Pebble::start(dir.path(), &[NAME, SAN])?;
        let openssl = openssl()?;
        write_switches(
            dir.path(),
            &[
                ("ssl_dir", dir.path().join("ssl").display().to_string()),
                ("ssl_key_group", "nogroup".to_owned()),
                (
                    "ssl_acme_account",
                    dir.path().join("account.json").display().to_string(),
                ),
            ],
        );
        Some(Env {
            dir,
            pebble,
            openssl,
        })
    }

    fn ssl(&self, file: &str) -> PathBuf {
        self.dir.path().join("ssl").join(file)
    }

    /// `acme NAME --san SAN` against pebble.
    fn acme(&self) -> pysk_tests::TestCommand {
        tool("pysk-ssl")
            .config_dir(self.dir.path())
            .args(["acme", NAME, "--san", SAN, "--webroot"])
            .arg(&self.pebble.webroot)
            .arg("--directory")
            .arg(&self.pebble.directory)
            .arg("--ca-file")
            .arg(&self.pebble.ca_file)
    }

    /// The installed set verified by openssl against pebble's root.
    fn verify_installed(&self) {
        openssl_verify(
            &self.openssl,
            &self.pebble.issuer_root,
            &self.ssl(&format!("{NAME}_chain.crt")),
            &self.ssl(&format!("{NAME}.crt")),
        )
        .expect("openssl verify accepts the installed set");
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn acme_issues_through_the_webroot_and_installs_through_the_gate() {
    let Some(env) = Env::new() else {
        return;
    };
    let out = env.acme().succeeds();
    env.verify_installed();
    let account = env.dir.path().join("account.json");
    assert_eq!(mode(&account), 0o600);
    assert_eq!(mode(&env.ssl(&format!("{NAME}.key"))), 0o640);
    assert!(!env.ssl(&format!("{NAME}_pending.key")).exists());
    let printed = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let credentials = fs::read_to_string(&account).expect("the account");
    let secret: serde_json::Value = serde_json::from_str(&credentials).expect("JSON");
    let key = secret["key_pkcs8"].as_str().expect("the account's key");
    assert!(!printed.contains(key), "the account's key was printed");
    let challenges = env.pebble.webroot.join(".well-known/acme-challenge");
    let left = fs::read_dir(&challenges).map_or(0, Iterator::count);
    assert_eq!(left, 0, "challenge files are removed");

    let list = tool("pysk-ssl")
        .config_dir(env.dir.path())
        .args(["list", "--json"])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&list)).expect("JSON");
    let entry = &doc["certificates"][0];
    assert_eq!(entry["name"], NAME, "{doc}");
    assert_eq!(entry["acme"], true, "{doc}");
    let sans = entry["sans"].to_string();
    assert!(sans.contains(SAN), "{doc}");
    tool("pysk-ssl")
        .config_dir(env.dir.path())
        .arg("check")
        .arg("--ca-file")
        .arg(&env.pebble.ca_file)
        .succeeds();

    // The account is reused: a second order replaces the set.
    let before = fs::read(env.ssl(&format!("{NAME}.crt"))).expect("the leaf");
    env.acme().succeeds();
    env.verify_installed();
    assert_ne!(
        before,
        fs::read(env.ssl(&format!("{NAME}.crt"))).expect("the new leaf")
    );
    assert_eq!(
        credentials,
        fs::read_to_string(&account).expect("the account")
    );
}

#[test]
fn acme_without_a_served_webroot_fails_and_installs_nothing() {
    let Some(env) = Env::new() else {
        return;
    };
    let elsewhere = env.dir.path().join("not-served");
    fs::create_dir(&elsewhere).expect("mkdir");
    let out = tool("pysk-ssl")
        .config_dir(env.dir.path())
        .args(["acme", NAME, "--webroot"])
        .arg(&elsewhere)
        .arg("--directory")
        .arg(&env.pebble.directory)
        .arg("--ca-file")
        .arg(&env.pebble.ca_file)
        .fails_with(69);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ACME validation"), "{err}");
    assert!(!env.ssl(&format!("{NAME}.crt")).exists());
}

/// `renew` with `args` against pebble, trusting pebble's roots in the
/// other order (the issuing root first): every certificate of the file
/// is trusted for the connection, not only the first.
fn renew(env: &Env, args: &[&str]) -> std::process::Output {
    let bundle = env.dir.path().join("roots-reversed.pem");
    let listener = fs::read_to_string(env.dir.path().join("pebble-listener-root.pem"))
        .expect("pebble's listener root");
    let issuer = fs::read_to_string(&env.pebble.issuer_root).expect("pebble's issuing root");
    fs::write(&bundle, format!("{issuer}{listener}")).expect("write the bundle");
    tool("pysk-ssl")
        .config_dir(env.dir.path())
        .arg("renew")
        .args(args)
        .arg("--ca-file")
        .arg(&bundle)
        .succeeds()
}

#[test]
fn renew_skips_a_fresh_certificate_and_renews_one_made_due() {
    let Some(env) = Env::new() else {
        return;
    };
    env.acme().succeeds();
    let leaf = env.ssl(&format!("{NAME}.crt"));
    let fresh = fs::read(&leaf).expect("the leaf");
    let out = renew(&env, &[]);
    assert_eq!(
        fresh,
        fs::read(&leaf).expect("the leaf"),
        "a fresh one is kept"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not due"), "{err}");

    // A certificate of another CA with 35 days left of 115: due (less
    // than a third left), yet past the gate's 30 days.
    let tool = || tool("pysk-ssl").config_dir(env.dir.path());
    tool().args(["csr", NAME, "--san", SAN]).succeeds();
    let csr = fs::read_to_string(env.ssl(&format!("{NAME}.csr"))).expect("the CSR");
    let ca = TestCa::new();
    let root = env.dir.path().join("test-root.pem");
    ca.write_root(&root);
    let files = ca
        .intermediate(Validity::CA)
        .sign_csr(&csr, Validity::days(-80, 35))
        .write(&env.dir.path().join("due"), NAME);
    tool()
        .args(["install", NAME, "--cert"])
        .arg(&files.cert)
        .arg("--chain")
        .arg(&files.chain)
        .arg("--ca-file")
        .arg(&root)
        .succeeds();
    let due = fs::read(&leaf).expect("the due leaf");

    let plan = renew(&env, &["--dry-run"]);
    assert!(
        stdout(&plan).contains(&format!("would renew {NAME}")),
        "{plan:?}"
    );
    assert_eq!(
        due,
        fs::read(&leaf).expect("the leaf"),
        "a dry run orders nothing"
    );

    // A broken name before it does not stop it: reported, exit 1.
    let broken = env.ssl(".acme/a.example.test.json");
    fs::write(&broken, "{ not json").expect("a broken record");
    let out = tool()
        .arg("renew")
        .arg("--ca-file")
        .arg(&env.pebble.ca_file)
        .fails_with(1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.example.test"), "{err}");
    assert_ne!(due, fs::read(&leaf).expect("the renewed leaf"));
    env.verify_installed();
}
