//! `pysk-hv conf diff|apply` against OpenSSH servers started by the test
//! (two aliases of a [`Fleet`], both this machine): each alias gets a
//! scratch root of its own through `--root DIR/{host}`, so that the two
//! hosts' trees, rendered with different switches and excludes, land in
//! different places. The diff is exact (a secret file's contents masked),
//! apply writes the files byte for byte with the tree's modes and makes
//! missing directories with the tree's directory modes, keeps an existing file's owner and group, a
//! second apply changes nothing, a tree of more than 128 KiB of path names
//! goes through, a directory or file in the way is shown by diff and
//! fails apply with nothing changed, a link to a `.in` file gets the
//! rendered name, a world-readable secret is warned of, a dry run's JSON
//! says so, an unknown placeholder stops the run before any host, a
//! held lock exits 75 for apply and diff alike.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use pysk_common::lock::Lock;
use pysk_tests::sshd::Fleet;
use pysk_tests::{TempDir, scratch, stderr, stdout, tool, write_switches};

/// The hosts of the inventory, each an alias of the fleet.
const HOSTS: [&str; 2] = ["h1", "h2"];

/// A fleet, its inventory, the switches that reach it, and a tree.
struct Setup {
    dir: TempDir,
    _fleet: Fleet,
}

impl Setup {
    /// `None` (outside CI) when OpenSSH is not installed.
    fn new() -> Option<Setup> {
        let dir = scratch();
        let fleet = Fleet::start(&dir.path().join("fleet"), &HOSTS, 1)?;
        let config = dir.path().join("config");
        fs::create_dir_all(config.join("serverconfig/exclude")).expect("mkdir");
        fs::write(config.join("hosts"), HOSTS.join("\n") + "\n").expect("inventory");
        let tree = dir.path().join("tree");
        let mut switches = fleet.hv_switches(&dir.path().join("state"));
        switches.extend([
            ("hv_conf_tree", tree.display().to_string()),
            ("port", "80".to_owned()),
        ]);
        write_switches(&config, &switches);
        let sc = config.join("serverconfig");
        fs::write(sc.join("h1"), "name=web1\n").expect("h1");
        fs::write(sc.join("h2"), "name=web2\nport=8080\n").expect("h2");
        fs::write(sc.join("exclude/h2"), "# kept by hand\n/etc/secret\n").expect("exclude");
        fs::create_dir_all(tree.join("etc/app")).expect("mkdir");
        fs::set_permissions(tree.join("etc"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(tree.join("etc/app"), fs::Permissions::from_mode(0o750))
            .expect("chmod");
        let conf = tree.join("etc/app/app.conf.in");
        fs::write(&conf, "name={{name}}\nport={{port}}\nstay=1\n").expect("conf");
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o664)).expect("chmod");
        fs::write(tree.join("etc/motd"), "hello {{raw}}\n").expect("motd");
        let secret = tree.join("etc/secret");
        fs::write(&secret, "s3cret\n").expect("secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink("/srv/{{name}}", tree.join("etc/current.in")).expect("ln");
        Some(Setup { dir, _fleet: fleet })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pysk-hv conf ACTION -w h1,h2 --root <scratch>/roots/{host}`.
    fn conf(&self, action: &str) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .env("SSH_AUTH_SOCK", "/nonexistent")
            .args(["conf", action, "-w", "h1,h2", "--root"])
            .arg(format!("{}/{{host}}", self.path("roots").display()))
    }

    /// `pysk-hv conf apply -w h1 --root <h1's root>`.
    fn apply_h1(&self) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .env("SSH_AUTH_SOCK", "/nonexistent")
            .args(["conf", "apply", "-w", "h1", "--root"])
            .arg(self.root("h1"))
    }

    /// Host `host`'s root.
    fn root(&self, host: &str) -> PathBuf {
        self.path("roots").join(host)
    }
}

fn mode(path: &std::path::Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn diff_then_apply_writes_each_hosts_tree_exactly_and_a_second_apply_changes_nothing() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let old = setup.root("h1").join("etc/app/app.conf");
    fs::create_dir_all(old.parent().expect("parent")).expect("mkdir");
    fs::write(&old, "name=old\nport=80\nstay=1\n").expect("old");
    fs::set_permissions(&old, fs::Permissions::from_mode(0o664)).expect("chmod");
    // Another owner (only root can give one): apply keeps it.
    let owner = std::os::unix::fs::chown(&old, Some(4321), Some(4322))
        .is_ok()
        .then_some((4321, 4322));
    if owner.is_none() {
        eprintln!("not root: the owner kept by apply is not checked");
    }
    let (r1, r2) = (setup.root("h1"), setup.root("h2"));
    let (r1, r2) = (r1.display(), r2.display());

    let out = setup.conf("diff").succeeds();
    let expected = format!(
        "--- h1:{r1}/etc/app/app.conf\n+++ h1:{r1}/etc/app/app.conf\n\
         @@ -1,3 +1,3 @@\n-name=old\n+name=web1\n port=80\n stay=1\n\
         h1:{r1}/etc/current: to be a link to /srv/web1\n\
         --- /dev/null\n+++ h1:{r1}/etc/motd\n@@ -0,0 +1 @@\n+hello {{{{raw}}}}\n\
         h1:{r1}/etc/secret: new file (mode 0600, not shown)\n\
         h1: 4 changed\n\
         --- /dev/null\n+++ h2:{r2}/etc/app/app.conf\n@@ -0,0 +1,3 @@\n\
         +name=web2\n+port=8080\n+stay=1\n\
         h2:{r2}/etc/current: to be a link to /srv/web2\n\
         --- /dev/null\n+++ h2:{r2}/etc/motd\n@@ -0,0 +1 @@\n+hello {{{{raw}}}}\n\
         h2: 3 changed\n"
    );
    assert_eq!(stdout(&out), expected);
    assert_eq!(
        fs::read(&old).expect("untouched"),
        b"name=old\nport=80\nstay=1\n"
    );
    assert!(!setup.root("h2").exists(), "diff writes nothing");

    let out = setup.conf("apply").succeeds();
    assert_eq!(stdout(&out), "");
    assert_changed(
        &stderr(&out),
        "pysk-hv: h1: 4 changed\npysk-hv: h2: 3 changed\n",
    );
    for (host, name, port) in [("h1", "web1", "80"), ("h2", "web2", "8080")] {
        let etc = setup.root(host).join("etc");
        let conf = etc.join("app/app.conf");
        let text = format!("name={name}\nport={port}\nstay=1\n");
        assert_eq!(fs::read_to_string(&conf).expect("conf"), text, "{host}");
        assert_eq!(mode(&conf), 0o664, "{host}");
        assert_eq!(
            fs::read(etc.join("motd")).expect("motd"),
            b"hello {{raw}}\n"
        );
        assert_eq!(mode(&etc.join("motd")), 0o644, "{host}");
        let link = fs::read_link(etc.join("current")).expect("link");
        assert_eq!(link, PathBuf::from(format!("/srv/{name}")), "{host}");
    }
    if let Some(owner) = owner {
        let meta = fs::metadata(&old).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), owner);
    }
    // Made by apply with the tree's modes (above the tree 0755), whatever
    // the umask of the files; h1's existing etc/app left as it was.
    for (dir, want) in [
        ("roots/h2", 0o755),
        ("roots/h2/etc", 0o755),
        ("roots/h2/etc/app", 0o750),
        ("roots/h1/etc/app", 0o755),
    ] {
        assert_eq!(mode(&setup.path(dir)), want, "{dir}");
    }
    assert_eq!(mode(&setup.root("h1").join("etc/secret")), 0o600);
    let h1_etc = setup.root("h1").join("etc");
    assert_eq!(
        fs::read(h1_etc.join("secret")).expect("secret"),
        b"s3cret\n"
    );
    let mut names: Vec<String> = fs::read_dir(setup.root("h2").join("etc"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["app", "current", "motd"],
        "excluded on h2, no temporary file"
    );

    let out = setup.conf("apply").succeeds();
    assert_changed(
        &stderr(&out),
        "pysk-hv: h1: unchanged\npysk-hv: h2: unchanged\n",
    );
    let out = setup.conf("apply").arg("-q").succeeds();
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    let out = setup.conf("diff").succeeds();
    assert_eq!(stdout(&out), "h1: unchanged\nh2: unchanged\n");
}

