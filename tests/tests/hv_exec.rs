//! `pysk-hv exec` end to end with the system's ssh. Without a server: a
//! host whose port is closed is unreachable and named with ssh's own
//! message, `--rerun` picks exactly it from `last-run.json`, `--dry-run`
//! prints each host's ssh command line, and names the inventory lacks
//! fail before any connection. Against test sshd (one fleet per test,
//! the servers told apart by the port a session came in on): each host's
//! lines prefixed and its class (ok, exit, signal), exit 0 only when all
//! were ok, stdin to every host; the classes of hosts not reached
//! (refused, host key changed or unknown, auth) with what ssh said,
//! `--accept-new`, and `--rerun failed` running exactly the failed ones;
//! a command past `--timeout` (even one that ignores TERM) timed out and
//! gone from its host; `--gather` and `--json` exact.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use pysk_tests::sshd::{Fleet, gone, process_tree};
use pysk_tests::{
    TempDir, assert_stderr_is, free_port, names_in, require, scratch, stderr, stdout, tool,
    write_switches,
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
                "closed: ssh -E LOGDIR/closed.log -o LogLevel=DEBUG2 -o BatchMode=yes \
                 -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o StrictHostKeyChecking=yes -l root -F {} -- closed \
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
            "{host}: ssh -E LOGDIR/{host}.log -o LogLevel=DEBUG2 -o BatchMode=yes \
             -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o StrictHostKeyChecking=accept-new {port}-l admin -F {}",
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

#[test]
fn a_missing_ssh_is_69_and_records_no_run() {
    let setup = Setup::new("web1\nweb2\n");
    let empty = setup.path("empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let out = setup
        .hv()
        .env("PATH", &empty)
        .args(["exec", "-w", "web[1-2]", "--", "true"])
        .fails_with(69);
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        "pysk-hv: ssh: cannot start: No such file or directory\n",
    );
    assert!(!setup.path("state/last-run.json").exists());
}

/// A fleet of test sshd whose aliases are pysk-hv's inventory (written
/// anew before each run, so that aliases added later are in it), with
/// pysk-hv's switches pointing at the fleet's client configuration, the
/// fleet's account and a state directory in the scratch dir.
struct Hosts {
    dir: TempDir,
    fleet: Fleet,
}

impl Hosts {
    /// Starts `servers` sshd with `aliases` spread over them; `None`
    /// (outside CI) when OpenSSH is not installed.
    fn start(aliases: &[&str], servers: usize) -> Option<Hosts> {
        let dir = scratch();
        let fleet = Fleet::start(&dir.path().join("fleet"), aliases, servers)?;
        Some(Hosts::over(dir, fleet))
    }

    /// As [`Hosts::start`], the sessions multiplexed through a
    /// ControlMaster per server.
    fn start_multiplexed(aliases: &[&str], servers: usize) -> Option<Hosts> {
        let dir = scratch();
        let fleet = Fleet::start_multiplexed(&dir.path().join("fleet"), aliases, servers)?;
        Some(Hosts::over(dir, fleet))
    }

    fn over(dir: TempDir, fleet: Fleet) -> Hosts {
        let config = dir.path().join("config");
        fs::create_dir_all(&config).expect("mkdir");
        write_switches(&config, &fleet.hv_switches(&dir.path().join("state")));
        Hosts { dir, fleet }
    }

    /// pysk-hv with the fleet's aliases, in the order added, as its
    /// inventory.
    fn hv(&self) -> pysk_tests::TestCommand {
        let config = self.dir.path().join("config");
        let inventory: String = self
            .fleet
            .aliases()
            .iter()
            .map(|a| format!("{a}\n"))
            .collect();
        fs::write(config.join("hosts"), inventory).expect("inventory");
        tool("pysk-hv").config_dir(&config)
    }

    /// The last run's record, `last-run.json` in the state directory.
    fn last_run(&self) -> serde_json::Value {
        let path = self.dir.path().join("state/last-run.json");
        serde_json::from_str(&fs::read_to_string(path).expect("last run")).expect("json")
    }

    /// The port of the server `alias` is on, as the remote shell sees it.
    fn port(&self, alias: &str) -> String {
        self.fleet.port(alias).to_string()
    }
}

/// A remote command that tells the servers apart by the port the session
/// came in on: `cases` is `(port, shell commands)`, the last the default.
fn by_port(cases: &[(String, &str)]) -> String {
    let mut text = String::from("case ${SSH_CONNECTION##* } in");
    for (port, commands) in cases {
        text.push_str(&format!(" {port}) {commands};;"));
    }
    text.push_str(" *) exit 99;; esac");
    text
}

/// Asserts that `err` is `lines` and then the run's summary line, which
/// starts with `counts` and names the (up to three) slowest of `hosts`
/// with their durations.
fn assert_summary(err: &str, lines: &[String], counts: &str, hosts: &[&str]) {
    let all: Vec<&str> = err.lines().collect();
    assert_eq!(all.len(), lines.len() + 1, "{err}");
    assert_eq!(all[..lines.len()], lines[..], "{err}");
    let last = all[lines.len()];
    let prefix = format!("pysk-hv: {counts}; slowest: ");
    let slowest = last
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{last:?} does not start with {prefix:?}"));
    let named: Vec<&str> = slowest.split(", ").collect();
    assert_eq!(named.len(), hosts.len().min(3), "{last}");
    for item in named {
        let (host, seconds) = item.split_once(' ').expect("host and duration");
        assert!(hosts.contains(&host), "{host} in {last}");
        let seconds = seconds.strip_suffix(" s").expect("seconds");
        assert!(seconds.parse::<f64>().is_ok(), "{last}");
    }
}

/// The lines of `text`, sorted: hosts run side by side.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn each_host_gives_its_lines_prefixed_and_its_class_and_exit_0_only_when_all_ran_ok() {
    let Some(mut hosts) = Hosts::start(&["ok1", "fails", "killed", "ok2"], 3) else {
        return;
    };
    hosts.fleet.add_closed("closed");
    let command = by_port(&[
        (hosts.port("ok1"), "echo one; echo 'two  words'"),
        (hosts.port("fails"), "echo before; echo broken >&2; exit 7"),
        (hosts.port("killed"), "echo dying; kill -9 $$"),
    ]);
    classes_side_by_side(&hosts, &command);
    rerun_unreachable_takes_only_hosts_not_reached(&hosts);
    classes_under_timeout_and_all_ok(&hosts, &command);
    in_order_with_stdin_and_nothing_to_rerun(&hosts, &command);
}

