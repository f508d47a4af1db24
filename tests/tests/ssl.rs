//! End-to-end tests of `pysk-ssl` with a test CA made here with rcgen
//! (a root, intermediates, leaves with chosen validity): `openssl req
//! -verify` on every CSR, `openssl verify` on every installed set, the
//! install gate reordering a reversed chain and refusing incomplete,
//! mismatched, expiring and hostile input with nothing changed, and
//! installs killed between their steps never pairing a key with another
//! key's certificate.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use time::{Duration, OffsetDateTime};

use pysk_tests::{TempDir, require, scratch, tool, write_switches};

/// A certificate authority of the test: its issuer and its PEM.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: String,
}

/// Certificate parameters for `cn` valid from yesterday for `days`.
fn params(cn: &str, sans: &[&str], days: i64) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
    params
}

/// A CA named `cn` valid for `days`: self-signed, or issued by `parent`.
fn authority(cn: &str, days: i64, parent: Option<&Authority>) -> Authority {
    let mut p = params(cn, &[], days);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let issuer = match parent {
        None => CertifiedIssuer::self_signed(p, key),
        Some(parent) => CertifiedIssuer::signed_by(p, key, &parent.issuer),
    }
    .expect("CA certificate");
    let pem = issuer.pem();
    Authority { issuer, pem }
}

/// A leaf for `sans` over `key`'s public key, issued by `ca`, valid for
/// `days`.
fn leaf(ca: &Authority, key: &KeyPair, sans: &[&str], days: i64) -> String {
    params(sans[0], sans, days)
        .signed_by(key, &ca.issuer)
        .expect("leaf")
        .pem()
}

/// A scratch directory with switches pointing the tool at `ssl/`, the
/// test root as the only trust anchor, keys for the group `nogroup`.
struct Env {
    dir: TempDir,
    root: Authority,
    inter: Authority,
}

const NAME: &str = "www.example.org";

impl Env {
    fn new() -> Option<Env> {
        require("openssl", "openssl")?;
        let dir = scratch();
        let root = authority("Test Root", 3650, None);
        let inter = authority("Test Intermediate", 1000, Some(&root));
        fs::write(dir.path().join("root.pem"), &root.pem).expect("root");
        fs::write(dir.path().join("inter.pem"), &inter.pem).expect("inter");
        let ssl = dir.path().join("ssl");
        let ca = dir.path().join("root.pem");
        write_switches(
            dir.path(),
            &[
                ("ssl_dir", ssl.display().to_string()),
                ("ssl_key_group", "nogroup".to_owned()),
                ("ssl_ca_file", ca.display().to_string()),
            ],
        );
        Some(Env { dir, root, inter })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ssl(&self, file: &str) -> PathBuf {
        self.path("ssl").join(file)
    }

    fn tool(&self) -> pysk_tests::TestCommand {
        tool("pysk-ssl").config_dir(self.dir.path())
    }

    /// Writes `text` to the scratch file `name` and gives its path.
    fn file(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).expect("write a test file");
        path
    }

    /// `csr NAME` with `args`, then the pending key it wrote.
    fn csr(&self, args: &[&str]) -> KeyPair {
        self.tool().args(["csr", NAME]).args(args).succeeds();
        openssl(
            &["req", "-verify", "-noout", "-in"],
            &self.ssl(&format!("{NAME}.csr")),
        );
        let pem = fs::read_to_string(self.ssl(&format!("{NAME}_pending.key"))).expect("key");
        KeyPair::from_pem(&pem).expect("the pending key parses")
    }

    /// `install NAME --cert CERT --chain inter.pem`.
    fn install(&self, cert: &str) -> pysk_tests::TestCommand {
        let cert = self.file("leaf.pem", cert);
        self.tool()
            .args(["install", NAME, "--cert"])
            .arg(cert)
            .arg("--chain")
            .arg(self.path("inter.pem"))
    }

