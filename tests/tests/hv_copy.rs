//! `pysk-hv copy` and `pysk-hv fetch` against OpenSSH servers started by
//! the test (the aliases of a [`Fleet`], all on this machine): a file of
//! every byte value copied to every host arrives byte-exact with its mode
//! and comes back byte-exact into `DIR/<host>/` (a file past what is kept
//! in memory too); a closed host is
//! unreachable while the others succeed; a file a host lacks is that
//! host's failure, with cat's message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use pysk_tests::sshd::Fleet;
use pysk_tests::{TempDir, names_in, scratch, stderr, stdout, tool, write_switches};

/// The hosts of the inventory, each an alias of the fleet.
const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

/// A fleet, an inventory of its aliases and the switches that reach
/// them (its ssh configuration, its user, the state in the scratch dir).
struct Setup {
    dir: TempDir,
    fleet: Fleet,
}

impl Setup {
    /// `None` (outside CI) when OpenSSH is not installed; `closed` adds
    /// an alias `down` whose port nobody listens on.
    fn new(closed: bool) -> Option<Setup> {
        let dir = scratch();
        let mut fleet = Fleet::start(&dir.path().join("fleet"), &HOSTS, 1)?;
        let mut inventory = HOSTS.join("\n") + "\n";
        if closed {
            fleet.add_closed("down");
            inventory.push_str("down\n");
        }
        let config = dir.path().join("config");
        fs::create_dir_all(&config).expect("mkdir");
        fs::write(config.join("hosts"), inventory).expect("inventory");
        write_switches(&config, &fleet.hv_switches(&dir.path().join("state")));
        Some(Setup { dir, fleet })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn hv(&self) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .env("SSH_AUTH_SOCK", "/nonexistent")
    }

    /// Each host's class in `last-run.json`, in inventory order.
    fn last_run(&self) -> Vec<(String, String)> {
        let text = fs::read_to_string(self.path("state/last-run.json")).expect("last run");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        doc["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| {
                let field = |k: &str| h[k].as_str().expect(k).to_owned();
                (field("host"), field("class"))
            })
            .collect()
    }
}

/// 200 000 bytes holding every byte value, newlines and carriage
/// returns among them, and no newline at the end.
fn every_byte() -> Vec<u8> {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(bytes.last(), Some(&((199_999u32 * 7 % 256) as u8)));
    bytes
}

/// The source file, mode 0640, in the scratch directory.
fn source(setup: &Setup) -> (PathBuf, Vec<u8>) {
    let src = setup.path("payload.bin");
    let bytes = every_byte();
    fs::write(&src, &bytes).expect("source");
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).expect("chmod");
    (src, bytes)
}

fn pairs(classes: &[(&str, &str)]) -> Vec<(String, String)> {
    classes
        .iter()
        .map(|(h, c)| ((*h).to_owned(), (*c).to_owned()))
        .collect()
}

#[test]
fn a_file_of_every_byte_goes_to_every_host_and_comes_back_byte_exact() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let (src, bytes) = source(&setup);
    let remote = setup.path("remote");
    fs::create_dir_all(&remote).expect("mkdir");
    let dest = remote.join("payload.copy");
    let out = setup
        .hv()
        .args(["copy", "-w", "h[1-3]"])
        .arg(&src)
        .arg(&dest)
        .succeeds();
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with("pysk-hv: 3 hosts: 3 ok; slowest: ") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(fs::read(&dest).expect("copied"), bytes);
    let mode = fs::metadata(&dest).expect("copied").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(
        names_in(&remote),
        ["payload.copy"],
        "no temporary file left"
    );
    assert_eq!(
        setup.last_run(),
        pairs(&[("h1", "ok"), ("h2", "ok"), ("h3", "ok")])
    );

    let fetched = setup.path("fetched");
    let out = setup
        .hv()
        .args(["fetch", "-w", "h[1-3]", "--json"])
        .arg(&dest)
        .arg(&fetched)
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["counts"], serde_json::json!({"ok": 3}));
    assert_eq!(names_in(&fetched), HOSTS);
    for host in HOSTS {
        let dir = fetched.join(host);
        assert_eq!(names_in(&dir), ["payload.copy"], "{host}");
        assert_eq!(fs::read(dir.join("payload.copy")).expect("fetched"), bytes);
        let mode = fs::metadata(dir.join("payload.copy"))
            .expect("fetched")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{host}");
        let mode = fs::metadata(&dir).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{host}");
    }
    fetch_past_what_is_kept_in_memory(&setup);
}

