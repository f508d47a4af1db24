//! Every subcommand's options, resolved in one place: a command-line value
//! beats the switch, which beats the built-in default written once, in
//! [`SWITCHES`]. Each bad value is reported where it came from (a switch
//! file and line, an option, or the built-in default), by
//! `pysk_common::settings`.

use std::path::{Path, PathBuf};

use pysk_common::cli::CommonArgs;
use pysk_common::error::read_err;
use pysk_common::secret::{self, Secret};
use pysk_common::settings::{Settings, Spec};

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
        "its password, in a file only root can read",
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
    .option("--insecure-plaintext"),
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
    Spec::new("dns_zone_options", "", "added to every zone statement"),
    Spec::new(
        "dns_servers_zone",
        "",
        "zone that gets an address record per inventory server",
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
        connect_timeout: settings.seconds("dns_connect_timeout", None)?,
        read_timeout: settings.seconds("dns_read_timeout", None)?,
        max_document: settings.size("dns_max_document", None)?,
        insecure_plaintext: settings.flag("dns_insecure_plaintext", args.insecure_plaintext)?,
        force: args.force,
        parallel: settings.parsed("dns_fetch_parallel", None)?,
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
    // Only whether the option was given matters to `invalid`, not its text.
    let given = cli.as_ref().map(|_| "");
    let dir = settings.path("dns_zone_dir", cli.clone())?;
    let dir = std::path::absolute(&dir).map_err(read_err(&dir))?;
    if dir
        .to_str()
        .is_none_or(|s| s.contains('"') || s.chars().any(char::is_control))
    {
        let why = format!("{} cannot be named in named.conf", dir.display());
        return Err(settings.invalid("dns_zone_dir", given, why).into());
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
        patience: settings.seconds("dns_check_timeout", None)?,
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
