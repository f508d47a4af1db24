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

use pysk_tests::http::{HttpServer, Reply};
use pysk_tests::tls::{IssuedFiles, Pebble, TestCa, Validity, https_get, openssl, openssl_verify};
use pysk_tests::{TempDir, assert_stderr_is, scratch, stdout, tool, write_switches};

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

    /// A certificate for NAME and SAN from a test CA of its own, over a
    /// new pending key (`csr`), with 35 days left of 115 (due for renewal,
    /// yet past the gate's 30 days), written below `sub`; and that CA's
    /// root file.
    fn bought(&self, sub: &str) -> (IssuedFiles, PathBuf) {
        tool("pysk-ssl")
            .config_dir(self.dir.path())
            .args(["csr", NAME, "--san", SAN])
            .succeeds();
        let csr = fs::read_to_string(self.ssl(&format!("{NAME}.csr"))).expect("the CSR");
        let ca = TestCa::new();
        let root = self.dir.path().join(format!("{sub}-root.pem"));
        ca.write_root(&root);
        let files = ca
            .intermediate(Validity::CA)
            .sign_csr(&csr, Validity::days(-80, 35))
            .write(&self.dir.path().join(sub), NAME);
        (files, root)
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
    assert!(
        !env.ssl(&format!(".acme/{NAME}.key")).exists(),
        "the order's key is not left"
    );
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

    // A certificate with 35 days left of 115 stands in for an ACME
    // certificate grown old: due (less than a third left), yet past the
    // gate's 30 days. Installed by hand, it ends ACME's management, so the
    // record is put back as the ACME run wrote it.
    let record = env.ssl(&format!(".acme/{NAME}.json"));
    let acme_record = fs::read(&record).expect("the ACME record");
    let tool = || tool("pysk-ssl").config_dir(env.dir.path());
    let (files, root) = env.bought("due");
    tool()
        .args(["install", NAME, "--cert"])
        .arg(&files.cert)
        .arg("--chain")
        .arg(&files.chain)
        .arg("--ca-file")
        .arg(&root)
        .succeeds();
    fs::write(&record, acme_record).expect("the record put back");
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

/// The ARI identifier of a certificate (RFC 9773 4.1): its authority key
/// identifier and serial, each base64url without padding.
fn ari_id(pem_file: &Path) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use x509_parser::extensions::ParsedExtension;
    let text = fs::read(pem_file).expect("the leaf");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).expect("PEM");
    let cert = pem.parse_x509().expect("a certificate");
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
            _ => None,
        })
        .expect("an authority key identifier");
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki.0),
        URL_SAFE_NO_PAD.encode(cert.tbs_certificate.raw_serial())
    )
}

/// A suggested window from `start` to `end` days from now, as the CA's
/// renewalInfo resource answers.
fn window(start: i64, end: i64) -> Reply {
    let at = |days: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .replace_nanosecond(0)
            .expect("whole seconds")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("RFC 3339")
    };
    let body = format!(
        r#"{{"suggestedWindow": {{"start": "{}", "end": "{}"}}}}"#,
        at(start),
        at(end)
    );
    Reply::Headed(vec!["Retry-After: 21600".to_owned()], body.into_bytes())
}

