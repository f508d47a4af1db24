//! What happened on one host, told from ssh's exit status, how long it
//! took and ssh's own log (`-E FILE -o LogLevel=DEBUG2`).
//!
//! ssh exits with the remote command's status, or 255 for its own
//! failures, but a remote `exit 255`, a remote command killed by a signal
//! and a connection lost after login all give 255 too. The log tells them
//! apart: before login, ssh's messages say why it could not get in (host
//! key, authentication, the connection); after it, DEBUG1 logs which
//! request ended the session (`rtype exit-status` or `rtype exit-signal`),
//! or none when the connection died. Through a ControlMaster connection
//! the client logs `mux_client_request_session` at DEBUG1, and at DEBUG2
//! `Received exit status from master N` when the command exited, or
//! `Control master terminated unexpectedly` when it was killed by a
//! signal (or the master's connection died: the two look alike). A
//! master started by one of our ssh (`ControlMaster auto` with
//! `ControlPersist`) logs into that ssh's file, but only about channels
//! other than 0, which nothing here reads. A timeout is told by our own clock, since
//! the remote `timeout` wrapper ends with 124 or, when it had to kill, by
//! a signal.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

/// How one host's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The command ran and exited 0.
    Ok,
    /// The command ran and exited with this status (never 0).
    Exit(i32),
    /// The command was killed by a signal on the host (ssh does not log
    /// which one), or the local ssh was killed by someone else.
    Signal,
    /// The host was not reached: connection refused or timed out, no
    /// route, a name that does not resolve, the connection closed before
    /// login. The command never ran.
    Unreachable,
    /// The connection was lost after login (the host went away, or stopped
    /// answering ssh's keepalives): the command may have run, in part or
    /// whole.
    Lost,
    /// The host's key did not match the known one (`changed`), or none
    /// is known and strict checking is on.
    HostKey {
        /// The known key differs (a possible attack, or a reinstalled
        /// host), rather than no key being known.
        changed: bool,
    },
    /// The host refused our keys.
    Auth,
    /// The command outlived `--timeout`.
    TimedOut {
        /// Only the local ssh was killed: the remote `timeout` wrapper did
        /// not end it in time, so the command may still be running.
        maybe_running: bool,
    },
}

/// Every class's name as [`Class::name`] gives it (the `class` field of
/// `last-run.json` and `--json`).
pub const NAMES: &[&str] = &[
    "ok",
    "exit",
    "signal",
    "unreachable",
    "lost",
    "host-key",
    "auth",
    "timed-out",
];

/// How the summary line counts the hosts of each class of [`NAMES`]
/// (`3 ok, 2 exited non-zero`), in its order.
pub const COUNTED: &[&str] = &[
    "ok",
    "exited non-zero",
    "killed by a signal",
    "unreachable",
    "connection lost",
    "host key refused",
    "auth refused",
    "timed out",
];

/// The names of the classes where the command never ran because the host
/// was not reached or would not let us in (not `lost`: there it may have
/// run).
pub const NOT_REACHED: &[&str] = &["unreachable", "host-key", "auth"];

impl Class {
    /// The class's name without its detail, one of [`NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Exit(_) => "exit",
            Class::Signal => "signal",
            Class::Unreachable => "unreachable",
            Class::Lost => "lost",
            Class::HostKey { .. } => "host-key",
            Class::Auth => "auth",
            Class::TimedOut { .. } => "timed-out",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Class::Ok => f.write_str("ok"),
            Class::Exit(code) => write!(f, "exit {code}"),
            Class::Signal => f.write_str("killed by a signal"),
            Class::Unreachable => f.write_str("unreachable"),
            Class::Lost => f.write_str("connection lost"),
            Class::HostKey { changed: true } => f.write_str("host key changed"),
            Class::HostKey { changed: false } => f.write_str("host key unknown"),
            Class::Auth => f.write_str("auth refused"),
            Class::TimedOut {
                maybe_running: false,
            } => f.write_str("timed out"),
            Class::TimedOut {
                maybe_running: true,
            } => f.write_str("timed out, may still be running"),
        }
    }
}

