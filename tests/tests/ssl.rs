//! End-to-end tests of `pysk-ssl` with the harness's test CA (a root,
//! intermediates, leaves with chosen validity): `openssl req -verify` on
//! every CSR, `openssl verify` on every installed set, the install gate
//! reordering a reversed chain and refusing incomplete, mismatched,
//! expiring and hostile input with nothing changed, and installs killed
//! between their steps never pairing a key with another key's certificate.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pysk_tests::tls::{
    Intermediate, SServer, StartTls, TestCa, Validity, openssl, openssl_public_key, openssl_stdout,
    openssl_verify, pem_certificates, run_bounded,
};
use pysk_tests::{
    TempDir, TestCommand, assert_stderr, assert_stderr_is, require, scratch, stderr, stdout, tool,
};

/// A scratch directory with switches pointing the tool at `ssl/`, the
/// test root (`root.pem`) as the only trust anchor, keys for the group
/// `nogroup`; the intermediate that signs leaves is in `inter.pem`.
struct Env {
    dir: TempDir,
    openssl: PathBuf,
    ca: TestCa,
    inter: Intermediate,
}

const NAME: &str = "www.example.org";

impl Env {
    fn new() -> Option<Env> {
        let openssl = openssl()?;
        let dir = scratch();
        let ca = TestCa::new();
        let inter = ca.intermediate(Validity::CA);
        ca.write_root(&dir.path().join("root.pem"));
        fs::write(dir.path().join("inter.pem"), inter.pem()).expect("inter");
        let env = Env {
            dir,
            openssl,
            ca,
            inter,
        };
        env.switches(&[]);
        Some(env)
    }

    /// Writes the switches of [`Env`] and `extra`.
    fn switches(&self, extra: &[(&str, String)]) {
        let mut switches = vec![
            ("ssl_dir", self.path("ssl").display().to_string()),
            ("ssl_key_group", "nogroup".to_owned()),
            ("ssl_ca_file", self.path("root.pem").display().to_string()),
        ];
        switches.extend_from_slice(extra);
        pysk_tests::write_switches(self.dir.path(), &switches);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ssl(&self, file: &str) -> PathBuf {
        self.path("ssl").join(file)
    }

    fn tool(&self) -> TestCommand {
        tool("pysk-ssl").config_dir(self.dir.path())
    }

    /// Writes `text` to the scratch file `name` and gives its path.
    fn file(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).expect("write a test file");
        path
    }

    /// `csr NAME` with `args` (a new key replacing any pending one unless
    /// `--reuse-key`), the CSR verified by openssl, then the pending key
    /// it wrote (PEM), which is the CSR's.
    fn csr(&self, args: &[&str]) -> String {
        let fresh = if args.contains(&"--reuse-key") {
            None
        } else {
            Some("--new-key")
        };
        self.tool()
            .args(["csr", NAME])
            .args(args)
            .args(fresh)
            .succeeds();
        let csr = self.ssl(&format!("{NAME}.csr"));
        let pending = self.ssl(&format!("{NAME}_pending.key"));
        openssl_stdout(&self.openssl, &["req", "-verify", "-noout", "-in"], &csr);
        assert_eq!(
            openssl_stdout(&self.openssl, &["req", "-pubkey", "-noout", "-in"], &csr),
            openssl_public_key(&self.openssl, &pending)
        );
        fs::read_to_string(pending).expect("key")
    }

    /// A leaf for `sans` over `key` (PEM), issued by the intermediate,
    /// valid from yesterday for `days`.
    fn leaf(&self, key: &str, sans: &[&str], days: i64) -> String {
        self.inter
            .leaf_with_key(key, sans, Validity::days(-1, days))
            .issued
            .cert
    }

    /// `install NAME --cert CERT --chain CHAIN`.
    fn install_files(&self, cert: &Path, chain: &Path) -> TestCommand {
        self.tool()
            .args(["install", NAME, "--cert"])
            .arg(cert)
            .arg("--chain")
            .arg(chain)
    }

    /// `install NAME --cert CERT --chain inter.pem`.
    fn install(&self, cert: &str) -> TestCommand {
        self.install_files(&self.file("leaf.pem", cert), &self.path("inter.pem"))
    }

    /// The installed set verified by openssl, and its key matching it.
    fn verify_installed(&self) {
        let cert = self.ssl(&format!("{NAME}.crt"));
        let chain = self.ssl(&format!("{NAME}_chain.crt"));
        assert_eq!(
            openssl_verify(&self.openssl, &self.path("root.pem"), &chain, &cert),
            Ok(())
        );
        assert_eq!(
            openssl_public_key(&self.openssl, &cert),
            openssl_public_key(&self.openssl, &self.ssl(&format!("{NAME}.key")))
        );
    }