#[test]
fn an_unknown_placeholder_names_file_and_line_and_contacts_no_host() {
    let Some(setup) = Setup::new() else {
        return;
    };
    // Known on h1 only: h2's rendering fails, and h1 is not reached either.
    fs::write(setup.path("config/serverconfig/h1"), "name=web1\nonly=1\n").expect("h1");
    let bad = setup.path("tree/etc/bad.in");
    fs::write(&bad, "ok\n{{only}}\n").expect("bad");
    let out = setup.conf("apply").fails_with(78);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-hv: {}:2: unknown switch {{{{only}}}}: a placeholder takes a switch set in \
             serverconfig/default or serverconfig/<host>, not a built-in default\n",
            bad.display()
        )
    );
    assert_eq!(stdout(&out), "");
    assert!(!setup.path("roots").exists(), "no host written");
    assert!(!setup.path("state/last-run.json").exists(), "no host run");
}

#[test]
fn apply_exits_75_while_another_run_holds_the_lock() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let lock_file = setup.path("state/pysk-hv.lock");
    let lock = Lock::acquire(&lock_file, Duration::ZERO).expect("lock");
    let held = format!(
        "pysk-hv: {}: another run holds the lock; try again later or use --wait\n",
        lock_file.display()
    );
    let out = setup.conf("apply").fails_with(75);
    assert_eq!(stderr(&out), held);
    // A diff, and so a dry run, waits for a run that holds the lock.
    let out = setup.conf("diff").fails_with(75);
    assert_eq!(stderr(&out), held);
    let out = setup.conf("apply").arg("--dry-run").fails_with(75);
    assert_eq!(stderr(&out), held);
    assert!(!setup.root("h1").exists() && !setup.root("h2").exists());
    // With --wait it runs once the holder lets go.
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        drop(lock);
    });
    let out = setup.conf("diff").args(["--wait", "30"]).succeeds();
    assert!(
        stdout(&out).ends_with("h2: 3 changed\n"),
        "{}",
        stdout(&out)
    );
    holder.join().expect("released");
    let out = setup.conf("apply").succeeds();
    assert_changed(
        &stderr(&out),
        "pysk-hv: h1: 4 changed\npysk-hv: h2: 3 changed\n",
    );
}

