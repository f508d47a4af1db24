//! Every subcommand's options, resolved in one place: a command-line value
//! beats the switch, which beats the built-in default written once, in
//! [`SWITCHES`]. Each bad value is reported where it came from (a switch
//! file and line, an option, or the built-in default), by
//! `pysk_common::settings`.

use std::path::{Path, PathBuf};

use pysk_common::cli::CommonArgs;
use pysk_common::error::read_err;
use pysk_common::secret::{self, Secret};
use pysk_common::settings::{Settings, Spec, parse_size};

use crate::build::{self, Reload};
use crate::cli::{BuildArgs, FetchArgs, SerialArgs, StateArgs};
use crate::error::DnsError;
use crate::fetch;
use crate::name::{self, Rule};
use crate::render::SoaTimers;
use crate::state::Location;
use crate::zone::Policy;

/// The switches `pysk-dns` reads, with their built-in defaults and the
/// options that beat them.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "dns_state_dir",
        "/var/lib/pysk/dns",
        "snapshots and serials",
    )
    .option("--state-dir"),
    Spec::new(
        "dns_zone_dir",
        "/etc/bind/pysk",
        "where build writes db.<zone>",
    )
    .option("--zone-dir"),
    Spec::new(
        "dns_include",
        "/etc/bind/named.conf.pysk",
        "the zone statements for named.conf",
    )
    .option("--include"),
    Spec::new(
        "dns_api_url",
        "https://{name}/pysk/dns.json",
        "document URL of servers without url=",
    ),
    Spec::new("dns_api_user", "", "HTTP basic auth user (empty: none)"),
    Spec::new(
        "dns_api_password_file",
        "",
        "its password, in a file only its owner can read",
    )
    .option("--password-file"),
    Spec::new(
        "dns_ca_file",
        "",
        "CA certificates (PEM) instead of the system's",
    )
    .option("--ca-file"),
    Spec::new(
        "dns_insecure_plaintext",
        "no",
        "allow plain http to other hosts than loopback",
    )
    .option("--insecure-plaintext")
    .replaces("dns_insecure_http"),
    Spec::new(
        "dns_connect_timeout",
        "10",
        "seconds to connect to a server",
    ),
    Spec::new(
        "dns_read_timeout",
        "30",
        "seconds for a server's whole answer",
    ),
    Spec::new(
        "dns_max_document",
        "16777216",
        "largest document accepted, bytes",
    ),
    Spec::new("dns_fetch_parallel", "16", "servers fetched at once"),
    Spec::new(
        "dns_ns",
        "",
        "name servers of every zone, blank-separated (empty: the documents')",
    ),
    Spec::new(
        "dns_soa_primary",
        "",
        "SOA primary (empty: the zone's first name server)",
    ),
    Spec::new(
        "dns_soa_hostmaster",
        "",
        "SOA mailbox as user@domain (empty: hostmaster@<zone>)",
    ),
    Spec::new("dns_soa_refresh", "3600", "SOA refresh, seconds"),
    Spec::new("dns_soa_retry", "900", "SOA retry, seconds"),
    Spec::new("dns_soa_expire", "1209600", "SOA expire, seconds"),
    Spec::new(
        "dns_soa_minimum",
        "3600",
        "SOA minimum (negative caching), seconds",
    ),
    Spec::new(
        "dns_reserved_zones",
        "",
        "zones (and their subdomains) no server may publish, blank-separated",
    ),
    Spec::new("dns_zone_options", "", "added to every zone statement"),
    Spec::new(
        "dns_servers_zone",
        "",
        "zone that gets an address record per inventory server",
    ),
    Spec::new(
        "dns_checkzone",
        "named-checkzone",
        "checks each changed zone file before it is installed (empty: no check)",
    ),
    Spec::new(
        "dns_reload_command",
        "rndc reload",
        "run by build --reload after a change",
    ),
    Spec::new(
        "dns_check_server",
        "127.0.0.1:53",
        "where --reload checks the served serials",
    ),
    Spec::new(
        "dns_check_timeout",
        "10",
        "seconds a reloaded zone may take to be served",
    ),
    Spec::new(
        "dns_wait",
        "0",
        "seconds fetch and build wait for another run's lock",
    )
    .option("--wait"),
];

