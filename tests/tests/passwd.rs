//! End-to-end tests of `pysk-passwd` on a root made from this machine's
//! real Debian `/etc`: shadow-utils' own `pwck` and `grpck` judge the
//! result, the system's crypt(3) (through perl) verifies every written
//! hash, `useradd --prefix` runs against the same root while syncs do, and
//! a real `lckpwdf`-style lock (a POSIX fcntl lock from another process)
//! holds the run off.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pysk_tests::{
    TempDir, copy_account_files, examples, require, scratch, stand_in_programs, tool,
    write_switches,
};

/// The account files a sync may touch.
const FILES: [&str; 5] = ["passwd", "group", "shadow", "gshadow", "vsftpd.chroot_list"];

/// The managed names of the example database.
const NAMES: [&str; 6] = ["alice", "alice-upload", "bob", "carol", "dave", "dave-logs"];

/// A file's content, mode, uid, gid and mtime (seconds, nanoseconds).
type FileState = (Vec<u8>, u32, u32, u32, i64, i64);

/// A root holding copies of the real `/etc` account files, owners and
/// modes kept, plus the shells pwck wants to find.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Option<Root> {
        require("pwck", "passwd")?;
        require("perl", "perl")?;
        assert!(
            nix_is_root(),
            "the pysk-passwd tests chown homes and copy /etc/shadow: run them as root"
        );
        let dir = scratch();
        let root = Root { dir };
        fs::create_dir_all(root.etc()).expect("etc");
        copy_account_files(Path::new("/etc"), &root.etc());
        // A NIS compat line: kept in place, new entries go before it.
        let mut passwd = fs::OpenOptions::new()
            .append(true)
            .open(root.etc().join("passwd"))
            .expect("passwd");
        passwd.write_all(b"+::::::\n").expect("append");
        stand_in_programs(&root.path(), &["bin/bash", "bin/sh", "usr/sbin/nologin"]);
        fs::create_dir_all(root.config()).expect("config");
        write_switches(&root.config(), &[]);
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

    /// Runs `pysk-passwd <sub> --root <root> <args>`.
    fn run(&self, sub: &str, args: &[&str]) -> Output {
        self.run_with_stdin(sub, args, None)
    }

    fn run_with_stdin(&self, sub: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = tool("pysk-passwd")
            .config_dir(&self.config())
            .args(["--host", "test.example", sub, "--root"])
            .arg(self.path())
            .args(args);
        if let Some(bytes) = stdin {
            cmd = cmd.stdin(bytes);
        }
        cmd.output()
    }

    /// Writes a database into the scratch directory and returns its path.
    fn database(&self, name: &str, json: &str) -> String {
        let path = self.dir.path().join(name);
        fs::write(&path, json).expect("write database");
        path.display().to_string()
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.etc().join(name)).unwrap_or_default()
    }

    /// Content, mode, owner and mtime of every file a sync may touch.
    fn snapshot(&self) -> Vec<(String, Option<FileState>)> {
        let mut names: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
        names.extend(FILES.iter().map(|s| format!("{s}-")));
        names
            .into_iter()
            .map(|n| {
                let p = self.etc().join(&n);
                let state = fs::read(&p).ok().map(|bytes| {
                    let m = fs::metadata(&p).expect("stat");
                    (bytes, m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec())
                });
                (n, state)
            })
            .collect()
    }

    /// pwck's and grpck's complaints about the root, and grpck's status.
    fn checks(&self) -> (BTreeSet<String>, BTreeSet<String>, Option<i32>) {
        let run = |program: &str| {
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
            (
                text.lines()
                    .filter(|l| !l.contains("no changes"))
                    .map(str::to_owned)
                    .collect::<BTreeSet<_>>(),
                out.status.code(),
            )
        };
        let (pwck, _) = run("pwck");
        let (grpck, status) = run("grpck");
        (pwck, grpck, status)
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn example() -> String {
    examples().join("passwd/users.json").display().to_string()
}

fn example_json() -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(example()).expect("read example")).expect("json")
}

/// The sample passwords the example hashes were made from.
fn passwords() -> Vec<(String, String)> {
    fs::read_to_string(examples().join("passwd/passwords"))
        .expect("passwords")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().expect("name").to_owned(),
                f.next().expect("password").to_owned(),
            )
        })
        .collect()
}