/// What the log says, line by line.
#[derive(Debug, Default)]
struct Facts {
    /// Logged in by this ssh (`Authenticated to`).
    logged_in: bool,
    /// A session through a ControlMaster's connection.
    mux: bool,
    /// The session ended with an exit status (`rtype exit-status`).
    exit_status: bool,
    /// The session ended with a signal (`rtype exit-signal`).
    exit_signal: bool,
    /// After login: ssh gave up on a host that stopped answering its
    /// keepalives (`Timeout, server … not responding.`).
    keepalive_timeout: bool,
    /// Through a ControlMaster (DEBUG2): the master passed on 255.
    mux_exit_255: bool,
    /// Through a ControlMaster (DEBUG2): the master ended the session
    /// without a status.
    mux_died: bool,
    /// Before login: `Host key verification failed.`
    host_key_failed: bool,
    /// Before login: the known key differs.
    host_key_changed: bool,
    /// Before login: the host refused our keys.
    auth_refused: bool,
}

impl Facts {
    /// Reads `log`. What ssh says before login (host key, auth) counts
    /// only before `Authenticated to`, so that the command text that
    /// DEBUG1 logs after it (`Sending command:`) cannot pass for it.
    fn read(log: &str) -> Facts {
        let mut facts = Facts::default();
        for line in log.lines().map(|l| l.trim_end_matches('\r')) {
            if line.starts_with("Authenticated to ") {
                facts.logged_in = true;
            } else if line.starts_with("debug1: mux_client_request_session: master session id:") {
                facts.mux = true;
            } else if facts.connected() {
                facts.after_login(line);
            } else {
                facts.before_login(line);
            }
        }
        facts
    }

    /// Logged in, directly or through a ControlMaster.
    fn connected(&self) -> bool {
        self.logged_in || self.mux
    }

    fn after_login(&mut self, line: &str) {
        match line {
            "debug1: client_input_channel_req: channel 0 rtype exit-status reply 0" => {
                self.exit_status = true;
            }
            "debug1: client_input_channel_req: channel 0 rtype exit-signal reply 0" => {
                self.exit_signal = true;
            }
            "debug2: Received exit status from master 255" => self.mux_exit_255 = true,
            "debug2: Control master terminated unexpectedly" => self.mux_died = true,
            _ if is_keepalive_timeout(line) => self.keepalive_timeout = true,
            _ => {}
        }
    }

    fn before_login(&mut self, line: &str) {
        if line == "Host key verification failed." {
            self.host_key_failed = true;
        } else if line.contains("REMOTE HOST IDENTIFICATION HAS CHANGED!") {
            self.host_key_changed = true;
        } else if !line.starts_with("debug") && line.contains(": Permission denied (") {
            self.auth_refused = true;
        }
    }
}

/// ssh's line when a host stopped answering its keepalives.
fn is_keepalive_timeout(line: &str) -> bool {
    line.starts_with("Timeout, server ") && line.ends_with(" not responding.")
}

/// The class of one host's run: ssh's exit `status`, the `elapsed` time
/// against `timeout` (`None`: no timeout), and the text of ssh's `-E` log.
pub fn classify(
    status: ExitStatus,
    elapsed: Duration,
    timeout: Option<Duration>,
    log: &str,
) -> Class {
    let facts = Facts::read(log);
    let overran = timeout.is_some_and(|t| elapsed >= t);
    match status.code() {
        // Our own backstop (or someone else) killed the local ssh.
        None if !facts.connected() => Class::Unreachable,
        None if overran => Class::TimedOut {
            maybe_running: true,
        },
        None => Class::Signal,
        Some(255) => after_255(&facts, overran),
        Some(124) if overran => Class::TimedOut {
            maybe_running: false,
        },
        Some(0) => Class::Ok,
        Some(code) => Class::Exit(code),
    }
}

/// The class of an ssh that exited 255.
fn after_255(facts: &Facts, overran: bool) -> Class {
    if facts.keepalive_timeout {
        return Class::Lost;
    }
    if facts.exit_signal || facts.mux_died {
        // timeout's KILL after its TERM was ignored ends it by a signal.
        return if overran {
            Class::TimedOut {
                maybe_running: false,
            }
        } else {
            Class::Signal
        };
    }
    if facts.exit_status || facts.mux_exit_255 {
        return Class::Exit(255);
    }
    if facts.logged_in {
        // Logged in, and the session ended without a word: the
        // connection was lost.
        return Class::Lost;
    }
    if facts.mux {
        // Through a ControlMaster whose end the log does not tell (an
        // ssh without DEBUG2's lines): an exit 255 is the likelier, as
        // the master is alive.
        return Class::Exit(255);
    }
    if facts.host_key_failed {
        return Class::HostKey {
            changed: facts.host_key_changed,
        };
    }
    if facts.auth_refused {
        return Class::Auth;
    }
    Class::Unreachable
}