/// Where a fetch or build works: `--hosts` (default `<config-dir>/hosts`),
/// the state directory and the lock wait.
pub fn location(
    common: &CommonArgs,
    settings: &Settings,
    args: &StateArgs,
) -> Result<Location, DnsError> {
    Ok(Location {
        hosts: args
            .hosts
            .clone()
            .unwrap_or_else(|| common.config_dir.join("hosts")),
        dir: settings.path("dns_state_dir", args.state_dir.clone())?,
        wait: args.wait.resolve(settings, "dns_wait")?,
    })
}

/// `fetch`'s options. Reads the password file, so that a secret others
/// may read is refused before anything is fetched.
pub fn fetch_options(settings: &Settings, args: &FetchArgs) -> Result<fetch::Options, DnsError> {
    Ok(fetch::Options {
        url_template: settings.string("dns_api_url", None)?,
        auth: auth(settings, args)?,
        ca_file: settings.optional_path("dns_ca_file", args.ca_file.clone())?,
        connect_timeout: settings.timeout("dns_connect_timeout", None)?,
        read_timeout: settings.timeout("dns_read_timeout", None)?,
        max_document: settings.with("dns_max_document", None, |t| match parse_size(t)? {
            0 => Err("expected a size above 0, like 16M".to_owned()),
            n => Ok(n),
        })?,
        insecure_plaintext: settings.flag("dns_insecure_plaintext", args.insecure_plaintext)?,
        force: args.force,
        parallel: usize::from(settings.count::<u16>("dns_fetch_parallel", None, 1..=256)?),
        json: args.json.json,
    })
}

/// The HTTP basic auth user and password: both or neither.
fn auth(settings: &Settings, args: &FetchArgs) -> Result<Option<(String, Secret)>, DnsError> {
    let user = settings.optional_string("dns_api_user", None)?;
    let file = settings.optional_path("dns_api_password_file", args.password_file.clone())?;
    match (user, file) {
        (None, None) => Ok(None),
        (Some(user), Some(file)) => Ok(Some((user, secret::read_file(&file)?))),
        (None, Some(_)) => Err(settings
            .invalid(
                "dns_api_user",
                None,
                "empty, but a password file is given (dns_api_password_file or --password-file)",
            )
            .into()),
        (Some(user), None) => Err(settings
            .invalid(
                "dns_api_password_file",
                None,
                format!("empty, but user {user:?} (dns_api_user) needs a password file"),
            )
            .into()),
    }
}

/// `build`'s options, `--reload`'s included; the state directory is the
/// run's [`Location`].
pub fn build_options(
    settings: &Settings,
    args: &BuildArgs,
    state_dir: &Path,
) -> Result<build::Options, DnsError> {
    Ok(build::Options {
        state_dir: state_dir.to_owned(),
        zone_dir: zone_dir(settings, args.zone_dir.clone())?,
        include: settings.path("dns_include", args.include.clone())?,
        policy: Policy {
            ns: names(settings, "dns_ns")?,
        },
        soa: soa(settings)?,
        zone_options: settings.with("dns_zone_options", None, |text| {
            if text.chars().any(char::is_control) {
                Err("control character".to_owned())
            } else {
                Ok(text.to_owned())
            }
        })?,
        servers_zone: names(settings, "dns_servers_zone")?.into_iter().next(),
        checkzone: settings.optional_string("dns_checkzone", None)?,
        reserved: names(settings, "dns_reserved_zones")?,
        dry_run: args.dry_run.dry_run,
        reload: if args.reload {
            Some(reload(settings)?)
        } else {
            None
        },
        json: args.json.json,
    })
}

/// The zone directory, absolute: `named.conf` names its files in quotes.
fn zone_dir(settings: &Settings, cli: Option<PathBuf>) -> Result<PathBuf, DnsError> {
    let given = cli.as_ref().map(|p| p.to_string_lossy().into_owned());
    let dir = settings.path("dns_zone_dir", cli.clone())?;
    let dir = std::path::absolute(&dir).map_err(read_err(&dir))?;
    if dir
        .to_str()
        .is_none_or(|s| s.contains('"') || s.chars().any(char::is_control))
    {
        let why = format!(
            "{:?}: a quote or control character cannot be named in named.conf",
            dir.display().to_string()
        );
        return Err(settings
            .invalid("dns_zone_dir", given.as_deref(), why)
            .into());
    }
    Ok(dir)
}