    /// `openssl s_server` on a free loopback port serving `NAME`'s
    /// installed key, certificate and chain, plainly or after `starttls`.
    fn serve(&self, starttls: Option<StartTls>) -> SServer {
        SServer::start(
            self.dir.path(),
            &self.ssl(&format!("{NAME}.crt")),
            Some(&self.ssl(&format!("{NAME}_chain.crt"))),
            &self.ssl(&format!("{NAME}.key")),
            starttls,
        )
        .expect("openssl is there")
    }
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

/// The gid of `group` (`ssl_key_group` of the tests is `nogroup`), as
/// `getent` finds it.
fn gid(group: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .expect("getent");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group {group}: {line:?}"))
}

#[test]
fn csr_install_check_and_list_for_every_key_type() {
    let Some(env) = Env::new() else { return };
    let nogroup = gid("nogroup");
    for kind in ["ec-p256", "ec-p384", "rsa2048", "rsa4096"] {
        let key = env.csr(&["--san", "example.org", "--key-type", kind]);
        let pending = fs::metadata(env.ssl(&format!("{NAME}_pending.key"))).expect("pending");
        assert_eq!(
            (pending.mode() & 0o777, pending.uid(), pending.gid()),
            (0o640, 0, nogroup),
            "{kind}"
        );
        let text = openssl_stdout(
            &env.openssl,
            &["req", "-noout", "-text", "-in"],
            &env.ssl(&format!("{NAME}.csr")),
        );
        assert!(
            text.contains("DNS:www.example.org, DNS:example.org"),
            "{text}"
        );
        let cert = env.leaf(&key, &[NAME, "example.org"], 90);
        env.install(&cert).succeeds();
        env.verify_installed();
        assert!(!env.ssl(&format!("{NAME}_pending.key")).exists(), "{kind}");
        let live = fs::metadata(env.ssl(&format!("{NAME}.key"))).expect("key");
        assert_eq!(
            (live.mode() & 0o777, live.uid(), live.gid()),
            (0o640, 0, nogroup),
            "{kind}"
        );
        let line = stdout(&env.tool().arg("list").succeeds());
        assert!(
            line.starts_with(&format!("{NAME}\t")) && line.contains(kind),
            "{line}"
        );
    }
    let combined = fs::read_to_string(env.ssl(&format!("{NAME}_combined.crt"))).expect("combined");
    assert_eq!(combined.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(
        !combined.contains(env.ca.root_pem().trim()),
        "the anchor is not served"
    );
    let out = env.tool().args(["-q", "check"]).succeeds();
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let out = env.tool().args(["check", "--json"]).succeeds();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["certificates"][0]["status"], "ok");
}

#[test]
fn a_reversed_chain_with_its_root_is_reordered_and_the_root_left_out() {
    let Some(env) = Env::new() else { return };
    let second = env.inter.intermediate(Validity::CA);
    let key = env.csr(&[]);
    let leaf = second.leaf_with_key(&key, &[NAME], Validity::LEAF);
    let reversed = format!("{}{}{}", env.ca.root_pem(), env.inter.pem(), second.pem());
    let chain = env.file("reversed.pem", reversed);
    let cert = env.file("leaf.pem", &leaf.cert);
    let dry = env.install_files(&cert, &chain).arg("--dry-run").succeeds();
    let plan = stdout(&dry);
    assert!(plan.contains("***") && !plan.contains("PRIVATE"), "{plan}");
    assert!(
        !env.ssl(&format!("{NAME}.crt")).exists(),
        "a dry run installs nothing"
    );
    env.install_files(&cert, &chain).succeeds();
    let served = fs::read_to_string(env.ssl(&format!("{NAME}_chain.crt"))).expect("chain");
    assert_eq!(
        served,
        format!("{}{}", second.pem(), env.inter.pem()).replace("\r\n", "\n")
    );
    env.verify_installed();
}

#[test]
fn the_gate_refuses_with_the_check_named_and_nothing_changed() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
    let new_key = env.csr(&[]);
    let before = snapshot(&env.path("ssl"));
    let refuse = |cmd: TestCommand, check: &str| {
        let err = stderr(&cmd.fails_with(65));
        assert!(
            err.contains(&format!("refused by the {check} check")),
            "{err}"
        );
        assert!(err.contains("nothing changed"), "{err}");
        assert_eq!(snapshot(&env.path("ssl")), before, "{check}: {err}");
        err
    };
    let good = env.leaf(&new_key, &[NAME], 90);
    let alone = env.file("alone.pem", &good);
    let err = refuse(
        env.tool().args(["install", NAME, "--cert"]).arg(&alone),
        "chain",
    );
    assert!(
        err.contains("is an intermediate certificate missing?"),
        "{err}"
    );
    // A leaf over a key of its own, which is neither the pending key nor
    // the one --key names below.
    let stranger = env.inter.leaf(&[NAME], Validity::LEAF);
    refuse(env.install(&stranger.cert), "key");
    let other = env.file("other.key", &stranger.key);
    refuse(env.install(&good).arg("--key").arg(&other), "key");
    refuse(
        env.install(&env.leaf(&new_key, &["mail.example.org"], 90)),
        "names",
    );
    refuse(env.install(&env.leaf(&new_key, &[NAME], 10)), "expiry");
    let dying = env.ca.intermediate(Validity::EXPIRES_TOMORROW);
    let cert = dying.leaf_with_key(&new_key, &[NAME], Validity::LEAF);
    let cert = env.file("dying-leaf.pem", &cert.cert);
    let chain = env.file("dying.pem", dying.pem());
    let err = refuse(env.install_files(&cert, &chain), "expiry");
    let subject = format!("\"CN={}\"", dying.common_name());
    assert!(err.contains(&subject), "{subject} not in: {err}");
}

