//! End-to-end tests of `pysk-ssl check` (and the text it shares with
//! `list` and `served`) on the directories admins really have: a FIFO
//! among the certificates, keys the monitoring user may not read, a
//! `NAME_combined.crt` that differs from `NAME.crt` and `NAME_chain.crt`,
//! a CA bundle kept beside the names, certificates whose subject carries
//! control characters, and `--nagios` speaking Nagios' codes for every
//! error of the run, its status line short and its long output a line per
//! flagged name.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair};

use pysk_tests::tls::{Intermediate, Leaf, SServer, TestCa, Validity, run_bounded};
use pysk_tests::{TempDir, TestCommand, require, scratch, stderr, stdout, tool};

/// How long a `check` may take: it reads a few files.
const BOUND: Duration = Duration::from_secs(20);

const WWW: &str = "www.example.org";
const MAIL: &str = "mail.example.org";

/// A scratch directory with switches pointing the tool at `ssl/`, the test
/// root (`root.pem`) as the only trust anchor, keys for the group `root`;
/// everything but the keys readable by any user, as on a server.
struct Env {
    dir: TempDir,
    ca: TestCa,
    inter: Intermediate,
}

impl Env {
    fn new() -> Env {
        let dir = scratch();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir(dir.path().join("ssl")).expect("ssl/");
        let ca = TestCa::new();
        let inter = ca.intermediate(Validity::CA);
        ca.write_root(&dir.path().join("root.pem"));
        let env = Env { dir, ca, inter };
        env.switches(&[]);
        env
    }

