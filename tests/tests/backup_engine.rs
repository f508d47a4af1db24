//! `pysk-backup` run, restore, list, status, verify against the real
//! duplicity (to a `file://` target) and restic (a local repository),
//! both in scratch directories with a 0600 passphrase file: restored
//! files compared byte for byte with the source, tampered volumes and
//! packs, retention, the lock, notifications, and the passphrase in no
//! command line and in no environment but the engine's.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pysk_tests::backup::{environments_holding, grow};
use pysk_tests::{TempDir, require, scratch, secret_file, stdout, tool, write_switches};
use serde_json::Value;

/// A source tree, a target, a state directory and switches for one engine.
struct Env {
    dir: TempDir,
    engine: &'static str,
    /// This environment's own passphrase: the scan of every process's
    /// environment finds no other test's engine holding it.
    passphrase: String,
}

impl Env {
    fn new(engine: &'static str, extra: &[(&str, String)]) -> Option<Env> {
        require(engine, engine)?;
        require("gpgconf", "gnupg")?;
        let dir = scratch();
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let passphrase = format!(
            "canary-{engine}-{}-{}",
            std::process::id(),
            name.expect("a named scratch directory")
        );
        let env = Env {
            dir,
            engine,
            passphrase,
        };
        make_tree(&env.src());
        env.good_passphrase();
        let notify = env.path("notify.sh");
        fs::write(
            &notify,
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$(dirname \"$0\")/notify.log\"\n",
        )
        .expect("write the notify script");
        fs::set_permissions(&notify, fs::Permissions::from_mode(0o755)).expect("chmod");
        env.switches(extra);
        Some(env)
    }

    fn switches(&self, extra: &[(&str, String)]) {
        // restic's own local form is the path; file:// is taken too.
        let target = format!("file://{}", self.path("target").display());
        let mut switches = vec![
            ("backup_engine", self.engine.to_owned()),
            ("backup_source", self.src().display().to_string()),
            ("backup_target", target),
            ("backup_state_dir", self.state().display().to_string()),
            (
                "backup_passphrase_file",
                self.path("passphrase").display().to_string(),
            ),
            // Below the source, as a run requires.
            (
                "backup_dump_dir",
                self.src().join("dumps").display().to_string(),
            ),
            // No database server here: the run's dump step has none to dump.
            ("db_pg_socket_dir", self.path("no-pg").display().to_string()),
            (
                "db_mysql_socket",
                self.path("no-mysqld.sock").display().to_string(),
            ),
            (
                "backup_exclude",
                format!("/proc {}", self.src().join("skip").display()),
            ),
            (
                "backup_notify_command",
                format!("{} arg1", self.path("notify.sh").display()),
            ),
        ];
        for (key, value) in extra {
            switches.retain(|(k, _)| k != key);
            switches.push((key, value.clone()));
        }
        write_switches(&self.path("config"), &switches);
    }

    /// Puts this environment's passphrase back into its file.
    fn good_passphrase(&self) {
        secret_file(&self.path("passphrase"), &format!("{}\n", self.passphrase));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn src(&self) -> PathBuf {
        self.path("src")
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn tool(&self) -> pysk_tests::TestCommand {
        tool("pysk-backup").config_dir(&self.path("config"))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.tool().args(args).arg("--json").succeeds();
        let doc: Value = serde_json::from_str(&stdout(&out)).expect("a JSON document");
        assert_eq!(doc["version"], 1, "{doc}");
        doc
    }

    fn notified(&self) -> String {
        fs::read_to_string(self.path("notify.log")).unwrap_or_default()
    }

    /// Restores `path` as at `time` into a fresh directory; its root.
    fn restore(&self, path: &str, time: Option<&str>, name: &str) -> PathBuf {
        let to = self.path(name);
        let mut cmd = self.tool().args(["restore", path, "--to"]).arg(&to);
        if let Some(time) = time {
            cmd = cmd.args(["--time", time]);
        }
        let out = cmd.succeeds();
        assert!(stdout(&out).is_empty());
        to
    }
}

/// Binary, empty, a symbolic link, nested directories, and `skip/`
/// (excluded).
fn make_tree(src: &Path) {
    fs::create_dir_all(src.join("etc/deep/er")).expect("mkdir");
    fs::create_dir_all(src.join("skip")).expect("mkdir");
    let mut state = 0x2545_f491_u32;
    let binary: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    fs::write(src.join("etc/deep/er/blob.bin"), binary).expect("write");
    fs::write(src.join("etc/deep/config"), "version one\n").expect("write");
    fs::write(src.join("empty"), "").expect("write");
    fs::write(src.join("skip/secret-scratch"), "left out\n").expect("write");
    std::os::unix::fs::symlink("etc/deep/config", src.join("link")).expect("symlink");
}

/// Every file below `dir` (paths relative to it), with its bytes or link
/// target.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir").flatten() {
            let (path, kind) = (entry.path(), entry.file_type().expect("file type"));
            let rel = path.strip_prefix(dir).expect("below").display().to_string();
            if kind.is_dir() {
                all.push((rel + "/", Vec::new()));
                todo.push(path);
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).expect("readlink");
                all.push((rel, format!("-> {}", target.display()).into_bytes()));
            } else {
                all.push((rel, fs::read(&path).expect("read")));
            }
        }
    }
    // The dump directory (empty sets here: no database server) is
    // backup_run's to compare.
    all.retain(|(p, _)| !p.starts_with("dumps"));
    all.sort();
    all
}