/// The subject of the PEM certificate `pem`, as x509-parser writes it.
fn subject(pem: &str) -> String {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    let cert = block.parse_x509().expect("a certificate");
    cert.subject().to_string()
}

#[test]
fn hostile_inputs_give_clear_errors_and_change_nothing() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
    let before = snapshot(&env.path("ssl"));
    let huge = env.path("huge.pem");
    fs::File::create(&huge)
        .and_then(|f| f.set_len(100 << 20))
        .expect("100 MB");
    let many: Vec<String> = (0..10_000).map(|n| format!("h{n}.example.org")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let whole = env.inter.leaf(&[NAME], Validity::LEAF).cert_der();
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            env.file(
                "garbage.pem",
                "-----BEGIN CERTIFICATE-----\n@@not base64@@\n-----END CERTIFICATE-----\n",
            ),
            "PEM block 1: base64 decode error",
        ),
        (
            env.file("cut.der", &whole[..200]),
            "DER: not a certificate: cut short",
        ),
        (
            env.file("none.txt", "hello\n"),
            "no certificate in it (neither PEM nor DER)",
        ),
        (huge, "larger than 1024 KiB: not a certificate or key file"),
        (
            env.file("many.pem", env.leaf(&key, &many, 90)),
            "certificate 1: 10000 subjectAltNames: more than 1000 is not a server certificate",
        ),
        (
            env.path("ssl").join(format!("{NAME}.key")),
            "PEM block 1 is a PRIVATE KEY, not a certificate (give a key with --key, in a file of its own)",
        ),
    ];
    for (file, reason) in cases {
        let out = env
            .tool()
            .args(["install", NAME, "--cert"])
            .arg(&file)
            .fails_with(65);
        assert_eq!(
            stderr(&out),
            format!("pysk-ssl: {}: {reason}\n", file.display())
        );
        assert_eq!(snapshot(&env.path("ssl")), before, "{}", file.display());
    }
    // Two CAs that issued each other: the path ends, said as a loop.
    let looped = Intermediate::cross_signed_loop(Validity::CA)
        .leaf_with_key(&key, &[NAME], Validity::LEAF)
        .issued;
    let cert = env.file("loop-leaf.pem", &looped.cert);
    let chain = env.file("loop.pem", &looped.chain);
    let [a, b] = pem_certificates(&looped.chain)
        .iter()
        .map(|pem| subject(pem))
        .collect::<Vec<_>>()
        .try_into()
        .expect("A by B, then B by A");
    let out = env.install_files(&cert, &chain).fails_with(65);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-ssl: {NAME}: refused by the chain check: the chain goes round: \"{b}\" was \
             issued by \"{a}\", which comes before it, and no trust anchor issued either; \
             nothing changed\n"
        )
    );
    assert_eq!(snapshot(&env.path("ssl")), before);
    // A DER certificate that is whole is taken as well as PEM.
    let der = env.inter.leaf_with_key(&key, &[NAME], Validity::LEAF);
    let der = env.file("leaf.der", der.cert_der());
    env.install_files(&der, &env.path("inter.pem")).succeeds();
    env.verify_installed();
}

/// Every crash point of an install, in the order a run adopting
/// hand-made files reaches them.
const CRASH_POINTS: [&str; 7] = [
    "linked-www.example.org.crt",
    "linked-www.example.org_chain.crt",
    "linked-www.example.org_combined.crt",
    "linked-www.example.org.key",
    "adopted",
    "set-written",
    "flipped",
];

/// How the admin left the live files before pysk.
#[derive(Debug, Clone, Copy)]
enum HandMade {
    /// Regular files: key, certificate and chain.
    Files,
    /// A certbot-like layout: the four live names are symbolic links to
    /// files in `ext/`.
    Links,
}