/// The system's crypt(3) of `password` with the setting `hash` (libxcrypt
/// through perl; the password passed in the environment).
fn crypt(password: &str, hash: &str) -> String {
    let out = Command::new("perl")
        .args(["-e", "print crypt($ENV{PW}, $ARGV[0])", hash])
        .env("PW", password)
        .output()
        .expect("perl");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 86_400
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shadow_hash(root: &Root, name: &str) -> String {
    root.read("shadow")
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or_else(|| panic!("{name} has no shadow entry"))
        .to_owned()
}

/// A user entry, for hand-made databases.
fn user(name: &str, uid: u32, extra: &str) -> String {
    let hash = crypt("pw", "$6$testsalt$");
    format!(
        r#"{{"name":"{name}","uid":{uid},"password":"{hash}","home":"/home/{name}","shell":"/bin/bash"{extra}}}"#
    )
}

fn db(users: &[String]) -> String {
    format!(r#"{{"version":1,"users":[{}]}}"#, users.join(","))
}

#[test]
fn sync_writes_what_pwck_grpck_and_crypt_accept_and_keeps_the_rest() {
    let Some(root) = Root::new() else { return };
    let before = root.snapshot();
    let original: Vec<String> = ["passwd", "group", "shadow", "gshadow"]
        .iter()
        .map(|n| root.read(n))
        .collect();
    let (pwck_before, grpck_before, grpck_status_before) = root.checks();

    let out = root.run("sync", &["--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);

    // passwd: the entries before the NIS line, everything else unchanged.
    let expected_passwd = original[0].replace(
        "+::::::\n",
        "alice:x:10001:10001:Alice Example,,,:/home/alice:/bin/bash\n\
         alice-upload:x:10001:10001::/home/alice/www/upload:/usr/sbin/nologin\n\
         bob:x:10002:10002:Bob Beispiel:/home/bob:/bin/sh\n\
         carol:x:10003:10003:Carol (locked):/home/carol:/bin/bash\n\
         dave:x:10004:10004::/home/dave/site:/bin/bash\n\
         dave-logs:x:10004:10004::/home/dave/site/logs:/usr/sbin/nologin\n\
         +::::::\n",
    );
    assert_eq!(root.read("passwd"), expected_passwd);
    let expected_group = format!(
        "{}alice:x:10001:\nbob:x:10002:\ncarol:x:10003:\ndave:x:10004:\n",
        original[1].replace("\nusers:x:100:\n", "\nusers:x:100:alice,bob,carol,dave\n")
    );
    assert_eq!(root.read("group"), expected_group);
    let expected_gshadow = format!(
        "{}alice:!::\nbob:!::\ncarol:!::\ndave:!::\n",
        original[3].replace("\nusers:*::\n", "\nusers:*::alice,bob,carol,dave\n")
    );
    assert_eq!(root.read("gshadow"), expected_gshadow);
    let json = example_json();
    let mut expected_shadow = original[2].clone();
    for user in json["users"].as_array().expect("users") {
        let mut add = |name: &str, hash: &str| {
            expected_shadow.push_str(&format!("{name}:{hash}:{}:0:99999:7:::\n", today()));
        };
        add(
            user["name"].as_str().expect("name"),
            user["password"].as_str().expect("password"),
        );
        for ftp in user["ftp"].as_array().into_iter().flatten() {
            let name = format!(
                "{}-{}",
                user["name"].as_str().expect("name"),
                ftp["suffix"].as_str().expect("suffix")
            );
            add(&name, ftp["password"].as_str().expect("password"));
        }
    }
    assert_eq!(root.read("shadow"), expected_shadow);
    assert_eq!(root.read("vsftpd.chroot_list"), "alice-upload\ndave-logs\n");

    // Owners and modes kept (Debian: shadow is root:shadow 0640), the old
    // versions beside them.
    for (name, state) in &before {
        if let Some((bytes, mode, uid, gid, _, _)) = state
            && !name.ends_with('-')
        {
            let meta = fs::metadata(root.etc().join(name)).expect("stat");
            assert_eq!(
                (meta.mode(), meta.uid(), meta.gid()),
                (*mode, *uid, *gid),
                "{name}"
            );
            assert_eq!(
                &fs::read(root.etc().join(format!("{name}-"))).expect("backup"),
                bytes
            );
        }
    }

    // What was changed, on stderr: one line per entry, never a hash;
    // stdout is for what was asked for, and nothing was.
    assert_eq!(text(&out.stdout), "");
    let etc = root.etc();
    for line in [
        format!("{}: alice: added", etc.join("passwd").display()),
        format!("{}: users: changed", etc.join("group").display()),
        format!("{}: carol: added", etc.join("shadow").display()),
        format!(
            "{}: dave-logs: added",
            etc.join("vsftpd.chroot_list").display()
        ),
        format!("{}: created", root.path().join("home/alice/www").display()),
    ] {
        assert!(
            stderr.contains(&format!("pysk-passwd: {line}\n")),
            "{line}:\n{stderr}"
        );
    }
    assert!(!stderr.contains('$'), "a hash was shown:\n{stderr}");

    // Every hash verifies its user's password with the system's crypt;
    // carol's is locked, and her hash behind the '!' still the right one.
    for (name, password) in passwords() {
        let stored = shadow_hash(&root, &name);
        let hash = stored.trim_start_matches('!');
        assert_eq!(crypt(&password, hash), hash, "{name}");
        assert_eq!(stored.starts_with('!'), name == "carol", "{name}");
        assert_ne!(crypt("wrong", hash), hash);
    }

    // shadow-utils' own checkers find nothing new, nothing about ours.
    let (pwck_after, grpck_after, grpck_status_after) = root.checks();
    assert_eq!(pwck_after, pwck_before, "pwck complains after the sync");
    assert_eq!(grpck_after, grpck_before, "grpck complains after the sync");
    assert_eq!(grpck_status_after, grpck_status_before);
    for line in pwck_after.iter().chain(&grpck_after) {
        for name in NAMES {
            assert!(!line.contains(&format!("'{name}'")), "{line}");
        }
    }

    // Homes and www/, owned by the user and the shared group, 0755.
    for (dir, uid) in [
        ("alice", 10001),
        ("alice/www", 10001),
        ("alice/www/upload", 10001),
        ("bob/www", 10002),
        ("carol/www", 10003),
        ("dave/site/www", 10004),
        ("dave/site/logs", 10004),
    ] {
        let meta = fs::metadata(root.path().join("home").join(dir)).expect(dir);
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (uid, 100, 0o755),
            "{dir}"
        );
    }

    // A second sync changes nothing, says nothing, and check agrees.
    let after = root.snapshot();
    let again = root.run("sync", &["--users", &example()]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), "");
    assert_eq!(text(&again.stderr), "");
    assert_eq!(root.snapshot(), after);
    let check = root.run("check", &["--users", &example()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    assert_eq!(text(&check.stdout), "");
}

#[test]
fn lastchg_moves_only_with_the_hash_and_check_reports_drift() {
    let Some(root) = Root::new() else { return };
    assert_eq!(
        root.run("sync", &["--users", &example()]).status.code(),
        Some(0)
    );
    // Pretend the passwords were set long ago.
    let aged: String = root
        .read("shadow")
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if NAMES.contains(&f[0]) {
                f[2] = "12345";
            }
            format!("{}\n", f.join(":"))
        })
        .collect();
    fs::write(root.etc().join("shadow"), &aged).expect("age");
    let check = root.run("check", &["--users", &example()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));

    // bob gets a new password, alice is locked.
    let mut json = example_json();
    let new_hash = crypt("new-password", "$6$newsalt$");
    json["users"][1]["password"] = new_hash.clone().into();
    let alice = json["users"][0]["password"]
        .as_str()
        .expect("hash")
        .to_owned();
    json["users"][0]["password"] = format!("!{alice}").into();
    let changed = root.database("changed.json", &json.to_string());
    let check = root.run("check", &["--users", &changed]);
    assert_eq!(check.status.code(), Some(1));
    let shadow_path = root.etc().join("shadow").display().to_string();
    assert_eq!(
        text(&check.stdout),
        format!("{shadow_path}: alice: locked\n{shadow_path}: bob: password changed\n")
    );
    let sync = root.run("sync", &["--users", &changed]);
    assert_eq!(sync.status.code(), Some(0), "{}", text(&sync.stderr));
    // What check shows on stdout, a sync reports on stderr.
    assert_eq!(text(&sync.stdout), "");
    let reported: String = text(&check.stdout)
        .lines()
        .map(|l| format!("pysk-passwd: {l}\n"))
        .collect();
    assert_eq!(text(&sync.stderr), reported);
    let lastchg = |name: &str| -> String {
        root.read("shadow")
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .and_then(|l| l.split(':').nth(2))
            .expect("entry")
            .to_owned()
    };
    assert_eq!(lastchg("bob"), today().to_string());
    assert_eq!(lastchg("alice"), today().to_string());
    for name in ["carol", "dave", "alice-upload", "dave-logs"] {
        assert_eq!(lastchg(name), "12345", "{name}");
    }
    assert_eq!(shadow_hash(&root, "bob"), new_hash);
    assert_eq!(crypt("new-password", &new_hash), new_hash);

    // Someone edits passwd by hand: check shows the diff, sync restores.
    let passwd = root.read("passwd");
    fs::write(
        root.etc().join("passwd"),
        passwd.replace("/home/bob:/bin/sh", "/home/bob:/bin/bash"),
    )
    .expect("edit");
    let check = root.run("check", &["--users", &changed]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stdout).contains(
            "-bob:x:10002:10002:Bob Beispiel:/home/bob:/bin/bash\n+bob:x:10002:10002:Bob Beispiel:/home/bob:/bin/sh\n"
        ),
        "{}",
        text(&check.stdout)
    );
    assert_eq!(
        root.run("sync", &["-q", "--users", &changed]).status.code(),
        Some(0)
    );
    assert_eq!(root.read("passwd"), passwd);
}

#[test]
fn hostile_databases_exit_65_and_change_nothing() {
    let Some(root) = Root::new() else { return };
    let hash = crypt("pw", "$6$testsalt$");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "colon in a name",
            db(&[user("ev:il", 10001, "")]),
            "name must match",
        ),
        (
            "newline in a gecos",
            db(&[user(
                "eve",
                10001,
                r#","gecos":"Eve\nroot::0:0::/root:/bin/bash""#,
            )]),
            "gecos contains ':' or a control character",
        ),
        (
            "plaintext password",
                            r#"{"version":1,"users":[{"name":"eve","uid":10001,"password":"hunter2","home":"/home/eve","shell":"/bin/bash"}]}"#.to_owned(),
            "password: not a crypt(3) hash",
        ),
        (
            "home escaping with ..",
            format!(
                r#"{{"version":1,"users":[{{"name":"eve","uid":10001,"password":"{hash}","home":"/home/eve/../../etc","shell":"/bin/bash"}}]}}"#
            ),
            "contains \"..\"",
        ),
        ("uid 0", db(&[user("eve", 0, "")]), "uid 0 is outside"),
        (
            "a system user's name",
            db(&[user("daemon", 10001, "")]),
            "\"daemon\" is already a system user",
        ),
        (
            "a duplicate uid",
            db(&[user("eve", 10001, ""), user("mallory", 10001, "")]),
            "uid 10001 is also used by user #1",
        ),
        (
            "a shell not in /etc/shells",
            db(&[user("eve", 10001, "").replace("/bin/bash", "/tmp/evil")]),
            "not listed in /etc/shells",
        ),
        (
            "one bad entry among good ones",
            db(&[user("good", 10001, ""), user("bad", 1, "")]),
            "uid 1 is outside",
        ),
        (
            "truncated JSON",
            r#"{"version":1,"users":[{"name":"#.to_owned(),
            "EOF",
        ),
        (
            "a later version",
            r#"{"version":2,"users":[]}"#.to_owned(),
            "version 2",
        ),
    ];
    let before = root.snapshot();
    for (what, json, says) in cases {
        let path = root.database("hostile.json", &json);
        let out = root.run("sync", &["--users", &path]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "{what}: the password was shown"
        );
        assert_eq!(text(&out.stdout), "", "{what}");
        assert_eq!(root.snapshot(), before, "{what}: files changed");
        assert!(
            !root.path().join("home").exists(),
            "{what}: a home was made"
        );
    }
}