/// ok, exit 7, a signal and a closed port in one run: each host's lines
/// prefixed, its class on stderr and in the record, exit 1.
fn classes_side_by_side(hosts: &Hosts, command: &str) {
    let out = hosts
        .hv()
        .args(["exec", "-w", "ok[1-2],fails,killed,closed", "--", command])
        .fails_with(1);
    assert_eq!(
        sorted_lines(&stdout(&out)),
        [
            "fails: before",
            "killed: dying",
            "ok1: one",
            "ok1: two  words",
            "ok2: one",
            "ok2: two  words"
        ]
    );
    assert_summary(
        &stderr(&out),
        &[
            "fails: broken".to_owned(),
            "pysk-hv: fails: exit 7".to_owned(),
            "pysk-hv: killed: killed by a signal".to_owned(),
            format!(
                "pysk-hv: closed: unreachable: ssh: connect to host 127.0.0.1 port {}: \
                 Connection refused",
                hosts.port("closed")
            ),
        ],
        "5 hosts: 2 ok, 1 exited non-zero, 1 killed by a signal, 1 unreachable",
        &["ok1", "fails", "killed", "ok2", "closed"],
    );
    let last = hosts.last_run();
    let classes: Vec<(&str, &str)> = last["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().expect("host"),
                h["class"].as_str().expect("class"),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("ok1", "ok"),
            ("fails", "exit"),
            ("killed", "signal"),
            ("ok2", "ok"),
            ("closed", "unreachable")
        ]
    );
    assert_eq!(last["hosts"][1]["exit"], 7);
}

/// After [`classes_side_by_side`], `--rerun failed` takes all but the ok
/// hosts and `--rerun unreachable` only the closed one: the others ran the
/// command.
fn rerun_unreachable_takes_only_hosts_not_reached(hosts: &Hosts) {
    for (which, picked) in [
        ("failed", &["fails", "killed", "closed"][..]),
        ("unreachable", &["closed"][..]),
    ] {
        let out = hosts
            .hv()
            .args([
                "exec",
                "--rerun",
                which,
                "--dry-run",
                "--json",
                "--",
                "true",
            ])
            .succeeds();
        assert_eq!(planned(&stdout(&out)), picked, "--rerun {which}");
    }
}

/// The hosts of a `--dry-run --json` plan.
fn planned(json: &str) -> Vec<String> {
    let plan: serde_json::Value = serde_json::from_str(json).expect("json");
    plan["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["host"].as_str().expect("host").to_owned())
        .collect()
}

/// A signal under `--timeout`, a command's own 255, and exit 0 when every
/// host was ok.
fn classes_under_timeout_and_all_ok(hosts: &Hosts, command: &str) {
    // Under --timeout too (the command then runs under timeout(1)), and
    // a command's own 255 is not a failed connection.
    let out = hosts
        .hv()
        .args([
            "exec",
            "-w",
            "killed,fails",
            "--timeout",
            "30",
            "--",
            command,
        ])
        .fails_with(1);
    assert_eq!(
        sorted_lines(&stdout(&out)),
        ["fails: before", "killed: dying"]
    );
    assert_summary(
        &stderr(&out),
        &[
            "fails: broken".to_owned(),
            "pysk-hv: fails: exit 7".to_owned(),
            "pysk-hv: killed: killed by a signal".to_owned(),
        ],
        "2 hosts: 1 exited non-zero, 1 killed by a signal",
        &["killed", "fails"],
    );
    let out = hosts
        .hv()
        .args(["exec", "-w", "ok1", "--", "exit 255"])
        .fails_with(1);
    assert_summary(
        &stderr(&out),
        &["pysk-hv: ok1: exit 255".to_owned()],
        "1 host: 1 exited non-zero",
        &["ok1"],
    );

    let out = hosts
        .hv()
        .args(["exec", "-w", "ok[1-2]", "--", command])
        .succeeds();
    assert_eq!(
        sorted_lines(&stdout(&out)),
        ["ok1: one", "ok1: two  words", "ok2: one", "ok2: two  words"]
    );
    assert_summary(&stderr(&out), &[], "2 hosts: 2 ok", &["ok1", "ok2"]);
}

/// `-f 1` in the inventory's order, stdin to every host, and `--rerun
/// failed` after a run where nothing failed.
fn in_order_with_stdin_and_nothing_to_rerun(hosts: &Hosts, command: &str) {
    // One host at a time: the output in the inventory's order.
    let out = hosts
        .hv()
        .args(["exec", "-w", "ok[1-2],fails", "-f", "1", "--", command])
        .fails_with(1);
    assert_eq!(
        stdout(&out),
        "ok1: one\nok1: two  words\nfails: before\nok2: one\nok2: two  words\n"
    );

    // Every host gets all of stdin.
    let out = hosts
        .hv()
        .args(["exec", "-w", "ok[1-2],fails", "--", "cat"])
        .stdin("in 1\nin 2\n")
        .succeeds();
    assert_eq!(
        sorted_lines(&stdout(&out)),
        [
            "fails: in 1",
            "fails: in 2",
            "ok1: in 1",
            "ok1: in 2",
            "ok2: in 1",
            "ok2: in 2"
        ]
    );
    // Nothing failed in the last run: nothing to run again.
    let out = hosts
        .hv()
        .args(["exec", "--rerun", "failed", "--", "echo", "again"])
        .succeeds();
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        "pysk-hv: nothing to rerun: every host of the last run was ok\n",
    );
    // Nothing to do is no problem: -q says nothing.
    let out = hosts
        .hv()
        .args(["-q", "exec", "--rerun", "failed", "--", "echo", "again"])
        .succeeds();
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    // Hosts named and all excluded: a warning, even with -q.
    let out = hosts
        .hv()
        .args(["-q", "exec", "-w", "ok1", "-x", "ok1", "--", "true"])
        .succeeds();
    assert_stderr_is(&out, "pysk-hv: no hosts left to run on\n");
}