impl Env {
    /// Empties `ssl/` and `ext/`, then lays out a key and certificate of
    /// the old kind `how`.
    fn hand_made(&self, how: HandMade) {
        for dir in ["ssl", "ext"] {
            let _ = fs::remove_dir_all(self.path(dir));
            fs::create_dir_all(self.path(dir)).expect("mkdir");
        }
        let old = self.inter.leaf(&[NAME], Validity::LEAF);
        let files = [
            (format!("{NAME}.key"), "old.key", old.key.clone()),
            (format!("{NAME}.crt"), "old.crt", old.cert.clone()),
            (
                format!("{NAME}_chain.crt"),
                "old_chain.crt",
                self.inter.pem().to_owned(),
            ),
            (
                format!("{NAME}_combined.crt"),
                "old_combined.crt",
                format!("{}{}", old.cert, self.inter.pem()),
            ),
        ];
        for (live, target, text) in files {
            match how {
                HandMade::Files if live.ends_with("_combined.crt") => {}
                HandMade::Files => fs::write(self.ssl(&live), text).expect("hand-made file"),
                HandMade::Links => {
                    fs::write(self.path("ext").join(target), text).expect("link target");
                    symlink(Path::new("../ext").join(target), self.ssl(&live)).expect("link");
                }
            }
        }
    }

    /// A new CSR's certificate installed with the crash point `point`:
    /// the run dies there of `abort` (SIGABRT), and what the live names
    /// hold is one set, which openssl verifies.
    fn install_killed_at(&self, point: &str) {
        let key = self.csr(&[]);
        let cert = self.file("leaf.pem", self.leaf(&key, &[NAME], 90));
        let out = self
            .install_files(&cert, &self.path("inter.pem"))
            .env("PYSK_SSL_FAILPOINT", point)
            .output();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{point}: {:?}, {}",
            out.status,
            stderr(&out)
        );
        self.assert_one_set(point);
    }

    /// openssl verifies `NAME.crt` with `NAME_chain.crt`, and finds the
    /// public keys of `NAME.key`, `NAME.crt` and `NAME_combined.crt`
    /// (when there is one) equal.
    fn assert_one_set(&self, when: &str) {
        let key = openssl_public_key(&self.openssl, &self.ssl(&format!("{NAME}.key")));
        let cert = self.ssl(&format!("{NAME}.crt"));
        assert_eq!(openssl_public_key(&self.openssl, &cert), key, "{when}");
        let chain = self.ssl(&format!("{NAME}_chain.crt"));
        assert_eq!(
            openssl_verify(&self.openssl, &self.path("root.pem"), &chain, &cert),
            Ok(()),
            "{when}"
        );
        let combined = self.ssl(&format!("{NAME}_combined.crt"));
        if combined.exists() {
            assert_eq!(openssl_public_key(&self.openssl, &combined), key, "{when}");
        }
    }
}

