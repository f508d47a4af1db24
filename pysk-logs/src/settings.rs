//! Every option of every subcommand, resolved in one place: the command
//! line beats the switch, which beats the built-in default written once in
//! [`SWITCHES`] (through [`pysk_common::settings::Settings`]). Each
//! function here turns a subcommand's parsed arguments into the option
//! struct of the module that runs it, so that the modules below never see
//! clap or the switches, and `lib.rs` only dispatches.
//!
//! Every bad value is reported where it came from: `<file>:<line>: <key>:`
//! for a switch (exit 78), `--<option>:` for the command line (exit 2).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pysk_common::Error;
use pysk_common::error::cause;
use pysk_common::settings::{Settings, Spec, parse_mode, parse_size};

use crate::cli::{AwstatsArgs, FetchArgs, MergeArgs, ResolveArgs, RunArgs, SplitArgs, SpoolArgs};
use crate::error::LogsError;
use crate::{format, vhosts};

/// The switches `pysk-logs` reads: each key's built-in default, what it
/// controls, and the option that beats it.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "logs_spool",
        "/var/spool/pysk/wwwlogs",
        "the log spool (inbox/, pending/, processed/, rejected/, tmp/)",
    )
    .option("--spool"),
    Spec::new(
        "logs_wait",
        "0",
        "seconds split, fetch, awstats, run and resolve wait for another run's lock",
    )
    .option("--wait"),
    Spec::new(
        "logs_memory",
        "256M",
        "memory split may use for sorting (K, M, G suffixes; at least 1M)",
    )
    .option("--memory"),
    Spec::new(
        "logs_inbox_settle",
        "3",
        "seconds since its last write before split takes an inbox file (0-3600)",
    )
    .option("--inbox-settle"),
    Spec::new(
        "logs_vhosts",
        "",
        "file listing the virtual hosts split accepts and awstats configures, one a line (empty: all)",
    )
    .option("--vhosts"),
    Spec::new(
        "logs_reorder",
        "1000",
        "lines of lookahead per input merge uses to order nearly sorted logs",
    )
    .option("--reorder"),
    Spec::new(
        "logs_dns_cache",
        "",
        "the reverse-DNS cache resolve writes and AWStats reads (empty: <spool>/dnscache.txt)",
    )
    .option("--cache"),
    Spec::new(
        "logs_dns_nameserver",
        "",
        "resolve's name servers, IP[:PORT] separated by spaces (empty: /etc/resolv.conf)",
    )
    .option("--nameserver"),
    Spec::new(
        "logs_dns_concurrency",
        "256",
        "resolve's queries in flight at most",
    )
    .option("--concurrency"),
    Spec::new(
        "logs_dns_timeout",
        "2",
        "seconds resolve waits for one answer at most, the ceiling of the timeout it learns (up to 3600)",
    )
    .option("--timeout"),
    Spec::new("logs_dns_attempts", "2", "resolve's attempts per address").option("--attempts"),
    Spec::new(
        "logs_dns_ttl",
        "7",
        "days after which resolve looks a name up again",
    )
    .option("--ttl"),
    Spec::new(
        "logs_dns_negative_ttl",
        "6",
        "hours after which resolve tries a failed lookup again",
    )
    .option("--negative-ttl"),
    Spec::new(
        "logs_dns_confirm",
        "no",
        "keep a name only if it resolves back to the address (like logresolve -c)",
    )
    .option("--confirm"),
    Spec::new(
        "logs_awstats_conf_dir",
        "/etc/awstats",
        "where awstats writes awstats.<vhost>.conf",
    )
    .option("--conf-dir"),
    Spec::new("logs_awstats_data_dir", "/var/lib/awstats", "AWStats' DirData")
        .option("--data-dir"),
    Spec::new(
        "logs_awstats_data_mode",
        "0755",
        "permission bits awstats sets on DirData (octal)",
    ),
    Spec::new(
        "logs_awstats_data_group",
        "",
        "group awstats gives DirData, e.g. www-data (empty: left as it is)",
    ),
    Spec::new(
        "logs_awstats_include",
        "/etc/awstats/awstats.conf.local",
        "site-wide AWStats settings, included when the file exists",
    ),
    Spec::new(
        "logs_awstats_pl",
        "/usr/lib/cgi-bin/awstats.pl",
        "the AWStats program",
    ),
    Spec::new(
        "logs_imap_url",
        "",
        "fetch's mailbox, imap[s]://USER@HOST[:PORT]/MAILBOX (empty: run does not fetch)",
    )
    .option("--imap-url"),
    Spec::new(
        "logs_imap_password_file",
        "",
        "file holding the IMAP password, readable only by its owner",
    )
    .option("--password-file"),
    Spec::new(
        "logs_imap_subject",
        "access.log",
        "text the Subject of a log mail contains",
    )
    .option("--subject-contains"),
    Spec::new(
        "logs_imap_done_mailbox",
        "",
        "move fetched mail there instead of marking it seen (empty: mark it seen)",
    )
    .option("--done-mailbox"),
    Spec::new(
        "logs_imap_ca_file",
        "",
        "CA certificate (PEM) the IMAP server's certificate is checked against (empty: the system's)",
    )
    .option("--ca-file"),
    Spec::new(
        "logs_imap_insecure_plaintext",
        "no",
        "allow the IMAP password without TLS to a host that is not loopback",
    )
    .option("--insecure-plaintext"),
];