    /// Writes the switches of [`Env`] and `extra`.
    fn switches(&self, extra: &[(&str, String)]) {
        let mut switches = vec![
            ("ssl_dir", self.ssl("").display().to_string()),
            ("ssl_key_group", "root".to_owned()),
            ("ssl_ca_file", self.path("root.pem").display().to_string()),
        ];
        switches.extend_from_slice(extra);
        pysk_tests::write_switches(self.dir.path(), &switches);
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn ssl(&self, file: &str) -> PathBuf {
        self.path("ssl").join(file)
    }

    fn tool(&self) -> TestCommand {
        tool("pysk-ssl").config_dir(self.dir.path())
    }

    /// A leaf for `sans` from the intermediate, valid for 90 days.
    fn leaf(&self, sans: &[&str]) -> Leaf {
        self.inter.leaf(sans, Validity::LEAF)
    }

    /// `name`'s files as an admin lays them by hand: `NAME.crt`,
    /// `NAME_chain.crt`, `NAME_combined.crt` (leaf, then chain) and
    /// `NAME.key`, mode 0640, owner and group root.
    fn put(&self, name: &str, leaf: &Leaf) {
        fs::write(self.ssl(&format!("{name}.crt")), &leaf.cert).expect("crt");
        fs::write(self.ssl(&format!("{name}_chain.crt")), &leaf.chain).expect("chain");
        fs::write(self.ssl(&format!("{name}_combined.crt")), leaf.combined()).expect("combined");
        let key = self.ssl(&format!("{name}.key"));
        fs::write(&key, &leaf.key).expect("key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).expect("chmod key");
    }

    /// `check` with `args`, bounded in time.
    fn check(&self, args: &[&str]) -> Output {
        run_bounded(self.tool().arg("check").args(args).command(), BOUND)
    }
}

/// The run's exit code, its stdout and its stderr.
fn outcome(out: &Output) -> (Option<i32>, String, String) {
    (out.status.code(), stdout(out), stderr(out))
}

/// Each certificate's name, status and problems from `check --json`.
fn verdicts(out: &Output) -> Vec<(String, String, Vec<String>)> {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check --json");
    doc["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .map(|v| {
            let problems = v["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .map(|p| p.as_str().expect("a problem").to_owned())
                .collect();
            (
                v["name"].as_str().expect("name").to_owned(),
                v["status"].as_str().expect("status").to_owned(),
                problems,
            )
        })
        .collect()
}

fn owned(name: &str, status: &str, problems: &[&str]) -> (String, String, Vec<String>) {
    (
        name.to_owned(),
        status.to_owned(),
        problems.iter().map(|p| (*p).to_owned()).collect(),
    )
}

#[test]
fn a_fifo_in_the_directory_is_unknown_for_its_name_and_the_others_are_checked() {
    let Some(mkfifo) = require("mkfifo", "coreutils") else {
        return;
    };
    let env = Env::new();
    env.put(WWW, &env.leaf(&[WWW]));
    env.put(MAIL, &env.leaf(&[MAIL]));
    let fifo = env.ssl("stuck.crt");
    // A FIFO as a certificate, and one as another name's chain: opening
    // either for reading would wait for a writer forever.
    let mail_chain = env.ssl(&format!("{MAIL}_chain.crt"));
    fs::remove_file(&mail_chain).expect("rm chain");
    for path in [&fifo, &mail_chain] {
        let made = Command::new(&mkfifo).arg(path).status().expect("mkfifo");
        assert!(made.success());
    }
    let out = env.check(&["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let not_regular = |path: &Path| format!("{}: not a regular file", path.display());
    assert_eq!(
        verdicts(&out),
        vec![
            owned(MAIL, "unknown", &[&not_regular(&mail_chain)]),
            owned("stuck", "unknown", &[&not_regular(&fifo)]),
            owned(WWW, "ok", &[]),
        ]
    );
    let out = env.check(&["--nagios"]);
    assert_eq!(
        outcome(&out),
        (
            Some(3),
            format!(
                "SSL UNKNOWN - 2 unknown of 3 certificates: {MAIL} ({mail}), stuck ({stuck})\n\
                 UNKNOWN: {MAIL}: {mail}\n\
                 UNKNOWN: stuck: {stuck}\n",
                mail = not_regular(&mail_chain),
                stuck = not_regular(&fifo)
            ),
            String::new()
        )
    );
}

#[test]
fn nagios_reports_every_error_of_the_run_as_unknown() {
    let env = Env::new();
    env.put(WWW, &env.leaf(&[WWW]));
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(0),
            "SSL OK - 1 certificate\n".to_owned(),
            String::new()
        )
    );
    let unknown = |line: String| (Some(3), format!("SSL UNKNOWN - {line}\n"), String::new());
    // The directory missing.
    let gone = env.path("gone");
    env.switches(&[("ssl_dir", gone.display().to_string())]);
    let out = env.check(&[]);
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        unknown(format!(
            "{}: cannot read: No such file or directory",
            gone.display()
        ))
    );
    // A trust anchor file that is not one.
    env.switches(&[]);
    let bad_ca = env.path("bad-ca.pem");
    fs::write(&bad_ca, "not a certificate\n").expect("bad ca");
    assert_eq!(
        outcome(&env.check(&["--nagios", "--ca-file", bad_ca.to_str().expect("utf-8")])),
        unknown(format!("{}: no certificate in it", bad_ca.display()))
    );
    // A bad switch, and a bad value on the command line.
    env.switches(&[("ssl_warn_days", "soon".to_owned())]);
    let switches = env.path("serverconfig/default");
    let out = env.check(&["--nagios"]);
    assert_eq!(
        outcome(&out),
        unknown(format!(
            "{}:4: ssl_warn_days: \"soon\": expected a whole number from 0 to 36500",
            switches.display()
        ))
    );
    env.switches(&[]);
    assert_eq!(
        outcome(&env.check(&["--nagios", "--crit-days", "40"])),
        unknown("--crit-days: 40 is above the warning threshold 30".to_owned())
    );
    // A command line clap cannot parse is outside --nagios (its --help
    // says so): the usage error, exit 2.
    let out = env.check(&["--nagios", "--no-such-option"]);
    assert_eq!((out.status.code(), stdout(&out)), (Some(2), String::new()));
}

/// `cmd` run as `nobody` (group `nogroup`, no other groups), bounded.
fn as_nobody(setpriv: &Path, cmd: Command) -> Output {
    let mut wrapped = Command::new(setpriv);
    wrapped
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    run_bounded(wrapped, BOUND)
}

#[test]
fn a_key_the_monitoring_user_cannot_read_is_unknown_and_a_mismatch_stays_critical() {
    let Some(setpriv) = require("setpriv", "util-linux") else {
        return;
    };
    let env = Env::new();
    let www = env.leaf(&[WWW]);
    env.put(WWW, &www);
    // mail's key is another certificate's: a real mismatch, readable by
    // anyone so that nobody can see it is one.
    let mail = env.leaf(&[MAIL]);
    env.put(MAIL, &mail);
    let mail_key = env.ssl(&format!("{MAIL}.key"));
    fs::write(&mail_key, &env.leaf(&[MAIL]).key).expect("another key");
    fs::set_permissions(&mail_key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let www_key = env.ssl(&format!("{WWW}.key"));
    let mismatch = format!("{}: does not match the certificate", mail_key.display());
    // That any user can read it is critical too.
    let readable = format!(
        "key: {}: readable by others (mode 0644); run chmod 640 on it",
        mail_key.display()
    );
    // As root, www is fine.
    let out = env.check(&["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        verdicts(&out),
        vec![
            owned(MAIL, "critical", &[&mismatch, &readable]),
            owned(WWW, "ok", &[])
        ]
    );
    // As nobody: www's key (0640 root:root) cannot be read.
    let denied = format!("key: {}: cannot read: Permission denied", www_key.display());
    let out = as_nobody(&setpriv, env.tool().args(["check", "--json"]).command());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        verdicts(&out),
        vec![
            owned(MAIL, "critical", &[&mismatch, &readable]),
            owned(WWW, "unknown", &[&denied])
        ]
    );
    fs::write(&mail_key, &mail.key).expect("mail's own key");
    let out = as_nobody(&setpriv, env.tool().args(["check", "--nagios"]).command());
    assert_eq!(
        outcome(&out),
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical, 1 unknown of 2 certificates: {MAIL} ({readable}), \
                 {WWW} ({denied})\n\
                 CRITICAL: {MAIL}: {readable}\n\
                 UNKNOWN: {WWW}: {denied}\n"
            ),
            String::new()
        )
    );
}

