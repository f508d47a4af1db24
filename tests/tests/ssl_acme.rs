//! End-to-end tests of `pysk-ssl acme` against Debian's pebble (with
//! pebble-challtestsrv as its resolver and the webroot served on its
//! HTTP-01 port): a certificate issued, installed through the gate and
//! verified by `openssl verify`, the account kept 0600 and never printed,
//! the name listed as ACME-managed and passing `check`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pysk_tests::tls::{Pebble, openssl, openssl_verify};
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
