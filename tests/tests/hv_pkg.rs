//! `pysk-hv packages` and `pysk-hv install` against OpenSSH servers
//! started by the test. Every alias is this machine, so hosts are made to
//! differ with a server whose sessions get a `PATH` starting with a
//! directory of fake programs (sshd's `SetEnv`): a `dpkg-query` that
//! reports another version of coreutils (or fails while a marker is
//! there), an `apt-cache` that knows one more package, an `apt-get` that
//! leaves a marker and fails, or marks an index refresh. Nothing is ever
//! installed or removed here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pysk_tests::sshd::Fleet;
use pysk_tests::{TempDir, require, scratch, stderr, stdout, tool, write_switches};

/// The version the fake `dpkg-query` reports for coreutils.
const FAKE: &str = "0.0-fake";

struct Setup {
    dir: TempDir,
    _fleet: Fleet,
}

impl Setup {
    /// h1 and h2 on one sshd, h3 (when `odd`) on one whose sessions find
    /// the fake programs first; `None` (outside CI) without OpenSSH or
    /// dpkg.
    fn new(odd: bool) -> Option<Setup> {
        let dpkg_query = require("dpkg-query", "dpkg")?;
        require("apt-get", "apt")?;
        let apt_cache = require("apt-cache", "apt")?;
        let dir = scratch();
        let fake = dir.path().join("fakebin");
        fake_programs(&fake, &dpkg_query, &apt_cache);
        let hosts: &[&str] = if odd {
            &["h1", "h2"]
        } else {
            &["h1", "h2", "h3"]
        };
        let mut fleet = Fleet::start(&dir.path().join("fleet"), hosts, 1)?;
        if odd {
            let path = format!("PATH={}:/usr/local/bin:/usr/bin:/bin", fake.display());
            fleet.add_with_env("h3", &path)?;
        }
        let config = dir.path().join("config");
        fs::create_dir_all(&config).expect("mkdir");
        fs::write(config.join("hosts"), "h1\nh2\nh3\n").expect("inventory");
        write_switches(&config, &fleet.hv_switches(&dir.path().join("state")));
        Some(Setup { dir, _fleet: fleet })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn hv(&self) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .env("SSH_AUTH_SOCK", "/nonexistent")
    }
}