    /// The installed set verified by openssl, and its key matching it.
    fn verify_installed(&self) {
        let root = self.path("root.pem");
        let chain = self.ssl(&format!("{NAME}_chain.crt"));
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&root)
            .arg("-untrusted")
            .arg(&chain)
            .arg(self.ssl(&format!("{NAME}.crt")))
            .output()
            .expect("openssl verify");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            public_key(
                &["x509", "-pubkey", "-noout", "-in"],
                &self.ssl(&format!("{NAME}.crt"))
            ),
            public_key(
                &["pkey", "-pubout", "-in"],
                &self.ssl(&format!("{NAME}.key"))
            )
        );
    }
}

/// Runs openssl with `args` and `file`; it must succeed.
fn openssl(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "openssl {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The public key openssl reads from `file`.
fn public_key(args: &[&str], file: &Path) -> String {
    openssl(args, file)
}

/// A file's content (or link target), mode, uid, gid and mtime (seconds,
/// nanoseconds).
type FileState = (Vec<u8>, u32, u32, u32, i64, i64);

/// Every entry below `dir` and its state.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, FileState> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("stat");
            let content = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .expect("link")
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                todo.push(path.clone());
                Vec::new()
            } else {
                fs::read(&path).expect("read")
            };
            let state = (
                content,
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.mtime(),
                meta.mtime_nsec(),
            );
            all.insert(path, state);
        }
    }
    all
}

#[test]
fn csr_install_check_and_list_for_every_key_type() {
    let Some(env) = Env::new() else { return };
    for kind in ["ec-p256", "ec-p384", "rsa2048", "rsa4096"] {
        let key = env.csr(&["--san", "example.org", "--key-type", kind]);
        let pending = fs::metadata(env.ssl(&format!("{NAME}_pending.key"))).expect("pending");
        assert_eq!(pending.mode() & 0o777, 0o640, "{kind}");
        let text = openssl(
            &["req", "-noout", "-text", "-in"],
            &env.ssl(&format!("{NAME}.csr")),
        );
        assert!(
            text.contains("DNS:www.example.org, DNS:example.org"),
            "{text}"
        );
        let cert = leaf(&env.inter, &key, &[NAME, "example.org"], 90);
        env.install(&cert).succeeds();
        env.verify_installed();
        assert!(!env.ssl(&format!("{NAME}_pending.key")).exists(), "{kind}");
        let live = fs::metadata(env.ssl(&format!("{NAME}.key"))).expect("key");
        assert_eq!((live.mode() & 0o777, live.uid()), (0o640, 0), "{kind}");
        let list = env.tool().arg("list").succeeds();
        let line = String::from_utf8_lossy(&list.stdout).into_owned();
        assert!(
            line.starts_with(&format!("{NAME}\t")) && line.contains(kind),
            "{line}"
        );
    }
    let combined = fs::read_to_string(env.ssl(&format!("{NAME}_combined.crt"))).expect("combined");
    assert_eq!(combined.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(
        !combined.contains(env.root.pem.trim()),
        "the anchor is not served"
    );
    let out = env.tool().args(["-q", "check"]).succeeds();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.tool().args(["check", "--json"]).succeeds();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["certificates"][0]["status"], "ok");
}

#[test]
fn a_reversed_chain_with_its_root_is_reordered_and_the_root_left_out() {
    let Some(env) = Env::new() else { return };
    let second = authority("Test Intermediate 2", 500, Some(&env.inter));
    let key = env.csr(&[]);
    let cert = leaf(&second, &key, &[NAME], 90);
    let reversed = format!("{}{}{}", env.root.pem, env.inter.pem, second.pem);
    let chain = env.file("reversed.pem", reversed);
    let cert = env.file("leaf.pem", cert);
    let dry = env
        .tool()
        .args(["install", NAME, "--dry-run", "--cert"])
        .arg(&cert)
        .arg("--chain")
        .arg(&chain)
        .succeeds();
    let plan = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(plan.contains("***") && !plan.contains("PRIVATE"), "{plan}");
    assert!(
        !env.ssl(&format!("{NAME}.crt")).exists(),
        "a dry run installs nothing"
    );
    env.tool()
        .args(["install", NAME, "--cert"])
        .arg(&cert)
        .arg("--chain")
        .arg(&chain)
        .succeeds();
    let served = fs::read_to_string(env.ssl(&format!("{NAME}_chain.crt"))).expect("chain");
    assert_eq!(
        served,
        format!("{}{}", second.pem, env.inter.pem).replace("\r\n", "\n")
    );
    env.verify_installed();
}