#[test]
fn a_combined_file_that_is_not_the_leaf_then_the_chain_is_critical() {
    let env = Env::new();
    let leaf = env.leaf(&[WWW]);
    env.put(WWW, &leaf);
    let combined = env.ssl(&format!("{WWW}_combined.crt"));
    let check = |text: String| {
        fs::write(&combined, text).expect("combined");
        env.check(&["--nagios"])
    };
    let critical = |why: &str| {
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical of 1 certificate: {WWW} ({WWW}_combined.crt {why})\n\
                 CRITICAL: {WWW}: {WWW}_combined.crt {why}\n"
            ),
            String::new(),
        )
    };
    let ok = (
        Some(0),
        "SSL OK - 1 certificate\n".to_owned(),
        String::new(),
    );
    assert_eq!(outcome(&check(leaf.combined())), ok);
    assert_eq!(
        outcome(&check(leaf.reversed())),
        critical(&format!(
            "does not start with {WWW}.crt's certificate (it is certificate 2 of 2: \
             servers would present the chain in the wrong order)"
        ))
    );
    assert_eq!(
        outcome(&check(leaf.chain.clone())),
        critical(&format!(
            "does not start with {WWW}.crt's certificate (it holds no copy of it: \
             servers present another certificate)"
        ))
    );
    // The certificate before a renewal, still in the combined file.
    let older = env.leaf(&[WWW]);
    assert_eq!(
        outcome(&check(older.combined())),
        critical(&format!(
            "does not start with {WWW}.crt's certificate (it holds no copy of it: \
             servers present another certificate)"
        ))
    );
    assert_eq!(
        outcome(&check(leaf.cert.clone())),
        critical(&format!(
            "does not continue with {WWW}_chain.crt's certificates: 0 after the leaf, \
             1 in {WWW}_chain.crt"
        ))
    );
    let other = env.ca.intermediate(Validity::CA);
    assert_eq!(
        outcome(&check(format!("{}{}", leaf.cert, other.pem()))),
        critical(&format!(
            "does not continue with {WWW}_chain.crt's certificates: its certificate 2 \
             is not {WWW}_chain.crt's certificate 1"
        ))
    );
    // No combined file at all is no problem: not every server loads one.
    fs::remove_file(&combined).expect("rm combined");
    assert_eq!(outcome(&env.check(&["--nagios"])), ok);
}