#[test]
fn installs_killed_between_steps_never_pair_a_key_with_another_certificate() {
    let Some(env) = Env::new() else { return };
    for how in [HandMade::Files, HandMade::Links] {
        for point in CRASH_POINTS {
            let when = format!("{how:?}, {point}");
            env.hand_made(how);
            env.assert_one_set(&format!("{how:?}, before"));
            let targets = snapshot(&env.path("ext"));
            env.install_killed_at(point);
            // The next install finishes what the killed one left.
            let key = env.csr(&[]);
            env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
            env.assert_one_set(&when);
            let meta = fs::metadata(env.ssl(&format!("{NAME}.key"))).expect("key");
            assert_eq!(
                (meta.mode() & 0o777, meta.uid(), meta.gid()),
                (0o640, 0, gid("nogroup")),
                "{when}"
            );
            env.tool().args(["-q", "check"]).succeeds();
            for part in [".key", ".crt", "_chain.crt", "_combined.crt"] {
                let link = fs::read_link(env.ssl(&format!("{NAME}{part}"))).expect("a link");
                assert_eq!(
                    link,
                    Path::new(".sets")
                        .join(NAME)
                        .join("current")
                        .join(format!("{NAME}{part}")),
                    "{when}"
                );
            }
            assert_eq!(
                snapshot(&env.path("ext")),
                targets,
                "{when}: the admin's files are never written through"
            );
        }
    }
    // From pysk's own set, each crash point of a plain install.
    for point in ["set-written", "flipped"] {
        env.install_killed_at(point);
    }
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
    env.verify_installed();
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
fn hand_made_links_that_dangle_loop_or_lead_to_a_directory_are_refused_with_nothing_changed() {
    let Some(env) = Env::new() else { return };
    env.hand_made(HandMade::Links);
    let key = env.csr(&[]);
    let cert = env.file("leaf.pem", env.leaf(&key, &[NAME], 90));
    let live_key = env.ssl(&format!("{NAME}.key"));
    let cases = [
        ("../ext/gone.key", "missing"),
        ("www.example.org.key", "a loop of links"),
        ("../ext", "not a regular file"),
    ];
    for (target, why) in cases {
        fs::remove_file(&live_key).expect("rm");
        symlink(target, &live_key).expect("link");
        let before = snapshot(&env.path("ssl"));
        let out = env
            .install_files(&cert, &env.path("inter.pem"))
            .fails_with(65);
        assert_eq!(
            stderr(&out),
            format!(
                "pysk-ssl: {}: cannot read: a symbolic link to {target}, which is {why}; \
                 nothing changed\n",
                live_key.display()
            )
        );
        assert_eq!(snapshot(&env.path("ssl")), before, "{target}");
    }
}

#[test]
fn check_warns_nagios_style_about_a_certificate_expiring_soon() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    let cert = env.leaf(&key, &[NAME], 20);
    env.install(&cert).arg("--warn-days").arg("5").succeeds();
    let out = env.tool().arg("check").fails_with(1);
    assert_stderr(&out, "pysk-ssl: 1 of 1 certificate needs attention\n");
    let out = env.tool().args(["check", "--nagios"]).fails_with(1);
    let line = stdout(&out);
    assert!(
        line.starts_with("SSL WARNING - 1 warning of 1 certificate: www.example.org ("),
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
    assert!(stdout(&out).starts_with("SSL CRITICAL"));
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
    let plan = stdout(&out);
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
    assert_eq!(held.status.code(), Some(75), "{}", stderr(&held));
    assert_eq!(snapshot(&env.path("ssl")), before);
}

#[test]
fn the_reload_command_runs_after_an_install_without_a_shell() {
    let Some(env) = Env::new() else { return };
    let marker = env.path("reloaded");
    let semicolon = env.path(";");
    let touch = format!("touch {} {}", marker.display(), semicolon.display());
    env.switches(&[("ssl_reload_command", touch)]);
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
    assert!(marker.exists(), "touch ran");
    assert!(
        env.path(";").exists(),
        "no shell: ';' was touched as a file"
    );
    env.switches(&[("ssl_reload_command", "false".to_owned())]);
    let key = env.csr(&[]);
    let out = env.install(&env.leaf(&key, &[NAME], 90)).fails_with(69);
    assert_stderr(
        &out,
        "pysk-ssl: ssl_reload_command \"false\": exit status: 1 (); the files are installed\n",
    );
    env.verify_installed();
}

#[test]
fn served_catches_a_certificate_renewed_but_not_reloaded_plain_and_with_starttls() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 60)).succeeds();
    let old_servers = (env.serve(None), env.serve(Some(StartTls::Smtp)));
    let plain = old_servers.0.addr.to_string();
    let smtp = old_servers.1.addr.to_string();
    let served = |endpoint: &str, extra: &[&str]| {
        env.tool()
            .args(["served", endpoint, "--name", NAME, "--timeout", "5"])
            .args(extra)
    };
    let out = served(&plain, &[]).succeeds();
    assert_stderr_is(
        &out,
        &format!("pysk-ssl: {plain} ({NAME}): serves the installed {NAME}\n"),
    );
    served(&smtp, &["--starttls", "smtp"]).succeeds();
    // Renewed: the disk has a newer certificate, the servers the old one.
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
    for (endpoint, extra) in [(&plain, &[][..]), (&smtp, &["--starttls", "smtp"][..])] {
        let out = served(endpoint, extra).fails_with(1);
        assert_stderr(
            &out,
            "renewed but not reloaded: serves a certificate expiring",
        );
    }
    let out = served(&plain, &["--json"]).fails_with(1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["endpoints"][0]["installed"], false);
    assert_eq!(
        doc["endpoints"][0]["served"][1],
        format!("CN={}", env.inter.common_name())
    );
    drop(old_servers);
    let new_server = env.serve(None);
    let new = new_server.addr.to_string();
    served(&new, &[]).succeeds();
    // install's own probe after the reload: the same certificate again
    // passes, a renewal the server did not load is exit 1.
    env.switches(&[
        ("ssl_reload_command", "true".to_owned()),
        ("ssl_check_after_reload", new.clone()),
    ]);
    let same = fs::read_to_string(env.ssl(&format!("{NAME}.crt"))).expect("crt");
    let out = env.install(&same).succeeds();
    assert_stderr(
        &out,
        &format!("pysk-ssl: {new} ({NAME}): serves the installed {NAME}\n"),
    );
    let out = env.install(&env.leaf(&key, &[NAME], 120)).fails_with(1);
    assert_stderr(
        &out,
        "renewed but not reloaded: serves a certificate expiring",
    );
    let closed = pysk_tests::free_port();
    let out = served(&format!("127.0.0.1:{closed}"), &[]).fails_with(1);
    assert_stderr_is(
        &out,
        &format!("pysk-ssl: 127.0.0.1:{closed} ({NAME}): cannot connect: Connection refused\n"),
    );
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).expect("a JSON document")
}