#[test]
fn the_gate_refuses_with_the_check_named_and_nothing_changed() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&leaf(&env.inter, &key, &[NAME], 90)).succeeds();
    let new_key = env.csr(&[]);
    let before = snapshot(&env.path("ssl"));
    let refuse = |cmd: pysk_tests::TestCommand, check: &str| {
        let out = cmd.fails_with(65);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains(&format!("refused by the {check} check")),
            "{err}"
        );
        assert!(err.contains("nothing changed"), "{err}");
        assert_eq!(snapshot(&env.path("ssl")), before, "{check}: {err}");
        err
    };
    let good = leaf(&env.inter, &new_key, &[NAME], 90);
    let alone = env.file("alone.pem", &good);
    let err = refuse(
        env.tool().args(["install", NAME, "--cert"]).arg(&alone),
        "chain",
    );
    assert!(
        err.contains("is an intermediate certificate missing?"),
        "{err}"
    );
    let stranger = KeyPair::generate().expect("key");
    refuse(
        env.install(&leaf(&env.inter, &stranger, &[NAME], 90)),
        "key",
    );
    let other = env.file(
        "other.key",
        KeyPair::generate().expect("key").serialize_pem(),
    );
    refuse(env.install(&good).arg("--key").arg(&other), "key");
    refuse(
        env.install(&leaf(&env.inter, &new_key, &["mail.example.org"], 90)),
        "names",
    );
    refuse(
        env.install(&leaf(&env.inter, &new_key, &[NAME], 10)),
        "expiry",
    );
    let dying = authority("Dying Intermediate", 1, Some(&env.root));
    let cert = env.file("dying-leaf.pem", leaf(&dying, &new_key, &[NAME], 90));
    let chain = env.file("dying.pem", &dying.pem);
    let cmd = env
        .tool()
        .args(["install", NAME, "--cert"])
        .arg(&cert)
        .arg("--chain")
        .arg(&chain);
    let err = refuse(cmd, "expiry");
    assert!(err.contains("Dying Intermediate"), "{err}");
}

#[test]
fn hostile_inputs_give_clear_errors_and_change_nothing() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&leaf(&env.inter, &key, &[NAME], 90)).succeeds();
    let before = snapshot(&env.path("ssl"));
    let huge = env.path("huge.pem");
    fs::File::create(&huge)
        .and_then(|f| f.set_len(100 << 20))
        .expect("100 MB");
    let many: Vec<String> = (0..10_000).map(|n| format!("h{n}.example.org")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let loop_a = KeyPair::generate().expect("key");
    let looped = leaf(&env.inter, &loop_a, &[NAME], 90);
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            env.file(
                "garbage.pem",
                "-----BEGIN CERTIFICATE-----\n@@not base64@@\n-----END CERTIFICATE-----\n",
            ),
            "PEM block 1",
        ),
        (
            env.file("cut.der", &pem_der(&looped)[..200]),
            "DER: not a certificate",
        ),
        (env.file("none.txt", "hello\n"), "no certificate in it"),
        (huge, "larger than 1024 KiB"),
        (
            env.file("many.pem", leaf(&env.inter, &key, &many, 90)),
            "10000 subjectAltNames",
        ),
        (
            env.path("ssl").join(format!("{NAME}.key")),
            "is a PRIVATE KEY, not a certificate",
        ),
    ];
    for (file, expected) in cases {
        let out = env
            .tool()
            .args(["install", NAME, "--cert"])
            .arg(&file)
            .fails_with(65);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains(expected), "{}: {err}", file.display());
        assert!(!err.contains("BEGIN") && err.lines().count() == 1, "{err}");
        assert_eq!(snapshot(&env.path("ssl")), before, "{}", file.display());
    }
    // Two CAs that issued each other: the path ends, it does not loop.
    let (ka, kb) = (
        KeyPair::generate().expect("a"),
        KeyPair::generate().expect("b"),
    );
    let b_by_a = cross("Loop B", &kb, "Loop A", &ka);
    let a_by_b = cross("Loop A", &ka, "Loop B", &kb);
    let issuer = rcgen::Issuer::new(ca_params("Loop A"), ka);
    let cert = params(NAME, &[NAME], 90)
        .signed_by(&key, &issuer)
        .expect("leaf")
        .pem();
    let cert = env.file("loop-leaf.pem", cert);
    let chain = env.file("loop.pem", format!("{a_by_b}{b_by_a}"));
    let out = env
        .tool()
        .args(["install", NAME, "--cert"])
        .arg(&cert)
        .arg("--chain")
        .arg(&chain)
        .fails_with(65);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("refused by the chain check"), "{err}");
    assert_eq!(snapshot(&env.path("ssl")), before);
    // A DER certificate that is whole is taken as well as PEM.
    let der = env.file("leaf.der", pem_der(&leaf(&env.inter, &key, &[NAME], 90)));
    let chain = env.path("inter.pem");
    env.tool()
        .args(["install", NAME, "--cert"])
        .arg(&der)
        .arg("--chain")
        .arg(&chain)
        .succeeds();
    env.verify_installed();
}