/// What ssh said about a host it did not get into (`Unreachable`,
/// `HostKey`, `Auth`): its last message before login (for a host key, the
/// one before `Host key verification failed.`, which names the key's
/// trouble); for `Lost`, that the command may have run (after ssh's
/// keepalive line when it gave up); `None` for the other classes, and
/// when ssh said nothing. Through a jump host (`-J`, a `ProxyCommand`)
/// the log only has `Connection closed by UNKNOWN port 65535`; the
/// reason is the proxy's, the last line of ssh's stderr (`stderr_last`),
/// which is said instead.
pub fn message(class: Class, log: &str, stderr_last: Option<&str>) -> Option<String> {
    match class {
        Class::Lost => Some(lost_message(log)),
        Class::Unreachable | Class::HostKey { .. } | Class::Auth => {
            let said = not_in_message(class, log);
            match (said, stderr_last) {
                (Some(said), Some(proxy)) if said.starts_with(THROUGH_PROXY) => {
                    Some(proxy.to_owned())
                }
                (said, _) => said,
            }
        }
        _ => None,
    }
}

/// How ssh's log ends when the connection through a proxy closed before
/// the host was reached: the proxy has no address to name.
const THROUGH_PROXY: &str = "Connection closed by UNKNOWN port ";

/// The words of a `Lost` host.
fn lost_message(log: &str) -> String {
    const MAY_HAVE_RUN: &str = "after login; the command may have run";
    match log
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| is_keepalive_timeout(l))
    {
        Some(said) => format!("{said} ({MAY_HAVE_RUN})"),
        None => MAY_HAVE_RUN.to_owned(),
    }
}