#[test]
fn csr_and_install_print_their_json_documents_and_a_dry_run_the_would_be_one() {
    let Some(env) = Env::new() else { return };
    let (csr_file, pending) = (
        env.ssl(&format!("{NAME}.csr")),
        env.ssl(&format!("{NAME}_pending.key")),
    );
    let written = |dry_run: bool| {
        serde_json::json!({
            "version": 1,
            "name": NAME,
            "dry_run": dry_run,
            "sans": [NAME, "example.org"],
            "csr": csr_file,
            "key": pending,
            "new_key": "ec-p384",
        })
    };
    let args = ["csr", NAME, "--san", "example.org", "--key-type", "ec-p384"];
    let plan = env
        .tool()
        .args(args)
        .args(["--dry-run", "--json"])
        .succeeds();
    assert_eq!(json(&plan), written(true));
    assert!(!env.path("ssl").exists(), "a dry run creates nothing");
    let out = env.tool().args(args).arg("--json").succeeds();
    assert_eq!(json(&out), written(false));
    assert_stderr_is(&out, "");
    assert!(csr_file.exists() && pending.exists());

    let key = fs::read_to_string(&pending).expect("the pending key");
    let leaf = env.leaf(&key, &[NAME, "example.org"], 60);
    let installed = |dry_run: bool| {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::days(60);
        serde_json::json!({
            "version": 1,
            "name": NAME,
            "dry_run": dry_run,
            "dir": env.path("ssl"),
            "leaf": format!("CN={NAME}"),
            "expires": format!("{}", expires.date()),
            "intermediates": [format!("CN={}", env.inter.common_name())],
            "anchor": format!("CN={}", env.ca.common_name()),
            "key_from": pending,
            "reload": null,
            "acme_ended": false,
        })
    };
    let before = snapshot(&env.path("ssl"));
    let plan = env.install(&leaf).args(["--dry-run", "--json"]).succeeds();
    assert_eq!(json(&plan), installed(true));
    assert_eq!(
        before,
        snapshot(&env.path("ssl")),
        "a dry run changes nothing"
    );
    let out = env.install(&leaf).arg("--json").succeeds();
    assert_eq!(json(&out), installed(false));
    assert_stderr_is(&out, "");
    env.verify_installed();
}

#[test]
fn a_chain_with_a_cross_signed_root_is_installed_whole_for_either_anchor() {
    let Some(env) = Env::new() else { return };
    // The root of Env signs the intermediate; an older root cross-signed
    // it, and the bundle carries that cross-signed certificate last.
    let older = TestCa::new();
    let cross = env.ca.cross_signed_by(&older);
    let key = env.csr(&[]);
    let leaf = env.leaf(&key, &[NAME], 60);
    let chain = env.file("bundle.pem", format!("{}{cross}", env.inter.pem()));
    let served_chain = format!("{}{cross}", env.inter.pem());
    env.install_files(&env.file("leaf.pem", &leaf), &chain)
        .succeeds();
    let installed = fs::read_to_string(env.ssl(&format!("{NAME}_chain.crt"))).expect("chain");
    assert_eq!(installed, served_chain);
    env.verify_installed();

    // Trusting only the older root, the path goes through the cross-signed
    // certificate: the same chain is installed.
    let old_root = env.path("older-root.pem");
    older.write_root(&old_root);
    env.tool().args(["csr", NAME]).succeeds();
    let key = fs::read_to_string(env.ssl(&format!("{NAME}_pending.key"))).expect("key");
    let leaf = env.leaf(&key, &[NAME], 61);
    env.install_files(&env.file("leaf.pem", &leaf), &chain)
        .arg("--ca-file")
        .arg(&old_root)
        .succeeds();
    let installed = fs::read_to_string(env.ssl(&format!("{NAME}_chain.crt"))).expect("chain");
    assert_eq!(installed, served_chain);
    assert_eq!(
        openssl_verify(
            &env.openssl,
            &old_root,
            &env.ssl(&format!("{NAME}_chain.crt")),
            &env.ssl(&format!("{NAME}.crt"))
        ),
        Ok(())
    );
}

#[test]
fn a_refused_install_into_a_new_directory_creates_nothing() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    let leaf = env.leaf(&key, &["other.example.org"], 60);
    let fresh = env.path("fresh");
    let out = env.install(&leaf).arg("--dir").arg(&fresh).fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {NAME}: refused by the key check: {NAME} has no key: run csr first, or give --key; nothing changed\n"
        ),
    );
    assert!(!fresh.exists(), "no directory, no lock file");
}

#[test]
fn a_certificate_piped_in_is_installed_and_a_directory_refused() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    let leaf = env.leaf(&key, &[NAME], 60);
    env.tool()
        .args(["-q", "install", NAME, "--cert", "/dev/stdin", "--chain"])
        .arg(env.path("inter.pem"))
        .stdin(leaf.clone())
        .succeeds();
    assert_eq!(
        fs::read_to_string(env.ssl(&format!("{NAME}.crt"))).expect("the leaf"),
        leaf
    );
    env.verify_installed();
    let out = env
        .tool()
        .args(["install", NAME, "--cert"])
        .arg(env.path("ssl"))
        .fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-ssl: {}: not a file or a pipe\n",
            env.path("ssl").display()
        ),
    );
}