/// The spool directory (`--spool`, switch `logs_spool`) and how long to
/// wait for its lock (`--wait`, switch `logs_wait`).
pub fn spool(s: &Settings, args: &SpoolArgs) -> Result<(PathBuf, Duration), LogsError> {
    let dir = s.path("logs_spool", args.spool.clone())?;
    Ok((dir, args.wait.resolve(s, "logs_wait")?))
}

/// `split`'s options, for the spool at `spool`.
pub fn split(
    s: &Settings,
    spool: &Path,
    args: &SplitArgs,
) -> Result<crate::split::Options, LogsError> {
    let list = s.optional_path("logs_vhosts", args.vhosts.clone())?;
    Ok(crate::split::Options {
        spool: spool.to_owned(),
        vhost: args.vhost.as_deref().map(vhost_option).transpose()?,
        memory: s.with("logs_memory", args.memory.as_deref(), parse_memory)?,
        vhosts: list.as_deref().map(vhosts::read).transpose()?,
        files: args.files.clone(),
        inbox_settle: s.with(
            "logs_inbox_settle",
            args.inbox_settle.as_deref(),
            parse_settle,
        )?,
    })
}

/// The largest reorder window: a million lines per input is far beyond
/// any disorder a server writes, and bounds the memory a window takes.
const MAX_REORDER: u64 = 1_000_000;

/// `merge`'s options.
pub fn merge(s: &Settings, args: &MergeArgs) -> Result<crate::merge::Options, LogsError> {
    Ok(crate::merge::Options {
        files: args.files.clone(),
        reorder: usize::try_from(s.count(
            "logs_reorder",
            args.reorder.as_deref(),
            1..=MAX_REORDER,
        )?)
        .map_err(|_| Error::Internal("a reorder window beyond usize".into()))?,
        archive: args.archive.clone(),
    })
}

/// `resolve`'s options; the cache defaults to the one in the switches'
/// spool (resolve has no `--spool`).
pub fn resolve(s: &Settings, args: &ResolveArgs) -> Result<crate::resolve::Options, LogsError> {
    resolve_in(s, &s.path("logs_spool", None)?, args)
}

/// `resolve`'s options with the cache defaulting into `spool`.
fn resolve_in(
    s: &Settings,
    spool: &Path,
    args: &ResolveArgs,
) -> Result<crate::resolve::Options, LogsError> {
    let concurrency = s.count::<u16>(
        "logs_dns_concurrency",
        args.concurrency.as_deref(),
        1..=u16::MAX,
    )?;
    let attempts = s.count::<u8>("logs_dns_attempts", args.attempts.as_deref(), 1..=u8::MAX)?;
    let ttl_days: u64 = s.parsed("logs_dns_ttl", args.ttl.as_deref())?;
    let negative_hours: u64 = s.parsed("logs_dns_negative_ttl", args.negative_ttl.as_deref())?;
    Ok(crate::resolve::Options {
        cache: dns_cache(s, spool, args.cache.clone())?,
        nameservers: nameservers(s, &args.nameservers)?,
        concurrency: usize::from(concurrency),
        timeout: s.with("logs_dns_timeout", args.timeout.as_deref(), parse_timeout)?,
        attempts: usize::from(attempts),
        ttl: Duration::from_secs(ttl_days.saturating_mul(86_400)),
        negative_ttl: Duration::from_secs(negative_hours.saturating_mul(3600)),
        confirm: s.flag("logs_dns_confirm", args.confirm)?,
        files: args.files.clone(),
        wait: args.wait.resolve(s, "logs_wait")?,
    })
}