/// A `dpkg-query` that passes the real one's output with coreutils's
/// version replaced (and fails while `dpkg-query.fails` is beside it), an
/// `apt-cache` that knows `pysk-fake-known` besides what the real one
/// knows, and an `apt-get` that simulates (`-s`) by naming its last word,
/// touches `apt-get.update` on `update`, and otherwise touches
/// `apt-get.ran` beside it and fails as apt-get does for an unknown
/// package.
fn fake_programs(dir: &Path, dpkg_query: &Path, apt_cache: &Path) {
    fs::create_dir_all(dir).expect("mkdir");
    let scripts = [
        (
            "dpkg-query",
            format!(
                "#!/bin/sh\n[ ! -e '{}' ] || exit 2\n\
                 '{}' \"$@\" | sed 's/\\tcoreutils\\t.*/\\tcoreutils\\t{FAKE}/'\n",
                dir.join("dpkg-query.fails").display(),
                dpkg_query.display()
            ),
        ),
        (
            "apt-cache",
            format!(
                "#!/bin/sh\n[ \"$2\" != pysk-fake-known ] || exit 0\nexec '{}' \"$@\"\n",
                apt_cache.display()
            ),
        ),
        (
            "apt-get",
            format!(
                "#!/bin/sh\ncase \"$*\" in *' -s '*) echo \"Inst ${{*##* }}\"; exit 0;;\n\
                 'update -q') touch '{}'; exit 0;; esac\n\
                 touch '{}'\necho \"E: Unable to locate package $*\" >&2\nexit 100\n",
                dir.join("apt-get.update").display(),
                dir.join("apt-get.ran").display()
            ),
        ),
    ];
    for (name, text) in scripts {
        let path = dir.join(name);
        fs::write(&path, text).expect("fake program");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// This machine's coreutils version, as dpkg has it.
fn coreutils() -> String {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "coreutils"])
        .output()
        .expect("dpkg-query runs");
    assert!(out.status.success(), "coreutils is installed");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn identical_hosts_make_one_column_and_no_row() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let out = setup.hv().args(["packages", "-w", "h[1-3]"]).succeeds();
    assert_eq!(stdout(&out), "PACKAGE  h[1-3]\n");
    let err = stderr(&out);
    assert!(
        err.starts_with("pysk-hv: 3 hosts: 3 ok; slowest: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn one_differing_package_makes_exactly_one_row() {
    let Some(setup) = Setup::new(true) else {
        return;
    };
    let real = coreutils();
    let out = setup.hv().args(["packages", "-w", "h[1-3]"]).succeeds();
    let w = real.len().max("h[1-2]".len());
    assert_eq!(
        stdout(&out),
        format!(
            "PACKAGE    {:w$}  h3\ncoreutils  {real:w$}  {FAKE}\n",
            "h[1-2]"
        )
    );
    let out = setup
        .hv()
        .args(["packages", "-w", "h[1-3]", "--baseline", "h1", "--json"])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["baseline"], "h1");
    assert_eq!(doc["groups"][0]["hosts"], serde_json::json!(["h1", "h2"]));
    assert_eq!(doc["groups"][1]["hosts"], serde_json::json!(["h3"]));
    assert_eq!(
        doc["rows"],
        serde_json::json!([{"package": "coreutils", "versions": [real, FAKE]}])
    );
    let out = setup
        .hv()
        .args(["packages", "-w", "h[1-3]", "--baseline", "h3"])
        .succeeds();
    let w = real.len().max("h[1-2]".len());
    assert_eq!(
        stdout(&out),
        format!(
            "PACKAGE    h3        {:w$}\ncoreutils  {FAKE:8}  {real}\n",
            "h[1-2]"
        )
        .lines()
        .map(|l| l.trim_end().to_owned() + "\n")
        .collect::<String>()
    );
    // Any case, as -w.
    let out = setup
        .hv()
        .args(["packages", "-w", "h[1-3]", "--baseline", "H3"])
        .succeeds();
    assert!(
        stdout(&out).starts_with("PACKAGE    h3 "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_baseline_not_picked_exits_2_before_any_host_and_one_not_ok_is_left_out() {
    let Some(setup) = Setup::new(true) else {
        return;
    };
    for (hosts, baseline, why) in [
        ("h[1-3]", "nope", "not in the inventory"),
        ("h[1-2]", "h3", "not among the hosts picked"),
    ] {
        let out = setup
            .hv()
            .args(["packages", "-w", hosts, "--baseline", baseline])
            .fails_with(2);
        assert_eq!(stdout(&out), "");
        assert_eq!(
            stderr(&out),
            format!("pysk-hv: --baseline {baseline}: {why}\n")
        );
        assert!(!setup.path("state/last-run.json").exists(), "no host run");
    }
    fs::write(setup.path("fakebin/dpkg-query.fails"), "").expect("marker");
    let out = setup
        .hv()
        .args(["packages", "-w", "h[1-3]", "--baseline", "h3"])
        .fails_with(1);
    assert_eq!(stdout(&out), "PACKAGE  h[1-2]\n");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "pysk-hv: --baseline h3: not ok, the matrix has no baseline",
            "pysk-hv: h3: exit 2",
        ],
        "{err}"
    );
    assert!(
        lines[2].starts_with("pysk-hv: 3 hosts: 2 ok, 1 exited non-zero; slowest: ")
            && lines.len() == 3,
        "{err}"
    );
    assert!(
        !setup.path("state/last-run.json").exists(),
        "packages only reads: nothing recorded"
    );
}

#[test]
fn a_package_present_everywhere_is_already_present_and_no_manager_runs() {
    let Some(setup) = Setup::new(true) else {
        return;
    };
    let real = coreutils();
    let out = setup
        .hv()
        .args(["install", "-w", "h[1-3]", "--update", "coreutils"])
        .succeeds();
    // (The fake dpkg-query changes only the listing of every package.)
    assert_eq!(stdout(&out), "", "what a real run did is no data");
    let expected: String = ["h1", "h2", "h3"]
        .iter()
        .map(|h| format!("pysk-hv: {h}: coreutils: already present ({real})\n"))
        .collect();
    let err = stderr(&out);
    let rest = err
        .strip_prefix(&expected)
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        rest.starts_with("pysk-hv: 3 hosts: 3 ok; slowest: "),
        "{err}"
    );
    assert!(!setup.path("fakebin/apt-get.ran").exists(), "apt-get ran");
    assert!(
        !setup.path("fakebin/apt-get.update").exists(),
        "nothing missing, nothing refreshed"
    );
    let out = setup
        .hv()
        .args(["install", "-q", "-w", "h3", "coreutils"])
        .succeeds();
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
}

#[test]
fn a_dry_run_simulates_and_an_unknown_name_is_told_per_package() {
    let Some(setup) = Setup::new(true) else {
        return;
    };
    let real = coreutils();
    let marker = setup.path("fakebin/apt-get.ran");
    let update = setup.path("fakebin/apt-get.update");
    // A dry run simulates for what is missing and known, on stdout, and
    // installs or refreshes nothing.
    let out = setup
        .hv()
        .args(["install", "--dry-run", "--update", "-w", "h3"])
        .args(["coreutils", "pysk-fake-known"])
        .succeeds();
    assert_eq!(
        stdout(&out),
        format!(
            "h3: coreutils: already present ({real})\n\
             h3: pysk-fake-known: would be installed\n"
        )
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("pysk-hv: h3: Inst pysk-fake-known\npysk-hv: 1 host: 1 ok;"),
        "{err}"
    );
    assert!(
        !marker.exists() && !update.exists(),
        "a dry run changed the host"
    );
    // Its JSON says it was a dry run, and keeps each host's stdout and
    // stderr as exec's does.
    let out = setup
        .hv()
        .args(["install", "--dry-run", "--json", "-w", "h3"])
        .args(["coreutils", "pysk-fake-known"])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["dry_run"], true, "{doc}");
    let host = &doc["hosts"][0];
    let script = format!(
        "pysk-hv-manager\tapt\npysk-hv-before\tcoreutils\t{real}\n\
         pysk-hv-before\tpysk-fake-known\t\npysk-hv-after\tcoreutils\t{real}\n\
         pysk-hv-after\tpysk-fake-known\t\n"
    );
    assert_eq!(host["stdout"], script.as_str(), "{doc}");
    assert_eq!(host["stderr"], "Inst pysk-fake-known\n", "{doc}");
    assert_eq!(doc["packages"]["h3"][1]["state"], "would be installed");

    // An unknown name is told apart and never reaches apt-get, which
    // installs the known one (and fails: the host's failure shows its own
    // words); --update refreshed the index first.
    let out = setup
        .hv()
        .args(["install", "--update", "-w", "h3"])
        .args(["pysk-no-such-package", "pysk-fake-known"])
        .fails_with(1);
    assert!(update.exists(), "apt-get update did not run");
    assert!(marker.exists(), "apt-get install did not run");
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "pysk-hv: h3: pysk-no-such-package: unknown package\n\
             pysk-hv: h3: pysk-fake-known: not installed\n\
             pysk-hv: h3: E: Unable to locate package install -y -q -o DPkg::Lock::Timeout=60 \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
             pysk-fake-known\npysk-hv: h3: exit 100\n"
        ),
        "{err}"
    );
    // Only unknown names: no manager runs, the host fails.
    fs::remove_file(&marker).expect("rm");
    let out = setup
        .hv()
        .args(["install", "-w", "h3", "pysk-no-such-package"])
        .fails_with(1);
    assert!(!marker.exists(), "apt-get ran for an unknown name");
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "pysk-hv: h3: pysk-no-such-package: unknown package\npysk-hv: h3: exit 1\n"
        ),
        "{err}"
    );
}

#[test]
fn a_bad_package_name_exits_65_before_any_host() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let out = setup
        .hv()
        .args(["install", "-w", "h1", "coreutils", "x;reboot"])
        .fails_with(65);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "pysk-hv: \"x;reboot\": not a package name\n");
    assert!(!setup.path("state/last-run.json").exists());
}
