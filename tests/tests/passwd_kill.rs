//! `kill -9` of `pysk-passwd sync`, over and over, while a sync of
//! thousands of users writes a root made from this machine's real `/etc`:
//! the next undisturbed sync removes every temporary file (old hashes
//! among them) the killed ones left, and `pwck` and `grpck` find passwd,
//! shadow and the groups as consistent as before, with exactly what an
//! undisturbed sync writes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use pysk_tests::{
    TempDir, copy_account_files, require, scratch, stand_in_programs, tool, write_switches,
};

const USERS: u32 = 3000;
/// Rounds whose sync is killed the moment a temporary file appears.
const ON_SIGHT: usize = 6;
/// How many syncs are killed on sight, at most, to leave a temporary file
/// for the checked sync to clear.
const LAST_TRIES: usize = 20;
/// Delays after which the other syncs are killed, in milliseconds.
const DELAYS_MS: [u64; 6] = [20, 60, 120, 200, 350, 600];

/// A root holding copies of the real `/etc` account files, owners and
/// modes kept, the shells pwck wants, and a chroot list in its own
/// directory.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Option<Root> {
        require("pwck", "passwd")?;
        require("grpck", "passwd")?;
        require("perl", "perl")?;
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the pysk-passwd tests chown homes and copy /etc/shadow: run them as root"
        );
        let root = Root { dir: scratch() };
        fs::create_dir_all(root.etc().join("vsftpd")).expect("etc");
        copy_account_files(Path::new("/etc"), &root.etc());
        stand_in_programs(&root.path(), &["bin/bash", "usr/sbin/nologin"]);
        write_switches(
            &root.config(),
            &[("passwd_chroot_list", "/etc/vsftpd/chroot_list".to_owned())],
        );
        Some(root)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn etc(&self) -> PathBuf {
        self.path().join("etc")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// `pysk-passwd sync --root <root> --users <users>`, quiet.
    fn sync(&self, users: &Path) -> Command {
        tool("pysk-passwd")
            .config_dir(&self.config())
            .args(["--host", "test.example", "-q", "sync", "--root"])
            .arg(self.path())
            .arg("--users")
            .arg(users)
            .command()
    }

    /// The account files a sync writes.
    fn accounts(&self) -> Vec<(String, Vec<u8>)> {
        ["passwd", "shadow", "group", "gshadow", "vsftpd/chroot_list"]
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    fs::read(self.etc().join(n)).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// pwck's and grpck's complaints about the root, and their statuses.
    fn checks(&self) -> (BTreeSet<String>, Vec<Option<i32>>) {
        let mut lines = BTreeSet::new();
        let mut statuses = Vec::new();
        for program in ["pwck", "grpck"] {
            let out = Command::new(program)
                .args(["-r", "-R"])
                .arg(self.path())
                .output()
                .expect("run the checker");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            lines.extend(
                text.lines()
                    .filter(|l| !l.contains("no changes"))
                    .map(|l| format!("{program}: {l}")),
            );
            statuses.push(out.status.code());
        }
        (lines, statuses)
    }
}

/// A database of `USERS` users, one in ten with an FTP account; `round`
/// changes every hash and every GECOS field, so that each sync rewrites
/// passwd and shadow whole.
fn database(dir: &Path, round: usize) -> PathBuf {
    let out = Command::new("perl")
        .args(["-e", "print crypt('pw', $ARGV[0])"])
        .arg(format!("$6$round{round}$"))
        .output()
        .expect("perl");
    let hash = String::from_utf8(out.stdout).expect("utf-8");
    assert!(hash.starts_with("$6$"), "crypt gave {hash:?}");
    let users: Vec<serde_json::Value> = (0..USERS)
        .map(|i| {
            let name = format!("kill{i}");
            let mut user = serde_json::json!({
                "name": name, "uid": 10000 + i, "password": hash,
                "home": format!("/home/{name}"), "shell": "/bin/bash",
                "gecos": format!("User {i} round {round}"),
            });
            if i % 10 == 0 {
                user["ftp"] = serde_json::json!([{
                    "suffix": "up", "password": hash,
                    "home": format!("/home/{name}/www/up"),
                }]);
            }
            user
        })
        .collect();
    let path = dir.join(format!("users-{round}.json"));
    let doc = serde_json::json!({"version": 1, "users": users});
    fs::write(&path, doc.to_string()).expect("write the database");
    path
}

/// Every temporary file of pysk's naming under `dir`, at any depth, links
/// not followed.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().expect("file type").is_dir() {
            found.extend(leftovers(&path));
        } else if entry.file_name().to_string_lossy().contains(".pysk-tmp.") {
            found.push(path);
        }
    }
    found
}