#[test]
fn hosts_not_reached_are_classed_by_why_and_rerun_failed_runs_exactly_them() {
    // `broken` alone on its server, where the command fails.
    let Some(mut hosts) = Hosts::start(&["good", "broken", "changed", "unknown"], 3) else {
        return;
    };
    hosts.fleet.add_closed("closed");
    hosts.fleet.add_wrong_client_key("stranger");
    hosts.fleet.change_host_key("changed");
    hosts.fleet.forget_host_key("unknown");
    first_run_not_reached(&hosts);
    rerun_failed_with_accept_new(&hosts);
    never_speaking_ssh(&hosts);
}

/// The remote command of the not-reached test: `echo WORD`, and exit 5
/// on `broken`'s server.
fn echo_but_broken(hosts: &Hosts, word: &str) -> String {
    let port = hosts.port("broken");
    format!("echo {word}; [ ${{SSH_CONNECTION##* }} != {port} ] || exit 5")
}

/// What pysk-hv says of `changed`, `closed` and `stranger`: ssh's line.
fn not_reached_lines(hosts: &Hosts) -> Vec<String> {
    vec![
        format!(
            "pysk-hv: changed: host key changed: Host key for [127.0.0.1]:{} has changed \
             and you have requested strict checking.",
            hosts.port("changed")
        ),
        format!(
            "pysk-hv: closed: unreachable: ssh: connect to host 127.0.0.1 port {}: \
             Connection refused",
            hosts.port("closed")
        ),
        format!(
            "pysk-hv: stranger: auth refused: {}@127.0.0.1: Permission denied (publickey).",
            hosts.fleet.user()
        ),
    ]
}

/// Every class of a host not reached, with ssh's line, beside an ok and
/// a failed host; `--rerun unreachable` would take only those not reached.
fn first_run_not_reached(hosts: &Hosts) {
    let out = hosts
        .hv()
        .args(["exec", "-w", "good,broken,changed,unknown,closed,stranger"])
        .args(["--", &echo_but_broken(hosts, "in")])
        .fails_with(1);
    assert_eq!(sorted_lines(&stdout(&out)), ["broken: in", "good: in"]);
    let mut lines = not_reached_lines(hosts);
    lines.insert(0, "pysk-hv: broken: exit 5".to_owned());
    lines.insert(
        2,
        format!(
            "pysk-hv: unknown: host key unknown: No ED25519 host key is known for \
             [127.0.0.1]:{} and you have requested strict checking.",
            hosts.port("unknown")
        ),
    );
    assert_summary(
        &stderr(&out),
        &lines,
        "6 hosts: 1 ok, 1 exited non-zero, 1 unreachable, 2 host key refused, 1 auth refused",
        &["good", "broken", "changed", "unknown", "closed", "stranger"],
    );
    assert_eq!(
        fs::read_to_string(hosts.fleet.known_hosts("unknown")).expect("known_hosts"),
        ""
    );
    // A dry run, which leaves the record as it is.
    let out = hosts
        .hv()
        .args(["exec", "--rerun", "unreachable", "--dry-run", "--json"])
        .args(["--", "true"])
        .succeeds();
    assert_eq!(
        planned(&stdout(&out)),
        ["changed", "unknown", "closed", "stranger"]
    );
}

/// From the first run's record, every host but the good one; and
/// `--accept-new` learns the unknown key, not the changed one.
fn rerun_failed_with_accept_new(hosts: &Hosts) {
    let out = hosts
        .hv()
        .args(["exec", "--rerun", "failed", "--accept-new"])
        .args(["--", &echo_but_broken(hosts, "again")])
        .fails_with(1);
    assert_eq!(
        sorted_lines(&stdout(&out)),
        ["broken: again", "unknown: again"]
    );
    let mut lines = not_reached_lines(hosts);
    lines.insert(0, "pysk-hv: broken: exit 5".to_owned());
    assert_summary(
        &stderr(&out),
        &lines,
        "5 hosts: 1 ok, 1 exited non-zero, 1 unreachable, 1 host key refused, 1 auth refused",
        &["broken", "changed", "unknown", "closed", "stranger"],
    );
    assert_eq!(
        fs::read_to_string(hosts.fleet.known_hosts("unknown")).expect("known_hosts"),
        format!("{}\n", hosts.fleet.servers()[0].known_hosts_line())
    );
    // Learnt: strict checking passes now.
    let out = hosts
        .hv()
        .args(["exec", "-w", "unknown", "--", "echo", "strict"])
        .succeeds();
    assert_eq!(stdout(&out), "unknown: strict\n");
}

