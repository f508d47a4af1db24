//! End-to-end tests of `pysk-ssl check` (and the text it shares with
//! `list` and `served`) on the directories admins really have: a FIFO
//! among the certificates, certificates whose subject carries control
//! characters.

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
        let env = Env { dir, inter };
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
                "SSL UNKNOWN - 2 of 3 certificates: {MAIL}: {}, stuck: {}\n",
                not_regular(&mail_chain),
                not_regular(&fifo)
            ),
            String::new()
        )
    );
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
    let problem = format!("chain: \"{escaped}\" is self-signed and not a trust anchor");
    assert_eq!(
        outcome(&env.check(&["--nagios"])),
        (
            Some(2),
            format!("SSL CRITICAL - 1 of 1 certificates: {name}: {problem}\n"),
            String::new()
        )
    );
    assert_eq!(
        outcome(&env.check(&["-q"])),
        (
            Some(1),
            String::new(),
            format!(
                "pysk-ssl: {name}: {problem}\n\
                 pysk-ssl: 1 of 1 certificates need attention\n"
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