/// Debian's pebble predates ACME Renewal Information (RFC 9773), so the
/// test serves the CA's directory itself, pebble's with a `renewalInfo`
/// resource added, and answers that resource: everything else (account,
/// order, challenges, certificate) is pebble's.
#[test]
fn renew_follows_the_cas_renewal_window_when_it_offers_one() {
    let Some(env) = Env::new() else {
        return;
    };
    let ca = TestCa::new();
    let front_files = ca
        .intermediate(Validity::CA)
        .leaf(&["127.0.0.1"], Validity::LEAF)
        .write(env.dir.path(), "ari-front");
    let front = HttpServer::start(Some((&front_files.combined, &front_files.key)), None);
    let bundle = env.dir.path().join("ari-bundle.pem");
    let pebble_roots = fs::read_to_string(&env.pebble.ca_file).expect("pebble's roots");
    fs::write(&bundle, format!("{pebble_roots}{}", ca.root_pem())).expect("the bundle");
    let pebble_dir = env.pebble.directory.trim_start_matches("https://");
    let (addr, path) = pebble_dir.split_once('/').expect("host and path");
    let listener_root = env.dir.path().join("pebble-listener-root.pem");
    let (status, text) = https_get(
        addr.parse().expect("pebble's address"),
        &format!("/{path}"),
        &listener_root,
    )
    .expect("pebble's directory");
    assert_eq!(status, 200);
    let mut directory: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    directory["renewalInfo"] = front.url("/ari").into();
    front.set("/dir", Reply::Body(directory.to_string().into_bytes()));
    let acme = || {
        tool("pysk-ssl")
            .config_dir(env.dir.path())
            .args(["acme", NAME, "--san", SAN, "--webroot"])
            .arg(&env.pebble.webroot)
            .arg("--directory")
            .arg(front.url("/dir"))
            .arg("--ca-file")
            .arg(&bundle)
    };
    acme().succeeds();
    let leaf = env.ssl(&format!("{NAME}.crt"));
    let fresh = fs::read(&leaf).expect("the leaf");
    let renew = || {
        tool("pysk-ssl")
            .config_dir(env.dir.path())
            .arg("renew")
            .arg("--ca-file")
            .arg(&bundle)
    };
    let day = |days: i64| {
        let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        format!("{}", at.date())
    };

    // A window ten days ahead, long before a third of pebble's lifetime
    // is left: that is when it is due, and not yet. (The windows here are
    // a moment long, so that the point the tool draws in them is known.)
    front.set(&format!("/ari/{}", ari_id(&leaf)), window(10, 10));
    let out = renew().succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {NAME}: not due (renewed from {}, the CA's renewal window)\n",
            day(10)
        ),
    );
    assert_eq!(fresh, fs::read(&leaf).expect("the leaf"));

    // The CA moves the window into the past (as before a revocation): the
    // fresh certificate is due now, a dry run says so, the run renews it.
    front.set(&format!("/ari/{}", ari_id(&leaf)), window(-1, -1));
    let plan = renew().arg("--dry-run").succeeds();
    let expires = x509_not_after(&leaf);
    assert_eq!(
        stdout(&plan),
        format!(
            "would renew {NAME} (expires {expires}; due from {}, the CA's renewal window) from {}\n",
            day(-1),
            front.url("/dir")
        )
    );
    assert_eq!(fresh, fs::read(&leaf).expect("the leaf"));
    renew().succeeds();
    assert_ne!(fresh, fs::read(&leaf).expect("the renewed leaf"));
    env.verify_installed();

    // The new certificate has its own identifier, which this CA cannot
    // answer for: the lifetime rule stands and it is not due.
    let out = renew().succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {NAME}: no renewal information from the CA (missing data: missing \
             Retry-After header); due by its lifetime\n\
             pysk-ssl: {NAME}: not due (renewed from {}, a third of its lifetime left)\n",
            lifetime_due(&leaf)
        ),
    );
}

/// The day a third of the certificate's lifetime is left, `YYYY-MM-DD`.
fn lifetime_due(pem_file: &Path) -> String {
    let text = fs::read(pem_file).expect("the leaf");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).expect("PEM");
    let cert = pem.parse_x509().expect("a certificate");
    let (from, to) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    let due = time::OffsetDateTime::from_unix_timestamp(to - (to - from) / 3).expect("a date");
    format!("{}", due.date())
}

/// A certificate's not-after date, `YYYY-MM-DD`.
fn x509_not_after(pem_file: &Path) -> String {
    let text = fs::read(pem_file).expect("the leaf");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).expect("PEM");
    let cert = pem.parse_x509().expect("a certificate");
    format!("{}", cert.validity().not_after.to_datetime().date())
}

