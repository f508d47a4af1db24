//! `pysk-hv conf diff|apply` against OpenSSH servers started by the test
//! (two aliases of a [`Fleet`], both this machine): each alias gets a
//! scratch root of its own through `--root DIR/{host}`, so that the two
//! hosts' trees, rendered with different switches and excludes, land in
//! different places. The diff is exact, apply writes the files byte for
//! byte with the tree's modes, a second apply changes nothing, an unknown
//! placeholder stops the run before any host, a held lock exits 75.

use std::fs;
use std::os::unix::fs::PermissionsExt;
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
        write_switches(
            &config,
            &[
                ("hv_ssh_options", format!("-F {}", fleet.config().display())),
                ("hv_user", fleet.user().to_owned()),
                (
                    "hv_state_dir",
                    dir.path().join("state").display().to_string(),
                ),
                ("hv_conf_tree", tree.display().to_string()),
                ("port", "80".to_owned()),
            ],
        );
        let sc = config.join("serverconfig");
        fs::write(sc.join("h1"), "name=web1\n").expect("h1");
        fs::write(sc.join("h2"), "name=web2\nport=8080\n").expect("h2");
        fs::write(sc.join("exclude/h2"), "# kept by hand\n/etc/secret\n").expect("exclude");
        fs::create_dir_all(tree.join("etc/app")).expect("mkdir");
        let conf = tree.join("etc/app/app.conf.in");
        fs::write(&conf, "name={{name}}\nport={{port}}\nstay=1\n").expect("conf");
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).expect("chmod");
        fs::write(tree.join("etc/motd"), "hello {{raw}}\n").expect("motd");
        fs::write(tree.join("etc/secret"), "s3cret\n").expect("secret");
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
    fs::set_permissions(&old, fs::Permissions::from_mode(0o640)).expect("chmod");
    let (r1, r2) = (setup.root("h1"), setup.root("h2"));
    let (r1, r2) = (r1.display(), r2.display());

    let out = setup.conf("diff").succeeds();
    let expected = format!(
        "--- h1:{r1}/etc/app/app.conf\n+++ h1:{r1}/etc/app/app.conf\n\
         @@ -1,3 +1,3 @@\n-name=old\n+name=web1\n port=80\n stay=1\n\
         h1:{r1}/etc/current: to be a link to /srv/web1\n\
         --- /dev/null\n+++ h1:{r1}/etc/motd\n@@ -0,0 +1 @@\n+hello {{{{raw}}}}\n\
         --- /dev/null\n+++ h1:{r1}/etc/secret\n@@ -0,0 +1 @@\n+s3cret\n\
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
    assert_eq!(stdout(&out), "h1: 4 changed\nh2: 3 changed\n");
    for (host, name, port) in [("h1", "web1", "80"), ("h2", "web2", "8080")] {
        let etc = setup.root(host).join("etc");
        let conf = etc.join("app/app.conf");
        let text = format!("name={name}\nport={port}\nstay=1\n");
        assert_eq!(fs::read_to_string(&conf).expect("conf"), text, "{host}");
        assert_eq!(mode(&conf), 0o640, "{host}");
        assert_eq!(
            fs::read(etc.join("motd")).expect("motd"),
            b"hello {{raw}}\n"
        );
        assert_eq!(mode(&etc.join("motd")), 0o644, "{host}");
        let link = fs::read_link(etc.join("current")).expect("link");
        assert_eq!(link, PathBuf::from(format!("/srv/{name}")), "{host}");
    }
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
    assert_eq!(stdout(&out), "h1: unchanged\nh2: unchanged\n");
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
            "pysk-hv: {}:2: unknown switch {{{{only}}}}\n",
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
    let lock = Lock::acquire(&setup.path("state/pysk-hv.lock"), Duration::ZERO).expect("lock");
    let out = setup.conf("apply").fails_with(75);
    assert!(stderr(&out).contains("pysk-hv.lock"), "{}", stderr(&out));
    assert!(!setup.root("h1").exists() && !setup.root("h2").exists());
    // diff takes no lock.
    setup.conf("diff").succeeds();
    drop(lock);
    let out = setup.conf("apply").succeeds();
    assert_eq!(stdout(&out), "h1: 4 changed\nh2: 3 changed\n");
}