impl Env {
    /// Runs `openssl ARGS` in the scratch directory; it must succeed.
    fn openssl_run(&self, args: &[&str]) {
        let mut cmd = Command::new(&self.openssl);
        cmd.args(args).current_dir(self.dir.path());
        let out = run_bounded(cmd, Duration::from_secs(120));
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    }
}

#[test]
fn keys_made_by_openssl_are_installed_as_the_key_block_alone() {
    let Some(env) = Env::new() else { return };
    env.openssl_run(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-out",
        "ecparam.pem",
    ]);
    env.openssl_run(&["genrsa", "-traditional", "-out", "pkcs1.pem", "2048"]);
    env.openssl_run(&[
        "ecparam",
        "-genkey",
        "-name",
        "secp384r1",
        "-noout",
        "-out",
        "sec1.pem",
    ]);
    env.openssl_run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "pkcs8.pem",
    ]);
    let pkcs8 = fs::read_to_string(env.path("pkcs8.pem")).expect("pkcs8");
    let other = env
        .inter
        .leaf(&["other.example.org"], Validity::LEAF)
        .issued
        .cert;
    env.file(
        "noted.pem",
        format!("# the key of {NAME}, made 2024\n{pkcs8}\nsee the wiki\n{other}"),
    );
    let ecparam = fs::read_to_string(env.path("ecparam.pem")).expect("ecparam");
    assert!(
        ecparam.starts_with("-----BEGIN EC PARAMETERS-----\n"),
        "{ecparam}"
    );
    // What openssl writes from the key alone (in its traditional format,
    // or PKCS #8): the installed key's bytes.
    let cases = [
        ("ecparam.pem", true),
        ("pkcs1.pem", true),
        ("sec1.pem", true),
        ("noted.pem", false),
    ];
    for (file, traditional) in cases {
        let given = env.path(file);
        let args: &[&str] = if traditional {
            &["pkey", "-traditional", "-in"]
        } else {
            &["pkey", "-in"]
        };
        let alone = openssl_stdout(&env.openssl, args, &given);
        let as_pkcs8 = openssl_stdout(&env.openssl, &["pkey", "-in"], &given);
        let cert = env.file("leaf.pem", env.leaf(&as_pkcs8, &[NAME], 90));
        let before = fs::read(&given).expect("given");
        env.install_files(&cert, &env.path("inter.pem"))
            .arg("--key")
            .arg(&given)
            .succeeds();
        let installed = fs::read_to_string(env.ssl(&format!("{NAME}.key"))).expect("key");
        assert_eq!(installed, alone, "{file}");
        let meta = fs::metadata(env.ssl(&format!("{NAME}.key"))).expect("key");
        assert_eq!(
            (meta.mode() & 0o777, meta.uid(), meta.gid()),
            (0o640, 0, gid("nogroup")),
            "{file}"
        );
        assert_eq!(installed.matches("-----BEGIN ").count(), 1, "{file}");
        assert_eq!(
            openssl_public_key(&env.openssl, &env.ssl(&format!("{NAME}.key"))),
            openssl_public_key(&env.openssl, &cert),
            "{file}"
        );
        env.verify_installed();
        assert_eq!(fs::read(&given).expect("given"), before, "{file} kept");
    }
    // Two private keys in one file: which one is meant is not guessed.
    let two = env.file(
        "two.pem",
        format!(
            "{pkcs8}{}",
            fs::read_to_string(env.path("sec1.pem")).expect("sec1")
        ),
    );
    let as_pkcs8 = openssl_stdout(&env.openssl, &["pkey", "-in"], &env.path("pkcs8.pem"));
    let cert = env.file("leaf.pem", env.leaf(&as_pkcs8, &[NAME], 90));
    let before = snapshot(&env.path("ssl"));
    let out = env
        .install_files(&cert, &env.path("inter.pem"))
        .arg("--key")
        .arg(&two)
        .fails_with(65);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-ssl: {}: more than one private key in it (PEM blocks 1 and 2)\n",
            two.display()
        )
    );
    assert_eq!(snapshot(&env.path("ssl")), before);
}