/// The parameters of a CA named `cn`.
fn ca_params(cn: &str) -> CertificateParams {
    let mut p = params(cn, &[], 365);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

/// The CA certificate `cn` (key `key`) issued by `by` (key `by_key`).
fn cross(cn: &str, key: &KeyPair, by: &str, by_key: &KeyPair) -> String {
    let by_key = KeyPair::from_pem(&by_key.serialize_pem()).expect("copy");
    let issuer = rcgen::Issuer::new(ca_params(by), by_key);
    ca_params(cn).signed_by(key, &issuer).expect("cross").pem()
}

/// The DER inside a one-certificate PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

#[test]
fn installs_killed_between_steps_never_pair_a_key_with_another_certificate() {
    let Some(env) = Env::new() else { return };
    // Hand-made files first, as Pysk had them: adopted, then replaced.
    let old = KeyPair::generate().expect("key");
    fs::create_dir_all(env.path("ssl")).expect("mkdir");
    fs::write(env.ssl(&format!("{NAME}.key")), old.serialize_pem()).expect("key");
    let old_leaf = leaf(&env.inter, &old, &[NAME], 90);
    fs::write(env.ssl(&format!("{NAME}.crt")), &old_leaf).expect("crt");
    fs::write(env.ssl(&format!("{NAME}_chain.crt")), &env.inter.pem).expect("chain");
    let points = [
        "linked-www.example.org.crt",
        "linked-www.example.org_combined.crt",
        "set-written",
        "flipped",
    ];
    for point in points {
        let key = env.csr(&[]);
        let cert = env.file("leaf.pem", leaf(&env.inter, &key, &[NAME], 90));
        let out = env
            .tool()
            .env("PYSK_SSL_FAILPOINT", point)
            .args(["install", NAME, "--cert"])
            .arg(&cert)
            .arg("--chain")
            .arg(env.path("inter.pem"))
            .output();
        assert!(
            !out.status.success(),
            "{point}: the crash point was reached"
        );
        env.verify_installed();
        let combined = env.ssl(&format!("{NAME}_combined.crt"));
        if combined.exists() {
            assert_eq!(
                public_key(&["x509", "-pubkey", "-noout", "-in"], &combined),
                public_key(
                    &["pkey", "-pubout", "-in"],
                    &env.ssl(&format!("{NAME}.key"))
                ),
                "{point}"
            );
        }
    }
    let key = env.csr(&[]);
    env.install(&leaf(&env.inter, &key, &[NAME], 90)).succeeds();
    env.verify_installed();
    env.tool().args(["-q", "check"]).succeeds();
    let left: Vec<PathBuf> = snapshot(&env.path("ssl"))
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("pysk-tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let sets = fs::read_dir(env.path("ssl/.sets").join(NAME))
        .expect("sets")
        .count();
    assert_eq!(
        sets, 3,
        "current and two sets: the new one and the one before"
    );
}

#[test]
fn check_warns_nagios_style_about_a_certificate_expiring_soon() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    let cert = leaf(&env.inter, &key, &[NAME], 20);
    env.install(&cert).arg("--warn-days").arg("5").succeeds();
    let out = env.tool().arg("check").fails_with(1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("1 of 1 certificates need attention"), "{err}");
    let out = env.tool().args(["check", "--nagios"]).fails_with(1);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.starts_with("SSL WARNING - 1 of 1 certificates: www.example.org:"),
        "{line}"
    );
    let out = env
        .tool()
        .args([
            "check",
            "--nagios",
            "--crit-days",
            "25",
            "--warn-days",
            "30",
        ])
        .fails_with(2);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("SSL CRITICAL"));
    fs::write(env.ssl(&format!("{NAME}_pending.key")), "x").expect("pending");
    fs::write(env.ssl("foreign.crt"), "not a certificate\n").expect("foreign");
    let out = env
        .tool()
        .args(["check", "--json", "--warn-days", "5", "--crit-days", "1"])
        .fails_with(1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["certificates"][0]["name"], "foreign");
    assert_eq!(doc["certificates"][0]["status"], "unknown");
    assert_eq!(doc["certificates"][1]["status"], "ok");
}