/// Asserts two trees are equal, naming paths and sizes (not bytes) when
/// they are not.
fn assert_same(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)]) {
    let show = |t: &[(String, Vec<u8>)]| {
        t.iter()
            .map(|(p, b)| format!("{p} ({} bytes)", b.len()))
            .collect::<Vec<_>>()
    };
    assert!(
        got == want,
        "restored {:?}\nexpected {:?}",
        show(got),
        show(want)
    );
}

/// The source as it should come back: all but `skip/`.
fn expected(src: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = tree(src);
    all.retain(|(p, _)| !p.starts_with("skip"));
    all
}

fn listed(env: &Env, time: Option<&str>) -> Vec<String> {
    let mut args = vec!["list"];
    args.extend(time.iter().flat_map(|t| ["--time", *t]));
    let doc = env.json(&args);
    let mut paths: Vec<String> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_owned())
        .filter(|p| !p.starts_with("dumps"))
        .collect();
    paths.sort();
    paths
}

const LISTED: [&str; 8] = [
    "empty",
    "etc",
    "etc/deep",
    "etc/deep/config",
    "etc/deep/er",
    "etc/deep/er/blob.bin",
    "link",
    "new-file",
];

/// Flips one byte in the middle of `file`.
fn tamper(file: &Path) {
    let mut bytes = fs::read(file).expect("read the volume");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(file, bytes).expect("write the volume");
}

fn files_in(dir: &Path, contains: &str) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().contains(contains) {
                all.push(path);
            }
        }
    }
    all.sort();
    all
}

/// Pids whose command line contains `needle`.
fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
        })
        .collect()
}

/// Waits (at most five seconds) until no gpg-agent of `home` runs.
fn no_agent_of(home: &Path) -> bool {
    let needle = home.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let agents: Vec<u32> = pids_with_cmdline(&needle)
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains("gpg-agent"))
            })
            .collect();
        if agents.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn change_source(src: &Path) {
    fs::write(src.join("etc/deep/config"), "version two\n").expect("write");
    fs::write(src.join("new-file"), [0u8, 1, 2, 255]).expect("write");
}

