//! End-to-end tests of `pysk-passwd` against a hostile user and an
//! unlucky disk, on a root made from this machine's real `/etc`: a link
//! or FIFO planted below a home, a full disk (a small tmpfs mounted as the
//! root's `etc`), a crash between the renames, and databases with a byte
//! order mark, hashes of absurd cost and spoofing characters in gecos.
//! Shadow-utils' `pwck` and `grpck` judge the files.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pysk_tests::{
    TempDir, copy_account_files, examples, require, scratch, stand_in_programs, tool,
    write_switches,
};

/// The account files a sync may touch, and their backups.
const FILES: [&str; 10] = [
    "passwd",
    "group",
    "shadow",
    "gshadow",
    "vsftpd.chroot_list",
    "passwd-",
    "group-",
    "shadow-",
    "gshadow-",
    "vsftpd.chroot_list-",
];

/// A file's content, mode, uid, gid and mtime.
type FileState = (Vec<u8>, u32, u32, u32, i64);

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
            is_root(),
            "the pysk-passwd tests chown homes, copy /etc/shadow and mount a tmpfs: run them as root"
        );
        let root = Root { dir: scratch() };
        fs::create_dir_all(root.etc()).expect("etc");
        copy_account_files(Path::new("/etc"), &root.etc());
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

    /// Runs `pysk-passwd <sub> --root <root> <args>`, with `env` set.
    fn run_env(&self, sub: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = tool("pysk-passwd")
            .config_dir(&self.config())
            .args(["--host", "test.example", sub, "--root"])
            .arg(self.path())
            .args(args);
        for (key, value) in env {
            cmd = cmd.env(key, value);
        }
        cmd.output()
    }

    fn run(&self, sub: &str, args: &[&str]) -> Output {
        self.run_env(sub, args, &[])
    }

    /// Writes a database into the scratch directory and returns its path.
    fn database(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).expect("write database");
        path.display().to_string()
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.etc().join(name)).unwrap_or_default()
    }

    /// Content, mode, owner and mtime of every file a sync may touch.
    fn snapshot(&self) -> Vec<(&'static str, Option<FileState>)> {
        FILES
            .iter()
            .map(|&n| {
                let p = self.etc().join(n);
                let state = fs::read(&p).ok().map(|bytes| {
                    let m = fs::metadata(&p).expect("stat");
                    (bytes, m.mode(), m.uid(), m.gid(), m.mtime())
                });
                (n, state)
            })
            .collect()
    }

    /// The names in `etc/` a run left that are none of its files: staged
    /// or temporary files, an intent record.
    fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.etc())
            .expect("read etc")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("pysk"))
            .collect();
        names.sort();
        names
    }

    /// pwck's and grpck's complaints about the root.
    fn checks(&self) -> BTreeSet<String> {
        let mut complaints = BTreeSet::new();
        for program in ["pwck", "grpck"] {
            let out = Command::new(program)
                .args(["-r", "-R"])
                .arg(self.path())
                .output()
                .expect("run the checker");
            let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
            complaints.extend(
                text.lines()
                    .filter(|l| !l.contains("no changes"))
                    .map(|l| format!("{program}: {l}")),
            );
        }
        complaints
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn example() -> String {
    examples().join("passwd/users.json").display().to_string()
}

/// The example database with one more user, erin, and bob's password
/// changed: a sync that adds, changes and keeps accounts.
fn changed_example() -> Vec<u8> {
    let mut db: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(example()).expect("read")).expect("json");
    let users = db["users"].as_array_mut().expect("users");
    for user in users.iter_mut() {
        if user["name"] == "bob" {
            user["password"] = crypt("new bob", "$6$newsalt$").into();
        }
    }
    users.push(serde_json::json!({
        "name": "erin", "uid": 10005, "password": crypt("pw", "$6$erinsalt$"),
        "home": "/home/erin", "shell": "/bin/bash",
        "ftp": [{"suffix": "up", "password": "!", "home": "/home/erin/www/up"}]
    }));
    serde_json::to_vec(&db).expect("json")
}