#[test]
fn a_corrupt_pending_key_yields_to_a_live_key_that_matches_and_key_may_name_the_pending_key() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.install(&env.leaf(&key, &[NAME], 90)).succeeds();
    let (pending, live) = (
        env.ssl(&format!("{NAME}_pending.key")),
        env.ssl(&format!("{NAME}.key")),
    );
    let corrupt = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    fs::write(&pending, corrupt).expect("a corrupt pending key");
    // The live key matches: it wins, without a word about the pending one.
    let same = fs::read_to_string(env.ssl(&format!("{NAME}.crt"))).expect("crt");
    let out = env.install(&same).arg("--json").succeeds();
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(json(&out)["key_from"], live.display().to_string());
    assert_eq!(fs::read_to_string(&pending).expect("kept"), corrupt);
    env.verify_installed();
    // No key matches: the corrupt pending key is one of the reasons.
    let before = snapshot(&env.path("ssl"));
    let stranger = env.inter.leaf(&[NAME], Validity::LEAF);
    let out = env.install(&stranger.cert).fails_with(65);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-ssl: {NAME}: refused by the key check: the certificate does not match the key \
             {}; {}: not a usable private key (PEM, unencrypted RSA or ECDSA); nothing changed\n",
            live.display(),
            pending.display()
        )
    );
    assert_eq!(snapshot(&env.path("ssl")), before);
    // --key naming the pending key (spelt another way) takes it as such:
    // installed, then removed like a pending key found by itself.
    let key = env.csr(&[]);
    let spelt = env.path("ssl/./").join(format!("{NAME}_pending.key"));
    let out = env
        .install(&env.leaf(&key, &[NAME], 90))
        .arg("--key")
        .arg(&spelt)
        .arg("--json")
        .succeeds();
    assert_eq!(json(&out)["key_from"], spelt.display().to_string());
    assert!(!pending.exists(), "the pending key was taken");
    env.verify_installed();
    assert_eq!(
        openssl_public_key(&env.openssl, &live),
        openssl_public_key(&env.openssl, &env.file("new.key", &key))
    );
}

#[test]
fn a_key_piped_in_is_installed() {
    let Some(env) = Env::new() else { return };
    let leaf = env.inter.leaf(&[NAME], Validity::LEAF);
    let files = leaf.write(&env.path("given"), NAME);
    env.tool()
        .args(["-q", "install", NAME, "--key", "/dev/stdin", "--cert"])
        .arg(&files.cert)
        .arg("--chain")
        .arg(&files.chain)
        .stdin(leaf.key.clone())
        .succeeds();
    env.verify_installed();
}

#[test]
fn a_second_csr_keeps_the_pending_key_unless_told_and_an_exposed_key_is_adopted_private() {
    let Some(env) = Env::new() else { return };
    env.tool().args(["-q", "csr", NAME]).succeeds();
    let pending = env.ssl(&format!("{NAME}_pending.key"));
    let first = fs::read(&pending).expect("the pending key");
    for args in [&["csr", NAME][..], &["csr", NAME, "--dry-run"][..]] {
        let out = env.tool().args(args).fails_with(73);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-ssl: {}: a pending key is there already, its CSR perhaps at a CA: \
                 --reuse-key signs a new CSR with it, --new-key replaces it\n",
                pending.display()
            ),
        );
        assert_eq!(first, fs::read(&pending).expect("the pending key, kept"));
    }
    env.tool()
        .args(["-q", "csr", NAME, "--reuse-key"])
        .succeeds();
    assert_eq!(first, fs::read(&pending).expect("the pending key, reused"));
    env.tool().args(["-q", "csr", NAME, "--new-key"]).succeeds();
    assert_ne!(first, fs::read(&pending).expect("a new pending key"));

    // A key installed by hand that others may read: the set adopted from
    // it holds the key with the keys' mode and group.
    let leaf = env.inter.leaf(&[NAME], Validity::LEAF);
    let hand = env.path("hand");
    let files = leaf.write(&hand, NAME);
    fs::set_permissions(&files.key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let next = env
        .inter
        .leaf(&[NAME], Validity::LEAF)
        .write(&env.path("next"), NAME);
    env.tool()
        .args(["-q", "install", NAME, "--dir"])
        .arg(&hand)
        .arg("--cert")
        .arg(&next.cert)
        .arg("--chain")
        .arg(&next.chain)
        .arg("--key")
        .arg(&next.key)
        .succeeds();
    let adopted = hand.join(format!(".sets/{NAME}/0/{NAME}.key"));
    let meta = fs::metadata(&adopted).expect("the adopted key");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid("nogroup"));
}

#[test]
fn a_reload_command_that_cannot_run_is_found_before_anything_is_installed() {
    let Some(env) = Env::new() else { return };
    let key = env.csr(&[]);
    env.switches(&[(
        "ssl_reload_command",
        "/nonexistent/reload-servers now".to_owned(),
    )]);
    let leaf = env.leaf(&key, &[NAME], 60);
    for dry_run in [true, false] {
        let out = env
            .install(&leaf)
            .args(dry_run.then_some("--dry-run"))
            .fails_with(69);
        assert_stderr_is(
            &out,
            "pysk-ssl: ssl_reload_command \"/nonexistent/reload-servers now\": cannot run: no \
             program /nonexistent/reload-servers (nothing installed)\n",
        );
        assert!(!env.ssl(&format!("{NAME}.crt")).exists());
    }
    env.switches(&[
        ("ssl_reload_command", "true".to_owned()),
        ("ssl_check_after_reload", "127.0.0.1:4433".to_owned()),
    ]);
    let plan = env.install(&leaf).arg("--dry-run").succeeds();
    assert!(
        stdout(&plan).ends_with(&format!(
            "then run: true\nthen check that 127.0.0.1:4433 ({NAME}) serves it\n"
        )),
        "{}",
        stdout(&plan)
    );
}
