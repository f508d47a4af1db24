//! `pysk-dns`: the central name server's zones, from the records every
//! managed server publishes.
//!
//! - `fetch` ([`fetch`]): every server's document over HTTPS, validated
//!   completely ([`document`], [`name`]) and kept as its snapshot
//!   ([`snapshot`]) only when good.
//! - `build` ([`build`]): zones assembled from all snapshots ([`zone`]),
//!   rendered ([`render`]) with serials that change only with the content
//!   ([`serial`]), written atomically; `--reload` reloads the name server
//!   and checks what it serves ([`reload`]).
//! - `serial`: a zone's serial. `config`: the effective switches.
//!
//! The command line is in [`cli`]; this file dispatches it.

pub mod build;
pub mod cli;
pub mod document;
pub mod error;
pub mod fetch;
pub mod name;
pub mod reload;
pub mod render;
pub mod serial;
pub mod snapshot;
pub mod zone;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use pysk_common::cli::CommonArgs;
use pysk_common::exit::Outcome;
use pysk_common::inventory::Inventory;
use pysk_common::lock::Lock;
use pysk_common::switches::{self, Spec, Switches};

pub use cli::Cli;
use cli::{BuildArgs, Command, FetchArgs, StateArgs};
pub use error::DnsError;

/// The switches `pysk-dns` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "dns_state_dir",
        "/var/lib/pysk/dns",
        "snapshots and serials",
    ),
    Spec::new(
        "dns_zone_dir",
        "/etc/bind/pysk",
        "where build writes db.<zone>",
    ),
    Spec::new(
        "dns_include",
        "/etc/bind/named.conf.pysk",
        "the zone statements for named.conf",
    ),
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
    ),
    Spec::new(
        "dns_ca_file",
        "",
        "CA certificates (PEM) instead of the system's",
    ),
    Spec::new(
        "dns_insecure_http",
        "no",
        "allow plain http to other hosts than loopback",
    ),
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
];

/// The tool's entry point: parses the command line, runs the subcommand.
pub fn try_main() -> Result<Outcome, DnsError> {
    let Cli { common, command } = Cli::parse();
    let report = common.reporter("pysk-dns");
    if let Command::Config = command {
        common.print_config(SWITCHES, &mut io::stdout().lock())?;
        return Ok(Outcome::Success);
    }
    let switches = common.switches()?;
    match command {
        // Printed above, before the switches are read for a subcommand.
        Command::Config => Ok(Outcome::Success),
        Command::Fetch(args) => {
            let (inventory, state_dir, _lock) = open_state(&common, &args.state, &switches)?;
            let options = fetch_options(&args, &switches)?;
            let fates = fetch::fetch_all(&inventory, &state_dir, &options)?;
            let mut outcome = Outcome::Success;
            for (server, fate) in &fates {
                if fate.is_problem() {
                    report.warn(format_args!("{server}: {}", fate.describe()));
                    outcome = Outcome::Partial;
                } else {
                    report.verbose(format_args!("{server}: {}", fate.describe()));
                }
            }
            let good = fates.iter().filter(|(_, f)| !f.is_problem()).count();
            report.info(format_args!("fetched {good} of {} servers", fates.len()));
            Ok(outcome)
        }
        Command::Build(args) => {
            let (inventory, state_dir, _lock) = open_state(&common, &args.state, &switches)?;
            let options = build_options(&args, state_dir, &switches)?;
            let mut out = io::stdout().lock();
            let outcome = build::build(&inventory, &options, &report, &mut out)?;
            out.flush().map_err(DnsError::Stdout)?;
            Ok(outcome)
        }
        Command::Serial(args) => {
            let state_dir = args
                .state_dir
                .unwrap_or_else(|| PathBuf::from(setting(&switches, "dns_state_dir")));
            let zone = args.zone.trim_end_matches('.').to_ascii_lowercase();
            let state = serial::State::load(&state_dir)?;
            let entry = state.zones.get(&zone).ok_or_else(|| DnsError::NoSerial {
                zone: zone.clone(),
                path: serial::path(&state_dir),
            })?;
            writeln!(io::stdout(), "{}", entry.serial).map_err(DnsError::Stdout)?;
            Ok(Outcome::Success)
        }
    }
}

/// A switch's value, or its default from [`SWITCHES`].
fn setting(switches: &Switches, key: &str) -> String {
    switches.setting(SWITCHES, key)
}

/// A switch parsed into `T`; a value that does not parse is a
/// configuration error at its file and line.
fn parsed<T: FromStr>(switches: &Switches, key: &str) -> Result<T, DnsError>
where
    T::Err: std::fmt::Display,
{
    Ok(switches.setting_parsed(SWITCHES, key)?)
}

fn yes(switches: &Switches, key: &str) -> Result<bool, DnsError> {
    Ok(switches.flag(key, switches::default_of(SWITCHES, key) == "yes")?)
}

fn optional_path(switches: &Switches, key: &str) -> Option<PathBuf> {
    Some(setting(switches, key))
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The inventory, the state directory, and the lock held on it.
fn open_state(
    common: &CommonArgs,
    args: &StateArgs,
    switches: &Switches,
) -> Result<(Inventory, PathBuf, Lock), DnsError> {
    let hosts = args
        .hosts
        .clone()
        .unwrap_or_else(|| common.config_dir.join("hosts"));
    let inventory = Inventory::load(&hosts)?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(setting(switches, "dns_state_dir")));
    std::fs::create_dir_all(&state_dir).map_err(error::output_err(&state_dir))?;
    let lock = Lock::acquire(&state_dir.join(".lock"), args.wait.duration())?;
    Ok((inventory, state_dir, lock))
}