/// The system's crypt(3) of `password` with the setting `hash`.
fn crypt(password: &str, hash: &str) -> String {
    let out = Command::new("perl")
        .args(["-e", "print crypt($ENV{PW}, $ARGV[0])", hash])
        .env("PW", password)
        .output()
        .expect("perl");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The names of `file`'s entries.
fn names(root: &Root, file: &str) -> BTreeSet<String> {
    root.read(file)
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// The passwd users whose password is in shadow (`x`) but who have no
/// shadow entry: they cannot log in.
fn locked_out(root: &Root) -> Vec<String> {
    let shadow = names(root, "shadow");
    root.read("passwd")
        .lines()
        .filter(|l| l.split(':').nth(1) == Some("x"))
        .filter_map(|l| l.split(':').next())
        .filter(|n| !shadow.contains(*n))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_planted_link_or_fifo_below_a_home_skips_only_that_user() {
    let Some(root) = Root::new() else { return };
    let first = root.run("sync", &["-q", "--users", &example()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let complaints = root.checks();
    let decoy = scratch();
    fs::set_permissions(decoy.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let etc_before = fs::metadata(root.etc()).expect("etc");
    // alice (who has an FTP account below www) links www to the root's
    // /etc, carol puts a FIFO in its place.
    let alice_www = root.path().join("home/alice/www");
    fs::rename(&alice_www, root.path().join("home/alice/www.old")).expect("mv");
    symlink(root.etc(), &alice_www).expect("symlink");
    let carol_www = root.path().join("home/carol/www");
    fs::remove_dir(&carol_www).expect("rm");
    let status = Command::new("mkfifo")
        .arg(&carol_www)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    // And a second sync adds erin and changes bob's password.
    let db = root.database("changed.json", &changed_example());
    let out = root.run("sync", &["--users", &db]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(
        warnings,
        [
            format!(
                "pysk-passwd: {}: is a symbolic link or not a directory; left alone; \
                 the directories of user alice skipped",
                alice_www.display()
            ),
            format!(
                "pysk-passwd: {}: is a symbolic link or not a directory; left alone; \
                 the directories of user carol skipped",
                carol_www.display()
            ),
        ],
        "{stderr}"
    );
    // Everyone else synced: erin added with her homes, bob re-passworded.
    for name in ["erin", "erin-up"] {
        assert!(names(&root, "passwd").contains(name), "{name}");
        assert!(names(&root, "shadow").contains(name), "{name}");
    }
    assert!(root.path().join("home/erin/www/up").is_dir());
    assert!(root.read("shadow").contains("$6$newsalt$"));
    // pwck, which follows links, finds alice's FTP home missing in /etc.
    let mut expected = complaints;
    expected.insert(
        "pwck: user 'alice-upload': directory '/home/alice/www/upload' does not exist".to_owned(),
    );
    assert_eq!(root.checks(), expected, "pwck/grpck");
    // Nothing was followed: /etc and the FIFO as they were.
    let etc_after = fs::metadata(root.etc()).expect("etc");
    assert_eq!(
        (etc_after.uid(), etc_after.gid(), etc_after.mode()),
        (etc_before.uid(), etc_before.gid(), etc_before.mode())
    );
    for name in ["passwd", "shadow", "group"] {
        assert_eq!(fs::metadata(root.etc().join(name)).expect("stat").uid(), 0);
    }
    assert!(!root.etc().join("upload").exists());
    let fifo = fs::symlink_metadata(&carol_www).expect("fifo");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert_eq!(fifo.uid(), 0);
}

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }

    /// Bytes free.
    fn free(&self) -> u64 {
        let path = CString::new(self.0.as_os_str().as_bytes()).expect("path");
        // SAFETY: statvfs only writes the struct it is given.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a valid C string, `st` a valid struct.
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail * st.f_bsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_every_file_old() {
    let Some(root) = Root::new() else { return };
    let Some(_) = require("mount", "mount") else {
        return;
    };
    let first = root.run("sync", &["-q", "--users", &example()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    // The root's etc becomes a 1 MiB tmpfs holding the same files.
    let saved = scratch();
    copy_account_files(&root.etc(), saved.path());
    let list = "vsftpd.chroot_list";
    fs::copy(root.etc().join(list), saved.path().join(list)).expect("copy");
    let tmpfs = Tmpfs::mount(&root.etc(), "1m");
    copy_account_files(saved.path(), &root.etc());
    fs::copy(saved.path().join(list), root.etc().join(list)).expect("copy");
    let db = root.database("changed.json", &changed_example());
    let filler = root.etc().join("filler");
    let before = root.snapshot();
    let page = 4096;
    let mut failures = Vec::new();
    // Leave 0, 1, 2 … pages free until the sync fits: every run that
    // does not fit must leave every file old.
    for free in 0..64 {
        let _ = fs::remove_file(&filler);
        let fill = tmpfs.free() - free * page;
        let mut file = fs::File::create(&filler).expect("filler");
        file.write_all(&vec![0; fill as usize]).expect("fill");
        drop(file);
        let out = root.run("sync", &["-q", "--users", &db]);
        let stderr = text(&out.stderr);
        if out.status.code() == Some(0) {
            break;
        }
        assert_eq!(out.status.code(), Some(73), "{free} pages free: {stderr}");
        assert!(
            stderr.contains("cannot write: No space left on device"),
            "{free} pages free: {stderr}"
        );
        assert_eq!(root.snapshot(), before, "{free} pages free: files changed");
        assert_eq!(root.leftovers(), Vec::<String>::new(), "{free} pages free");
        failures.push(stderr);
    }
    let passwd = root.etc().join("passwd");
    let last_file = format!(
        "pysk-passwd: {}: cannot write: No space left on device\n",
        passwd.display()
    );
    assert!(
        failures.contains(&last_file),
        "no run failed on passwd, the last file staged: {failures:#?}"
    );
    // The run that fitted wrote everything.
    assert!(names(&root, "passwd").contains("erin"));
    assert!(names(&root, "shadow").contains("erin"));
    assert_eq!(root.leftovers(), Vec::<String>::new());
    drop(tmpfs);
}

#[test]
fn a_crash_between_the_renames_is_finished_by_the_next_run() {
    let Some(root) = Root::new() else { return };
    let reference = Root::new().expect("a second root");
    for r in [&root, &reference] {
        let out = r.run("sync", &["-q", "--users", &example()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let complaints = root.checks();
    let db = root.database("changed.json", &changed_example());
    let out = reference.run("sync", &["-q", "--users", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let wanted: Vec<String> = ["passwd", "group", "shadow", "gshadow", "vsftpd.chroot_list"]
        .iter()
        .map(|n| {
            reference
                .read(n)
                .replace(&*reference.path().to_string_lossy(), "")
        })
        .collect();
    let unchanged: Vec<String> = root
        .read("passwd")
        .lines()
        .filter(|l| !l.starts_with("bob:"))
        .map(str::to_owned)
        .collect();
    // Killed after each rename in turn; the next run (check, then sync,
    // alternately) finishes the set.
    for (i, file) in ["gshadow", "group", "shadow", "vsftpd.chroot_list"]
        .iter()
        .enumerate()
    {
        let failpoint = format!("renamed-{file}");
        let out = root.run_env(
            "sync",
            &["-q", "--users", &db],
            &[("PYSK_PASSWD_FAILPOINT", &failpoint)],
        );
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{failpoint}");
        assert!(
            root.leftovers().contains(&".pysk-passwd.intent".to_owned()),
            "{failpoint}: {:?}",
            root.leftovers()
        );
        // In the window: every user still has a shadow entry, every
        // unchanged line is there, erin is not a user yet.
        assert_eq!(locked_out(&root), Vec::<String>::new(), "{failpoint}");
        for line in &unchanged {
            assert!(root.read("passwd").contains(line), "{failpoint}: {line}");
        }
        assert!(!names(&root, "passwd").contains("erin"), "{failpoint}");
        let finisher = if i % 2 == 0 { "check" } else { "sync" };
        let out = root.run(finisher, &["--users", &db]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{failpoint}, {finisher}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "{}: finished the sync that was interrupted ({} of its 5 file(s) put in place now)",
                root.etc().join(".pysk-passwd.intent").display(),
                4 - i
            )),
            "{failpoint}, {finisher}: {stderr}"
        );
        assert_eq!(
            text(&out.stdout),
            "",
            "{failpoint}, {finisher}: no difference left"
        );
        assert_eq!(root.leftovers(), Vec::<String>::new(), "{failpoint}");
        let got: Vec<String> = ["passwd", "group", "shadow", "gshadow", "vsftpd.chroot_list"]
            .iter()
            .map(|n| root.read(n).replace(&*root.path().to_string_lossy(), ""))
            .collect();
        assert_eq!(got, wanted, "{failpoint}");
        // A check makes no homes: erin's are not counted.
        let checks: BTreeSet<String> = root
            .checks()
            .into_iter()
            .filter(|l| !l.contains("'/home/erin"))
            .collect();
        assert_eq!(checks, complaints, "{failpoint}: pwck/grpck");
        // Back to the example for the next round.
        let out = root.run("sync", &["-q", "--users", &example()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
}

#[test]
fn a_bom_costly_hashes_and_format_characters_are_refused() {
    let Some(root) = Root::new() else { return };
    let hash = crypt("pw", "$6$testsalt$");
    let user = |name: &str, password: &str, gecos: &str| {
        serde_json::json!({"version": 1, "users": [{
            "name": name, "uid": 10001, "password": password,
            "home": format!("/home/{name}"), "shell": "/bin/bash", "gecos": gecos,
        }]})
        .to_string()
        .into_bytes()
    };
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(user("eve", &hash, "Eve"));
    let rounds = hash.replacen("$6$", "$6$rounds=999999999$", 1);
    let yescrypt = format!(
        "$y$j9T{}$abcdefgh$9WNEpu8Mx2S4KNGvbVWKM6clOSoY6.YEl7AYF4DGV04",
        "/".repeat(3000)
    );
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "a byte order mark",
            bom,
            "starts with a UTF-8 byte order mark, which JSON does not allow; \
             save the document without it"
                .to_owned(),
        ),
        (
            "999,999,999 rounds",
            user("eve", &rounds, "Eve"),
            "user #1 \"eve\": password: malformed SHA-512 ($6$) hash, or rounds above 5000000"
                .to_owned(),
        ),
        (
            "a yescrypt parameter string of 3,003 characters",
            user("eve", &yescrypt, "Eve"),
            "password: malformed yescrypt ($y$) hash, or its cost above what is allowed".to_owned(),
        ),
        (
            "a bidi override in gecos",
            user("eve", &hash, "Eve \u{202E}nimda"),
            "user #1 \"eve\": gecos contains the invisible or text-direction character U+202E"
                .to_owned(),
        ),
        (
            "a line separator in gecos",
            user("eve", &hash, "Eve\u{2028}root"),
            "gecos contains the invisible or text-direction character U+2028".to_owned(),
        ),
        (
            "a zero-width space in gecos",
            user("eve", &hash, "E\u{200B}ve"),
            "gecos contains the invisible or text-direction character U+200B".to_owned(),
        ),
    ];
    let before = root.snapshot();
    for (what, bytes, says) in cases {
        let path = root.database("hostile.json", &bytes);
        let out = root.run("sync", &["--users", &path]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{what}: {stderr}");
        assert!(stderr.contains(&says), "{what}: {stderr}");
        assert_eq!(root.snapshot(), before, "{what}: files changed");
    }
    // The caps themselves, and ordinary non-ASCII text, are accepted.
    let at_cap = hash.replacen("$6$", "$6$rounds=5000000$", 1);
    let good = crypt("pw", &at_cap[..at_cap.rfind('$').expect("$")]);
    let path = root.database("good.json", &user("eve", &good, "Ève Müller, 東京"));
    let out = root.run("sync", &["-q", "--users", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        root.read("passwd")
            .contains("eve:x:10001:10001:Ève Müller, 東京:")
    );
}