/// A port that takes the connection but never speaks SSH: unreachable
/// after `--connect-timeout`.
fn never_speaking_ssh(hosts: &Hosts) {
    let closed = hosts.fleet.port("closed");
    let _silent =
        std::net::TcpListener::bind(("127.0.0.1", closed)).expect("listen on the closed port");
    let started = Instant::now();
    let out = hosts
        .hv()
        .args(["exec", "-w", "closed", "--connect-timeout", "1"])
        .args(["--", "true"])
        .fails_with(1);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_summary(
        &stderr(&out),
        &[format!(
            "pysk-hv: closed: unreachable: Connection to 127.0.0.1 port {closed} timed out"
        )],
        "1 host: 1 unreachable",
        &["closed"],
    );
}

#[test]
fn a_command_past_its_timeout_is_timed_out_and_gone_from_the_host() {
    let Some(hosts) = Hosts::start(&["slow", "quick", "stubborn"], 3) else {
        return;
    };
    // A marker no other process on the machine has in its command line.
    let marker = format!("{}", 7_000_000 + std::process::id());
    let child = hosts
        .hv()
        .args(["exec", "-w", "slow,quick,stubborn", "--timeout", "2", "--"])
        .arg(by_port(&[
            (hosts.port("quick"), "echo quick"),
            (
                hosts.port("slow"),
                &format!("echo started; sleep {marker}; echo woke"),
            ),
            (
                hosts.port("stubborn"),
                &format!("trap '' TERM; echo deaf; sleep {marker}; echo woke"),
            ),
        ]))
        .spawn();
    let started = Instant::now();
    let running = sleeping(&hosts.fleet, &marker, 2);
    let out = child.wait_with_output().expect("wait for pysk-hv");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // TERM after 2 s, KILL 5 s later for the one that ignores TERM: the
    // remote timeout ends both, well before our backstop at 12 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "pysk-hv waited {:?}",
        started.elapsed()
    );
    assert!(
        gone(&running, Duration::from_secs(2)),
        "still on the host after the run: {running:?}"
    );
    assert_eq!(marked(&hosts.fleet, &marker), Vec::<u32>::new());
    assert_eq!(
        sorted_lines(&stdout(&out)),
        ["quick: quick", "slow: started", "stubborn: deaf"]
    );
    assert_summary(
        &stderr(&out),
        &[
            "pysk-hv: slow: timed out".to_owned(),
            "pysk-hv: stubborn: timed out".to_owned(),
        ],
        "3 hosts: 1 ok, 2 timed out",
        &["slow", "quick", "stubborn"],
    );
}