fn fetch_options(args: &FetchArgs, switches: &Switches) -> Result<fetch::Options, DnsError> {
    let user = setting(switches, "dns_api_user");
    let password_file = args
        .password_file
        .clone()
        .or_else(|| optional_path(switches, "dns_api_password_file"));
    let auth = match (user.is_empty(), password_file) {
        (true, None) => None,
        (false, Some(file)) => Some((user, pysk_common::secret::read_file(&file)?)),
        (true, Some(_)) => {
            return Err(DnsError::Setting {
                name: "dns_api_user".to_owned(),
                reason: "a password file is given but no user".to_owned(),
            });
        }
        (false, None) => {
            return Err(DnsError::Setting {
                name: "dns_api_password_file".to_owned(),
                reason: format!("user {user:?} needs a password file"),
            });
        }
    };
    Ok(fetch::Options {
        url_template: setting(switches, "dns_api_url"),
        auth,
        ca_file: args
            .ca_file
            .clone()
            .or_else(|| optional_path(switches, "dns_ca_file")),
        connect_timeout: Duration::from_secs(parsed(switches, "dns_connect_timeout")?),
        read_timeout: Duration::from_secs(parsed(switches, "dns_read_timeout")?),
        max_document: parsed(switches, "dns_max_document")?,
        insecure_http: args.insecure_http || yes(switches, "dns_insecure_http")?,
        force: args.force,
        parallel: parsed(switches, "dns_fetch_parallel")?,
    })
}

fn build_options(
    args: &BuildArgs,
    state_dir: PathBuf,
    switches: &Switches,
) -> Result<build::Options, DnsError> {
    let zone_dir = args
        .zone_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(setting(switches, "dns_zone_dir")));
    let zone_dir = std::path::absolute(&zone_dir).map_err(error::input_err(&zone_dir))?;
    if zone_dir
        .to_str()
        .is_none_or(|s| s.contains('"') || s.chars().any(char::is_control))
    {
        return Err(DnsError::Setting {
            name: "dns_zone_dir".to_owned(),
            reason: format!("{} cannot be named in named.conf", zone_dir.display()),
        });
    }
    let names = |key: &str| -> Result<Vec<String>, DnsError> {
        setting(switches, key)
            .split_whitespace()
            .map(|n| host_name(key, n))
            .collect()
    };
    let one_name = |key: &str| -> Result<String, DnsError> {
        Ok(names(key)?
            .first()
            .map(|n| name::fqdn(n))
            .unwrap_or_default())
    };
    let zone_options = setting(switches, "dns_zone_options");
    if zone_options.chars().any(char::is_control) {
        return Err(DnsError::Setting {
            name: "dns_zone_options".to_owned(),
            reason: "control character".to_owned(),
        });
    }
    let servers_zone = names("dns_servers_zone")?.into_iter().next();
    let reload = if args.reload {
        Some(build::Reload {
            command: setting(switches, "dns_reload_command"),
            server: parsed::<SocketAddr>(switches, "dns_check_server")?,
            patience: Duration::from_secs(parsed(switches, "dns_check_timeout")?),
        })
    } else {
        None
    };
    Ok(build::Options {
        state_dir,
        zone_dir,
        include: args
            .include
            .clone()
            .unwrap_or_else(|| PathBuf::from(setting(switches, "dns_include"))),
        policy: zone::Policy {
            ns: names("dns_ns")?,
        },
        soa: render::SoaTimers {
            primary: one_name("dns_soa_primary")?,
            hostmaster: mailbox(&setting(switches, "dns_soa_hostmaster"))?,
            refresh: parsed(switches, "dns_soa_refresh")?,
            retry: parsed(switches, "dns_soa_retry")?,
            expire: parsed(switches, "dns_soa_expire")?,
            minimum: parsed(switches, "dns_soa_minimum")?,
        },
        zone_options,
        servers_zone,
        dry_run: args.dry_run,
        reload,
    })
}

fn host_name(key: &str, text: &str) -> Result<String, DnsError> {
    name::absolute(text, name::Rule::Host, false).map_err(|reason| DnsError::Setting {
        name: key.to_owned(),
        reason: format!("{text:?}: {reason}"),
    })
}

/// The SOA mailbox in DNS form from `user@domain` (dots in the user part
/// escaped), or empty for the default.
fn mailbox(text: &str) -> Result<String, DnsError> {
    let key = "dns_soa_hostmaster";
    if text.is_empty() {
        return Ok(String::new());
    }
    let (user, domain) = text.split_once('@').ok_or_else(|| DnsError::Setting {
        name: key.to_owned(),
        reason: format!("{text:?} is not user@domain"),
    })?;
    let domain = host_name(key, domain)?;
    if user.is_empty()
        || !user
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c))
    {
        return Err(DnsError::Setting {
            name: key.to_owned(),
            reason: format!("{user:?} is not a plain mailbox name"),
        });
    }
    Ok(format!("{}.{domain}.", user.replace('.', "\\.")))
}