#[test]
fn duplicity_backs_up_restores_both_versions_lists_verifies_and_prunes() {
    let Some(env) = Env::new("duplicity", &[("backup_keep_full", "1".into())]) else {
        return;
    };
    let first = env.json(&["run"]);
    assert_eq!(first["backup"]["kind"], "full", "{first}");
    assert_eq!(env.notified(), "arg1 start\narg1 success\n");
    let stamp: Value =
        serde_json::from_slice(&fs::read(env.state().join("last-success.json")).expect("stamp"))
            .expect("json");
    assert_eq!(
        (&stamp["version"], &stamp["engine"], &stamp["backup"]),
        (&1.into(), &"duplicity".into(), &first["backup"])
    );
    assert!(
        no_agent_of(&env.state().join("gnupg")),
        "a gpg-agent outlived the run"
    );
    let v1 = expected(&env.src());
    std::thread::sleep(Duration::from_millis(1100));
    change_source(&env.src());
    // What a killed duplicity left in its temporary directory.
    let stale = env.state().join("tmp/duplicity-stale-tempdir");
    fs::create_dir_all(&stale).expect("mkdir");
    fs::write(stale.join("mktemp-vol1"), "partial volume").expect("write");
    let second = env.json(&["run"]);
    assert_eq!(second["backup"]["kind"], "incremental", "{second}");
    let tmp = fs::read_dir(env.state().join("tmp")).expect("<state>/tmp");
    assert_eq!(tmp.count(), 0, "the temporary directory is emptied");
    let (t1, t2) = (
        first["backup"]["id"].as_str().expect("id"),
        second["backup"]["id"].as_str().expect("id"),
    );

    assert_same(&tree(&env.restore(".", Some(t1), "r1")), &v1);
    assert_same(&tree(&env.restore("/", None, "r2")), &expected(&env.src()));
    let one = env.restore("etc/deep/config", Some(t1), "r3");
    assert_same(
        &tree(&one),
        &[
            ("etc/".into(), vec![]),
            ("etc/deep/".into(), vec![]),
            ("etc/deep/config".into(), b"version one\n".to_vec()),
        ],
    );
    env.tool()
        .args(["restore", "etc", "--to"])
        .arg(env.path("r2"))
        .fails_with(65);
    let out = env
        .tool()
        .args(["restore", "no/such", "--to"])
        .arg(env.path("r4"))
        .fails_with(65);
    assert_eq!(
        pysk_tests::stderr(&out),
        "pysk-backup: no/such not found in archive - no files restored; nothing changed\n"
    );
    assert!(!env.path("r4").exists(), "nothing restored, nothing made");
    times_are_checked_before_duplicity_runs(&env);

    assert_eq!(listed(&env, None), LISTED);
    assert_eq!(listed(&env, Some(t1)), LISTED[..7]);
    let status = env.json(&["status"]);
    assert_eq!(
        (
            &status["engine"],
            &status["last_full"],
            &status["last_incremental"]
        ),
        (&"duplicity".into(), &t1.into(), &t2.into()),
        "{status}"
    );
    assert_eq!(status["chains"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["chains"][0]["complete"], true);
    assert_eq!(
        status["chains"][0]["sets"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(
        status["bytes"].as_u64().is_some_and(|b| b > 1000),
        "{status}"
    );
    assert_eq!(status["last_success"]["backup"], second["backup"]);

    let quiet = env.tool().args(["-q", "verify"]).succeeds();
    assert_eq!((quiet.stdout.len(), quiet.stderr.len()), (0, 0));
    fs::write(env.src().join("empty"), "not any more\n").expect("write");
    let compared = env.json(&["verify", "--compare-data"]);
    let changed = compared["changed"].as_array().expect("changed");
    assert!(
        changed.len() == 1 && changed[0].as_str().is_some_and(|c| c.contains("empty")),
        "{compared}"
    );

    let proven: Value =
        serde_json::from_slice(&fs::read(env.state().join("verified.json")).expect("stamp"))
            .expect("json");
    assert_eq!(
        (&proven["engine"], &proven["backup"]),
        (&"duplicity".into(), &t1.into())
    );

    // A new full chain with keep_full 1: the verified chain stays until
    // the new one is verified too; then the older chain is pruned.
    env.switches(&[
        ("backup_keep_full", "1".into()),
        ("backup_full_if_older_than", "1s".into()),
    ]);
    std::thread::sleep(Duration::from_millis(1100));
    let third = env.json(&["run"]);
    assert_eq!(third["backup"]["kind"], "full", "{third}");
    assert_eq!(third["pruned"]["removed"], serde_json::json!([]), "{third}");
    let out = env.tool().args(["-v", "verify"]).succeeds();
    let target = format!("file://{}", env.path("target").display());
    assert_eq!(
        pysk_tests::stderr(&out),
        format!(
            "pysk-backup: verifying {target} with duplicity: every volume of the newest chain \
             read, decrypted and checked against its manifest\n\
             pysk-backup: proven: {}, kept by retention until a newer backup is proven\n\
             pysk-backup: {target}: the backup is intact\n",
            third["backup"]["id"].as_str().expect("id")
        )
    );
    std::thread::sleep(Duration::from_millis(1100));
    let fourth = env.json(&["run"]);
    let removed: Vec<&str> = fourth["pruned"]["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|s| s["time"].as_str().expect("time"))
        .collect();
    assert_eq!(removed, [t1, t2]);
    let status = env.json(&["status"]);
    let fulls: Vec<&Value> = status["chains"]
        .as_array()
        .expect("chains")
        .iter()
        .map(|c| &c["sets"][0]["time"])
        .collect();
    assert_eq!(fulls, [&third["backup"]["id"], &fourth["backup"]["id"]]);
    assert_eq!(status["last_full"], fourth["backup"]["id"]);
    assert_same(&tree(&env.restore(".", None, "r5")), &expected(&env.src()));

    busy_elsewhere_and_a_wrong_passphrase(&env);

    let stamp = fourth["backup"]["id"]
        .as_str()
        .expect("id")
        .replace(['-', ':'], "");
    let volumes = files_in(
        &env.path("target"),
        &format!("full.{stamp}.vol1.difftar.gpg"),
    );
    tamper(&volumes[0]);
    let out = env.tool().arg("verify").fails_with(1);
    let err = pysk_tests::stderr(&out);
    assert!(
        err.contains("the backup is damaged: Invalid data - SHA1 hash mismatch"),
        "{err}"
    );
    assert!(
        no_agent_of(&env.state().join("gnupg")),
        "a gpg-agent outlived verify"
    );
}

#[test]
fn restic_backs_up_restores_both_snapshots_lists_verifies_and_prunes() {
    let Some(env) = Env::new("restic", &[]) else {
        return;
    };
    let first = env.json(&["run"]);
    assert_eq!(first["backup"]["kind"], "snapshot", "{first}");
    assert!(
        env.path("target/config").is_file(),
        "the repository was initialised"
    );
    let id1 = first["backup"]["id"].as_str().expect("id").to_owned();
    let v1 = expected(&env.src());
    assert_same(&tree(&env.restore(".", Some(&id1), "r1")), &v1);
    change_source(&env.src());
    let second = env.json(&["run"]);
    assert_eq!(
        env.notified(),
        "arg1 start\narg1 success\narg1 start\narg1 success\n"
    );
    // Snapshots of one day: keep-daily keeps the newest only.
    let removed = second["pruned"]["removed"].as_array().expect("removed");
    assert!(
        removed.len() == 1
            && removed[0]["id"]
                .as_str()
                .is_some_and(|i| i.starts_with(&id1)),
        "{second}"
    );
    let id2 = second["backup"]["id"].as_str().expect("id");
    let out = env
        .tool()
        .args(["restore", ".", "--time", &id1, "--to"])
        .arg(env.path("r0"))
        .fails_with(65);
    assert_eq!(
        pysk_tests::stderr(&out),
        format!(
            "pysk-backup: no such snapshot here: invalid id \"{id1}\": \
             no matching ID found for prefix \"{id1}\"; nothing changed\n"
        )
    );
    assert!(!env.path("r0").exists(), "nothing restored, nothing made");
    snapshots_are_checked_before_restic_runs(&env);
    assert_same(
        &tree(&env.restore(".", Some(id2), "r2")),
        &expected(&env.src()),
    );
    let one = env.restore("etc/deep/er/blob.bin", None, "r3");
    let blob: Vec<_> = v1
        .iter()
        .filter(|(p, _)| "etc/deep/er/blob.bin".starts_with(p.as_str()))
        .cloned()
        .collect();
    assert_same(&tree(&one), &blob);
    let out = env
        .tool()
        .args(["restore", "no/such", "--to"])
        .arg(env.path("r4"))
        .fails_with(65);
    assert_eq!(
        pysk_tests::stderr(&out),
        "pysk-backup: no/such: not in the backup; nothing changed\n"
    );
    assert!(!env.path("r4").exists(), "nothing restored, nothing made");
    fs::create_dir(env.path("full")).expect("mkdir");
    fs::write(env.path("full/x"), "").expect("write");
    env.tool()
        .args(["restore", "etc", "--to"])
        .arg(env.path("full"))
        .fails_with(65);

    another_hosts_snapshot(&env);
    assert_eq!(listed(&env, None), LISTED);
    let status = env.json(&["status"]);
    let sets = status["chains"][0]["sets"].as_array().expect("sets");
    assert!(
        sets.len() == 1 && sets[0]["id"].as_str().is_some_and(|i| i.starts_with(id2)),
        "{status}"
    );
    assert_eq!(
        (&status["engine"], &status["last_full"]),
        (&"restic".into(), &sets[0]["time"])
    );
    assert!(
        status["bytes"].as_u64().is_some_and(|b| b > 100_000),
        "{status}"
    );

    let quiet = env.tool().args(["-q", "verify"]).succeeds();
    assert_eq!((quiet.stdout.len(), quiet.stderr.len()), (0, 0));
    fs::write(env.src().join("empty"), "not any more\n").expect("write");
    let compared = env.json(&["verify", "--compare-data"]);
    assert_eq!(
        compared["changed"],
        serde_json::json!(["empty"]),
        "{compared}"
    );
    // The verified snapshot outlives keep-daily's "newest of the day".
    let third = env.json(&["run"]);
    assert_eq!(third["pruned"]["removed"], serde_json::json!([]), "{third}");
    let status = env.json(&["status"]);
    let ids: Vec<&str> = status["chains"][0]["sets"]
        .as_array()
        .expect("sets")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert!(ids.len() == 2 && ids[0].starts_with(id2), "{status}");

    let mut packs = files_in(&env.path("target/data"), "");
    packs.sort_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let biggest = packs.last().expect("a pack").clone();
    tamper(&biggest);
    env.tool().arg("verify").fails_with(1);
    // A pack gone: the run's check fails, nothing is pruned.
    fs::remove_file(&biggest).expect("remove the pack");
    let stamp = fs::read(env.state().join("last-success.json")).expect("stamp");
    env.tool().arg("run").fails_with(1);
    assert!(
        env.notified().ends_with("arg1 start\narg1 failure\n"),
        "{}",
        env.notified()
    );
    assert_eq!(
        fs::read(env.state().join("last-success.json")).expect("stamp"),
        stamp
    );
    let status = env.json(&["status"]);
    assert_eq!(
        status["chains"][0]["sets"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    let theirs = std::process::Command::new("restic")
        .args(["--no-cache", "--host", "other.example", "--repo"])
        .arg(env.path("target"))
        .args(["snapshots", "--json"])
        .env("RESTIC_PASSWORD_FILE", env.path("passphrase"))
        .output()
        .expect("run restic");
    let theirs: Value = serde_json::from_slice(&theirs.stdout).expect("json");
    assert_eq!(theirs.as_array().map(Vec::len), Some(1), "{theirs}");
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` is a process whose command line names duplicity, or one
/// of its descendants (the gpg it runs inherits its environment); `None`
/// when it ended before it could be judged.
fn in_duplicity_tree(mut pid: u32) -> Option<bool> {
    for _ in 0..64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        if stat.rsplit_once(')')?.1.trim_start().starts_with('Z') {
            return None; // ended: a zombie has neither environment nor command line
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // An exiting process's command line reads empty; its name stays.
        if String::from_utf8_lossy(&cmdline).contains("/duplicity")
            || stat.contains(" (duplicity) ")
        {
            return Some(true);
        }
        match parent(pid)? {
            p if p > 1 => pid = p,
            _ => return Some(false),
        }
    }
    Some(false)
}

#[test]
fn the_passphrase_is_in_no_command_line_and_only_in_the_engines_environment() {
    for engine in ["duplicity", "restic"] {
        let Some(env) = Env::new(engine, &[]) else {
            return;
        };
        grow(&env.src(), 24);
        let mut child = env.tool().arg("run").spawn();
        let (mut seen_engine, mut samples) = (false, 0);
        while child.try_wait().expect("wait").is_none() {
            for pid in environments_holding(&env.passphrase, engine) {
                let judged = in_duplicity_tree(pid);
                assert!(
                    engine == "duplicity" && judged != Some(false),
                    "{engine}: in the environment of {pid}: {:?}",
                    fs::read_to_string(format!("/proc/{pid}/stat"))
                );
                seen_engine = true;
            }
            seen_engine |= engine == "restic" && !pids_with_cmdline("restic").is_empty();
            samples += 1;
        }
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            seen_engine,
            "{engine}: the engine was never seen running ({samples} samples)"
        );
    }
}

#[test]
fn a_second_run_exits_75_and_a_killed_run_leaves_no_lock_behind() {
    let Some(env) = Env::new("restic", &[]) else {
        return;
    };
    // Dumps the backup would not hold: refused before anything runs.
    let outside = env.path("dumps").display().to_string();
    env.switches(&[("backup_dump_dir", outside)]);
    let out = env.tool().arg("run").fails_with(78);
    let err = pysk_tests::stderr(&out);
    assert!(
        err.contains("backup_dump_dir: ") && err.contains("is not below backup_source"),
        "{err}"
    );
    assert_eq!(env.notified(), "");
    assert!(!env.path("target").exists() && !env.path("dumps").exists());
    env.switches(&[]);
    env.json(&["run"]);
    let lock = fs::File::open(env.state().join("pysk-backup.lock")).expect("the lock file");
    lock.lock().expect("hold the lock");
    env.tool().arg("run").fails_with(75);
    drop(lock);

    grow(&env.src(), 24);
    another_restics_lock_is_waited_for_and_a_dead_ones_removed(&env);
    let mut cmd = env.tool().arg("run").command();
    cmd.process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start a run");
    let run = child.id();
    let backup = || {
        let pids = pids_with_arg("backup");
        pids.into_iter().find(|pid| parent(*pid) == Some(run))
    };
    let restic = stop_once_locked(backup, &env.path("target/locks"));
    let group = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on the process group the test just started.
    assert_eq!(unsafe { libc::kill(-group, libc::SIGKILL) }, 0);
    child.wait().expect("wait");
    // restic tells a stale lock by its process being gone, reaped by init.
    pysk_tests::backup::wait_for("the killed restic reaped", || {
        (!Path::new(&format!("/proc/{restic}")).exists()).then_some(())
    });
    assert_eq!(lock_files(&env), 1, "the killed restic's lock stays");
    let after = env.json(&["run"]);
    assert_eq!(after["backup"]["kind"], "snapshot", "{after}");
    assert_same(&tree(&env.restore(".", None, "r")), &expected(&env.src()));
}

/// A restic of another program holding its lock: `verify` and `run` exit
/// 75 (never "damaged"); once it is dead, its stale lock is removed and
/// the run succeeds. A wrong passphrase exits 77, a target that is not
/// there 69.
fn another_restics_lock_is_waited_for_and_a_dead_ones_removed(env: &Env) {
    // Slow to read, nothing on disk: restic is still at it when stopped.
    fs::create_dir(env.path("sparse")).expect("mkdir");
    let sparse = fs::File::create(env.path("sparse/zeros")).expect("create");
    sparse.set_len(4 << 30).expect("a sparse file");
    let mut other = KillOnDrop(
        std::process::Command::new("restic")
            .args(["--no-cache", "--repo"])
            .arg(env.path("target"))
            .arg("backup")
            .arg(env.path("sparse"))
            .env("RESTIC_PASSWORD_FILE", env.path("passphrase"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start restic"),
    );
    let pid = other.0.id();
    stop_once_locked(|| Some(pid), &env.path("target/locks"));
    let out = env.tool().arg("verify").fails_with(75);
    let err = pysk_tests::stderr(&out);
    assert!(
        err.contains("locked by another program") && err.contains("already locked"),
        "{err}"
    );
    let stamp = fs::read(env.state().join("last-success.json")).expect("stamp");
    env.tool().arg("run").fails_with(75);
    assert_eq!(
        fs::read(env.state().join("last-success.json")).expect("stamp"),
        stamp
    );
    other.0.kill().expect("kill restic");
    other.0.wait().expect("wait");
    assert_eq!(lock_files(env), 1, "the dead restic's lock stays");
    env.json(&["run"]);
    assert_eq!(lock_files(env), 0, "the stale lock was removed");

    secret_file(&env.path("passphrase"), "not the passphrase\n");
    let denied = format!(
        "pysk-backup: the passphrase of backup_passphrase_file does not open the backup: \
         {} is not the password of the restic repository file://{} \
         (restic: Fatal: wrong password or no key found)\n",
        env.path("passphrase").display(),
        env.path("target").display()
    );
    let out = env.tool().arg("verify").fails_with(77);
    assert_eq!(pysk_tests::stderr(&out), denied);
    // Never an init over a repository that is there.
    let out = env.tool().args(["-q", "run"]).fails_with(77);
    assert_eq!(pysk_tests::stderr(&out), denied);
    env.good_passphrase();
    env.switches(&[("backup_target", env.path("nowhere").display().to_string())]);
    env.tool().arg("verify").fails_with(69);
    env.switches(&[]);
}

/// `--time` in none of duplicity's formats: exit 2 before duplicity
/// runs, naming the value and the formats; bad switches make `config`
/// exit 78 naming the file and line, as `run` does.
fn times_are_checked_before_duplicity_runs(env: &Env) {
    let formats = "now, an interval (3D, 1h30m; s m h D W M Y), an RFC 3339 time \
                   (2026-11-28T04:00:00Z), a date (2026-11-28, 2026/11/28, 11/28/2026) \
                   or seconds since the epoch";
    for args in [&["list"][..], &["restore", "etc", "--to", "/nonexistent/x"]] {
        let out = env
            .tool()
            .args(args)
            .args(["--time", "garbage"])
            .fails_with(2);
        assert_eq!(
            pysk_tests::stderr(&out),
            format!(
                "pysk-backup: --time: \"garbage\" is no time duplicity takes: give {formats}\n"
            )
        );
    }
    let file = env.path("config/serverconfig/default");
    for (key, value, why) in [
        (
            "backup_engine",
            "borg",
            "\"borg\": expected duplicity or restic",
        ),
        (
            "backup_source",
            "src",
            "\"src\": not an absolute path (a relative one would depend on the directory \
             the tool runs in)",
        ),
    ] {
        env.switches(&[(key, value.to_owned())]);
        let out = env.tool().arg("config").fails_with(78);
        let err = pysk_tests::stderr(&out);
        let line = fs::read_to_string(&file)
            .expect("the switches")
            .lines()
            .position(|l| l.starts_with(&format!("{key}=")))
            .expect("the switch's line")
            + 1;
        assert_eq!(
            err,
            format!("pysk-backup: {}:{line}: {key}: {why}\n", file.display())
        );
    }
    // The test's own switches back.
    env.switches(&[("backup_keep_full", "1".into())]);
    env.tool().arg("config").succeeds();
}

/// `--time` that is no snapshot ID: exit 2 before restic runs; an ID
/// that matches no snapshot: `list` fails (restic's ls prints nothing
/// and exits 0).
fn snapshots_are_checked_before_restic_runs(env: &Env) {
    let out = env.tool().args(["list", "--time", "3D"]).fails_with(2);
    assert_eq!(
        pysk_tests::stderr(&out),
        "pysk-backup: --time: \"3D\" is no time restic takes: give a snapshot ID \
         (8 to 64 hex digits, as status lists them) or latest\n"
    );
    let out = env
        .tool()
        .args(["list", "--time", "deadbeef"])
        .fails_with(65);
    assert_eq!(
        pysk_tests::stderr(&out),
        format!(
            "pysk-backup: no snapshot deadbeef in file://{}; nothing changed\n",
            env.path("target").display()
        )
    );
}

/// The tool's lock held by a run: `status` and `list` wait for it
/// (`--wait`), then exit 75; duplicity's cache locked by another
/// duplicity (its error 23): 75; a wrong passphrase (GnuPG's "Bad
/// session key", error 31): 77, never "damaged".
fn busy_elsewhere_and_a_wrong_passphrase(env: &Env) {
    let lock = fs::File::open(env.state().join("pysk-backup.lock")).expect("the lock file");
    lock.lock().expect("hold the lock");
    let start = Instant::now();
    env.tool().args(["status", "--wait", "1"]).fails_with(75);
    assert!(start.elapsed() >= Duration::from_secs(1));
    env.tool().arg("list").fails_with(75);
    drop(lock);

    let cache_lock = env.state().join("duplicity/pysk/lockfile");
    let mut holder = std::process::Command::new("python3")
        .args(["-c", HOLD_LOCKF])
        .arg(&cache_lock)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut said = String::new();
    let pipe = holder.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(pipe), &mut said).expect("read");
    let holder = KillOnDrop(holder);
    assert_eq!(said, "locked\n");
    let out = env.tool().arg("verify").fails_with(75);
    let err = pysk_tests::stderr(&out);
    assert!(err.contains("Another duplicity instance"), "{err}");
    drop(holder);

    secret_file(&env.path("passphrase"), "not the passphrase\n");
    let out = env.tool().arg("verify").fails_with(77);
    let err = pysk_tests::stderr(&out);
    assert!(err.contains("does not open the backup"), "{err}");
    env.good_passphrase();
}

/// Holds the POSIX lock duplicity takes on its cache (Python's
/// `fcntl.lockf`, as duplicity's `fasteners` does) until killed.
const HOLD_LOCKF: &str = "import fcntl, sys, time\n\
f = open(sys.argv[1], 'a')\n\
fcntl.lockf(f, fcntl.LOCK_EX)\n\
print('locked', flush=True)\n\
time.sleep(120)\n";

/// A newer snapshot of another machine in the same repository: `latest`,
/// `status` and retention see this machine's alone.
fn another_hosts_snapshot(env: &Env) {
    fs::create_dir(env.path("other")).expect("mkdir");
    fs::write(env.path("other/theirs"), "another machine's file\n").expect("write");
    let out = std::process::Command::new("restic")
        .args(["--no-cache", "--host", "other.example", "--repo"])
        .arg(env.path("target"))
        .arg("backup")
        .arg(env.path("other"))
        .env("RESTIC_PASSWORD_FILE", env.path("passphrase"))
        .output()
        .expect("run restic");
    assert!(out.status.success(), "{out:?}");
}

/// A child killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The locks in the repository's `locks/`: files named by their ID
/// alone. restic writes a lock as `ID-tmp-N` and renames it when it is
/// whole; until then no other restic sees it (the temporary name is no
/// ID, and restic skips a lock it cannot load).
fn lock_files(env: &Env) -> usize {
    locks_in(&env.path("target/locks")).len()
}

/// The sizes of the whole locks in `dir` (see [`lock_files`]).
fn locks_in(dir: &Path) -> Vec<u64> {
    let entries = fs::read_dir(dir).into_iter().flatten().flatten();
    let named = entries.filter(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
    });
    named
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .collect()
}

/// Stops (SIGSTOP) the process `find` gives once `locks` holds a whole
/// lock file (see [`lock_files`]), looking only once it is stopped: its lock is
/// then known to be written, and it has not ended.
fn stop_once_locked(find: impl Fn() -> Option<u32>, locks: &Path) -> u32 {
    pysk_tests::backup::wait_for("a restic holding its lock", || {
        let pid = find()?;
        let signal = |sig| {
            let pid = i32::try_from(pid).expect("a pid");
            // SAFETY: kill(2) on a restic the test started (or its run did).
            unsafe { libc::kill(pid, sig) }
        };
        signal(libc::SIGSTOP);
        pysk_tests::backup::wait_for("the stop", || stopped(pid));
        // A whole lock, renamed from its temporary name: another restic
        // sees that one (a stop before the rename once let verify pass).
        if locks_in(locks).into_iter().any(|len| len > 0) {
            return Some(pid);
        }
        signal(libc::SIGCONT);
        None
    })
}

/// `Some(())` once every thread of `pid` is stopped (or gone).
fn stopped(pid: u32) -> Option<()> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(());
    };
    let state = |task: PathBuf| {
        let stat = fs::read_to_string(task.join("stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    };
    let mut states = tasks.flatten().map(|t| state(t.path()));
    states
        .all(|s| matches!(s, None | Some('T' | 't' | 'Z')))
        .then_some(())
}

/// Pids with `arg` as one of their arguments.
fn pids_with_arg(arg: &str) -> Vec<u32> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    let pids = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    pids.filter(|pid| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|b| b.split(|c| *c == 0).any(|a| a == arg.as_bytes()))
    })
    .collect()
}

/// The sets of every chain, as `status` lists them.
fn sets(env: &Env) -> Vec<Value> {
    let status = env.json(&["status"]);
    let chains = status["chains"].as_array().expect("chains").iter();
    chains
        .flat_map(|c| c["sets"].as_array().expect("sets").clone())
        .collect()
}

/// A passphrase file changed after the chain was started: `run` exits 77
/// naming the switch and the record, before anything is uploaded; the
/// chain's passphrase still verifies. An incremental that duplicity
/// itself encrypted with another passphrase (behind the tool's back)
/// makes `verify` fail with 77 within seconds, where duplicity alone
/// waits for ever on its `gpg`.
#[test]
fn duplicity_refuses_another_passphrase_and_never_hangs_on_a_foreign_set() {
    let Some(env) = Env::new("duplicity", &[]) else {
        return;
    };
    grow(&env.src(), 3);
    env.tool().arg("run").succeeds();
    let record = fs::metadata(env.state().join("passphrase.verifier")).expect("the record");
    assert_eq!(record.permissions().mode() & 0o777, 0o600);
    let before = sets(&env);
    assert_eq!(before.len(), 1, "{before:?}");
    fs::write(env.src().join("new-file"), "changed\n").expect("write");
    secret_file(&env.path("passphrase"), "another passphrase\n");
    let out = env.tool().arg("run").fails_with(77);
    let err = pysk_tests::stderr(&out);
    assert!(
        err.contains("backup_passphrase_file") && err.contains("made with another passphrase"),
        "{err}"
    );
    assert_eq!(sets(&env), before, "nothing was uploaded");
    assert!(env.notified().ends_with("arg1 start\narg1 failure\n"));
    env.good_passphrase();
    env.tool().arg("verify").succeeds();

    foreign_incremental(&env, "another passphrase");
    let start = Instant::now();
    let mut verify = std::process::Command::new(pysk_tests::bin("pysk-backup"))
        .arg("verify")
        .env("PYSK_CONFIG_DIR", env.path("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start verify");
    let status = loop {
        if let Some(status) = verify.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = verify.kill();
            panic!("verify still runs after 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(77));
    assert!(pids_with_cmdline(&env.state().display().to_string()).is_empty());
}

/// An incremental made by duplicity itself with `passphrase`, on the
/// tool's cache (larger than a pipe holds, as gpg's wait needs).
fn foreign_incremental(env: &Env, passphrase: &str) {
    fs::write(env.src().join("large.bin"), vec![7u8; 3 << 20]).expect("write");
    let state = env.state();
    let status = std::process::Command::new("duplicity")
        .arg("incremental")
        .arg("--archive-dir")
        .arg(state.join("duplicity"))
        .args(["--name", "pysk", "--exclude"])
        .arg(env.src().join("skip"))
        .arg(env.src())
        .arg(format!("file://{}", env.path("target").display()))
        .env("PASSPHRASE", passphrase)
        .env("GNUPGHOME", state.join("gnupg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run duplicity");
    assert!(status.success());
    let _ = std::process::Command::new("gpgconf")
        .args(["--kill", "all"])
        .env("GNUPGHOME", state.join("gnupg"))
        .status();
}

/// A notify command that outlives its 60 seconds is killed with what it
/// started: after the run, neither its blocking `sleep` nor the one it
/// put in the background runs.
#[test]
fn a_slow_notify_command_is_killed_with_its_children() {
    let Some(env) = Env::new("duplicity", &[]) else {
        return;
    };
    let slow = env.path("slow.sh");
    fs::write(
        &slow,
        "#!/bin/sh\n[ \"$1\" = success ] || exit 0\nsleep 6001 &\nsleep 6002\n",
    )
    .expect("write the notify script");
    fs::set_permissions(&slow, fs::Permissions::from_mode(0o755)).expect("chmod");
    env.switches(&[("backup_notify_command", slow.display().to_string())]);
    // stderr to a file: a sleep left running would hold a pipe open.
    let log = fs::File::create(env.path("run.err")).expect("create");
    let start = Instant::now();
    let status = std::process::Command::new(pysk_tests::bin("pysk-backup"))
        .arg("run")
        .env("PYSK_CONFIG_DIR", env.path("config"))
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .expect("run");
    assert!(start.elapsed() >= Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let err = fs::read_to_string(env.path("run.err")).expect("read");
    assert!(err.contains("success: killed after 60 seconds"), "{err}");
    let sleeps = |arg: &str| {
        pids_with_cmdline(arg)
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|b| b == format!("sleep\0{arg}\0").as_bytes())
            })
            .count()
    };
    assert_eq!(
        (sleeps("6001"), sleeps("6002")),
        (0, 0),
        "a notifier's sleep outlived the run"
    );
}