#[test]
fn acme_dry_run_json_and_an_install_by_hand_that_ends_acme_management() {
    let Some(env) = Env::new() else {
        return;
    };
    let account = env.dir.path().join("account.json");
    let order_key = env.ssl(&format!(".acme/{NAME}.key"));
    let plan = env.acme().arg("--dry-run").succeeds();
    assert_eq!(
        stdout(&plan),
        format!(
            "would order {NAME}, {SAN} from {}\n  account: {} (would be created, mode 0600)\n  \
             challenges: {}/.well-known/acme-challenge/\n  key: {}: *** (a new ec-p256 key)\n  \
             then install it as install does (checks: key, chain, expiry, names)\n",
            env.pebble.directory,
            account.display(),
            env.pebble.webroot.display(),
            order_key.display()
        )
    );
    assert!(!account.exists() && !env.dir.path().join("ssl").exists());
    let ordered = |dry_run: bool, created: bool| {
        serde_json::json!({
            "version": 1,
            "name": NAME,
            "dry_run": dry_run,
            "sans": [NAME, SAN],
            "directory": env.pebble.directory,
            "account": account,
            "account_created": created,
            "webroot": env.pebble.webroot,
            "installed": null,
        })
    };
    let plan = env.acme().args(["--dry-run", "--json"]).succeeds();
    assert_eq!(json(&plan), ordered(true, true));
    let missing = env.dir.path().join("no-webroot");
    let out = tool("pysk-ssl")
        .config_dir(env.dir.path())
        .args(["acme", NAME, "--dry-run", "--webroot"])
        .arg(&missing)
        .arg("--directory")
        .arg(&env.pebble.directory)
        .fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {}: the webroot is not a directory\n",
            missing.display()
        ),
    );

    // A challenge directory that is a symbolic link is not followed.
    let well_known = env.pebble.webroot.join(".well-known");
    let elsewhere = env.dir.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("elsewhere");
    let had = well_known.exists();
    if had {
        fs::rename(&well_known, env.dir.path().join("well-known-aside")).expect("aside");
    }
    std::os::unix::fs::symlink(&elsewhere, &well_known).expect("symlink");
    let out = env.acme().arg("--dry-run").fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {}: not a directory (a symbolic link is not followed)\n",
            well_known.display()
        ),
    );
    fs::remove_file(&well_known).expect("the link removed");
    if had {
        fs::rename(env.dir.path().join("well-known-aside"), &well_known).expect("back");
    }
    assert!(
        fs::read_dir(&elsewhere)
            .expect("elsewhere")
            .next()
            .is_none()
    );

    let out = env.acme().arg("--json").succeeds();
    let mut doc = json(&out);
    let installed = doc["installed"].take();
    assert_eq!(doc, ordered(false, true));
    assert_eq!(installed["name"], NAME);
    assert_eq!(installed["dry_run"], false);
    assert_eq!(installed["key_from"], order_key.display().to_string());
    assert_eq!(installed["acme_ended"], false);
    let leaf = env.ssl(&format!("{NAME}.crt"));
    assert_eq!(installed["expires"], x509_not_after(&leaf));
    let plan = env.acme().args(["--dry-run", "--json"]).succeeds();
    assert_eq!(json(&plan), ordered(true, false));

    let renew = || {
        tool("pysk-ssl")
            .config_dir(env.dir.path())
            .args(["renew", "--json", "--ca-file"])
            .arg(&env.pebble.ca_file)
    };
    let out = renew().succeeds();
    assert_eq!(
        json(&out),
        serde_json::json!({
            "version": 1,
            "dry_run": false,
            "names": [{
                "name": NAME,
                "status": "not-due",
                "due_from": lifetime_due(&leaf),
                "by": "a third of its lifetime left",
                "expires": x509_not_after(&leaf),
                "error": null,
            }],
            "renewed": 0,
            "failed": 0,
            "reload_retried": false,
        })
    );

    // A certificate of another CA installed by hand: the name is no
    // longer ACME's, so renew leaves it alone.
    let tool = || tool("pysk-ssl").config_dir(env.dir.path());
    let (files, root) = env.bought("bought");
    let record = env.ssl(&format!(".acme/{NAME}.json"));
    let install = || {
        tool()
            .args(["install", NAME, "--cert"])
            .arg(&files.cert)
            .arg("--chain")
            .arg(&files.chain)
            .arg("--ca-file")
            .arg(&root)
    };
    let plan = install().args(["--dry-run"]).succeeds();
    assert!(
        stdout(&plan).contains(&format!(
            "\n  {}: removed (no longer renewed by ACME)\n",
            record.display()
        )),
        "{}",
        stdout(&plan)
    );
    assert!(record.exists(), "a dry run removes nothing");
    let out = install().succeeds();
    let err = pysk_tests::stderr(&out);
    assert!(
        err.ends_with(&format!(
            "pysk-ssl: {NAME}: installed by hand, no longer renewed by ACME ({} removed)\n",
            record.display()
        )),
        "{err}"
    );
    assert!(!record.exists());
    assert!(!env.ssl(&format!(".acme/{NAME}.pem")).exists());
    let out = renew().succeeds();
    assert_eq!(
        json(&out),
        serde_json::json!({
            "version": 1,
            "dry_run": false,
            "names": [],
            "renewed": 0,
            "failed": 0,
            "reload_retried": false,
        })
    );
    let out = tool().args(["list", "--json"]).succeeds();
    assert_eq!(json(&out)["certificates"][0]["acme"], false);
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).expect("a JSON document")
}

