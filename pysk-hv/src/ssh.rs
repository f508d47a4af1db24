//! The system's OpenSSH client, as each host's command line: the admin's
//! `~/.ssh/config`, ProxyJump, ControlMaster, certificates and keys all
//! apply.
//!
//! ssh joins the remote command's words with spaces and the host's login
//! shell runs the string with `-c`, so every word must be quoted for a
//! POSIX shell ([`quote`]). The command the admin gives is shell text, as
//! for pdsh and clush (`ls | wc -l` works): its words are joined with
//! spaces and run by `sh -c`, under `timeout -k 5 T` when there is a
//! timeout, so that the command ends on the host too — killing the local
//! ssh would leave it running there ([`remote_command`]).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use pysk_common::inventory::Host;

/// How long the remote `timeout` waits after its TERM before it sends
/// KILL.
pub const KILL_AFTER: Duration = Duration::from_secs(5);

/// How every host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    /// Seconds to wait for the TCP connection (`ConnectTimeout`), rounded
    /// up to whole seconds, as ssh takes them.
    pub connect_timeout: Duration,
    /// Accept and record the key of a host that has none recorded yet
    /// (`StrictHostKeyChecking=accept-new`); a changed key is refused
    /// either way.
    pub accept_new: bool,
    /// The account to log in as (`-l`).
    pub user: String,
    /// Further options given to every ssh (`hv_ssh_options`, split at
    /// blanks), after ours: ssh keeps the first value of each option, so
    /// they cannot turn off batch mode or host key checking.
    pub options: Vec<String>,
}

impl Ssh {
    /// The command line that runs `remote` on `host`, ssh's own messages
    /// going to `log` (which ssh appends to: the caller truncates it). The
    /// address is the inventory's, else the name (which the admin's ssh
    /// configuration may map); the port is the host's `port=`, else
    /// ssh's configuration decides.
    pub fn argv(&self, host: &Host, log: &Path, remote: &str) -> Result<Vec<OsString>, String> {
        let mut argv: Vec<OsString> = vec!["ssh".into(), "-E".into(), log.into()];
        let strict = if self.accept_new { "accept-new" } else { "yes" };
        for option in [
            // DEBUG2: through a ControlMaster only its lines tell a remote
            // exit 255 from a command killed by a signal (a few lines per
            // 64 KiB window besides: about 0.1 % of the output).
            "LogLevel=DEBUG2".to_owned(),
            "BatchMode=yes".to_owned(),
            format!("ConnectTimeout={}", whole_seconds(self.connect_timeout)),
            // A host that dies after login is given up after a minute
            // instead of holding the run for ever (no timeout by default).
            "ServerAliveInterval=15".to_owned(),
            "ServerAliveCountMax=4".to_owned(),
            format!("StrictHostKeyChecking={strict}"),
        ] {
            argv.extend(["-o".into(), option.into()]);
        }
        if let Some(port) = port(host)? {
            argv.extend(["-p".into(), port.to_string().into()]);
        }
        argv.extend(["-l".into(), self.user.clone().into()]);
        argv.extend(self.options.iter().map(OsString::from));
        let address = host
            .address
            .map_or_else(|| host.name.clone(), |a| a.to_string());
        argv.extend(["--".into(), address.into(), remote.into()]);
        Ok(argv)
    }
}

/// The port of `host`'s `port=` key, when it has one.
pub fn port(host: &Host) -> Result<Option<u16>, String> {
    match host.settings.get("port") {
        None => Ok(None),
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some(port)),
            _ => Err(format!("port={text:?}: not a port (1 to 65535)")),
        },
    }
}

/// `d` in whole seconds, rounded up, at least 1 (ssh's `ConnectTimeout`
/// takes no fractions, and 0 would mean the system's own timeout).
fn whole_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// `arg` as one word for a POSIX shell: in single quotes, each `'` inside
/// written `'\''`.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// The string the host's login shell runs for the admin's command `words`
/// (shell text, joined with spaces): `sh -c '<text>'`, under
/// `timeout -k 5 T` when `timeout` is given.
pub fn remote_command(words: &[String], timeout: Option<Duration>) -> String {
    let run = format!("sh -c {}", quote(&words.join(" ")));
    match timeout {
        Some(t) => format!("timeout -k {} {} {run}", seconds(KILL_AFTER), seconds(t)),
        None => run,
    }
}