/// A self-signed server certificate for `name` whose common name is
/// `cn`, and its key (PEM).
fn self_signed(name: &str, cn: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(90);
    let cert = params.self_signed(&key).expect("self-sign");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn control_characters_of_a_certificate_are_escaped_in_every_output() {
    let env = Env::new();
    let name = "evil.example.org";
    let (cert, key) = self_signed(name, "evil\nSSL OK - forged\x1b[2J\u{9b}31m\u{202e}\\x");
    let escaped = "CN=evil\\nSSL OK - forged\\x1b[2J\\u{9b}31m\\u{202e}\\\\x";
    let cert_file = env.ssl(&format!("{name}.crt"));
    let key_file = env.ssl(&format!("{name}.key"));
    fs::write(&cert_file, &cert).expect("crt");
    fs::write(&key_file, &key).expect("key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o640)).expect("chmod key");
    let problem = format!("chain: \"{escaped}\" is self-signed and not a trust anchor");
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical of 1 certificate: {name} ({problem})\n\
                 CRITICAL: {name}: {problem}\n"
            ),
            String::new()
        )
    );
    assert_eq!(
        outcome(&env.check(&["-q"])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: {name}: critical: {problem}\n\
                 pysk-ssl: 1 of 1 certificate needs attention\n"
            )
        )
    );
    assert_eq!(verdicts(&env.check(&["--json"]))[0].2, vec![problem]);
    let out = env.tool().arg("list").succeeds();
    let list = stdout(&out);
    let fields: Vec<&str> = list.trim_end_matches('\n').split('\t').collect();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert_eq!(fields[5], escaped, "{list}");
    // A server presenting it: what served prints of it is escaped too.
    let Some(server) = SServer::start(env.dir.path(), &cert_file, None, &key_file, None) else {
        return;
    };
    let endpoint = format!("127.0.0.1:{}", server.addr.port());
    let out = env
        .tool()
        .args(["served", &endpoint, "--name", name, "--timeout", "10"])
        .fails_with(1);
    let err = stderr(&out);
    assert!(!err.contains(['\x1b', '\u{9b}', '\u{202e}']), "{err:?}");
    assert!(
        err.starts_with(&format!(
            "pysk-ssl: {endpoint} ({name}): the served chain: \"{escaped}\" is self-signed"
        )),
        "{err}"
    );
    let out = env
        .tool()
        .args(["served", &endpoint, "--name", name, "--json"])
        .fails_with(1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["endpoints"][0]["served"], serde_json::json!([escaped]));
}