/// `fetch`'s options, for the spool at `spool`; without a mailbox there
/// is nothing to fetch, which is an error naming the switch.
pub fn fetch(
    s: &Settings,
    spool: &Path,
    args: &FetchArgs,
) -> Result<crate::fetch::Options, LogsError> {
    let cli = args.imap_url.as_deref();
    if s.optional_string("logs_imap_url", cli)?.is_none() {
        let why = "no mailbox given: set this switch or give --imap-url";
        return Err(s.invalid("logs_imap_url", cli, why).into());
    }
    let url = s.with("logs_imap_url", cli, |t| t.parse::<crate::fetch::ImapUrl>())?;
    let password_file = s
        .optional_path("logs_imap_password_file", args.password_file.clone())?
        .ok_or_else(|| {
            let why =
                "an IMAP mailbox needs a password file: set this switch or give --password-file";
            s.invalid("logs_imap_password_file", None, why)
        })?;
    let ca_file = s.optional_path("logs_imap_ca_file", args.ca_file.clone())?;
    if let Some(path) = &ca_file {
        // Checked now, so that a bad CA file is a configuration error found
        // before any connection, not a failed handshake later.
        pysk_common::tls::roots(Some(path))?;
    }
    Ok(crate::fetch::Options {
        url,
        password: pysk_common::secret::read_file(&password_file)?,
        subject_contains: s.string("logs_imap_subject", args.subject_contains.as_deref())?,
        done_mailbox: s.optional_string("logs_imap_done_mailbox", args.done_mailbox.as_deref())?,
        ca_file,
        insecure_plaintext: s.flag("logs_imap_insecure_plaintext", args.insecure_plaintext)?,
        inbox: spool.join("inbox"),
    })
}

/// `awstats`' options, for the spool at `spool`. Every path written into
/// a configuration is checked here, so that one AWStats cannot carry is
/// reported with the switch or option that holds it.
pub fn awstats(
    s: &Settings,
    spool: &Path,
    args: &AwstatsArgs,
) -> Result<crate::awstats::Options, LogsError> {
    let spool = quotable(
        s,
        "logs_spool",
        args.spool.spool.as_deref(),
        spool.to_owned(),
    )?;
    let cache = dns_cache(s, &spool, args.cache.clone())?;
    let list = s.optional_path("logs_vhosts", None)?;
    let data_dir = s.path("logs_awstats_data_dir", args.data_dir.clone())?;
    let include = s.path("logs_awstats_include", None)?;
    Ok(crate::awstats::Options {
        conf_dir: s.path("logs_awstats_conf_dir", args.conf_dir.clone())?,
        data_dir: quotable(
            s,
            "logs_awstats_data_dir",
            args.data_dir.as_deref(),
            data_dir,
        )?,
        data_mode: s.with("logs_awstats_data_mode", None, parse_mode)?,
        data_group: s.with("logs_awstats_data_group", None, group_id)?,
        dns_cache: quotable(s, "logs_dns_cache", args.cache.as_deref(), cache)?,
        include: quotable(s, "logs_awstats_include", None, include)?,
        awstats_pl: s.path("logs_awstats_pl", None)?,
        pysk_logs: own_path()?,
        vhosts: match list {
            Some(path) => Some(vhosts::read(&path)?.into_iter().collect()),
            None => None,
        },
        spool,
    })
}