/// `d` as GNU timeout reads seconds: `30`, `2.5`.
fn seconds(d: Duration) -> String {
    match d.subsec_nanos() {
        0 => d.as_secs().to_string(),
        nanos => {
            let text = format!("{}.{nanos:09}", d.as_secs());
            text.trim_end_matches('0').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::process::Command;

    /// Every case research found byte-identical to local execution.
    const CASES: &[&str] = &[
        "a b",
        "it's",
        "say \"hi\"",
        "$HOME",
        "`id`",
        "$(id)",
        "x;rm -rf /nonexistent",
        "line1\nline2",
        "",
        "*",
        "~",
        "\\back",
        "a\tb",
        "ä€",
        "-n",
        "!event",
        "#c",
    ];

    fn host(name: &str, address: Option<&str>, settings: &[(&str, &str)]) -> Host {
        Host {
            name: name.to_owned(),
            address: address.map(|a| a.parse().expect("address")),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            line: 1,
        }
    }

    fn ssh() -> Ssh {
        Ssh {
            connect_timeout: Duration::from_secs(10),
            accept_new: false,
            user: "root".to_owned(),
            options: vec!["-F".to_owned(), "/tmp/t/ssh_config".to_owned()],
        }
    }

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    #[test]
    fn quote_wraps_in_single_quotes_and_escapes_them() {
        let expected = [
            "'a b'",
            "'it'\\''s'",
            "'say \"hi\"'",
            "'$HOME'",
            "'`id`'",
            "'$(id)'",
            "'x;rm -rf /nonexistent'",
            "'line1\nline2'",
            "''",
            "'*'",
            "'~'",
            "'\\back'",
            "'a\tb'",
            "'ä€'",
            "'-n'",
            "'!event'",
            "'#c'",
        ];
        for (case, quoted) in CASES.iter().zip(expected) {
            assert_eq!(quote(case), quoted, "{case:?}");
        }
    }

    #[test]
    fn a_quoted_word_reaches_a_real_shell_unchanged() {
        let words: Vec<String> = CASES.iter().map(|c| quote(c)).collect();
        let script = format!("printf '<%s>\\n' {}", words.join(" "));
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        let expected: String = CASES.iter().map(|c| format!("<{c}>\n")).collect();
        assert_eq!(String::from_utf8(out.stdout).expect("utf-8"), expected);
    }

    #[test]
    fn the_remote_command_runs_the_words_as_shell_text_with_and_without_timeout() {
        let words: Vec<String> = [
            "printf",
            "'<%s>\\n'",
            "\"$0\"",
            "it\\'s",
            "|",
            "tr",
            "a-z",
            "A-Z",
        ]
        .map(str::to_owned)
        .to_vec();
        let plain = remote_command(&words, None);
        assert_eq!(
            plain,
            "sh -c 'printf '\\''<%s>\\n'\\'' \"$0\" it\\'\\''s | tr a-z A-Z'"
        );
        let timed = remote_command(&words, Some(Duration::from_millis(2500)));
        assert_eq!(timed, format!("timeout -k 5 2.5 {plain}"));
        // What the host's login shell does with the string: `$SHELL -c`.
        for remote in [plain, timed] {
            let out = Command::new("sh")
                .args(["-c", &remote])
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "<SH>\n<IT'S>\n");
            assert!(out.status.success(), "{remote}");
        }
    }

    #[test]
    fn timeouts_are_written_as_gnu_timeout_reads_them() {
        assert_eq!(seconds(Duration::from_secs(30)), "30");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5");
        assert_eq!(seconds(Duration::from_millis(100)), "0.1");
        assert_eq!(
            remote_command(&["true".to_owned()], Some(Duration::from_secs(60))),
            "timeout -k 5 60 sh -c 'true'"
        );
    }

    #[test]
    fn the_argv_of_a_host_by_name_with_the_extra_options_last() {
        let argv = ssh()
            .argv(
                &host("web1.example", None, &[]),
                Path::new("/tmp/t/web1.log"),
                "sh -c 'uptime'",
            )
            .expect("argv");
        assert_eq!(
            strings(argv),
            [
                "ssh",
                "-E",
                "/tmp/t/web1.log",
                "-o",
                "LogLevel=DEBUG2",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
                "-o",
                "StrictHostKeyChecking=yes",
                "-l",
                "root",
                "-F",
                "/tmp/t/ssh_config",
                "--",
                "web1.example",
                "sh -c 'uptime'",
            ]
        );
    }

    #[test]
    fn the_argv_of_a_host_with_address_port_user_and_accept_new() {
        let ssh = Ssh {
            connect_timeout: Duration::from_millis(2500),
            accept_new: true,
            user: "admin".to_owned(),
            options: Vec::new(),
        };
        let argv = ssh
            .argv(
                &host("db1.example", Some("2001:db8::12"), &[("port", "2222")]),
                Path::new("/l"),
                "true",
            )
            .expect("argv");
        assert_eq!(
            strings(argv),
            [
                "ssh",
                "-E",
                "/l",
                "-o",
                "LogLevel=DEBUG2",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=3",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "-p",
                "2222",
                "-l",
                "admin",
                "--",
                "2001:db8::12",
                "true",
            ]
        );
    }

    #[test]
    fn a_port_that_is_not_one_is_refused() {
        for bad in ["0", "65536", "ssh", "-1"] {
            let h = host("a.example", None, &[("port", bad)]);
            assert_eq!(
                ssh().argv(&h, Path::new("/l"), "true"),
                Err(format!("port={bad:?}: not a port (1 to 65535)"))
            );
        }
        assert_eq!(port(&host("a", None, &[("port", "22")])), Ok(Some(22)));
        assert_eq!(port(&host("a", None, &[])), Ok(None));
        assert_eq!(whole_seconds(Duration::from_millis(100)), 1);
    }
}