#[test]
fn a_tree_of_more_than_128_kib_of_path_names_is_applied_exactly() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let many = setup.path("tree/srv/many");
    fs::create_dir_all(&many).expect("mkdir");
    let names: Vec<String> = (0..3000)
        .map(|i| format!("{i:04}-{}", "a-rather-long-file-name-".repeat(2)))
        .collect();
    let total: usize = names.iter().map(|n| "/srv/many/".len() + n.len()).sum();
    assert!(total > 128 * 1024, "{total} bytes of names");
    for name in &names {
        fs::write(many.join(name), format!("{name}\n")).expect("write");
    }
    let out = setup.apply_h1().succeeds();
    assert_changed(&stderr(&out), "pysk-hv: h1: 3004 changed\n");
    let written = setup.root("h1").join("srv/many");
    let mut got: Vec<String> = fs::read_dir(&written)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, names);
    for name in &names {
        let text = fs::read_to_string(written.join(name)).expect("read");
        assert_eq!(text, format!("{name}\n"));
    }
}

#[test]
fn a_directory_or_a_file_in_the_way_is_shown_by_diff_and_fails_apply_changing_nothing() {
    let Some(setup) = Setup::new() else {
        return;
    };
    // h1: a directory where the tree's last file goes; h2: a file where
    // the directory of its first file goes.
    fs::create_dir_all(setup.root("h1").join("etc/secret")).expect("mkdir");
    fs::create_dir_all(setup.root("h2").join("etc")).expect("mkdir");
    fs::write(setup.root("h2").join("etc/app"), "a file\n").expect("file");
    let (r1, r2) = (setup.root("h1"), setup.root("h2"));
    let (r1, r2) = (r1.display(), r2.display());
    let out = setup.conf("diff").succeeds();
    let expected = format!(
        "--- /dev/null\n+++ h1:{r1}/etc/app/app.conf\n@@ -0,0 +1,3 @@\n\
         +name=web1\n+port=80\n+stay=1\n\
         h1:{r1}/etc/current: to be a link to /srv/web1\n\
         --- /dev/null\n+++ h1:{r1}/etc/motd\n@@ -0,0 +1 @@\n+hello {{{{raw}}}}\n\
         h1:{r1}/etc/secret: a directory on the host; apply will not replace it\n\
         h1: 3 changed, 1 in the way\n\
         h2:{r2}/etc/app/app.conf: {r2}/etc/app on the host is not a directory; \
         apply will not replace it\n\
         h2:{r2}/etc/current: to be a link to /srv/web2\n\
         --- /dev/null\n+++ h2:{r2}/etc/motd\n@@ -0,0 +1 @@\n+hello {{{{raw}}}}\n\
         h2: 2 changed, 1 in the way\n"
    );
    assert_eq!(stdout(&out), expected);

    let out = setup.conf("apply").fails_with(1);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    let told = format!(
        "pysk-hv: h1:{r1}/etc/secret: a directory on the host; apply will not replace it\n\
         pysk-hv: h1: nothing was changed\n\
         pysk-hv: h2:{r2}/etc/app/app.conf: {r2}/etc/app on the host is not a directory; \
         apply will not replace it\npysk-hv: h2: nothing was changed\n\
         pysk-hv: h1: exit 1\npysk-hv: h2: exit 1\n\
         pysk-hv: 2 hosts: 2 exited non-zero; slowest: "
    );
    assert!(err.starts_with(&told) && err.lines().count() == 7, "{err}");
    let mut h1: Vec<String> = fs::read_dir(setup.root("h1").join("etc"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    h1.sort();
    assert_eq!(h1, ["secret"], "nothing made on h1");
    assert_eq!(
        fs::read_dir(setup.root("h2").join("etc"))
            .expect("ls")
            .count(),
        1
    );
    assert_eq!(
        fs::read(setup.root("h2").join("etc/app")).expect("app"),
        b"a file\n"
    );
}

#[test]
fn a_link_to_a_template_gets_its_rendered_name_and_a_readable_secret_is_warned_of() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let tree = setup.path("tree/etc/app");
    std::os::unix::fs::symlink("app.conf.in", tree.join("alias.conf")).expect("ln");
    fs::write(tree.join("db.conf.in"), "pw={{db_password}}\n").expect("db");
    fs::set_permissions(tree.join("db.conf.in"), fs::Permissions::from_mode(0o644)).expect("chmod");
    let h1 = setup.path("config/serverconfig/h1");
    fs::write(h1, "name=web1\ndb_password=pw-h1\n").expect("switches");
    let out = setup.apply_h1().succeeds();
    let r1 = setup.root("h1");
    let err = stderr(&out);
    let told = format!(
        "pysk-hv: h1:{}/etc/app/db.conf: holds a secret, yet its mode 0644 \
         lets everyone read it\npysk-hv: h1: 6 changed\npysk-hv: 1 host: 1 ok; slowest: h1 ",
        r1.display()
    );
    assert!(err.starts_with(&told) && err.lines().count() == 3, "{err}");
    let alias = fs::read_link(r1.join("etc/app/alias.conf")).expect("link");
    assert_eq!(alias, PathBuf::from("app.conf"));
    assert_eq!(
        fs::read_to_string(r1.join("etc/app/alias.conf")).expect("through the link"),
        "name=web1\nport=80\nstay=1\n"
    );
    assert_eq!(
        fs::read(r1.join("etc/app/db.conf")).expect("db"),
        b"pw=pw-h1\n"
    );
}

#[test]
fn json_of_apply_dry_run_says_dry_run_and_changes_nothing() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let out = setup.conf("apply").args(["--dry-run", "--json"]).succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["dry_run"], true, "{doc}");
    assert_eq!(
        doc["hosts"][1]["stdout"]
            .as_str()
            .map(|s| s.ends_with("h2: 3 changed\n")),
        Some(true),
        "{doc}"
    );
    assert!(!setup.root("h1").exists() && !setup.root("h2").exists());
    let out = setup.conf("apply").arg("--json").succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(doc["dry_run"], false, "{doc}");
}

/// `err` is `lines`, then the one-line summary of the run.
fn assert_changed(err: &str, lines: &str) {
    let rest = err.strip_prefix(lines).unwrap_or_else(|| panic!("{err}"));
    let hosts = lines.lines().count();
    let s = if hosts == 1 { "" } else { "s" };
    let summary = format!("pysk-hv: {hosts} host{s}: {hosts} ok; slowest: ");
    assert!(
        rest.starts_with(&summary) && rest.lines().count() == 1,
        "{err}"
    );
}