/// The path of this program, which each configuration's `LogFile` pipe
/// runs; it too must be a path AWStats can carry.
fn own_path() -> Result<PathBuf, LogsError> {
    let path = std::env::current_exe()
        .map_err(|e| Error::Internal(format!("cannot find pysk-logs' own path: {}", cause(&e))))?;
    if !crate::awstats::quotable(&path.display().to_string()) {
        let why = "holds a quote or a line end, which an AWStats LogFile line cannot carry";
        return Err(Error::Internal(format!("pysk-logs' own path {path:?}: {why}")).into());
    }
    Ok(path)
}

/// `run`'s stages' options, all from the switches but the spool. A
/// configured fetch whose settings are unusable (an exposed password
/// file, say) fails that stage only.
pub fn run(s: &Settings, spool: &Path, args: &RunArgs) -> Result<crate::job::Options, LogsError> {
    let fetch = s
        .optional_string("logs_imap_url", None)?
        .map(|_| fetch(s, spool, &FetchArgs::default()));
    let awstats_args = AwstatsArgs {
        spool: args.spool.clone(),
        ..AwstatsArgs::default()
    };
    let split_args = SplitArgs {
        inbox_settle: args.inbox_settle.clone(),
        ..SplitArgs::default()
    };
    Ok(crate::job::Options {
        fetch,
        split: split(s, spool, &split_args)?,
        resolve: resolve_in(s, spool, &ResolveArgs::default())?,
        awstats: awstats(s, spool, &awstats_args)?,
    })
}

/// The DNS cache: `cli`, else the switch, else `<spool>/dnscache.txt`.
fn dns_cache(s: &Settings, spool: &Path, cli: Option<PathBuf>) -> Result<PathBuf, LogsError> {
    Ok(s.optional_path("logs_dns_cache", cli)?
        .unwrap_or_else(|| spool.join("dnscache.txt")))
}

/// `path`, the value of `key`, made absolute, when AWStats can carry it in a
/// configuration line; otherwise an error naming where it came from.
fn quotable(
    s: &Settings,
    key: &str,
    cli: Option<&Path>,
    path: PathBuf,
) -> Result<PathBuf, LogsError> {
    // AWStats runs the LogFile pipe from a directory of its own: a path
    // given relative on the command line is made absolute here.
    let path = std::path::absolute(&path).map_err(pysk_common::error::read_err(&path))?;
    let text = path.display().to_string();
    if crate::awstats::quotable(&text) {
        return Ok(path);
    }
    let why = format!("{text:?}: holds a quote or a line end, which AWStats cannot read");
    Err(s.invalid(key, cli.and_then(Path::to_str), why).into())
}

/// `--vhost`, as split stores virtual hosts; it has no switch.
fn vhost_option(text: &str) -> Result<String, LogsError> {
    format::normalize_vhost(text.as_bytes()).ok_or_else(|| {
        let why = format!("{text:?}: not a virtual host name (letters, digits, hyphens, dots)");
        Error::option("--vhost", why).into()
    })
}

/// The name servers: each `--nameserver` (a list of one), else the
/// switch's list.
fn nameservers(s: &Settings, cli: &[String]) -> Result<Vec<SocketAddr>, LogsError> {
    if cli.is_empty() {
        return Ok(s.with("logs_dns_nameserver", None, parse_nameservers)?);
    }
    let mut out = Vec::new();
    for one in cli {
        out.extend(s.with("logs_dns_nameserver", Some(one), parse_nameservers)?);
    }
    Ok(out)
}

/// Parses name servers separated by blanks, each `IP`, `IP:PORT` or
/// `[IPv6]:PORT` (port 53 when not given).
fn parse_nameservers(text: &str) -> Result<Vec<SocketAddr>, String> {
    let list: Vec<&str> = text.split_ascii_whitespace().collect();
    list.iter()
        .map(|one| {
            parse_nameserver(one).ok_or_else(|| match list.len() {
                1 => "expected IP, IP:PORT or [IPv6]:PORT".to_owned(),
                _ => format!("{one:?}: expected IP, IP:PORT or [IPv6]:PORT"),
            })
        })
        .collect()
}