#[test]
fn a_ca_bundle_is_a_foreign_file_and_a_name_is_said_once() {
    let env = Env::new();
    // www's certificate is for another name.
    env.put(WWW, &env.leaf(&["other.example.org"]));
    let bundle = env.ssl("ca-bundle.crt");
    fs::write(&bundle, format!("{}{}", env.ca.root_pem(), env.inter.pem())).expect("bundle");
    let foreign = format!("{}: a CA certificate, not a server's", bundle.display());
    let names = "the certificate is for other.example.org";
    assert_eq!(
        outcome(&env.check(&["-q"])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: ca-bundle: unknown: {foreign}\n\
                 pysk-ssl: {WWW}: critical: {names}\n\
                 pysk-ssl: 2 of 2 certificates need attention\n"
            )
        )
    );
    assert_eq!(
        verdicts(&env.check(&["--json"])),
        vec![
            owned("ca-bundle", "unknown", &[&foreign]),
            owned(WWW, "critical", &[names]),
        ]
    );
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical, 1 unknown of 2 certificates: {WWW} ({names}), \
                 ca-bundle ({foreign})\n\
                 CRITICAL: {WWW}: {names}\n\
                 UNKNOWN: ca-bundle: {foreign}\n"
            ),
            String::new()
        )
    );
}

/// `YYYY-MM-DD` and the whole days left of `pem`'s certificate's end of
/// validity, read with x509-parser rather than the tool.
fn expiry_of(pem: &str) -> (String, i64) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let cert = block.parse_x509().expect("certificate");
    let at = cert.validity().not_after.timestamp();
    let date = time::OffsetDateTime::from_unix_timestamp(at)
        .expect("a date")
        .date();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (
        format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        (at - now).div_euclid(86_400),
    )
}

#[test]
fn the_nagios_line_says_which_certificate_expires_when() {
    let env = Env::new();
    let leaf = env.inter.leaf(&[WWW], Validity::days(-1, 20).midday());
    env.put(WWW, &leaf);
    let (date, days) = expiry_of(&leaf.cert);
    let expires = |limit: u32| {
        format!("\"CN={WWW}\" expires {date} (in {days} days; the limit is {limit} days)")
    };
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(1),
            format!(
                "SSL WARNING - 1 warning of 1 certificate: {WWW} ({0})\n\
                 WARNING: {WWW}: {0}\n",
                expires(30)
            ),
            String::new()
        )
    );
    assert_eq!(
        outcome(&env.check(&["--nagios", "--crit-days", "25", "--warn-days", "40"])),
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical of 1 certificate: {WWW} ({0})\n\
                 CRITICAL: {WWW}: {0}\n",
                expires(25)
            ),
            String::new()
        )
    );
    let out = env.check(&["--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        doc,
        serde_json::json!({
            "version": 1,
            "certificates": [{
                "name": WWW,
                "status": "warning",
                "expires": date,
                "days_left": days,
                "problems": [expires(30)],
            }],
            "attention": 1,
            "problems": [],
        })
    );
}

/// The private key of each form openssl writes, as `(name, file text)`:
/// PKCS #8, PKCS #1, SEC1 with and without `EC PARAMETERS` before it,
/// SEC1 without its public point, Ed25519.
fn openssl_keys(openssl: &Path, dir: &Path) -> Vec<(String, String)> {
    let run = |name: &str, args: &[&str]| {
        let file = dir.join(format!("{name}.pem"));
        let mut cmd = Command::new(openssl);
        // genrsa takes the size last.
        cmd.arg(args[0]).arg("-out").arg(&file).args(&args[1..]);
        let out = run_bounded(cmd, BOUND);
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
        (name.to_owned(), fs::read_to_string(&file).expect("the key"))
    };
    let mut keys = vec![
        run(
            "rsa-pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
        ),
        run("rsa-pkcs1", &["genrsa", "-traditional", "3072"]),
        run("ec-params", &["ecparam", "-name", "prime256v1", "-genkey"]),
        run(
            "ec-sec1",
            &["ecparam", "-name", "secp384r1", "-genkey", "-noout"],
        ),
        run(
            "ec-pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ],
        ),
        run(
            "ec-p521",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-521",
            ],
        ),
        run("ed25519", &["genpkey", "-algorithm", "ed25519"]),
    ];
    let sec1 = dir.join("ec-sec1.pem");
    keys.push(run(
        "ec-no-public",
        &["ec", "-no_public", "-in", sec1.to_str().expect("utf-8")],
    ));
    keys
}

