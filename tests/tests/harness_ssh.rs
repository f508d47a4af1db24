//! The ssh harness against the system's OpenSSH: a command run through a
//! fleet alias comes back with its exact output and exit status, each way
//! of failing to reach a host gives 255 with the line ssh logs for it
//! (`-E`), `accept-new` learns an unknown key into the alias's own
//! known_hosts, a multiplexed fleet connects once per server, and a
//! dropped fleet leaves no process (nor master) behind.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use pysk_tests::cmd::run_fed;
use pysk_tests::sshd::{Fleet, gone, process_tree};
use pysk_tests::{code, scratch, stderr, stdout};

/// How long one ssh run may take before the test fails.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `ssh -F <fleet> -E <log> -o LogLevel=VERBOSE [options] alias --
/// remote` with empty stdin; returns the outcome and ssh's log.
fn ssh(fleet: &Fleet, dir: &Path, options: &[&str], alias: &str, remote: &str) -> (Output, String) {
    let log = dir.join(format!("{alias}.ssh.log"));
    let _ = std::fs::remove_file(&log); // -E appends
    let mut cmd = fleet.ssh();
    cmd.arg("-E").arg(&log).args(["-o", "LogLevel=VERBOSE"]);
    cmd.args(options).args([alias, "--", remote]);
    let out = run_fed(cmd, b"", BOUND);
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

/// Asserts that `log` holds `line` as a whole line.
fn assert_line(log: &str, line: &str) {
    assert!(
        log.lines().any(|l| l == line),
        "{line:?} not a line of:\n{log}"
    );
}

/// Asserts a failure to reach the host: 255, no output, `line` in the log.
fn assert_unreached(out: &Output, log: &str, line: &str) {
    assert_eq!(code(out), 255, "stderr: {}", stderr(out));
    assert_eq!(stdout(out), "");
    assert_line(log, line);
}

#[test]
fn command_output_and_exit_status_come_through() {
    let dir = scratch();
    let Some(fleet) = Fleet::start(dir.path(), &["a"], 1) else {
        return;
    };
    let (out, log) = ssh(&fleet, dir.path(), &[], "a", "printf '<%s>\\n' x 'y z'");
    assert_eq!(code(&out), 0, "stderr: {}\nlog: {log}", stderr(&out));
    assert_eq!(stdout(&out), "<x>\n<y z>\n");
    assert_eq!(stderr(&out), "");
    let port = fleet.port("a");
    assert_line(
        &log,
        &format!("Authenticated to 127.0.0.1 ([127.0.0.1]:{port}) using \"publickey\"."),
    );
    let (out, _) = ssh(&fleet, dir.path(), &[], "a", "echo gone >&2; exit 7");
    assert_eq!(code(&out), 7);
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("", "gone\n")
    );
}

#[test]
fn closed_port_is_refused() {
    let dir = scratch();
    let Some(mut fleet) = Fleet::start(dir.path(), &["a"], 1) else {
        return;
    };
    fleet.add_closed("closed");
    let (out, log) = ssh(&fleet, dir.path(), &[], "closed", "true");
    let port = fleet.port("closed");
    assert_unreached(
        &out,
        &log,
        &format!("ssh: connect to host 127.0.0.1 port {port}: Connection refused"),
    );
}

#[test]
fn changed_host_key_fails_verification_and_the_others_still_connect() {
    let dir = scratch();
    let Some(fleet) = Fleet::start(dir.path(), &["a", "b"], 1) else {
        return;
    };
    fleet.change_host_key("b");
    let (out, log) = ssh(&fleet, dir.path(), &[], "b", "true");
    let port = fleet.port("b");
    assert_unreached(&out, &log, "Host key verification failed.");
    assert_line(
        &log,
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
    );
    let known = fleet.known_hosts("b").display().to_string();
    assert_line(&log, &format!("Offending ED25519 key in {known}:1"));
    assert_line(
        &log,
        &format!(
            "Host key for [127.0.0.1]:{port} has changed and you have requested strict checking."
        ),
    );
    // accept-new does not accept a changed key either.
    let (out, log) = ssh(
        &fleet,
        dir.path(),
        &["-o", "StrictHostKeyChecking=accept-new"],
        "b",
        "true",
    );
    assert_unreached(&out, &log, "Host key verification failed.");
    // The same sshd through an alias whose known_hosts is right.
    let (out, _) = ssh(&fleet, dir.path(), &[], "a", "echo ok");
    assert_eq!((code(&out), stdout(&out).as_str()), (0, "ok\n"));
}