#[test]
fn mass_removal_is_refused_without_force() {
    let Some(root) = Root::new() else { return };
    let many: Vec<String> = (0..8)
        .map(|i| user(&format!("u{i}"), 10100 + i, ""))
        .collect();
    let full = root.database("full.json", &db(&many));
    assert_eq!(
        root.run("sync", &["-q", "--users", &full]).status.code(),
        Some(0)
    );
    let before = root.snapshot();
    // An export that lost six of eight users: refused.
    let truncated = root.database("truncated.json", &db(&many[..2]));
    let out = root.run("sync", &["--users", &truncated]);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        text(&out.stderr).contains("would remove 6 of the 8 managed accounts"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(root.snapshot(), before);
    let out = root.run("sync", &["-q", "--force", "--users", &truncated]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let passwd = root.read("passwd");
    assert!(passwd.contains("\nu1:x:10101:") && !passwd.contains("\nu2:x:"));
    assert!(root.read("group").contains("\nusers:x:100:u0,u1\n"));
}

/// A process holding `.pwd.lock` as `lckpwdf(3)` does in glibc: a POSIX
/// fcntl write lock, taken by python.
fn hold_pwd_lock(lock: &Path) -> std::process::Child {
    let python = require("python3", "python3").expect("python3");
    let mut holder = Command::new(python)
        .args([
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'w')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('held',flush=True)\ntime.sleep(60)",
        ])
        .arg(lock)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("read");
    assert_eq!(ready, "held\n");
    holder
}

#[test]
fn a_held_pwd_lock_gives_exit_75_and_no_write() {
    let Some(root) = Root::new() else { return };
    let before = root.snapshot();
    let mut holder = hold_pwd_lock(&root.etc().join(".pwd.lock"));
    // --wait, its old spelling --lock-timeout (kept for scripts), and the
    // switch passwd_wait each wait as long as they say, then give up; a
    // dry run waits for the lock too (the file exists).
    let wait = [("passwd_wait", "1".to_owned())];
    let waits: [(&[&str], &[_]); 3] = [
        (&["--wait", "1"], &[]),
        (&["--lock-timeout", "1"], &[]),
        (&[], &wait),
    ];
    let users = example();
    let held = format!(".pwd.lock: still held by process {} after 1 s", holder.id());
    for (option, switches) in waits {
        write_switches(&root.config(), switches);
        for dry_run in [&[][..], &["--dry-run"]] {
            let mut args = option.to_vec();
            args.extend(dry_run);
            args.extend(["--users", &users]);
            let started = Instant::now();
            let out = root.run("sync", &args);
            let waited = started.elapsed();
            assert_eq!(
                out.status.code(),
                Some(75),
                "{args:?}: {}",
                text(&out.stderr)
            );
            assert!(waited >= Duration::from_secs(1), "{args:?}: {waited:?}");
            assert!(waited < Duration::from_secs(10), "{args:?}: {waited:?}");
            assert!(text(&out.stderr).contains(&held), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), "");
            assert_eq!(root.snapshot(), before);
        }
    }
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_held_lock_file_gives_exit_75_and_a_stale_one_is_broken() {
    let Some(root) = Root::new() else { return };
    let before = root.snapshot();
    // shadow-utils' lock file of a running program holds a sync off, and a
    // dry run too (it waits for it, though it cannot take it).
    let mut sleeper = Command::new("sleep").arg("60").spawn().expect("sleep");
    let lock = root.etc().join("shadow.lock");
    fs::write(&lock, sleeper.id().to_string()).expect("lock");
    for dry_run in [&[][..], &["--dry-run"]] {
        let mut args = vec!["--wait", "0"];
        args.extend(dry_run);
        let users = example();
        args.extend(["--users", &users]);
        let out = root.run("sync", &args);
        assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!("shadow.lock: held by process {}", sleeper.id())),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "");
        assert_eq!(root.snapshot(), before);
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // That program is gone now: a dry run goes through and leaves its
    // stale lock alone (it creates and removes nothing) ...
    let out = root.run("sync", &["--dry-run", "--wait", "0", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(&lock).expect("kept"),
        sleeper.id().to_string()
    );
    // ... and a sync breaks it, as shadow-utils does, and goes through,
    // leaving no lock behind.
    let out = root.run("sync", &["-q", "--wait", "0", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for name in ["passwd", "group", "shadow", "gshadow"] {
        assert!(
            !root.etc().join(format!("{name}.lock")).exists(),
            "{name}.lock left"
        );
    }
}

#[test]
fn useradd_running_alongside_syncs_loses_nothing() {
    let Some(root) = Root::new() else { return };
    let useradd = require("useradd", "passwd").expect("useradd");
    let other = {
        let mut json = example_json();
        let users = json["users"].as_array_mut().expect("users");
        users.remove(1);
        json.to_string()
    };
    let other = root.database("other.json", &other);
    let prefix = root.path();
    // With --prefix, useradd does not wait for the lock files: it gives up
    // at once ("cannot lock ... try again later"), and is run again, as a
    // script would.
    let adder = std::thread::spawn(move || {
        (0..30)
            .map(|i| {
                let mut tries = 0;
                loop {
                    let out = Command::new(&useradd)
                        .arg("--prefix")
                        .arg(&prefix)
                        .args(["-M", "-s", "/bin/sh", "-u"])
                        .arg((5000 + i).to_string())
                        .arg(format!("loop{i}"))
                        .output()
                        .expect("useradd");
                    tries += 1;
                    let locked = String::from_utf8_lossy(&out.stderr).contains("cannot lock");
                    if out.status.success() || !locked || tries == 500 {
                        break out;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .collect::<Vec<_>>()
    });
    let mut syncs = 0;
    while !adder.is_finished() || syncs < 4 {
        let users = if syncs % 2 == 0 {
            example()
        } else {
            other.clone()
        };
        let out = root.run("sync", &["-q", "--users", &users]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        syncs += 1;
    }
    for (i, out) in adder.join().expect("useradd thread").iter().enumerate() {
        assert!(
            out.status.success(),
            "useradd loop{i}: {}",
            text(&out.stderr)
        );
    }
    let out = root.run("sync", &["-q", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (passwd, shadow, group) = (root.read("passwd"), root.read("shadow"), root.read("group"));
    for i in 0..30 {
        let name = format!("loop{i}");
        assert!(
            passwd.contains(&format!("\n{name}:x:{}:", 5000 + i)),
            "{name} lost from passwd"
        );
        assert!(
            shadow.contains(&format!("\n{name}:")),
            "{name} lost from shadow"
        );
        assert!(
            group.contains(&format!("\n{name}:x:")),
            "{name} lost from group"
        );
    }
    for name in NAMES {
        assert_eq!(
            passwd.matches(&format!("\n{name}:x:")).count(),
            1,
            "{name} in passwd"
        );
        assert!(shadow.contains(&format!("\n{name}:$")) || shadow.contains(&format!("\n{name}:!")));
    }
    let (_, grpck, status) = root.checks();
    assert_eq!(status, Some(0), "{grpck:?}");
}

#[test]
fn a_www_link_is_never_followed() {
    let Some(root) = Root::new() else { return };
    assert_eq!(
        root.run("sync", &["-q", "--users", &example()])
            .status
            .code(),
        Some(0)
    );
    let decoy = scratch();
    fs::set_permissions(decoy.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let etc_meta = fs::metadata(root.etc()).expect("etc");
    // bob replaces www with a link to /etc (the root's), carol with one to
    // a directory of root's elsewhere.
    let bob_www = root.path().join("home/bob/www");
    fs::remove_dir(&bob_www).expect("rm");
    symlink(root.etc(), &bob_www).expect("symlink");
    let carol_www = root.path().join("home/carol/www");
    fs::remove_dir(&carol_www).expect("rm");
    symlink(decoy.path(), &carol_www).expect("symlink");
    let out = root.run("sync", &["--users", &example()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: is a symbolic link or not a directory; left alone",
            bob_www.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&carol_www.display().to_string()),
        "{stderr}"
    );
    let after = fs::metadata(root.etc()).expect("etc");
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (etc_meta.uid(), etc_meta.gid(), etc_meta.mode())
    );
    let decoy_meta = fs::metadata(decoy.path()).expect("decoy");
    assert_eq!((decoy_meta.uid(), decoy_meta.mode() & 0o7777), (0, 0o700));
    for name in ["passwd", "shadow", "group"] {
        let meta = fs::metadata(root.etc().join(name)).expect("stat");
        assert_eq!(meta.uid(), 0, "{name} was chowned");
    }
    // An FTP home through such a link: only alice's directories are
    // skipped, with one warning; the database is synced.
    let alice_www = root.path().join("home/alice/www");
    fs::rename(&alice_www, root.path().join("home/alice/www.old")).expect("mv");
    symlink(decoy.path(), &alice_www).expect("symlink");
    let out = root.run("sync", &["--users", &example()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).matches("home/alice/www").count(),
        1,
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read_dir(decoy.path()).expect("decoy").count(), 0);
}

#[test]
fn dry_run_from_stdin_shows_and_writes_nothing() {
    let Some(root) = Root::new() else { return };
    let before = root.snapshot();
    let json = fs::read(example()).expect("example");
    let out = root.run_with_stdin("sync", &["--dry-run", "--users", "-"], Some(&json));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("+bob:x:10002:10002:Bob Beispiel:/home/bob:/bin/sh\n"),
        "{stdout}"
    );
    assert!(stdout.contains(": dave-logs: added\n"), "{stdout}");
    let home = root.path().join("home");
    assert!(
        stdout.contains(&format!(
            "{}: would be created\n{}: would be created\n{}: would be created\n",
            home.join("alice").display(),
            home.join("alice/www").display(),
            home.join("alice/www/upload").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "{}: would be created\n",
        home.join("dave/site/logs").display()
    )));
    assert!(!stdout.contains('$'));
    assert_eq!(root.snapshot(), before);
    assert!(!root.path().join("home").exists());
    // A dry run creates nothing, not even a lock file: the root's etc holds
    // what it held.
    let mut names: Vec<String> = fs::read_dir(root.etc())
        .expect("etc")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "group",
            "gshadow",
            "login.defs",
            "passwd",
            "shadow",
            "shells"
        ]
    );
    // --quiet prints nothing, also for a real sync that changes things.
    let out = root.run_with_stdin("sync", &["-q", "--users", "-"], Some(&json));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
    assert_ne!(root.snapshot(), before);
}

#[test]
fn htpasswd_lists_the_unlocked_users() {
    let dir = scratch();
    let output = dir.path().join("panel.htpasswd");
    let out = tool("pysk-passwd")
        .config_dir(dir.path())
        .args([
            "--host",
            "test.example",
            "htpasswd",
            "--users",
            &example(),
            "--output",
        ])
        .arg(&output)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = example_json();
    let hash = |i: usize| {
        json["users"][i]["password"]
            .as_str()
            .expect("hash")
            .to_owned()
    };
    assert_eq!(
        fs::read_to_string(&output).expect("written"),
        format!("alice:{}\nbob:{}\ndave:{}\n", hash(0), hash(1), hash(3))
    );
    assert_eq!(fs::metadata(&output).expect("stat").mode() & 0o777, 0o640);
}

#[test]
fn a_chroot_list_in_a_missing_directory_writes_nothing() {
    let Some(root) = Root::new() else { return };
    write_switches(
        &root.config(),
        &[("passwd_chroot_list", "/etc/vsftpd/chroot_list".to_owned())],
    );
    let before = root.snapshot();
    let out = root.run("sync", &["--users", &example()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("passwd_chroot_list: ")
            && text(&out.stderr).contains("vsftpd/chroot_list: its directory does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(root.snapshot(), before);
    assert!(!root.path().join("home").exists());
}

/// A run's stdout as a `--json` document: "version": 1 comes first.
fn json_doc(out: &Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("{\n  \"version\": 1,\n"),
        "version is not first:\n{stdout}"
    );
    assert!(!stdout.contains('$'), "a hash was shown:\n{stdout}");
    serde_json::from_str(&stdout).expect("one JSON document")
}

#[test]
fn sync_and_check_json_count_and_name_the_changes() {
    let Some(root) = Root::new() else { return };
    let etc = |name: &str| root.etc().join(name).display().to_string();
    let counts = |added: u64| serde_json::json!({"added": added, "changed": 0, "removed": 0});
    let before = root.snapshot();
    let out = root.run("sync", &["--json", "--dry-run", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = json_doc(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["files_written"], 0);
    assert_eq!(plan["homes"]["created"], 11);
    assert_eq!(root.snapshot(), before);

    let out = root.run("sync", &["--json", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "the summary is the document");
    let done = json_doc(&out);
    let expected = serde_json::json!({
        "version": 1,
        "dry_run": false,
        "files": [
            {"path": etc("passwd"), "changed": true, "users": counts(4), "ftp_accounts": counts(2)},
            {"path": etc("group"), "changed": true, "users": counts(4), "ftp_accounts": counts(0)},
            {"path": etc("shadow"), "changed": true, "users": counts(4), "ftp_accounts": counts(2)},
            {"path": etc("gshadow"), "changed": true, "users": counts(4), "ftp_accounts": counts(0)},
            {"path": etc("vsftpd.chroot_list"), "changed": true, "users": counts(0), "ftp_accounts": counts(2)},
        ],
        "files_written": 5,
        "homes": {"created": 11, "fixed": 0},
        "problems": 0,
    });
    assert_eq!(done, expected);
    assert_eq!(
        plan["files"], expected["files"],
        "the dry run planned the same"
    );

    // In sync: check says so, and a second sync changes nothing.
    let out = root.run("check", &["--json", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        json_doc(&out),
        serde_json::json!({"version": 1, "in_sync": true, "files": []})
    );
    let again = json_doc(&root.run("sync", &["--json", "--users", &example()]));
    assert_eq!(again["files_written"], 0);
    assert_eq!(
        again["homes"],
        serde_json::json!({"created": 0, "fixed": 0})
    );

    // bob gets a new password, carol is gone, a home has the wrong mode.
    let mut json = example_json();
    json["users"][1]["password"] = crypt("new-password", "$6$newsalt$").into();
    json["users"].as_array_mut().expect("users").remove(2);
    let changed = root.database("changed.json", &json.to_string());
    fs::set_permissions(
        root.path().join("home/bob"),
        fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let out = root.run("check", &["--json", "--users", &changed]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let names = |added: &[&str], changed: &[&str], removed: &[&str]| serde_json::json!({"added": added, "changed": changed, "removed": removed});
    let file = |name: &str, changes: serde_json::Value| {
        let mut entry = changes;
        entry["path"] = etc(name).into();
        entry
    };
    assert_eq!(
        json_doc(&out),
        serde_json::json!({"version": 1, "in_sync": false, "files": [
            file("passwd", names(&[], &[], &["carol"])),
            file("group", names(&[], &["users"], &["carol"])),
            file("shadow", names(&[], &["bob"], &["carol"])),
            file("gshadow", names(&[], &["users"], &["carol"])),
        ]})
    );
    let out = root.run("sync", &["--json", "--users", &changed]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let done = json_doc(&out);
    let files = done["files"].as_array().expect("files");
    assert_eq!(
        files[0]["users"],
        serde_json::json!({"added": 0, "changed": 0, "removed": 1})
    );
    assert_eq!(
        files[2]["users"],
        serde_json::json!({"added": 0, "changed": 1, "removed": 1})
    );
    assert_eq!(files[4]["changed"], false);
    assert_eq!(done["files_written"], 4);
    assert_eq!(done["homes"], serde_json::json!({"created": 0, "fixed": 1}));
}

#[test]
fn a_quiet_sync_that_changes_things_prints_nothing() {
    let Some(root) = Root::new() else { return };
    let out = root.run("sync", &["-q", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
    // An entry and a home to correct: changed, and still not a word.
    let mut json = example_json();
    json["users"][0]["gecos"] = "Alice Renamed".into();
    let changed = root.database("changed.json", &json.to_string());
    fs::set_permissions(
        root.path().join("home/alice"),
        fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let out = root.run("sync", &["-q", "--users", &changed]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
    assert!(root.read("passwd").contains(":Alice Renamed:/home/alice:"));
    let mode = fs::metadata(root.path().join("home/alice"))
        .expect("home")
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn a_bad_switch_is_named_with_its_file_and_line_and_an_old_one_is_warned_about() {
    let Some(root) = Root::new() else { return };
    let file = root.config().join("serverconfig/default");
    write_switches(&root.config(), &[("passwd_uid_min", "ten".to_owned())]);
    let before = root.snapshot();
    let out = root.run("sync", &["--users", &example()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "pysk-passwd: {}:1: passwd_uid_min: \"ten\": expected a whole number\n",
            file.display()
        )
    );
    assert_eq!(root.snapshot(), before);
    // The old name of passwd_wait: warned about (even with -q), still
    // read for one release, and the sync goes on.
    write_switches(&root.config(), &[("passwd_lock_timeout", "30".to_owned())]);
    let out = root.run("sync", &["-q", "--users", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "pysk-passwd: {}:1: passwd_lock_timeout: renamed to passwd_wait; \
             read as passwd_wait for this release, rename it\n",
            file.display()
        )
    );
    assert_ne!(root.snapshot(), before);
}

#[test]
fn htpasswd_dry_run_names_the_users_writes_nothing_and_shows_no_hash() {
    let dir = scratch();
    let output = dir.path().join("panel.htpasswd");
    let htpasswd = |args: &[&str]| {
        tool("pysk-passwd")
            .args(["htpasswd", "--users", &example(), "--output"])
            .arg(&output)
            .args(args)
            .output()
    };
    // Nothing there yet: every user would be added, no file is made.
    let out = htpasswd(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = output.display();
    assert_eq!(
        text(&out.stdout),
        format!("{shown}: alice: added\n{shown}: bob: added\n{shown}: dave: added\n")
    );
    assert!(!output.exists());
    // An old file: alice's hash differs, zed is gone, bob and dave are new.
    let old = "alice:$6$old$x\nzed:$1$zed$y\n";
    fs::write(&output, old).expect("write");
    fs::set_permissions(&output, fs::Permissions::from_mode(0o600)).expect("chmod");
    let mtime = fs::metadata(&output)
        .expect("stat")
        .modified()
        .expect("mtime");
    let out = htpasswd(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{shown}: bob: added\n{shown}: dave: added\n{shown}: alice: changed\n\
             {shown}: zed: removed\n"
        )
    );
    assert!(!text(&out.stdout).contains('$') && !text(&out.stderr).contains('$'));
    assert_eq!(fs::read_to_string(&output).expect("kept"), old);
    assert_eq!(
        fs::metadata(&output)
            .expect("stat")
            .modified()
            .expect("mtime"),
        mtime
    );
    // The real run writes it and says the same on stderr; its mode stays.
    let out = htpasswd(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).contains(&format!("pysk-passwd: {shown}: zed: removed\n")));
    assert!(!text(&out.stderr).contains('$'));
    assert!(
        fs::read_to_string(&output)
            .expect("written")
            .starts_with("alice:$")
    );
    assert_eq!(fs::metadata(&output).expect("stat").mode() & 0o777, 0o600);
}

#[test]
fn htpasswd_json_names_the_users_and_a_dry_run_prints_the_same_document() {
    let dir = scratch();
    let output = dir.path().join("panel.htpasswd");
    let htpasswd = |args: &[&str]| {
        tool("pysk-passwd")
            .args(["htpasswd", "--users", &example(), "--json", "--output"])
            .arg(&output)
            .args(args)
            .output()
    };
    let old = "alice:$6$old$x\nzed:$1$zed$y\n";
    fs::write(&output, old).expect("write");
    let document = |dry_run: bool, written: bool| {
        serde_json::json!({
            "version": 1, "dry_run": dry_run, "path": output.display().to_string(),
            "written": written, "added": ["bob", "dave"], "changed": ["alice"],
            "removed": ["zed"],
        })
    };
    // The dry run: the document the real run prints, nothing else, and
    // nothing written.
    let out = htpasswd(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json_doc(&out), document(true, false));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(fs::read_to_string(&output).expect("kept"), old);
    // The real run: the document instead of the lines on stderr.
    let out = htpasswd(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json_doc(&out), document(false, true));
    assert_eq!(text(&out.stderr), "");
    assert_ne!(fs::read_to_string(&output).expect("written"), old);
    // Nothing left to change: nothing written, and the document says so.
    let out = htpasswd(&[]);
    assert_eq!(
        json_doc(&out),
        serde_json::json!({
            "version": 1, "dry_run": false, "path": output.display().to_string(),
            "written": false, "added": [], "changed": [], "removed": [],
        })
    );
}