/// Env's switches and `extra`.
fn switches(env: &Env, extra: &[(&str, String)]) {
    let mut all = vec![
        ("ssl_dir", env.dir.path().join("ssl").display().to_string()),
        ("ssl_key_group", "nogroup".to_owned()),
        (
            "ssl_acme_account",
            env.dir.path().join("account.json").display().to_string(),
        ),
    ];
    all.extend_from_slice(extra);
    write_switches(env.dir.path(), &all);
}

#[test]
fn acme_keeps_a_pending_key_and_its_record_through_a_failed_reload() {
    let Some(env) = Env::new() else {
        return;
    };
    // A CSR made for another CA: its pending key must survive the order.
    tool("pysk-ssl")
        .config_dir(env.dir.path())
        .args(["csr", NAME])
        .succeeds();
    let pending = env.ssl(&format!("{NAME}_pending.key"));
    let before = fs::read(&pending).expect("the pending key");
    switches(&env, &[("ssl_reload_command", "false".to_owned())]);
    let out = env.acme().fails_with(69);
    let err = pysk_tests::stderr(&out);
    assert!(
        err.ends_with(
            "pysk-ssl: ssl_reload_command \"false\": exit status: 1 (); the files are installed\n"
        ),
        "{err}"
    );
    env.verify_installed();
    assert_eq!(before, fs::read(&pending).expect("the pending key, kept"));
    assert!(
        env.ssl(&format!(".acme/{NAME}.json")).exists(),
        "the name is ACME-managed although the reload failed"
    );
    let list = tool("pysk-ssl")
        .config_dir(env.dir.path())
        .args(["list", "--json"])
        .succeeds();
    assert_eq!(json(&list)["certificates"][0]["acme"], true);

    // The failed reload is remembered: the next renew, with nothing due,
    // runs it again, and once it succeeded, no more.
    let reloaded = env.dir.path().join("reloaded");
    let touch = format!("/usr/bin/touch {}", reloaded.display());
    switches(&env, &[("ssl_reload_command", touch)]);
    let renew = || {
        tool("pysk-ssl")
            .config_dir(env.dir.path())
            .args(["renew", "--ca-file"])
            .arg(&env.pebble.ca_file)
    };
    let plan = renew().arg("--dry-run").succeeds();
    assert_eq!(
        stdout(&plan),
        "would run ssl_reload_command again: it failed after an earlier install\n"
    );
    assert!(!reloaded.exists(), "a dry run runs nothing");
    let out = renew().succeeds();
    assert!(
        pysk_tests::stderr(&out).ends_with(
            "pysk-ssl: running ssl_reload_command again: it failed after an earlier install\n"
        ),
        "{}",
        pysk_tests::stderr(&out)
    );
    assert!(reloaded.exists());
    fs::remove_file(&reloaded).expect("reset");
    renew().succeeds();
    assert!(
        !reloaded.exists(),
        "a reload that succeeded is not repeated"
    );
}

#[test]
fn an_account_others_may_read_is_refused_and_a_silent_ca_is_cut_off() {
    let Some(env) = Env::new() else {
        return;
    };
    let account = env.dir.path().join("account.json");
    env.acme().succeeds();
    fs::set_permissions(&account, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = env.acme().fails_with(77);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {}: secret file is readable by group or others (mode 0644); run chmod 600 on it\n",
            account.display()
        ),
    );
    fs::remove_file(&account).expect("no account");

    // A CA that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let _held = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(60));
        drop(held);
    });
    switches(&env, &[("ssl_acme_timeout", "2".to_owned())]);
    let out = tool("pysk-ssl")
        .config_dir(env.dir.path())
        .args(["acme", NAME, "--webroot"])
        .arg(&env.pebble.webroot)
        .arg("--directory")
        .arg(format!("https://{addr}/dir"))
        .fails_with(69);
    assert_stderr_is(
        &out,
        "pysk-ssl: ACME creating the account: no answer within 2 s; nothing installed\n",
    );
}