/// Waits until `count` `sleep` processes with `marker` run below the
/// fleet's servers; returns every process whose command line holds it.
fn sleeping(fleet: &Fleet, marker: &str, count: usize) -> Vec<u32> {
    let started = Instant::now();
    loop {
        let found = marked(fleet, marker);
        let sleeps = found
            .iter()
            .filter(|pid| cmdline(**pid).starts_with("sleep "));
        if sleeps.count() == count {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not {count} commands started: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes below the fleet's servers whose command line holds
/// `marker`.
fn marked(fleet: &Fleet, marker: &str) -> Vec<u32> {
    fleet
        .servers()
        .iter()
        .flat_map(|server| process_tree(server.pid()))
        .filter(|pid| cmdline(*pid).contains(marker))
        .collect()
}

/// The command line of process `pid`, its words joined by blanks (empty
/// when it is gone).
fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn gather_folds_hosts_with_the_same_output_and_json_gives_each_class() {
    let Some(mut hosts) = Hosts::start(&["web1", "web2", "web3", "db1"], 3) else {
        return;
    };
    hosts.fleet.add_closed("web4");
    let command = by_port(&[
        (hosts.port("web1"), "echo same; echo two"),
        (hosts.port("web2"), "echo other; echo warned >&2; exit 3"),
        (hosts.port("web3"), "echo same; echo two; exit 3"),
    ]);
    gathered(&hosts, &command);
    to_outdir(&hosts, &command);
    as_json(&hosts, &command);
    json_cut_at_a_mebibyte(&hosts);
}

/// Output kept for `--json` stops at 1 MiB a stream and says so; the
/// host is still ok.
fn json_cut_at_a_mebibyte(hosts: &Hosts) {
    let out = hosts
        .hv()
        .args(["exec", "-w", "web1", "--json", "--"])
        .arg("head -c 1100000 /dev/zero | tr '\\0' x")
        .succeeds();
    assert_stderr_is(&out, "");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let host = &doc["hosts"][0];
    assert_eq!(
        (&host["class"], &host["truncated"]),
        (&"ok".into(), &true.into())
    );
    assert_eq!(host["stdout"], "x".repeat(1 << 20));
}

/// `--gather`: each distinct output once under its folded hosts, the
/// same output with another result apart; remote stderr live.
fn gathered(hosts: &Hosts, command: &str) {
    let out = hosts
        .hv()
        .args(["exec", "-w", "web[1-3],db1", "--gather", "--", command])
        .fails_with(1);
    // The same output with another result stays apart, its result named:
    // web3.
    let rule = "-".repeat(15);
    assert_eq!(
        stdout(&out),
        format!(
            "{rule}\ndb1,web1 (2)\n{rule}\nsame\ntwo\n{rule}\nweb2 (exit 3)\n{rule}\nother\n\
             {rule}\nweb3 (exit 3)\n{rule}\nsame\ntwo\n"
        )
    );
    assert_summary(
        &stderr(&out),
        &[
            "web2: warned".to_owned(),
            "pysk-hv: web2: exit 3".to_owned(),
            "pysk-hv: web3: exit 3".to_owned(),
        ],
        "4 hosts: 2 ok, 2 exited non-zero",
        &["web1", "web2", "web3", "db1"],
    );
}

/// `--outdir`: a `.out` and an `.err` file per host, nothing on stdout.
fn to_outdir(hosts: &Hosts, command: &str) {
    let outdir = hosts.dir.path().join("out/run");
    // A file of an earlier run, longer and readable by all, is replaced.
    fs::create_dir_all(&outdir).expect("mkdir");
    fs::write(outdir.join("web1.out"), "an earlier, longer output\n").expect("old");
    fs::set_permissions(outdir.join("web1.out"), fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = hosts
        .hv()
        .args(["exec", "-w", "web[1-3],db1", "--outdir"])
        .arg(&outdir)
        .args(["--", command])
        .fails_with(1);
    assert_eq!(stdout(&out), "");
    assert_summary(
        &stderr(&out),
        &[
            "pysk-hv: web2: exit 3".to_owned(),
            "pysk-hv: web3: exit 3".to_owned(),
        ],
        "4 hosts: 2 ok, 2 exited non-zero",
        &["web1", "web2", "web3", "db1"],
    );
    let mut files: Vec<(String, String)> = fs::read_dir(&outdir)
        .expect("outdir")
        .map(|e| {
            let e = e.expect("entry");
            let text = fs::read_to_string(e.path()).expect("read");
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    files.sort();
    let file = |name: &str, text: &str| (name.to_owned(), text.to_owned());
    assert_eq!(
        files,
        [
            file("db1.err", ""),
            file("db1.out", "same\ntwo\n"),
            file("web1.err", ""),
            file("web1.out", "same\ntwo\n"),
            file("web2.err", "warned\n"),
            file("web2.out", "other\n"),
            file("web3.err", ""),
            file("web3.out", "same\ntwo\n"),
        ]
    );
    // Output can hold secrets: owner-only.
    for entry in fs::read_dir(&outdir).expect("outdir") {
        let path = entry.expect("entry").path();
        let mode = fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    // A directory made for --outdir is owner-only too.
    let made = hosts.dir.path().join("out/new");
    hosts
        .hv()
        .args(["exec", "-w", "web1", "--outdir"])
        .arg(&made)
        .args(["--", command])
        .succeeds();
    let mode = fs::metadata(&made).expect("made").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(
        fs::read_to_string(made.join("web1.out")).expect("out"),
        "same\ntwo\n"
    );
}

/// `--json`: one document, each host's class, result, output and what
/// ssh said, in the inventory's order; nothing on stderr.
fn as_json(hosts: &Hosts, command: &str) {
    let out = hosts
        .hv()
        .args(["exec", "-w", "web[1-4],db1", "--json", "--", command])
        .fails_with(1);
    assert_stderr_is(&out, "");
    let mut doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    for host in doc["hosts"].as_array_mut().expect("hosts") {
        let duration = host["duration"].take();
        assert!(duration.as_f64().is_some_and(|d| d > 0.0), "{duration}");
    }
    let closed = hosts.port("web4");
    let ok = |host: &str| {
        serde_json::json!({"host": host, "class": "ok", "result": "ok", "duration": null,
            "stdout": "same\ntwo\n", "stderr": ""})
    };
    assert_eq!(
        doc,
        serde_json::json!({
            "version": 1,
            "dry_run": false,
            "hosts": [
                ok("web1"),
                {"host": "web2", "class": "exit", "result": "exit 3", "exit": 3,
                 "duration": null, "stdout": "other\n", "stderr": "warned\n"},
                {"host": "web3", "class": "exit", "result": "exit 3", "exit": 3,
                 "duration": null, "stdout": "same\ntwo\n", "stderr": ""},
                ok("db1"),
                {"host": "web4", "class": "unreachable", "result": "unreachable",
                 "duration": null,
                 "message": format!("ssh: connect to host 127.0.0.1 port {closed}: Connection refused"),
                 "stdout": "", "stderr": ""},
            ],
            "counts": {"ok": 2, "exit": 2, "unreachable": 1},
        })
    );
}

#[test]
fn a_host_that_stops_answering_is_given_up_after_the_backstop_and_one_lost_is_lost() {
    let Some(hosts) = Hosts::start(&["hung"], 1) else {
        return;
    };
    let marker = format!("{}", 8_000_000 + std::process::id());
    let command = format!("echo started; sleep {marker}");
    let mut child = hosts
        .hv()
        .args(["exec", "-w", "hung", "--timeout", "1", "--", &command])
        .spawn();
    let started = Instant::now();
    // Once the command's first line has come through (sshd may still
    // hold it otherwise), the connection's own sshd processes stop:
    // nothing reaches ssh any more, not even the command's end.
    assert_eq!(first_line(&mut child), "hung: started\n");
    let mut commands = signal_sessions(&hosts, &marker, libc::SIGSTOP);
    let out = child.wait_with_output().expect("wait for pysk-hv");
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // --timeout 1, then timeout(1)'s 5 s to KILL, then 5 s more.
    assert!(
        waited >= Duration::from_secs(11) && waited < Duration::from_secs(20),
        "pysk-hv gave up after {waited:?}"
    );
    assert_eq!(stdout(&out), "");
    assert_summary(
        &stderr(&out),
        &["pysk-hv: hung: timed out, may still be running".to_owned()],
        "1 host: 1 timed out",
        &["hung"],
    );

    // A connection lost after login is no class of the command's, and
    // not a host where it never ran: `--rerun unreachable` leaves it out.
    let mut child = hosts
        .hv()
        .args(["exec", "-w", "hung", "--", &command])
        .spawn();
    assert_eq!(first_line(&mut child), "hung: started\n");
    commands.extend(signal_sessions(&hosts, &marker, libc::SIGKILL));
    let out = child.wait_with_output().expect("wait for pysk-hv");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_summary(
        &stderr(&out),
        &[
            // ssh's own word, on its stderr (not in its -E log).
            "hung: Connection to 127.0.0.1 closed by remote host.".to_owned(),
            "pysk-hv: hung: connection lost: after login; the command may have run".to_owned(),
        ],
        "1 host: 1 connection lost",
        &["hung"],
    );
    assert_eq!(hosts.last_run()["hosts"][0]["class"], "lost");
    let out = hosts
        .hv()
        .args([
            "exec",
            "--rerun",
            "failed",
            "--dry-run",
            "--json",
            "--",
            "true",
        ])
        .succeeds();
    assert_eq!(planned(&stdout(&out)), ["hung"]);
    let out = hosts
        .hv()
        .args(["exec", "--rerun", "unreachable", "--", "true"])
        .succeeds();
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        "pysk-hv: nothing to rerun: every host of the last run was reached\n",
    );
    // The commands outlive their sessions (no terminal): ended here.
    for pid in commands {
        let pid = i32::try_from(pid).expect("a pid");
        // SAFETY: kill(2) of a command this test started on its own sshd.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[test]
fn through_a_controlmaster_each_class_is_told_and_no_master_holds_the_run() {
    let Some(hosts) = Hosts::start_multiplexed(&["ok", "fails", "killed"], 3) else {
        return;
    };
    let command = by_port(&[
        (hosts.port("ok"), "echo one"),
        (hosts.port("fails"), "echo before; exit 7"),
        (hosts.port("killed"), "echo dying; kill -9 $$"),
    ]);
    // The first run starts a master per server (ControlPersist 60): the
    // run does not wait for them. The second goes through them.
    for run in ["first", "second"] {
        let started = Instant::now();
        let out = hosts
            .hv()
            .args(["exec", "-w", "ok,fails,killed", "--", &command])
            .fails_with(1);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{run} run took {:?}",
            started.elapsed()
        );
        assert_eq!(
            sorted_lines(&stdout(&out)),
            ["fails: before", "killed: dying", "ok: one"],
            "{run}"
        );
        assert_summary(
            &stderr(&out),
            &[
                "pysk-hv: fails: exit 7".to_owned(),
                "pysk-hv: killed: killed by a signal".to_owned(),
            ],
            "3 hosts: 1 ok, 1 exited non-zero, 1 killed by a signal",
            &["ok", "fails", "killed"],
        );
        assert_eq!(hosts.fleet.master_sockets().len(), 3, "{run}");
    }
    // A command's own 255 through a master is no signal.
    let out = hosts
        .hv()
        .args(["exec", "-w", "ok", "--", "exit 255"])
        .fails_with(1);
    assert_summary(
        &stderr(&out),
        &["pysk-hv: ok: exit 255".to_owned()],
        "1 host: 1 exited non-zero",
        &["ok"],
    );
    // One connection per server for all three runs: the masters'.
    for server in hosts.fleet.servers() {
        assert_eq!(
            server.log_text().matches("Accepted publickey").count(),
            1,
            "{}",
            server.log_text()
        );
    }
    hosts.fleet.stop_masters();
    assert_eq!(hosts.fleet.master_sockets(), Vec::<PathBuf>::new());
}

/// Once a `sleep` with `marker` runs below the first server, sends `sig`
/// to the server's sshd processes below its listener (those of the
/// connections, not the sessions' commands); the commands' processes.
fn signal_sessions(hosts: &Hosts, marker: &str, sig: i32) -> Vec<u32> {
    let commands = sleeping(&hosts.fleet, marker, 1);
    let sshd = hosts.fleet.servers()[0].pid();
    for pid in process_tree(sshd).into_iter().skip(1) {
        if comm(pid).starts_with("sshd") {
            let pid = i32::try_from(pid).expect("a pid");
            // SAFETY: kill(2) on a process below the test's own sshd.
            unsafe { libc::kill(pid, sig) };
        }
    }
    commands
}

/// The first line `child` writes on its stdout, read byte by byte so
/// that the rest stays in the pipe for `wait_with_output`.
fn first_line(child: &mut std::process::Child) -> String {
    let stdout = child.stdout.as_mut().expect("stdout piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while std::io::Read::read(stdout, &mut byte).expect("read stdout") == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// The command name of process `pid` (empty when it is gone).
fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

#[test]
fn a_reader_that_goes_away_ends_the_run_and_the_commands_writing_to_it() {
    let Some(hosts) = Hosts::start(&["a", "b"], 1) else {
        return;
    };
    let marker = format!("{}", 9_000_000 + std::process::id());
    let mut child = hosts
        .hv()
        .args(["exec", "-w", "a,b", "--", "yes", &marker])
        .spawn();
    let mut first = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut reader, &mut first).expect("a line");
    assert!(
        ["a: ", "b: "]
            .map(|h| format!("{h}{marker}\n"))
            .contains(&first),
        "{first:?}"
    );
    drop(reader); // as `head -n1` does
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pysk-hv still runs 20 s after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a closed stdout ends quietly");
    let left = marked(&hosts.fleet, &marker);
    assert!(
        gone(&left, Duration::from_secs(10)),
        "still on the host: {left:?}"
    );
}

#[test]
fn many_hosts_at_once_each_line_whole_and_each_hosts_in_order() {
    let names: Vec<String> = (1..=24).map(|n| format!("h{n:02}")).collect();
    let aliases: Vec<&str> = names.iter().map(String::as_str).collect();
    let Some(hosts) = Hosts::start(&aliases, 2) else {
        return;
    };
    // 300 lines of 800 bytes from each host, more than a pipe holds.
    let command = "awk 'BEGIN { for (i = 1; i <= 300; i++) printf \"%0800d\\n\", i }'";
    let out = hosts
        .hv()
        .args(["exec", "-w", "h[01-24]", "-f", "24", "--", command])
        .succeeds();
    let expected: Vec<String> = (1..=300).map(|i| format!("{i:0800}")).collect();
    let text = stdout(&out);
    for name in &names {
        let prefix = format!("{name}: ");
        let got: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .collect();
        assert_eq!(got, expected, "{name}'s lines");
    }
    assert_eq!(text.lines().count(), 24 * 300);
    assert_summary(&stderr(&out), &[], "24 hosts: 24 ok", &aliases);
    fanout_within_the_open_files_limit(&hosts, &aliases);
}

/// With only 100 open files allowed (soft and hard), `-f 24` is lowered
/// to what fits, with a warning, and every host still runs.
fn fanout_within_the_open_files_limit(hosts: &Hosts, aliases: &[&str]) {
    use std::os::unix::process::CommandExt;
    let mut command = hosts
        .hv()
        .args(["exec", "-w", "h[01-24]", "-f", "24", "--", "echo", "up"])
        .command();
    // SAFETY: setrlimit(2) is async-signal-safe and touches no memory of
    // the parent.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 100,
                rlim_max: 100,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = command.output().expect("pysk-hv runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut expected: Vec<String> = aliases.iter().map(|a| format!("{a}: up")).collect();
    expected.sort();
    assert_eq!(sorted_lines(&stdout(&out)), expected);
    assert_summary(
        &stderr(&out),
        &[
            "pysk-hv: --fanout 24 lowered to 7: the open files limit (ulimit -n) of 100 \
           holds about 10 a host"
                .to_owned(),
        ],
        "24 hosts: 24 ok",
        aliases,
    );
}

/// The mode bits of `path`.
fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn stdin_is_spooled_owner_only_and_stale_private_dirs_go() {
    let Some(hosts) = Hosts::start(&["web1"], 1) else {
        return;
    };
    let tmp = hosts.dir.path().join("tmp");
    fs::create_dir_all(&tmp).expect("mkdir");
    // Left by a run of a process that is gone, and one of a process that
    // still runs (this test's).
    let stale = tmp.join("pysk-hv.999999999.AbCdEf");
    let live = tmp.join(format!("pysk-hv.{}.AbCdEf", std::process::id()));
    for dir in [&stale, &live] {
        fs::create_dir_all(dir).expect("mkdir");
        fs::write(dir.join("stdin"), "old").expect("write");
    }
    let marker = format!("{}", 7_100_000 + std::process::id());
    let child = hosts
        .hv()
        .env("TMPDIR", &tmp)
        .args(["exec", "-w", "web1", "--"])
        .arg(format!("cat >/dev/null; sleep 2.{marker}"))
        .stdin("TOPSECRET-password\n")
        .spawn();
    let running = sleeping(&hosts.fleet, &marker, 1);
    let names = names_in(&tmp);
    let ours: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("pysk-hv.{}.", child.id())))
        .collect();
    assert_eq!(ours.len(), 1, "{names:?}");
    assert_eq!(names.len(), 2, "the stale one removed: {names:?}");
    let private = tmp.join(ours[0]);
    assert_eq!(mode(&private), 0o700);
    assert_eq!(mode(&private.join("stdin")), 0o600);
    assert_eq!(
        fs::read_to_string(private.join("stdin")).expect("stdin"),
        "TOPSECRET-password\n"
    );
    let out = child.wait_with_output().expect("wait for pysk-hv");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(gone(&running, Duration::from_secs(5)));
    assert_eq!(
        names_in(&tmp),
        [live.file_name().expect("name").to_string_lossy()]
    );
}

#[test]
fn sigterm_ends_the_run_its_sessions_and_its_private_dir() {
    use std::os::unix::process::ExitStatusExt;
    let Some(hosts) = Hosts::start(&["web1", "web2"], 2) else {
        return;
    };
    let tmp = hosts.dir.path().join("tmp");
    fs::create_dir_all(&tmp).expect("mkdir");
    let marker = format!("{}", 7_200_000 + std::process::id());
    for (sig, was) in [(libc::SIGTERM, 0), (libc::SIGINT, 1)] {
        let child = hosts
            .hv()
            .env("TMPDIR", &tmp)
            .args(["exec", "-w", "web[1-2]", "--"])
            .arg(format!("cat >/dev/null; sleep 2.{marker}"))
            .stdin("secret\n")
            .spawn();
        let running = sleeping(&hosts.fleet, &marker, 2);
        assert_eq!(names_in(&tmp).len(), 1, "the run's private dir");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) of the child this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let out = child.wait_with_output().expect("wait for pysk-hv");
        assert_eq!(out.status.signal(), Some(sig), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
        assert!(names_in(&tmp).is_empty(), "{:?}", names_in(&tmp));
        // The commands, without a terminal, run on to their end.
        assert!(gone(&running, Duration::from_secs(10)));
        // Nothing recorded: there was no run before.
        assert!(
            !hosts.dir.path().join("state/last-run.json").exists(),
            "{was}"
        );
    }
}

#[test]
fn only_runs_that_change_hosts_record_and_a_rerun_merges() {
    let Some(hosts) = Hosts::start(&["ok", "fails", "fails2"], 3) else {
        return;
    };
    let command = by_port(&[
        (hosts.port("fails"), "exit 5"),
        (hosts.port("fails2"), "exit 6"),
        (hosts.port("ok"), "true"),
    ]);
    hosts
        .hv()
        .args(["exec", "-w", "ok,fails,fails2", "--", &command])
        .fails_with(1);
    let classes = |hosts: &Hosts| -> Vec<(String, String)> {
        let last = hosts.last_run();
        let list = last["hosts"].as_array().expect("hosts").clone();
        list.iter()
            .map(|h| (h["host"].to_string(), h["class"].to_string()))
            .collect()
    };
    let first = fs::read(hosts.dir.path().join("state/last-run.json")).expect("recorded");
    // A dry run records nothing.
    hosts
        .hv()
        .args(["exec", "-w", "ok", "--dry-run", "--", "true"])
        .succeeds();
    assert_eq!(
        fs::read(hosts.dir.path().join("state/last-run.json")).expect("kept"),
        first
    );
    // A rerun of one of the failed hosts: its class updated, the others
    // kept, so the other failed host is still picked.
    let out = hosts
        .hv()
        .args([
            "exec", "--rerun", "failed", "-x", "fails2", "--", "echo", "again",
        ])
        .succeeds();
    assert_eq!(stdout(&out), "fails: again\n");
    assert_eq!(
        classes(&hosts),
        [
            ("\"ok\"".to_owned(), "\"ok\"".to_owned()),
            ("\"fails\"".to_owned(), "\"ok\"".to_owned()),
            ("\"fails2\"".to_owned(), "\"exit\"".to_owned()),
        ]
    );
    assert_eq!(
        hosts.last_run()["counts"],
        serde_json::json!({"ok": 2, "exit": 1})
    );
    let out = hosts
        .hv()
        .args(["exec", "--rerun", "failed", "--", "echo", "again"])
        .succeeds();
    assert_eq!(stdout(&out), "fails2: again\n");
    // A run without --rerun replaces the record.
    hosts
        .hv()
        .args(["exec", "-w", "ok", "--", "true"])
        .succeeds();
    assert_eq!(
        classes(&hosts),
        [("\"ok\"".to_owned(), "\"ok\"".to_owned())]
    );
}

#[test]
fn a_state_dir_that_cannot_be_written_stops_the_run_before_any_host() {
    if !ssh_present() {
        return;
    }
    let setup = Setup::new("closed\n");
    // A dry run creates nothing.
    setup
        .hv()
        .args(["exec", "-w", "closed", "--dry-run", "--", "true"])
        .succeeds();
    assert!(!setup.path("state").exists());
    // Made on the first run that records.
    setup
        .hv()
        .args(["exec", "-w", "closed", "--", "true"])
        .fails_with(1);
    assert_eq!(mode(&setup.path("state/last-run.json")), 0o600);
    fs::remove_dir_all(setup.path("state")).expect("rm");
    // A file where the directory should be: 73, and the host (which
    // would be unreachable) never tried.
    fs::write(setup.path("state"), "").expect("file");
    let out = setup
        .hv()
        .args(["exec", "-w", "closed", "--", "true"])
        .fails_with(73);
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {}: cannot write: File exists\n",
            setup.path("state").display()
        ),
    );
}

#[test]
fn gather_json_and_outdir_are_refused_together() {
    let setup = Setup::new("closed\n");
    let out = setup
        .hv()
        .args(["exec", "-w", "closed", "--gather", "--json", "--", "true"])
        .fails_with(2);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the argument '--gather' cannot be used with '--json'"),
        "{err}"
    );
    assert!(!setup.path("state").exists());
}

#[test]
fn through_a_jump_host_that_refuses_the_reason_is_the_jumps() {
    if !ssh_present() {
        return;
    }
    let setup = Setup::new("far 127.0.0.1\n");
    let config = setup.path("config");
    write_switches(
        &config,
        &[
            (
                "hv_ssh_options",
                format!(
                    "-F {} -J root@127.0.0.1:{}",
                    setup.path("ssh_config").display(),
                    setup.port
                ),
            ),
            ("hv_state_dir", setup.path("state").display().to_string()),
        ],
    );
    let out = setup
        .hv()
        .args(["exec", "-w", "far", "--", "true"])
        .fails_with(1);
    let refused = format!(
        "ssh: connect to host 127.0.0.1 port {}: Connection refused",
        setup.port
    );
    assert_summary(
        &stderr(&out),
        &[
            // The jump's ssh writes on ssh's stderr, the host's stream.
            format!("far: {refused}"),
            format!("pysk-hv: far: unreachable: {refused}"),
        ],
        "1 host: 1 unreachable",
        &["far"],
    );
}