/// The SOA fields from the switches.
fn soa(settings: &Settings) -> Result<SoaTimers, DnsError> {
    Ok(SoaTimers {
        primary: names(settings, "dns_soa_primary")?
            .first()
            .map(|n| name::fqdn(n))
            .unwrap_or_default(),
        hostmaster: settings.with("dns_soa_hostmaster", None, mailbox)?,
        refresh: settings.parsed("dns_soa_refresh", None)?,
        retry: settings.parsed("dns_soa_retry", None)?,
        expire: settings.parsed("dns_soa_expire", None)?,
        minimum: settings.parsed("dns_soa_minimum", None)?,
    })
}

/// `--reload`'s command and check.
fn reload(settings: &Settings) -> Result<Reload, DnsError> {
    Ok(Reload {
        command: settings.string("dns_reload_command", None)?,
        server: settings.parsed("dns_check_server", None)?,
        patience: settings.timeout("dns_check_timeout", None)?,
    })
}

/// `serial`'s state directory.
pub fn serial_state_dir(settings: &Settings, args: &SerialArgs) -> Result<PathBuf, DnsError> {
    Ok(settings.path("dns_state_dir", args.state_dir.clone())?)
}

/// The host names of `key`, blank-separated, each checked.
fn names(settings: &Settings, key: &str) -> Result<Vec<String>, DnsError> {
    Ok(settings.with(key, None, |text| {
        let several = text.split_whitespace().nth(1).is_some();
        text.split_whitespace()
            .map(|word| {
                name::absolute(word, Rule::Host, false).map_err(|why| match several {
                    true => format!("{word:?}: {why}"),
                    false => why,
                })
            })
            .collect()
    })?)
}