/// The private key block of `text` alone (rcgen reads the first block).
fn key_block(text: &str) -> String {
    let start = text.find("-----BEGIN ").expect("a block");
    let start = if text[start..].starts_with("-----BEGIN EC PARAMETERS") {
        start
            + text[start..]
                .find("-----BEGIN EC PRIVATE")
                .expect("the key")
    } else {
        start
    };
    text[start..].to_owned()
}

#[test]
fn keys_in_every_form_openssl_writes_match_their_certificate_and_no_other() {
    let Some(openssl) = pysk_tests::tls::openssl() else {
        return;
    };
    let env = Env::new();
    let keys = openssl_keys(&openssl, env.dir.path());
    let names: Vec<String> = keys
        .iter()
        .map(|(form, _)| format!("{form}.example.org"))
        .collect();
    for ((_, text), name) in keys.iter().zip(&names) {
        let leaf = env
            .inter
            .leaf_with_key(&key_block(text), &[name], Validity::LEAF);
        env.put(name, &leaf);
        // The key as openssl wrote it, EC PARAMETERS and all.
        fs::write(env.ssl(&format!("{name}.key")), text).expect("key");
    }
    let mut sorted = names.clone();
    sorted.sort();
    let out = env.check(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ok: Vec<_> = sorted.iter().map(|name| owned(name, "ok", &[])).collect();
    assert_eq!(verdicts(&out), ok);
    // Each name given the next one's key: every one is caught.
    for (at, name) in names.iter().enumerate() {
        let (_, other) = &keys[(at + 1) % keys.len()];
        fs::write(env.ssl(&format!("{name}.key")), other).expect("key");
    }
    let out = env.check(&["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mismatched: Vec<_> = sorted
        .iter()
        .map(|name| {
            let key = env.ssl(&format!("{name}.key"));
            let why = format!("{}: does not match the certificate", key.display());
            owned(name, "critical", &[&why])
        })
        .collect();
    assert_eq!(verdicts(&out), mismatched);
}

#[test]
fn the_nagios_status_line_stays_short_and_the_long_output_names_every_one() {
    let env = Env::new();
    // 200 names of 70 characters: 150 expiring within 20 days, 50 of them
    // with another name's key too, and 10 that are fine.
    let name = |n: usize| format!("{n:03}-{}.example.org", "x".repeat(54));
    for n in 0..210 {
        let validity = if n < 200 {
            Validity::days(-1, 20).midday()
        } else {
            Validity::LEAF
        };
        env.put(&name(n), &env.inter.leaf(&[&name(n)], validity));
    }
    for n in (0..200).step_by(4) {
        let key = fs::read(env.ssl(&format!("{}.key", name(n)))).expect("key");
        fs::write(env.ssl(&format!("{}.key", name(n + 1))), key).expect("key");
    }
    let json = env.check(&["--json"]);
    let judged = verdicts(&json);
    assert_eq!(judged.len(), 210);
    let flagged: Vec<_> = judged
        .iter()
        .filter(|(_, status, _)| status != "ok")
        .collect();
    let critical: Vec<_> = flagged.iter().filter(|(_, s, _)| s == "critical").collect();
    let warning: Vec<_> = flagged.iter().filter(|(_, s, _)| s == "warning").collect();
    assert_eq!(
        (flagged.len(), critical.len(), warning.len()),
        (200, 50, 150)
    );
    let out = env.check(&["--nagios"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    let mut lines = text.lines();
    let first = lines.next().expect("a status line");
    let quoted =
        |(name, _, problems): &&&(String, String, Vec<String>)| format!("{name} ({})", problems[0]);
    assert_eq!(
        first,
        format!(
            "SSL CRITICAL - 50 critical, 150 warning of 210 certificates: {}, {}, {}, and 197 more",
            quoted(&critical[0]),
            quoted(&critical[1]),
            quoted(&critical[2])
        )
    );
    assert!(first.len() < 1_000, "{}", first.len());
    // The long output: every flagged name, critical ones first, all its
    // problems.
    let long: Vec<String> = critical
        .iter()
        .map(|v| ("CRITICAL", v))
        .chain(warning.iter().map(|v| ("WARNING", v)))
        .map(|(word, (name, _, problems))| format!("{word}: {name}: {}", problems.join("; ")))
        .collect();
    assert_eq!(lines.map(str::to_owned).collect::<Vec<_>>(), long);
}

/// The directory as `check` names it in its problems.
fn dir_shown(env: &Env) -> String {
    env.ssl("").display().to_string()
}

#[test]
fn a_key_others_may_read_or_write_is_critical_and_each_line_says_how_bad() {
    let env = Env::new();
    env.put(WWW, &env.leaf(&[WWW]));
    // mail expires in 20 days: a warning, said as one.
    let mail = env.inter.leaf(&[MAIL], Validity::days(-1, 20).midday());
    env.put(MAIL, &mail);
    let (date, days) = expiry_of(&mail.cert);
    let soon = format!("\"CN={MAIL}\" expires {date} (in {days} days; the limit is 30 days)");
    let www_key = env.ssl(&format!("{WWW}.key"));
    let open = |mode: u32, what: &str| {
        fs::set_permissions(&www_key, fs::Permissions::from_mode(mode)).expect("chmod");
        format!(
            "key: {}: {what} (mode {mode:04o}); run chmod 640 on it",
            www_key.display()
        )
    };
    let readable = open(0o644, "readable by others");
    assert_eq!(
        outcome(&env.check(&["-q"])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: {MAIL}: warning: {soon}\n\
                 pysk-ssl: {WWW}: critical: {readable}\n\
                 pysk-ssl: 2 of 2 certificates need attention\n"
            )
        )
    );
    assert_eq!(
        verdicts(&env.check(&["--json"])),
        vec![
            owned(MAIL, "warning", &[&soon]),
            owned(WWW, "critical", &[&readable]),
        ]
    );
    let writable = open(0o660, "writable by its group");
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical, 1 warning of 2 certificates: {WWW} ({writable}), \
                 {MAIL} ({soon})\n\
                 CRITICAL: {WWW}: {writable}\n\
                 WARNING: {MAIL}: {soon}\n"
            ),
            String::new()
        )
    );
    // The mode install writes, and the owner's alone, are fine: one name
    // needs attention, and the summary says so in the singular.
    for mode in [0o640, 0o600] {
        fs::set_permissions(&www_key, fs::Permissions::from_mode(mode)).expect("chmod");
        assert_eq!(
            outcome(&env.check(&["-q"])),
            (
                Some(1),
                String::new(),
                format!(
                    "pysk-ssl: {MAIL}: warning: {soon}\n\
                     pysk-ssl: 1 of 2 certificates needs attention\n"
                )
            )
        );
    }
    fs::remove_file(env.ssl(&format!("{WWW}.crt"))).expect("rm www");
    assert_eq!(
        outcome(&env.check(&["-q"])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: {MAIL}: warning: {soon}\n\
                 pysk-ssl: 1 of 1 certificate needs attention\n"
            )
        )
    );
}