/// ssh's last line before login (see [`message`]).
fn not_in_message(class: Class, log: &str) -> Option<String> {
    let mut said: Vec<&str> = Vec::new();
    for line in log.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("Authenticated to ") {
            break;
        }
        let noise = line.is_empty()
            || line.starts_with("debug")
            || line.starts_with('@')
            || line.starts_with("Warning: Permanently added");
        if !noise {
            said.push(line);
        }
    }
    let last = said.len().checked_sub(1)?;
    let at = match class {
        Class::HostKey { .. } if last > 0 && said[last] == "Host key verification failed." => {
            last - 1
        }
        _ => last,
    };
    Some(said[at].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const LOGIN: &str = "Authenticated to 127.0.0.1 ([127.0.0.1]:50635) using \"publickey\".\n\
                         debug1: Sending command: sh -c 'echo hi'\n";
    const EXIT_STATUS: &str =
        "debug1: client_input_channel_req: channel 0 rtype exit-status reply 0\n";
    const EXIT_SIGNAL: &str =
        "debug1: client_input_channel_req: channel 0 rtype exit-signal reply 0\n";
    const TRANSFERRED: &str = "Transferred: sent 3472, received 3308 bytes, in 0.3 seconds\n\
                               Bytes per second: sent 11573.3, received 11026.7\n";

    fn code(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    /// The local ssh killed by SIGKILL.
    fn killed() -> ExitStatus {
        ExitStatus::from_raw(9)
    }

    fn after_login(end: &str, status: &str) -> String {
        format!("{LOGIN}{end}debug1: Exit status {status}\n{TRANSFERRED}")
    }

    fn untimed(status: ExitStatus, log: &str) -> Class {
        classify(status, Duration::from_millis(300), None, log)
    }

    #[test]
    fn a_command_that_ran_gives_its_status() {
        assert_eq!(untimed(code(0), &after_login(EXIT_STATUS, "0")), Class::Ok);
        assert_eq!(
            untimed(code(7), &after_login(EXIT_STATUS, "7")),
            Class::Exit(7)
        );
        assert_eq!(
            untimed(code(124), &after_login(EXIT_STATUS, "124")),
            Class::Exit(124)
        );
    }

    #[test]
    fn ssh_255_is_a_remote_exit_255_a_signal_or_a_lost_connection_by_the_debug1_lines() {
        assert_eq!(
            untimed(code(255), &after_login(EXIT_STATUS, "255")),
            Class::Exit(255)
        );
        assert_eq!(
            untimed(code(255), &after_login(EXIT_SIGNAL, "-1")),
            Class::Signal
        );
        assert_eq!(untimed(code(255), &after_login("", "-1")), Class::Lost);
    }

    #[test]
    fn a_host_that_stops_answering_keepalives_is_lost_even_through_a_master() {
        let said = "Timeout, server 127.0.0.1 not responding.\n";
        assert_eq!(untimed(code(255), &format!("{LOGIN}{said}")), Class::Lost);
        let mux = "debug1: mux_client_request_session: master session id: 2\n";
        assert_eq!(untimed(code(255), &format!("{mux}{said}")), Class::Lost);
        assert_eq!(
            message(Class::Lost, &format!("{LOGIN}{said}"), None).as_deref(),
            Some(
                "Timeout, server 127.0.0.1 not responding. (after login; the command may have \
                 run)"
            )
        );
        // Not logged in: a host not reached.
        assert_eq!(untimed(code(255), said), Class::Unreachable);
    }

    #[test]
    fn connection_failures_are_unreachable() {
        for line in [
            "ssh: connect to host 127.0.0.1 port 60871: Connection refused",
            "ssh: connect to host 192.0.2.77 port 22: Connection timed out",
            "ssh: connect to host 192.0.2.77 port 22: No route to host",
            "ssh: connect to host 198.51.100.8 port 22: Invalid argument",
            "Connection timed out during banner exchange\nConnection to 10.255.255.1 port 22 timed out",
            "ssh: Could not resolve hostname nonexistent.invalid: Name or service not known",
            "kex_exchange_identification: read: Connection reset by peer\n\
             Connection reset by 127.0.0.1 port 55807",
            "kex_exchange_identification: Connection closed by remote host\n\
             Connection closed by 127.0.0.1 port 55807",
        ] {
            let log = format!("debug1: Connecting to 127.0.0.1 [127.0.0.1] port 60871.\n{line}\n");
            assert_eq!(untimed(code(255), &log), Class::Unreachable, "{line}");
        }
    }

    #[test]
    fn host_keys_changed_and_unknown_are_told_apart() {
        let changed = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Offending ED25519 key in /tmp/r19/kh_changed:1
Host key for [127.0.0.1]:36503 has changed and you have requested strict checking.
Host key verification failed.
";
        assert_eq!(
            untimed(code(255), changed),
            Class::HostKey { changed: true }
        );
        let unknown = "No ED25519 host key is known for [127.0.0.1]:36503 and you have \
                       requested strict checking.\nHost key verification failed.\n";
        assert_eq!(
            untimed(code(255), unknown),
            Class::HostKey { changed: false }
        );
        let accepted = format!(
            "Warning: Permanently added '[127.0.0.1]:36503' (ED25519) to the list of known \
             hosts.\n{}",
            after_login(EXIT_STATUS, "0")
        );
        assert_eq!(untimed(code(0), &accepted), Class::Ok);
    }

    #[test]
    fn a_refused_key_is_auth() {
        let log = "debug1: Offering public key: /tmp/r19/wrong ED25519 SHA256:x explicit\n\
                   root@127.0.0.1: Permission denied (publickey).\n";
        assert_eq!(untimed(code(255), log), Class::Auth);
    }

    #[test]
    fn the_command_text_logged_after_login_cannot_pass_for_a_failure() {
        let log = format!(
            "Authenticated to 127.0.0.1 ([127.0.0.1]:50635) using \"publickey\".\n\
             debug1: Sending command: sh -c 'echo x\n\
             Host key verification failed.\n\
             root@h: Permission denied (publickey).'\n\
             {EXIT_STATUS}debug1: Exit status 255\n"
        );
        assert_eq!(untimed(code(255), &log), Class::Exit(255));
    }

    #[test]
    fn a_timeout_is_told_by_our_clock() {
        let t = Some(Duration::from_secs(3));
        let (late, early) = (Duration::from_millis(3100), Duration::from_millis(1000));
        let term_worked = after_login(EXIT_STATUS, "124");
        assert_eq!(
            classify(code(124), late, t, &term_worked),
            Class::TimedOut {
                maybe_running: false
            }
        );
        assert_eq!(
            classify(code(124), early, t, &term_worked),
            Class::Exit(124)
        );
        let kill_needed = after_login(EXIT_SIGNAL, "-1");
        assert_eq!(
            classify(code(255), late, t, &kill_needed),
            Class::TimedOut {
                maybe_running: false
            }
        );
        assert_eq!(classify(code(255), early, t, &kill_needed), Class::Signal);
        assert_eq!(
            classify(code(7), late, t, &after_login(EXIT_STATUS, "7")),
            Class::Exit(7)
        );
    }

    #[test]
    fn only_our_backstop_kill_leaves_the_command_maybe_running() {
        let t = Some(Duration::from_secs(3));
        let late = Duration::from_secs(9);
        assert_eq!(
            classify(killed(), late, t, LOGIN),
            Class::TimedOut {
                maybe_running: true
            }
        );
        let connecting = "debug1: Connecting to 10.255.255.1 [10.255.255.1] port 22.\n";
        assert_eq!(classify(killed(), late, t, connecting), Class::Unreachable);
        assert_eq!(
            classify(killed(), Duration::from_secs(1), t, LOGIN),
            Class::Signal
        );
    }

    #[test]
    fn a_controlmaster_session_counts_as_logged_in() {
        let mux = "debug1: mux_client_request_session: master session id: 2\n";
        assert_eq!(untimed(code(0), mux), Class::Ok);
        assert_eq!(untimed(code(3), mux), Class::Exit(3));
        assert_eq!(untimed(code(255), mux), Class::Exit(255));
        let exit_255 = format!("{mux}debug2: Received exit status from master 255\n");
        assert_eq!(untimed(code(255), &exit_255), Class::Exit(255));
        let died = format!("{mux}debug2: Control master terminated unexpectedly\n");
        assert_eq!(untimed(code(255), &died), Class::Signal);
    }

    #[test]
    fn names_and_words_of_every_class() {
        let all = [
            (Class::Ok, "ok", "ok"),
            (Class::Exit(7), "exit", "exit 7"),
            (Class::Signal, "signal", "killed by a signal"),
            (Class::Unreachable, "unreachable", "unreachable"),
            (Class::Lost, "lost", "connection lost"),
            (
                Class::HostKey { changed: true },
                "host-key",
                "host key changed",
            ),
            (
                Class::HostKey { changed: false },
                "host-key",
                "host key unknown",
            ),
            (Class::Auth, "auth", "auth refused"),
            (
                Class::TimedOut {
                    maybe_running: false,
                },
                "timed-out",
                "timed out",
            ),
            (
                Class::TimedOut {
                    maybe_running: true,
                },
                "timed-out",
                "timed out, may still be running",
            ),
        ];
        for (class, name, words) in all {
            assert_eq!(class.name(), name);
            assert!(NAMES.contains(&name));
            assert_eq!(class.to_string(), words);
        }
    }

    #[test]
    fn the_message_is_what_ssh_said_about_a_host_it_did_not_get_into() {
        let refused = "debug1: Connecting to 127.0.0.1 [127.0.0.1] port 60871.\n\
                       ssh: connect to host 127.0.0.1 port 60871: Connection refused\n";
        assert_eq!(
            message(Class::Unreachable, refused, None).as_deref(),
            Some("ssh: connect to host 127.0.0.1 port 60871: Connection refused")
        );
        let unknown = "No ED25519 host key is known for [127.0.0.1]:36503 and you have \
                       requested strict checking.\nHost key verification failed.\n";
        assert_eq!(
            message(Class::HostKey { changed: false }, unknown, None).as_deref(),
            Some(
                "No ED25519 host key is known for [127.0.0.1]:36503 and you have requested \
                 strict checking."
            )
        );
        assert_eq!(
            message(
                Class::Auth,
                "root@127.0.0.1: Permission denied (publickey).\n",
                None
            )
            .as_deref(),
            Some("root@127.0.0.1: Permission denied (publickey).")
        );
        assert_eq!(
            message(Class::Lost, &after_login("", "-1"), None).as_deref(),
            Some("after login; the command may have run")
        );
        assert_eq!(message(Class::Exit(7), refused, None), None);
        assert_eq!(message(Class::Unreachable, "debug1: x\n", None), None);
    }

    #[test]
    fn through_a_jump_host_the_message_is_the_proxys_reason() {
        let log = "debug1: Executing proxy command: exec ssh -l root -p 22399 -W '[127.0.0.1]:22302' 127.0.0.1\n\
                   Connection closed by UNKNOWN port 65535\n";
        let proxy = "ssh: connect to host 127.0.0.1 port 22399: Connection refused";
        assert_eq!(
            message(Class::Unreachable, log, Some(proxy)).as_deref(),
            Some(proxy)
        );
        assert_eq!(
            message(Class::Unreachable, log, None).as_deref(),
            Some("Connection closed by UNKNOWN port 65535")
        );
        // A host reached directly keeps the log's own reason.
        let refused = "ssh: connect to host 127.0.0.1 port 60871: Connection refused\n";
        assert_eq!(
            message(Class::Unreachable, refused, Some("remote words")).as_deref(),
            Some("ssh: connect to host 127.0.0.1 port 60871: Connection refused")
        );
    }
}
