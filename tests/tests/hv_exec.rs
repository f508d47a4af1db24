//! `pysk-hv exec` with the system's ssh where no server is needed: a
//! host whose port is closed is unreachable and named with ssh's own
//! message, `--rerun` picks exactly it from `last-run.json`, `--dry-run`
//! prints each host's ssh command line, and names the inventory lacks
//! fail before any connection. (The cases that need a running sshd live
//! with the sshd harness.)

use std::fs;
use std::path::{Path, PathBuf};

use pysk_tests::{
    TempDir, assert_stderr_is, free_port, require, scratch, stderr, stdout, tool, write_switches,
};

/// A configuration directory with `inventory` as its hosts file, an ssh
/// configuration of the test's own (alias `closed` to a port nobody
/// listens on; known hosts of its own) and the state in the scratch dir.
struct Setup {
    dir: TempDir,
    port: u16,
}

impl Setup {
    fn new(inventory: &str) -> Setup {
        let dir = scratch();
        let port = free_port();
        let config = dir.path().join("config");
        fs::create_dir_all(&config).expect("mkdir");
        fs::write(config.join("hosts"), inventory).expect("inventory");
        let ssh_config = dir.path().join("ssh_config");
        fs::write(
            &ssh_config,
            format!(
                "Host *\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n\
                 Host closed\n  HostName 127.0.0.1\n  Port {port}\n",
                dir.path().join("known_hosts").display()
            ),
        )
        .expect("ssh config");
        write_switches(
            &config,
            &[
                ("hv_ssh_options", format!("-F {}", ssh_config.display())),
                (
                    "hv_state_dir",
                    dir.path().join("state").display().to_string(),
                ),
            ],
        );
        Setup { dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn hv(&self) -> pysk_tests::TestCommand {
        tool("pysk-hv").config_dir(&self.path("config"))
    }
}

fn ssh_present() -> bool {
    require("ssh", "openssh-client").is_some()
}

#[test]
fn a_closed_port_is_unreachable_named_with_what_ssh_said_and_rerun_picks_it() {
    if !ssh_present() {
        return;
    }
    let setup = Setup::new("closed\nother.example\n");
    let out = setup
        .hv()
        .args(["exec", "-w", "closed", "--", "true"])
        .fails_with(1);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "pysk-hv: closed: unreachable: ssh: connect to host 127.0.0.1 port {}: \
             Connection refused",
            setup.port
        ),
        "{err}"
    );
    assert!(
        lines[1].starts_with("pysk-hv: 1 host: 1 unreachable; slowest: closed "),
        "{err}"
    );
    assert_eq!(lines.len(), 2, "{err}");
    let last: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(setup.path("state/last-run.json")).expect("last run"),
    )
    .expect("json");
    assert_eq!(last["hosts"][0]["host"], "closed");
    assert_eq!(last["hosts"][0]["class"], "unreachable");
    for which in ["failed", "unreachable"] {
        let out = setup
            .hv()
            .args(["exec", "--rerun", which, "--dry-run", "--", "true"])
            .succeeds();
        assert_eq!(
            stdout(&out),
            format!(
                "closed: ssh -E LOGDIR/closed.log -o LogLevel=DEBUG1 -o BatchMode=yes \
                 -o ConnectTimeout=10 -o StrictHostKeyChecking=yes -l root -F {} -- closed \
                 'sh -c '\\''true'\\'''\n",
                setup.path("ssh_config").display()
            )
        );
    }
}

#[test]
fn json_gives_each_hosts_class_and_what_ssh_said() {
    if !ssh_present() {
        return;
    }
    let setup = Setup::new("closed\n");
    let out = setup
        .hv()
        .args(["exec", "-w", "closed", "--json", "--", "echo", "hi"])
        .fails_with(1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let host = &doc["hosts"][0];
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["dry_run"], false);
    assert_eq!(host["host"], "closed");
    assert_eq!(host["class"], "unreachable");
    assert_eq!(
        host["message"],
        format!(
            "ssh: connect to host 127.0.0.1 port {}: Connection refused",
            setup.port
        )
    );
    assert_eq!(host["stdout"], "");
    assert_eq!(doc["counts"], serde_json::json!({"unreachable": 1}));
    assert_stderr_is(&out, "");
}

#[test]
fn dry_run_shows_address_port_user_timeout_and_the_quoted_command() {
    let setup = Setup::new("web1 192.0.2.1 port=2222\nweb2\ndb1 groups=db\n");
    let out = setup
        .hv()
        .args([
            "exec",
            "-w",
            "web[1-2]",
            "-g",
            "db",
            "-x",
            "web2",
            "-l",
            "admin",
            "--timeout",
            "30",
            "--accept-new",
            "--dry-run",
            "--",
            "echo",
            "it's",
            "|",
            "wc",
            "-c",
        ])
        .succeeds();
    let options = |host: &str, port: &str| {
        format!(
            "{host}: ssh -E LOGDIR/{host}.log -o LogLevel=DEBUG1 -o BatchMode=yes \
             -o ConnectTimeout=10 -o StrictHostKeyChecking=accept-new {port}-l admin -F {}",
            setup.path("ssh_config").display()
        )
    };
    let remote = "'timeout -k 5 30 sh -c '\\''echo it'\\''\\'\\'''\\''s | wc -c'\\'''";
    assert_eq!(
        stdout(&out),
        format!(
            "{} -- 192.0.2.1 {remote}\n{} -- db1 {remote}\n",
            options("web1", "-p 2222 "),
            options("db1", "")
        )
    );
}

#[test]
fn names_the_inventory_lacks_fail_before_any_connection() {
    let setup = Setup::new("web1\nweb2\n");
    let inventory = setup.path("config/hosts");
    let out = setup
        .hv()
        .args(["exec", "-w", "web[1-4]", "--", "true"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: -w: not in the inventory {}: web[3-4]\n",
            inventory.display()
        ),
    );
    let out = setup.hv().args(["exec", "--", "true"]).fails_with(2);
    assert_stderr_is(
        &out,
        "pysk-hv: name the hosts with -w NODESET, -g GROUP or --rerun\n",
    );
    let out = setup
        .hv()
        .args(["exec", "-w", "web[3-1]", "--", "true"])
        .fails_with(2);
    assert_stderr_is(
        &out,
        "pysk-hv: -w: \"web[3-1]\": bad range \"3-1\": the first number is above the last\n",
    );
    assert!(!Path::new(&setup.path("state")).exists());
}