#[test]
fn a_dry_run_csr_creates_nothing_and_a_held_lock_exits_75() {
    let Some(env) = Env::new() else { return };
    let Some(flock) = require("flock", "util-linux") else {
        return;
    };
    let out = env.tool().args(["csr", NAME, "--dry-run"]).succeeds();
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.contains("*** (a new ec-p256 key)"), "{plan}");
    assert!(!env.path("ssl").exists(), "no directory, no lock file");
    env.csr(&[]);
    let before = snapshot(&env.path("ssl"));
    let mut holder = Command::new(flock)
        .arg("--no-fork")
        .arg(env.ssl(".pysk-ssl.lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let held = env.tool().args(["csr", NAME, "--wait", "0"]).output();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        held.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&held.stderr)
    );
    assert_eq!(snapshot(&env.path("ssl")), before);
}

#[test]
fn the_reload_command_runs_after_an_install_without_a_shell() {
    let Some(env) = Env::new() else { return };
    let marker = env.path("reloaded");
    let ssl = env.path("ssl");
    let ca = env.path("root.pem");
    let switches = |reload: String| {
        write_switches(
            env.dir.path(),
            &[
                ("ssl_dir", ssl.display().to_string()),
                ("ssl_key_group", "nogroup".to_owned()),
                ("ssl_ca_file", ca.display().to_string()),
                ("ssl_reload_command", reload),
            ],
        );
    };
    let semicolon = env.path(";");
    switches(format!(
        "touch {} {}",
        marker.display(),
        semicolon.display()
    ));
    let key = env.csr(&[]);
    env.install(&leaf(&env.inter, &key, &[NAME], 90)).succeeds();
    assert!(marker.exists(), "touch ran");
    assert!(
        env.path(";").exists(),
        "no shell: ';' was touched as a file"
    );
    switches("false".to_owned());
    let key = env.csr(&[]);
    let out = env
        .install(&leaf(&env.inter, &key, &[NAME], 90))
        .fails_with(69);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("ssl_reload_command \"false\": exit status: 1"),
        "{err}"
    );
    env.verify_installed();
}

/// `openssl s_server` on a free loopback port serving `NAME`'s installed
/// key, certificate and chain.
fn s_server(env: &Env, log: &str) -> (pysk_tests::Server, u16) {
    let port = pysk_tests::free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(env.ssl(&format!("{NAME}.crt")))
        .arg("-cert_chain")
        .arg(env.ssl(&format!("{NAME}_chain.crt")))
        .arg("-key")
        .arg(env.ssl(&format!("{NAME}.key")));
    let ready = pysk_tests::Ready::Tcp(([127, 0, 0, 1], port).into());
    let server = pysk_tests::Server::start(
        "openssl s_server",
        cmd,
        &env.path(log),
        ready,
        std::time::Duration::from_secs(10),
    );
    (server, port)
}