#[test]
fn a_name_s_worst_problem_comes_first_on_the_status_line_and_in_every_list() {
    let Some(setpriv) = require("setpriv", "util-linux") else {
        return;
    };
    let env = Env::new();
    // Expires in 2 days (critical), and its key (0640 root:root) cannot
    // be read by nobody (unknown), a problem found before the expiry.
    let leaf = env.inter.leaf(&[WWW], Validity::days(-1, 2).midday());
    env.put(WWW, &leaf);
    let (date, days) = expiry_of(&leaf.cert);
    let expires = format!("\"CN={WWW}\" expires {date} (in {days} days; the limit is 7 days)");
    let www_key = env.ssl(&format!("{WWW}.key"));
    let denied = format!("key: {}: cannot read: Permission denied", www_key.display());
    let nobody = |args: &[&str]| as_nobody(&setpriv, env.tool().arg("check").args(args).command());
    assert_eq!(
        outcome(&nobody(&["--nagios"])),
        (
            Some(2),
            format!(
                "SSL CRITICAL - 1 critical of 1 certificate: {WWW} ({expires})\n\
                 CRITICAL: {WWW}: {expires}; {denied}\n"
            ),
            String::new()
        )
    );
    assert_eq!(
        outcome(&nobody(&["-q"])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: {WWW}: critical: {expires}\n\
                 pysk-ssl: {WWW}: unknown: {denied}\n\
                 pysk-ssl: 1 of 1 certificate needs attention\n"
            )
        )
    );
    assert_eq!(
        verdicts(&nobody(&["--json"])),
        vec![owned(WWW, "critical", &[&expires, &denied])]
    );
}