/// One name server.
fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Parses split's sort memory: a size of at least 1 MiB.
fn parse_memory(text: &str) -> Result<usize, String> {
    let bytes = parse_size(text)?;
    if bytes < 1 << 20 {
        return Err("at least 1M is needed".to_owned());
    }
    usize::try_from(bytes).map_err(|_| "too large".to_owned())
}

/// Parses the inbox's quiet period: whole seconds, 0 to an hour.
fn parse_settle(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(s) if s <= 3600 => Ok(Duration::from_secs(s)),
        _ => Err("expected whole seconds, 0 to 3600".to_owned()),
    }
}

/// Parses resolve's time for one answer: seconds above 0, up to an hour.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err("expected seconds above 0, up to 3600".to_owned()),
    }
}

/// The id of the group named `name`; `None` when empty.
fn group_id(name: &str) -> Result<Option<u32>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(Some(group.gid.as_raw())),
        Ok(None) => Err("no such group on this system".to_owned()),
        Err(e) => Err(format!("cannot look the group up: {}", e.desc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real CA certificate file (the ISRG Root X1 root, public).
    const CA_FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../common/fixtures/isrg-root-x1.pem"
    );
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use pysk_common::error::Origin;
    use pysk_common::exit::{self, ToolError};
    use pysk_common::switches::Switches;

    /// Settings from `text` as `serverconfig/default` in a scratch config
    /// directory; the directory and the file's path.
    fn settings(text: &str) -> (Settings, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serverconfig/default");
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        let switches = Switches::load(dir.path(), "web1.example.org").expect("load");
        (Settings::new(SWITCHES, switches), path, dir)
    }

    fn empty() -> Settings {
        Settings::new(SWITCHES, Switches::default())
    }

    #[test]
    fn every_key_is_the_tools_own_and_listed_once() {
        for (i, spec) in SWITCHES.iter().enumerate() {
            assert!(spec.key.starts_with("logs_"), "{}", spec.key);
            assert!(
                SWITCHES[i + 1..].iter().all(|o| o.key != spec.key),
                "{} twice",
                spec.key
            );
        }
    }

    #[test]
    fn every_subcommand_resolves_from_an_empty_config() {
        let s = empty();
        let (spool, wait) = spool(&s, &SpoolArgs::default()).expect("spool");
        assert_eq!(spool, Path::new("/var/spool/pysk/wwwlogs"));
        assert_eq!(wait, Duration::ZERO);
        let o = split(&s, &spool, &SplitArgs::default()).expect("split");
        assert_eq!((o.memory, o.vhosts, o.vhost), (256 << 20, None, None));
        assert_eq!(o.inbox_settle, Duration::from_secs(3));
        let m = merge(&s, &MergeArgs::default()).expect("merge");
        assert_eq!(m.reorder, 1000);
        let r = resolve(&s, &ResolveArgs::default()).expect("resolve");
        assert_eq!(r.cache, spool.join("dnscache.txt"));
        assert_eq!(
            (r.concurrency, r.attempts, r.timeout, r.confirm),
            (256, 2, Duration::from_secs(2), false)
        );
        assert_eq!(
            (r.ttl.as_secs(), r.negative_ttl.as_secs()),
            (7 * 86_400, 6 * 3600)
        );
        assert!(r.nameservers.is_empty());
        let err = fetch(&s, &spool, &FetchArgs::default()).expect_err("no mailbox");
        assert_eq!(
            err.to_string(),
            "logs_imap_url (built-in default): no mailbox given: set this switch or give --imap-url"
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
        let a = awstats(&s, &spool, &AwstatsArgs::default()).expect("awstats");
        assert_eq!(a.conf_dir, Path::new("/etc/awstats"));
        assert_eq!((a.data_mode, a.data_group), (0o755, None));
        assert_eq!(a.dns_cache, spool.join("dnscache.txt"));
        let j = run(&s, &spool, &RunArgs::default()).expect("run");
        assert!(j.fetch.is_none());
        assert_eq!(j.resolve.cache, spool.join("dnscache.txt"));
    }

    #[test]
    fn every_subcommand_resolves_from_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("pw");
        fs::write(&pw, "secret\n").expect("pw");
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod");
        let list = dir.path().join("vhosts");
        fs::write(&list, "B.example\na.example\n").expect("list");
        let text = format!(
            "logs_spool=/srv/spool\nlogs_wait=5\nlogs_memory=64M\nlogs_vhosts={}\n\
             logs_reorder=10\nlogs_dns_cache=/srv/cache.txt\n\
             logs_dns_nameserver=\"192.0.2.1 [::1]:5353\"\nlogs_dns_concurrency=8\n\
             logs_dns_timeout=0.5\nlogs_dns_attempts=3\nlogs_dns_ttl=1\n\
             logs_dns_negative_ttl=2\nlogs_dns_confirm=yes\nlogs_awstats_conf_dir=/srv/conf\n\
             logs_awstats_data_dir=/srv/data\nlogs_awstats_data_mode=0750\n\
             logs_awstats_data_group=root\nlogs_awstats_include=/srv/local.conf\n\
             logs_awstats_pl=/srv/awstats.pl\n\
             logs_imap_url=imaps://logs@mail.example.org/Logs\nlogs_imap_password_file={}\n\
             logs_imap_subject=weblog\nlogs_imap_done_mailbox=Done\n\
             logs_imap_ca_file={}\nlogs_imap_insecure_plaintext=yes\n",
            list.display(),
            pw.display(),
            CA_FILE
        );
        let (s, _, _cfg) = settings(&text);
        let (spool, wait) = spool(&s, &SpoolArgs::default()).expect("spool");
        assert_eq!(
            (spool.as_path(), wait),
            (Path::new("/srv/spool"), Duration::from_secs(5))
        );
        let o = split(&s, &spool, &SplitArgs::default()).expect("split");
        assert_eq!(o.memory, 64 << 20);
        assert_eq!(o.vhosts.expect("list").len(), 2);
        assert_eq!(merge(&s, &MergeArgs::default()).expect("merge").reorder, 10);
        let r = resolve(&s, &ResolveArgs::default()).expect("resolve");
        assert_eq!(r.cache, Path::new("/srv/cache.txt"));
        assert_eq!(
            r.nameservers,
            [
                "192.0.2.1:53".parse().expect("a"),
                "[::1]:5353".parse().expect("a")
            ]
        );
        assert_eq!(
            (r.concurrency, r.attempts, r.timeout, r.confirm, r.wait),
            (
                8,
                3,
                Duration::from_millis(500),
                true,
                Duration::from_secs(5)
            )
        );
        assert_eq!((r.ttl.as_secs(), r.negative_ttl.as_secs()), (86_400, 7200));
        let f = fetch(&s, &spool, &FetchArgs::default()).expect("fetch");
        assert_eq!(
            (f.url.host.as_str(), f.url.mailbox.as_str()),
            ("mail.example.org", "Logs")
        );
        assert_eq!(f.password.expose(), "secret");
        assert_eq!(f.subject_contains, "weblog");
        assert_eq!(f.done_mailbox.as_deref(), Some("Done"));
        assert_eq!(f.ca_file.as_deref(), Some(Path::new(CA_FILE)));
        assert!(f.insecure_plaintext);
        assert_eq!(f.inbox, Path::new("/srv/spool/inbox"));
        let a = awstats(&s, &spool, &AwstatsArgs::default()).expect("awstats");
        assert_eq!((a.data_mode, a.data_group), (0o750, Some(0)));
        assert_eq!(
            a.vhosts.as_deref(),
            Some(&["a.example".to_owned(), "b.example".to_owned()][..])
        );
        assert_eq!(a.awstats_pl, Path::new("/srv/awstats.pl"));
        let j = run(&s, &spool, &RunArgs::default()).expect("run");
        assert!(j.fetch.expect("configured").is_ok());
    }

    #[test]
    fn the_command_line_beats_the_switches() {
        let (s, _, _cfg) = settings("logs_memory=64M\nlogs_dns_concurrency=8\nlogs_wait=5\n");
        let args = SplitArgs {
            memory: Some("2M".into()),
            spool: SpoolArgs {
                spool: Some(PathBuf::from("/o")),
                wait: pysk_common::cli::WaitArgs {
                    wait: Some("1".into()),
                },
            },
            ..SplitArgs::default()
        };
        let (dir, wait) = spool(&s, &args.spool).expect("spool");
        assert_eq!(
            (dir.as_path(), wait),
            (Path::new("/o"), Duration::from_secs(1))
        );
        assert_eq!(split(&s, &dir, &args).expect("split").memory, 2 << 20);
        let r = ResolveArgs {
            concurrency: Some("3".into()),
            nameservers: vec!["192.0.2.9".into()],
            ..ResolveArgs::default()
        };
        let r = resolve(&s, &r).expect("resolve");
        assert_eq!(r.concurrency, 3);
        assert_eq!(r.nameservers, ["192.0.2.9:53".parse().expect("addr")]);
    }

    #[test]
    fn a_bad_switch_is_named_with_its_file_and_line() {
        let (s, path, _cfg) =
            settings("# sort memory\nlogs_memory=\"lots\"\nlogs_dns_attempts=0\n");
        let err = split(&s, Path::new("/s"), &SplitArgs::default()).expect_err("bad");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: logs_memory: \"lots\": expected a size like 256M",
                path.display()
            )
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
        let err = resolve(&s, &ResolveArgs::default()).expect_err("zero attempts");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:3: logs_dns_attempts: \"0\": expected a whole number from 1 to 255",
                path.display()
            )
        );
        let (s, path, _cfg) =
            settings("logs_memory=12\nlogs_awstats_data_group=no-such-group-here\n");
        let err = split(&s, Path::new("/s"), &SplitArgs::default()).expect_err("small");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1: logs_memory: \"12\": at least 1M is needed",
                path.display()
            )
        );
        let err = awstats(&s, Path::new("/s"), &AwstatsArgs::default()).expect_err("group");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2: logs_awstats_data_group: ", path.display())),
            "{err}"
        );
    }

    #[test]
    fn a_path_switch_must_be_absolute_but_an_option_may_be_relative() {
        let (s, path, _cfg) = settings("logs_spool=spool\nlogs_awstats_conf_dir=\n");
        let err = spool(&s, &SpoolArgs::default()).expect_err("relative");
        assert!(
            err.to_string().starts_with(&format!(
                "{}:1: logs_spool: \"spool\": not an absolute path",
                path.display()
            )),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
        let err = awstats(&s, Path::new("/s"), &AwstatsArgs::default()).expect_err("empty");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2: logs_awstats_conf_dir: ", path.display())),
            "{err}"
        );
        let args = SpoolArgs {
            spool: Some(PathBuf::from("spool")),
            ..SpoolArgs::default()
        };
        assert_eq!(
            spool(&s, &args).expect("relative option").0,
            Path::new("spool")
        );
        // What awstats writes into a configuration is made absolute: AWStats
        // runs the LogFile pipe from a directory of its own.
        let (s, _, _cfg) = settings("");
        let args = AwstatsArgs {
            cache: Some(PathBuf::from("cache.txt")),
            ..AwstatsArgs::default()
        };
        let options = awstats(&s, Path::new("spool"), &args).expect("relative options");
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(options.spool, cwd.join("spool"));
        assert_eq!(options.dns_cache, cwd.join("cache.txt"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_before_any_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("pw");
        fs::write(&pw, "secret\n").expect("pw");
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).expect("chmod");
        let ca = dir.path().join("ca.pem");
        fs::write(&ca, "not a certificate\n").expect("ca");
        let args = FetchArgs {
            imap_url: Some("imaps://logs@127.0.0.1:1/INBOX".into()),
            password_file: Some(pw),
            ca_file: Some(ca.clone()),
            ..FetchArgs::default()
        };
        let err = fetch(&empty(), Path::new("/s"), &args).expect_err("no certificate");
        assert_eq!(
            err.to_string(),
            format!("{}: no certificate in it", ca.display())
        );
        assert_eq!(err.exit_code(), exit::CONFIG);
    }

    #[test]
    fn a_bad_option_is_named_as_the_option() {
        let s = empty();
        let args = SplitArgs {
            vhost: Some("foo_bar".into()),
            ..SplitArgs::default()
        };
        let err = split(&s, Path::new("/s"), &args).expect_err("vhost");
        assert_eq!(
            err.to_string(),
            "--vhost: \"foo_bar\": not a virtual host name (letters, digits, hyphens, dots)"
        );
        assert_eq!(err.exit_code(), exit::USAGE);
        let args = SplitArgs {
            memory: Some("1K".into()),
            ..SplitArgs::default()
        };
        let err = split(&s, Path::new("/s"), &args).expect_err("memory");
        assert_eq!(err.to_string(), "--memory: \"1K\": at least 1M is needed");
        let args = ResolveArgs {
            nameservers: vec!["ns1.example".into()],
            timeout: Some("0".into()),
            ..ResolveArgs::default()
        };
        let err = resolve(&s, &args).expect_err("nameserver");
        assert_eq!(
            err.to_string(),
            "--nameserver: \"ns1.example\": expected IP, IP:PORT or [IPv6]:PORT"
        );
        let args = ResolveArgs {
            timeout: Some("0".into()),
            ..ResolveArgs::default()
        };
        let err = resolve(&s, &args).expect_err("timeout");
        assert_eq!(
            err.to_string(),
            "--timeout: \"0\": expected seconds above 0, up to 3600"
        );
        let args = FetchArgs {
            imap_url: Some("http://x".into()),
            ..FetchArgs::default()
        };
        let err = fetch(&s, Path::new("/s"), &args).expect_err("url");
        assert!(
            err.to_string()
                .starts_with("--imap-url: \"http://x\": not an imap"),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit::USAGE);
    }

    #[test]
    fn a_path_awstats_cannot_carry_is_named_where_it_came_from() {
        let (s, path, _cfg) = settings("logs_awstats_data_dir='/srv/a\"b'\n");
        let err = awstats(&s, Path::new("/s"), &AwstatsArgs::default()).expect_err("quote");
        assert!(
            matches!(
                &err,
                LogsError::Common(Error::Setting {
                    origin: Origin::Switch { line: 1, .. },
                    ..
                })
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn name_servers_take_an_optional_port() {
        assert_eq!(
            parse_nameservers("192.0.2.1 192.0.2.1:5353 ::1 [::1]:5353"),
            Ok(vec![
                "192.0.2.1:53".parse().expect("addr"),
                "192.0.2.1:5353".parse().expect("addr"),
                "[::1]:53".parse().expect("addr"),
                "[::1]:5353".parse().expect("addr"),
            ])
        );
        assert_eq!(
            parse_nameservers("192.0.2.1 ns1.example"),
            Err("\"ns1.example\": expected IP, IP:PORT or [IPv6]:PORT".to_owned())
        );
        assert_eq!(parse_nameservers(""), Ok(Vec::new()));
    }

    #[test]
    fn the_inbox_quiet_period_comes_from_the_option_the_switch_or_the_default() {
        let (s, path, _cfg) = settings("logs_inbox_settle=10\n");
        let spool = Path::new("/s");
        let o = split(&s, spool, &SplitArgs::default()).expect("split");
        assert_eq!(o.inbox_settle, Duration::from_secs(10));
        let args = SplitArgs {
            inbox_settle: Some("0".into()),
            ..SplitArgs::default()
        };
        assert_eq!(
            split(&s, spool, &args).expect("split").inbox_settle,
            Duration::ZERO
        );
        let args = RunArgs {
            inbox_settle: Some("1".into()),
            ..RunArgs::default()
        };
        let j = run(&s, spool, &args).expect("run");
        assert_eq!(j.split.inbox_settle, Duration::from_secs(1));
        let args = SplitArgs {
            inbox_settle: Some("1.5".into()),
            ..SplitArgs::default()
        };
        let err = split(&s, spool, &args).expect_err("fraction");
        assert_eq!(
            err.to_string(),
            "--inbox-settle: \"1.5\": expected whole seconds, 0 to 3600"
        );
        let (s, _, _cfg2) = settings("logs_inbox_settle=-1\n");
        let err = split(&s, spool, &SplitArgs::default()).expect_err("negative");
        assert!(
            err.to_string()
                .ends_with("logs_inbox_settle: \"-1\": expected whole seconds, 0 to 3600"),
            "{err}"
        );
        assert!(path.exists());
    }
}