/// A small SMTP front on a free loopback port: greeting, EHLO, STARTTLS,
/// then every byte passed to `tls_port` and back.
fn smtp_front(tls_port: u16) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let mut out = client.try_clone().expect("clone");
            let mut lines = BufReader::new(client.try_clone().expect("clone"));
            let _ = out.write_all(b"220 front ESMTP\r\n");
            let mut line = String::new();
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                let reply: &[u8] = match line.trim_end() {
                    l if l.starts_with("EHLO") => b"250-front\r\n250 STARTTLS\r\n",
                    "STARTTLS" => b"220 2.0.0 ready\r\n",
                    _ => b"500 what\r\n",
                };
                let _ = out.write_all(reply);
                if line.trim_end() == "STARTTLS" {
                    break;
                }
                line.clear();
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", tls_port)) else {
                continue;
            };
            let (mut up, mut down) = (server.try_clone().expect("clone"), server);
            let mut from = client;
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut out, &mut up);
                let _ = up.shutdown(std::net::Shutdown::Both);
            });
            let _ = std::io::copy(&mut down, &mut from);
            let _ = from.shutdown(std::net::Shutdown::Both);
        }
    });
    port
}

#[test]
fn served_catches_a_certificate_renewed_but_not_reloaded_plain_and_with_starttls() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&leaf(&env.inter, &key, &[NAME], 60)).succeeds();
    let (old_server, port) = s_server(&env, "s_server-old.log");
    let front = smtp_front(port);
    let plain = format!("127.0.0.1:{port}");
    let smtp = format!("127.0.0.1:{front}");
    let served = |endpoint: &str, extra: &[&str]| {
        env.tool()
            .args(["served", endpoint, "--name", NAME, "--timeout", "5"])
            .args(extra)
    };
    let out = served(&plain, &[]).succeeds();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("serves the installed www.example.org"),
        "{err}"
    );
    served(&smtp, &["--starttls", "smtp"]).succeeds();
    // Renewed: the disk has a newer certificate, the server the old one.
    let key = env.csr(&[]);
    env.install(&leaf(&env.inter, &key, &[NAME], 90)).succeeds();
    for (endpoint, extra) in [(&plain, &[][..]), (&smtp, &["--starttls", "smtp"][..])] {
        let out = served(endpoint, extra).fails_with(1);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("renewed but not reloaded"), "{err}");
    }
    let out = served(&plain, &["--json"]).fails_with(1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["endpoints"][0]["installed"], false);
    assert_eq!(doc["endpoints"][0]["served"][1], "CN=Test Intermediate");
    drop(old_server);
    let (_new_server, port) = s_server(&env, "s_server-new.log");
    served(&format!("127.0.0.1:{port}"), &[]).succeeds();
    // install's own probe after the reload: the same certificate again
    // passes, a renewal the server did not load is exit 1.
    write_switches(
        env.dir.path(),
        &[
            ("ssl_dir", env.path("ssl").display().to_string()),
            ("ssl_key_group", "nogroup".to_owned()),
            ("ssl_ca_file", env.path("root.pem").display().to_string()),
            ("ssl_reload_command", "true".to_owned()),
            ("ssl_check_after_reload", format!("127.0.0.1:{port}")),
        ],
    );
    let same = fs::read_to_string(env.ssl(&format!("{NAME}.crt"))).expect("crt");
    let out = env.install(&same).succeeds();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("serves the installed www.example.org"),
        "{err}"
    );
    let out = env
        .install(&leaf(&env.inter, &key, &[NAME], 120))
        .fails_with(1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("renewed but not reloaded"), "{err}");
    let closed = pysk_tests::free_port();
    let out = served(&format!("127.0.0.1:{closed}"), &[]).fails_with(1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("cannot connect: Connection refused"), "{err}");
}