/// The SOA mailbox in DNS form from `user@domain` (dots in the user part
/// escaped), or empty for the default.
fn mailbox(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let (user, domain) = text
        .split_once('@')
        .ok_or_else(|| "not user@domain".to_owned())?;
    let domain = name::absolute(domain, Rule::Host, false)?;
    if user.is_empty()
        || !user
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c))
    {
        return Err(format!("{user:?} is not a plain mailbox name"));
    }
    Ok(format!("{}.{domain}.", user.replace('.', "\\.")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use clap::Parser;
    use pysk_common::exit::{self, ToolError};
    use pysk_common::report::{Level, Reporter};

    use crate::cli::{Cli, Command};

    /// The parsed command line `args` (after `pysk-dns`), for the host
    /// `ns.example.net` with its configuration in `dir`, and its settings.
    fn parse(dir: &Path, args: &[&str]) -> (Cli, Settings) {
        let config = dir.to_str().expect("utf-8");
        let mut argv = vec![
            "pysk-dns",
            "--config-dir",
            config,
            "--host",
            "ns.example.net",
        ];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("parses");
        let report = Reporter::new("pysk-dns", Level::Quiet);
        let settings = cli.common.settings(SWITCHES, &report).expect("settings");
        (cli, settings)
    }

    /// Resolves whatever subcommand `args` names, as `try_main` would.
    fn resolve(dir: &Path, args: &[&str]) -> Result<Resolved, DnsError> {
        let (cli, settings) = parse(dir, args);
        Ok(match &cli.command {
            Command::Fetch(a) => Resolved::Fetch(
                location(&cli.common, &settings, &a.state)?,
                Box::new(fetch_options(&settings, a)?),
            ),
            Command::Build(a) => {
                let location = location(&cli.common, &settings, &a.state)?;
                let options = build_options(&settings, a, &location.dir)?;
                Resolved::Build(location, Box::new(options))
            }
            Command::Serial(a) => Resolved::Serial(serial_state_dir(&settings, a)?),
            Command::Config => {
                let mut out = Vec::new();
                cli.common.print_config(&settings, &mut out)?;
                Resolved::Config(String::from_utf8(out).expect("utf-8"))
            }
        })
    }

    #[derive(Debug)]
    enum Resolved {
        Fetch(Location, Box<fetch::Options>),
        Build(Location, Box<build::Options>),
        Serial(PathBuf),
        Config(String),
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("serverconfig/default");
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn every_subcommand_resolves_from_the_built_in_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Resolved::Fetch(location, fetch) = resolve(dir.path(), &["fetch"]).expect("fetch")
        else {
            panic!("not fetch")
        };
        assert_eq!(location.dir, Path::new("/var/lib/pysk/dns"));
        assert_eq!(location.hosts, dir.path().join("hosts"));
        assert_eq!(location.wait, Duration::ZERO);
        assert!(fetch.auth.is_none() && fetch.ca_file.is_none());
        assert!(!fetch.insecure_plaintext && !fetch.json);
        assert_eq!(fetch.read_timeout, Duration::from_secs(30));
        assert_eq!(fetch.max_document, 16 << 20);
        assert_eq!(fetch.parallel, 16);
        let Resolved::Build(_, build) = resolve(dir.path(), &["build", "--reload"]).expect("build")
        else {
            panic!("not build")
        };
        assert_eq!(build.zone_dir, Path::new("/etc/bind/pysk"));
        assert_eq!(build.include, Path::new("/etc/bind/named.conf.pysk"));
        assert_eq!(build.soa.refresh, 3600);
        assert!(build.policy.ns.is_empty() && build.servers_zone.is_none());
        let reload = build.reload.expect("--reload");
        assert_eq!(reload.command, "rndc reload");
        assert_eq!(reload.server.to_string(), "127.0.0.1:53");
        assert!(matches!(
            resolve(dir.path(), &["build", "--dry-run"]),
            Ok(Resolved::Build(_, b)) if b.dry_run && b.reload.is_none() && !b.json
        ));
        assert!(matches!(
            resolve(dir.path(), &["build", "--dry-run", "--json"]),
            Ok(Resolved::Build(_, b)) if b.dry_run && b.json
        ));
        assert!(matches!(
            resolve(dir.path(), &["serial", "example.org"]),
            Ok(Resolved::Serial(p)) if p == Path::new("/var/lib/pysk/dns")
        ));
        assert!(matches!(
            resolve(dir.path(), &["config"]),
            Ok(Resolved::Config(text)) if text.contains("dns_wait=\"0\"  # built-in default")
        ));
    }

    #[test]
    fn every_subcommand_resolves_from_a_config_file_and_options_beat_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("dns.password");
        fs::write(&secret, "pw\n").expect("write");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        write_config(
            dir.path(),
            &format!(
                "dns_state_dir=/srv/dns\ndns_zone_dir=/srv/zones\ndns_api_user=pysk\n\
                 dns_api_password_file={}\ndns_insecure_plaintext=yes\ndns_wait=\" 2.5 \"\n\
                 dns_read_timeout=5\ndns_max_document=1M\ndns_ns=\"ns1.example.net NS2.example.net.\"\n\
                 dns_soa_hostmaster=host.master@example.org\ndns_servers_zone=example.net\n\
                 dns_check_server=127.0.0.1:5353\ndns_reload_command=\"kill -HUP 1\"\n",
                secret.display()
            ),
        );
        let Resolved::Fetch(location, fetch) = resolve(dir.path(), &["fetch"]).expect("fetch")
        else {
            panic!("not fetch")
        };
        assert_eq!(location.dir, Path::new("/srv/dns"));
        assert_eq!(location.wait, Duration::from_millis(2500));
        let (user, password) = fetch.auth.expect("auth");
        assert_eq!((user.as_str(), password.expose()), ("pysk", "pw"));
        assert!(fetch.insecure_plaintext);
        assert_eq!(fetch.read_timeout, Duration::from_secs(5));
        assert_eq!(fetch.max_document, 1 << 20);
        let args = [
            "build",
            "--reload",
            "--json",
            "--state-dir",
            "/o",
            "--wait",
            "1",
        ];
        let Resolved::Build(location, build) = resolve(dir.path(), &args).expect("build") else {
            panic!("not build")
        };
        assert_eq!(location.dir, Path::new("/o"));
        assert_eq!(location.wait, Duration::from_secs(1));
        assert_eq!(build.state_dir, Path::new("/o"));
        assert_eq!(build.zone_dir, Path::new("/srv/zones"));
        assert_eq!(build.policy.ns, ["ns1.example.net", "ns2.example.net"]);
        assert_eq!(build.soa.hostmaster, "host\\.master.example.org.");
        assert_eq!(build.servers_zone.as_deref(), Some("example.net"));
        assert!(build.json);
        let reload = build.reload.expect("--reload");
        assert_eq!(reload.command, "kill -HUP 1");
        assert_eq!(reload.server.port(), 5353);
        assert!(matches!(
            resolve(dir.path(), &["serial", "example.org"]),
            Ok(Resolved::Serial(p)) if p == Path::new("/srv/dns")
        ));
    }

    /// The message and exit code of resolving `args` against `config`.
    fn failure(config: &str, args: &[&str]) -> (String, u8, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(dir.path(), config);
        let err = resolve(dir.path(), args).expect_err("a bad value");
        (err.to_string(), err.exit_code(), path)
    }

    #[test]
    fn bad_values_are_named_where_they_came_from() {
        let (msg, code, path) = failure("dns_api_url=x\ndns_read_timeout=soon\n", &["fetch"]);
        assert_eq!(
            msg,
            format!(
                "{}:2: dns_read_timeout: \"soon\": expected seconds from 0 to 86400",
                path.display()
            )
        );
        assert_eq!(code, exit::CONFIG);
        let (msg, code, _) = failure("", &["build", "--wait", "soon"]);
        assert_eq!(msg, "--wait: \"soon\": expected seconds from 0 to 86400");
        assert_eq!(code, exit::USAGE);
        let (msg, _, path) = failure("dns_ns=\"ns1.example.net a_b\"\n", &["build"]);
        assert_eq!(
            msg,
            format!(
                "{}:1: dns_ns: \"ns1.example.net a_b\": \"a_b\": \
                 character '_' not allowed in a host name label",
                path.display()
            )
        );
        let (msg, _, _) = failure("", &["build", "--zone-dir", "/a\"b"]);
        assert_eq!(
            msg,
            "--zone-dir: \"/a\\\"b\": a quote or control character cannot be named in named.conf"
        );
        let (msg, _, path) = failure("dns_soa_hostmaster=nobody\n", &["build"]);
        assert_eq!(
            msg,
            format!(
                "{}:1: dns_soa_hostmaster: \"nobody\": not user@domain",
                path.display()
            )
        );
        let (msg, code, _) = failure("dns_api_user=pysk\n", &["fetch"]);
        assert_eq!(
            msg,
            "dns_api_password_file (built-in default): empty, but user \"pysk\" \
             (dns_api_user) needs a password file"
        );
        assert_eq!(code, exit::CONFIG);
        let (msg, _, _) = failure("", &["fetch", "--password-file", "/p"]);
        assert!(
            msg.starts_with("dns_api_user (built-in default): empty, but"),
            "{msg}"
        );
        let (msg, code, path) = failure("dns_state_dir=var/lib/dns\n", &["serial", "x.org"]);
        assert_eq!(
            msg,
            format!(
                "{}:1: dns_state_dir: \"var/lib/dns\": not an absolute path \
                 (a relative one would depend on the directory the tool runs in)",
                path.display()
            )
        );
        assert_eq!(code, exit::CONFIG);
        let (msg, _, path) = failure("dns_ca_file=cert.pem\n", &["fetch"]);
        assert!(
            msg.starts_with(&format!("{}:1: dns_ca_file: ", path.display())),
            "{msg}"
        );
        let (msg, _, path) = failure("dns_check_server=localhost\n", &["build", "--reload"]);
        assert!(
            msg.starts_with(&format!(
                "{}:1: dns_check_server: \"localhost\": ",
                path.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn the_old_plaintext_switch_is_reported_as_renamed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(dir.path(), "dns_insecure_http=yes\n");
        let (cli, settings) = parse(dir.path(), &["fetch", "--insecure-http"]);
        assert_eq!(
            settings.unknown(),
            [format!(
                "{}:1: dns_insecure_http: renamed to dns_insecure_plaintext; \
                 read as dns_insecure_plaintext for this release, rename it",
                path.display()
            )]
        );
        let Command::Fetch(args) = &cli.command else {
            panic!("not fetch")
        };
        assert!(args.insecure_plaintext, "the old option is an alias");
        assert!(
            settings
                .flag("dns_insecure_plaintext", false)
                .expect("the old switch"),
            "the old switch is read for one release"
        );
    }
}