#[test]
fn a_reload_that_failed_after_an_install_is_critical_for_the_directory() {
    let env = Env::new();
    let www = env.inter.leaf(&[WWW], Validity::LEAF.midday());
    env.put(WWW, &www);
    let (www_date, www_days) = expiry_of(&www.cert);
    let ok = (
        Some(0),
        "SSL OK - 1 certificate\n".to_owned(),
        String::new(),
    );
    assert_eq!(outcome(&env.check(&["--nagios"])), ok);
    // What ssl_reload_command leaves when it fails after an install.
    let mark = env.ssl(".reload-pending");
    fs::write(&mark, "").expect("mark");
    let failed = format!(
        "ssl_reload_command failed after an install ({}): the servers may still serve the \
         old certificates",
        mark.display()
    );
    assert_eq!(
        outcome(&env.check(&[])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: critical: {failed}\n\
                 pysk-ssl: {WWW}: ok, expires {www_date} (in {www_days} days)\n"
            )
        )
    );
    let out = env.check(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["problems"], serde_json::json!([failed]));
    assert_eq!(doc["attention"], 0);
    assert_eq!(verdicts(&out), vec![owned(WWW, "ok", &[])]);
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(2),
            format!("SSL CRITICAL - {failed}; 1 certificate\nCRITICAL: {failed}\n"),
            String::new()
        )
    );
    // With a name's warning beside it.
    let soon = env.inter.leaf(&[MAIL], Validity::days(-1, 20).midday());
    env.put(MAIL, &soon);
    let (date, days) = expiry_of(&soon.cert);
    let expires = format!("\"CN={MAIL}\" expires {date} (in {days} days; the limit is 30 days)");
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(2),
            format!(
                "SSL CRITICAL - {failed}; 1 warning of 2 certificates: {MAIL} ({expires})\n\
                 CRITICAL: {failed}\n\
                 WARNING: {MAIL}: {expires}\n"
            ),
            String::new()
        )
    );
    // A reload that succeeds removes the mark: ok again.
    fs::remove_file(env.ssl(&format!("{MAIL}.crt"))).expect("rm mail");
    fs::remove_file(&mark).expect("rm mark");
    assert_eq!(outcome(&env.check(&["--nagios"])), ok);
}

#[test]
fn a_directory_without_certificates_is_unknown() {
    let env = Env::new();
    let none = format!("no certificates in {}", dir_shown(&env));
    assert_eq!(
        outcome(&env.check(&[])),
        (
            Some(1),
            String::new(),
            format!("pysk-ssl: unknown: {none}\n")
        )
    );
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(3),
            format!("SSL UNKNOWN - {none}\nUNKNOWN: {none}\n"),
            String::new()
        )
    );
    let out = env.check(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        doc,
        serde_json::json!({
            "version": 1,
            "certificates": [],
            "attention": 0,
            "problems": [none],
        })
    );
}