#[test]
fn unknown_host_key_is_refused_strictly_and_learnt_with_accept_new() {
    let dir = scratch();
    let Some(fleet) = Fleet::start(dir.path(), &["a"], 1) else {
        return;
    };
    fleet.forget_host_key("a");
    let port = fleet.port("a");
    let (out, log) = ssh(&fleet, dir.path(), &[], "a", "true");
    assert_unreached(&out, &log, "Host key verification failed.");
    assert_line(
        &log,
        &format!(
            "No ED25519 host key is known for [127.0.0.1]:{port} and you have requested strict checking."
        ),
    );
    assert_eq!(
        std::fs::read_to_string(fleet.known_hosts("a")).expect("known_hosts"),
        ""
    );

    let accept_new = ["-o", "StrictHostKeyChecking=accept-new"];
    let (out, log) = ssh(&fleet, dir.path(), &accept_new, "a", "echo in");
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, "in\n"),
        "log: {log}"
    );
    assert_line(
        &log,
        &format!(
            "Warning: Permanently added '[127.0.0.1]:{port}' (ED25519) to the list of known hosts."
        ),
    );
    let line = fleet.servers()[0].known_hosts_line();
    assert_eq!(
        std::fs::read_to_string(fleet.known_hosts("a")).expect("known_hosts"),
        format!("{line}\n")
    );
    // Learnt: strict checking passes now.
    let (out, _) = ssh(&fleet, dir.path(), &[], "a", "true");
    assert_eq!(code(&out), 0);
}

#[test]
fn wrong_client_key_is_denied() {
    let dir = scratch();
    let Some(mut fleet) = Fleet::start(dir.path(), &["a"], 1) else {
        return;
    };
    fleet.add_wrong_client_key("stranger");
    let (out, log) = ssh(&fleet, dir.path(), &[], "stranger", "true");
    let user = fleet.user();
    assert_unreached(
        &out,
        &log,
        &format!("{user}@127.0.0.1: Permission denied (publickey)."),
    );
    // The key reached sshd, which refused it.
    let sshd_log = fleet.servers()[0].log_text();
    let refused = format!("Failed publickey for {user} from 127.0.0.1 port ");
    assert!(sshd_log.contains(&refused), "sshd's log:\n{sshd_log}");
}

#[test]
fn aliases_spread_over_servers_each_reach_their_own() {
    let dir = scratch();
    let Some(fleet) = Fleet::start(dir.path(), &["h1", "h2", "h3"], 2) else {
        return;
    };
    let ports: Vec<u16> = fleet.servers().iter().map(|s| s.port()).collect();
    assert_eq!(
        fleet
            .aliases()
            .iter()
            .map(|a| fleet.port(a))
            .collect::<Vec<_>>(),
        [ports[0], ports[1], ports[0]]
    );
    for alias in fleet.aliases() {
        // The port the session came in on, as sshd tells the shell.
        let (out, log) = ssh(&fleet, dir.path(), &[], alias, "echo ${SSH_CONNECTION##* }");
        assert_eq!(
            stdout(&out),
            format!("{}\n", fleet.port(alias)),
            "log: {log}"
        );
    }
}

#[test]
fn a_multiplexed_fleet_shares_one_master_per_server_and_drop_stops_it() {
    let dir = scratch();
    let Some(fleet) = Fleet::start_multiplexed(&dir.path().join("fleet"), &["a", "b"], 1) else {
        return;
    };
    for alias in ["a", "b", "a"] {
        let (out, log) = ssh(
            &fleet,
            dir.path(),
            &[],
            alias,
            "echo $SSH_CONNECTION | wc -w",
        );
        assert_eq!(code(&out), 0, "stderr: {}\nlog: {log}", stderr(&out));
        assert_eq!(stdout(&out), "4\n");
    }
    let server = &fleet.servers()[0];
    assert_eq!(
        server.log_text().matches("Accepted publickey").count(),
        1,
        "{}",
        server.log_text()
    );
    let sockets = fleet.master_sockets();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    drop(fleet);
    assert!(!sockets[0].exists(), "the master outlived the fleet");
}

#[test]
fn drop_ends_sshd_with_its_sessions() {
    let dir = scratch();
    let Some(fleet) = Fleet::start(dir.path(), &["a"], 1) else {
        return;
    };
    let sshd = fleet.servers()[0].pid();
    let mut cmd = fleet.ssh();
    let mut client = cmd
        .args(["a", "--", "sleep 3600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ssh");
    let start = Instant::now();
    let session = loop {
        let tree = process_tree(sshd);
        if tree.iter().any(|pid| comm(*pid) == "sleep") {
            break tree;
        }
        assert!(
            start.elapsed() < BOUND,
            "no remote sleep below sshd: {tree:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let port = fleet.port("a");
    drop(fleet);
    assert!(
        gone(&session, Duration::from_secs(10)),
        "left behind: {session:?}"
    );
    let status = client.wait().expect("wait for ssh");
    assert_eq!(status.code(), Some(255), "the client lost its connection");
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(refused.is_err(), "port {port} still listens");
}

/// The command name of process `pid` (empty when it is gone).
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}