/// A file of 3 MiB, past the 1 MiB a stream kept in memory, comes back
/// whole: fetch writes it as it comes.
fn fetch_past_what_is_kept_in_memory(setup: &Setup) {
    let big = setup.path("big");
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    fs::write(&big, &bytes).expect("big");
    let fetched = setup.path("fetched-big");
    setup
        .hv()
        .args(["fetch", "-w", "h1"])
        .arg(&big)
        .arg(&fetched)
        .succeeds();
    assert_eq!(names_in(&fetched.join("h1")), ["big"]);
    assert!(
        fs::read(fetched.join("h1/big")).expect("fetched") == bytes,
        "the fetched file differs"
    );
}

#[test]
fn a_closed_host_is_unreachable_while_the_others_get_the_file() {
    let Some(setup) = Setup::new(true) else {
        return;
    };
    let (src, bytes) = source(&setup);
    let dest = setup.path("into");
    fs::create_dir_all(&dest).expect("mkdir");
    let refused = format!(
        "pysk-hv: down: unreachable: ssh: connect to host 127.0.0.1 port {}: Connection refused",
        setup.fleet.port("down")
    );
    let out = setup
        .hv()
        .args(["copy", "-w", "h[1-3],down"])
        .arg(&src)
        .arg(&dest)
        .fails_with(1);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], refused, "{err}");
    assert!(
        lines[1].starts_with("pysk-hv: 4 hosts: 3 ok, 1 unreachable; slowest: "),
        "{err}"
    );
    assert_eq!(lines.len(), 2, "{err}");
    // A directory DEST gets SRC's name inside it.
    assert_eq!(fs::read(dest.join("payload.bin")).expect("copied"), bytes);
    let classes = [
        ("h1", "ok"),
        ("h2", "ok"),
        ("h3", "ok"),
        ("down", "unreachable"),
    ];
    assert_eq!(setup.last_run(), pairs(&classes));

    let fetched = setup.path("fetched");
    let out = setup
        .hv()
        .args(["fetch", "-w", "h[1-3],down"])
        .arg(dest.join("payload.bin"))
        .arg(&fetched)
        .fails_with(1);
    assert_eq!(stderr(&out).lines().next(), Some(refused.as_str()));
    assert_eq!(names_in(&fetched), HOSTS, "nothing for the closed host");
    for host in HOSTS {
        let file = fetched.join(host).join("payload.bin");
        assert_eq!(fs::read(file).expect("fetched"), bytes, "{host}");
    }
    assert_eq!(setup.last_run(), pairs(&classes));
}

#[test]
fn a_file_the_host_lacks_is_that_hosts_failure_with_cats_message() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let missing = setup.path("missing");
    let fetched = setup.path("fetched");
    let out = setup
        .hv()
        .args(["fetch", "-w", "h1"])
        .arg(&missing)
        .arg(&fetched)
        .fails_with(1);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("h1: cat: {}: No such file or directory", missing.display()),
            "pysk-hv: h1: exit 1".to_owned(),
        ],
        "{err}"
    );
    assert!(
        lines[2].starts_with("pysk-hv: 1 host: 1 exited non-zero; slowest: h1 "),
        "{err}"
    );
    assert_eq!(lines.len(), 3, "{err}");
    assert!(!fetched.exists(), "nothing written for a failed host");
    assert_eq!(setup.last_run(), pairs(&[("h1", "exit")]));
}

#[test]
fn a_directory_to_copy_is_a_usage_error_before_any_host() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let out = setup
        .hv()
        .args(["copy", "-w", "h1"])
        .arg(setup.path("config"))
        .arg("/tmp/x")
        .fails_with(2);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-hv: {}: a directory (copy takes a file)\n",
            setup.path("config").display()
        )
    );
    assert!(!setup.path("state").exists(), "no run recorded");
}