/// Whether `dir` holds a temporary file of pysk's naming.
fn has_tmp(dir: &Path) -> bool {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".pysk-tmp."))
}

/// How a sync is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The moment a temporary file shows in `etc/` or `etc/vsftpd/`.
    OnSight,
    /// After this long.
    After(Duration),
}

/// Starts `sync` and `kill -9`s it as `how` says; whether it was still
/// running when killed.
fn kill_sync(root: &Root, mut sync: Command, how: Kill) -> bool {
    let mut child = sync
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pysk-passwd sync");
    let (etc, chroot) = (root.etc(), root.etc().join("vsftpd"));
    match how {
        Kill::OnSight => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !has_tmp(&etc) && !has_tmp(&chroot) && Instant::now() < deadline {
                if child.try_wait().expect("poll the sync").is_some() {
                    break;
                }
            }
        }
        Kill::After(delay) => sleep(delay),
    }
    let running = child.try_wait().expect("poll the sync").is_none();
    child.kill().expect("kill -9 the sync");
    child.wait().expect("reap the sync");
    running
}

#[test]
fn syncs_killed_with_sigkill_leave_nothing_after_the_next_sync() {
    let Some(root) = Root::new() else { return };
    let Some(reference) = Root::new() else { return };
    let checks_before = root.checks();
    let dir = root.dir.path().to_owned();

    let plan: Vec<Kill> = (0..ON_SIGHT)
        .map(|_| Kill::OnSight)
        .chain(DELAYS_MS.map(|ms| Kill::After(Duration::from_millis(ms))))
        .collect();
    let (mut kills, mut most) = (0, 0);
    for (round, how) in plan.into_iter().enumerate() {
        let users = database(&dir, round);
        kills += usize::from(kill_sync(&root, root.sync(&users), how));
        most = most.max(leftovers(&root.path()).len());
    }
    // The checked sync must find something to clear: kills on sight, the
    // last word before it, until one leaves a temporary file (the poll can
    // miss the moment on a busy machine; the next try sees it).
    let last = database(&dir, 99);
    for _ in 0..LAST_TRIES {
        kills += usize::from(kill_sync(&root, root.sync(&last), Kill::OnSight));
        let now = leftovers(&root.path()).len();
        most = most.max(now);
        if now > 0 {
            break;
        }
    }
    let before: Vec<PathBuf> = leftovers(&root.path());
    assert!(
        kills >= 8,
        "only {kills} syncs were still running when killed"
    );
    assert!(
        most > 0 && !before.is_empty(),
        "no kill left a temporary file ({kills} kills)"
    );

    let final_users = database(&dir, 100);
    let out = root.sync(&final_users).output().expect("run the sync");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for d in [root.etc(), root.etc().join("vsftpd")] {
        let n = before
            .iter()
            .filter(|p| p.parent() == Some(d.as_path()))
            .count();
        let warning = format!(
            "pysk-passwd: {}: removed {n} temporary file(s) left by a killed run",
            d.display()
        );
        assert_eq!(err.contains(&warning), n > 0, "{warning:?} and: {err}");
    }
    let after = leftovers(&root.path());
    assert!(after.is_empty(), "left after the next sync: {after:?}");

    let out = reference.sync(&final_users).output().expect("run the sync");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        root.accounts() == reference.accounts(),
        "the account files differ from an undisturbed sync's"
    );
    assert_eq!(
        root.checks(),
        checks_before,
        "pwck or grpck judge otherwise"
    );
    eprintln!("{kills} syncs killed, up to {most} temporary files left");
}
