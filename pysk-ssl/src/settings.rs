//! Every option of every subcommand, resolved in one place: the command
//! line beats the switch, which beats the built-in default written once in
//! [`SWITCHES`]. Each bad value is reported where it came from (the
//! switch's file and line, the option, or the built-in default).

use std::path::PathBuf;

use pysk_common::cli::CommonArgs;
use pysk_common::settings::{Settings, Spec};

use crate::acme;
use crate::check;
use crate::cli::{
    AcmeArgs, CaArgs, CheckArgs, CsrArgs, DirArgs, InstallArgs, ListArgs, RenewArgs, ServedArgs,
};
use crate::endpoints::{self, Given};
use crate::error::SslError;
use crate::install;
use crate::keys::KeyType;
use crate::list;
use crate::names;
use crate::renew;
use crate::served;
use crate::store::Store;
use crate::{csr, keys};

/// The switches `pysk-ssl` reads, with their built-in defaults.
pub const SWITCHES: &[Spec] = &[
    Spec::new(
        "ssl_dir",
        "/etc/pysk/ssl",
        "the keys, CSRs and certificates, NAME.key, NAME.crt, ...",
    )
    .option("--dir"),
    Spec::new(
        "ssl_key_group",
        "ssl-cert",
        "group that may read the private keys (mode 0640)",
    ),
    Spec::new(
        "ssl_key_type",
        "ec-p256",
        "key type of a new key: ec-p256, ec-p384, rsa2048, rsa4096",
    )
    .option("--key-type"),
    Spec::new(
        "ssl_ca_file",
        "",
        "trust anchors (PEM) instead of the system's store (empty: the store)",
    )
    .option("--ca-file"),
    Spec::new(
        "ssl_warn_days",
        "30",
        "a chain expiring within this many days is refused by install, warned about by check",
    )
    .option("--warn-days"),
    Spec::new(
        "ssl_crit_days",
        "7",
        "check: critical within this many days",
    )
    .option("--crit-days"),
    Spec::new(
        "ssl_reload_command",
        "",
        "run after an install, split at blanks, no shell (empty: none)",
    ),
    Spec::new(
        "ssl_check_after_reload",
        "",
        "install: HOST:PORT whose served certificate must be the new one after the reload (empty: none)",
    ),
    Spec::new(
        "ssl_timeout",
        "10",
        "served: seconds the probe of one endpoint (connect, STARTTLS, handshake) may take",
    )
    .option("--timeout"),
    Spec::new(
        "ssl_acme_timeout",
        "30",
        "acme, renew: seconds the CA may take to answer one request",
    ),
    Spec::new(
        "ssl_acme_account",
        "/etc/pysk/ssl-acme-account.json",
        "acme: the ACME account's credentials (mode 0600; made on first use)",
    ),
    Spec::new(
        "ssl_acme_directory",
        "https://acme-v02.api.letsencrypt.org/directory",
        "acme: the ACME CA's directory URL",
    )
    .option("--directory"),
    Spec::new(
        "ssl_wait",
        "15",
        "seconds to wait for the directory's lock (csr, install, acme, renew)",
    )
    .option("--wait"),
];

/// The options of `csr`.
pub fn csr(settings: &Settings, args: &CsrArgs) -> Result<csr::Options, SslError> {
    let name = names::checked("NAME", &args.name, false)?;
    let sans = sans(&name, &args.san, true)?;
    let key_type = key_type(settings, args.key_type.as_deref())?;
    Ok(csr::Options {
        name,
        sans,
        key_type,
        reuse_key: args.reuse_key,
        new_key: args.new_key,
        store: store(settings, &args.dir)?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
        wait: args.wait.resolve(settings, "ssl_wait")?,
    })
}

/// The options of `install`.
pub fn install(settings: &Settings, args: &InstallArgs) -> Result<install::Options, SslError> {
    Ok(install::Options {
        name: names::checked("NAME", &args.name, false)?,
        cert: args.cert.clone(),
        chain: args.chain.clone(),
        key: args.key.clone(),
        ca_file: ca_file(settings, &args.ca)?,
        warn_days: days(settings, "ssl_warn_days", args.warn_days.as_deref())?,
        reload: settings.string("ssl_reload_command", None)?,
        store: store(settings, &args.dir)?,
        check_after_reload: check_after_reload(
            settings,
            Some(&args.name),
            &args.dir,
            &args.ca,
            args.warn_days.as_deref(),
        )?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
        acme_record: None,
        wait: args.wait.resolve(settings, "ssl_wait")?,
    })
}

/// The options of `acme`: NAME and its `--san`s (no wildcards), and the
/// install that follows, from the chain it keeps in `DIR/.acme/`.
pub fn acme(settings: &Settings, args: &AcmeArgs) -> Result<acme::Options, SslError> {
    let name = names::checked("NAME", &args.name, false)?;
    let sans = sans(&name, &args.san, false)?;
    let store = store(settings, &args.dir)?;
    let install = install::Options {
        cert: store.acme_chain(&name),
        chain: None,
        key: None,
        ca_file: ca_file(settings, &args.ca)?,
        warn_days: days(settings, "ssl_warn_days", None)?,
        reload: settings.string("ssl_reload_command", None)?,
        check_after_reload: check_after_reload(
            settings,
            Some(&args.name),
            &args.dir,
            &args.ca,
            None,
        )?,
        store,
        dry_run: false,
        json: args.json.json,
        acme_record: None,
        wait: args.wait.resolve(settings, "ssl_wait")?,
        name,
    };
    Ok(acme::Options {
        sans,
        webroot: args.webroot.clone(),
        directory: settings.string("ssl_acme_directory", args.directory.as_deref())?,
        account: settings.path("ssl_acme_account", None)?,
        key_type: key_type(settings, args.key_type.as_deref())?,
        dry_run: args.dry_run.dry_run,
        request_limit: settings.timeout("ssl_acme_timeout", None)?,
        replaces: None,
        install,
    })
}

/// The options of `renew`: the switches `acme` reads, for every
/// ACME-managed name.
pub fn renew(settings: &Settings, args: &RenewArgs) -> Result<renew::Options, SslError> {
    Ok(renew::Options {
        store: store(settings, &args.dir)?,
        account: settings.path("ssl_acme_account", None)?,
        key_type: key_type(settings, None)?,
        ca_file: ca_file(settings, &args.ca)?,
        warn_days: days(settings, "ssl_warn_days", None)?,
        reload: settings.string("ssl_reload_command", None)?,
        check_after_reload: check_after_reload(settings, None, &args.dir, &args.ca, None)?,
        request_limit: settings.timeout("ssl_acme_timeout", None)?,
        dry_run: args.dry_run.dry_run,
        json: args.json.json,
        wait: args.wait.resolve(settings, "ssl_wait")?,
    })
}

/// The options of `check`.
pub fn check(settings: &Settings, args: &CheckArgs) -> Result<check::Options, SslError> {
    let warn_days = days(settings, "ssl_warn_days", args.warn_days.as_deref())?;
    let crit_days = days(settings, "ssl_crit_days", args.crit_days.as_deref())?;
    if crit_days > warn_days {
        let reason = format!("{crit_days} is above the warning threshold {warn_days}");
        return Err(settings
            .invalid("ssl_crit_days", args.crit_days.as_deref(), reason)
            .into());
    }
    Ok(check::Options {
        dir: dir(settings, &args.dir)?,
        ca_file: ca_file(settings, &args.ca)?,
        warn_days,
        crit_days,
        nagios: args.nagios,
        json: args.json.json,
    })
}

/// The options of `served`: the endpoints of the command line, the list
/// and the inventory, in that order.
pub fn served(
    common: &CommonArgs,
    settings: &Settings,
    args: &ServedArgs,
) -> Result<served::Options, SslError> {
    let given = Given {
        sni: name("--name", args.name.as_deref())?,
        starttls: match &args.starttls {
            Some(text) => Some(
                text.parse()
                    .map_err(|why| pysk_common::Error::option("--starttls", why))?,
            ),
            None => None,
        },
        expect: name("--expect", args.expect.as_deref())?,
    };
    let mut endpoints = args
        .endpoints
        .iter()
        .map(|a| given.endpoint(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|why| pysk_common::Error::option("HOST:PORT", why))?;
    if let Some(path) = &args.from {
        endpoints.extend(endpoints::from_file(path)?);
    }
    let hosts = args
        .hosts
        .clone()
        .unwrap_or_else(|| common.config_dir.join("hosts"));
    if args.inventory {
        endpoints.extend(endpoints::from_inventory(&hosts)?);
    }
    if endpoints.is_empty() {
        // A list or inventory empty by mistake is not "all is well".
        let path = args.from.clone().unwrap_or(hosts);
        return Err(SslError::Input {
            path,
            reason: "no endpoint in it: nothing to probe".to_owned(),
        });
    }
    Ok(served::Options {
        endpoints,
        dir: dir(settings, &args.dir)?,
        ca_file: ca_file(settings, &args.ca)?,
        warn_days: days(settings, "ssl_warn_days", args.warn_days.as_deref())?,
        timeout: settings.timeout("ssl_timeout", args.timeout.as_deref())?,
        json: args.json.json,
    })
}

/// An option naming a certificate.
fn name(option: &str, text: Option<&str>) -> Result<Option<String>, SslError> {
    Ok(text.map(|t| names::checked(option, t, false)).transpose()?)
}

/// The probe `install` runs after the reload: `ssl_check_after_reload`'s
/// endpoint, the name (if given here; `renew` sets it per name) as SNI and
/// as the certificate to compare with.
fn check_after_reload(
    settings: &Settings,
    name: Option<&str>,
    dir_args: &DirArgs,
    ca: &CaArgs,
    warn_days: Option<&str>,
) -> Result<Option<served::Options>, SslError> {
    let Some(endpoint) = settings.optional_string("ssl_check_after_reload", None)? else {
        return Ok(None);
    };
    let name = match name {
        Some(name) => Some(names::checked("NAME", name, false)?),
        None => None,
    };
    let given = Given {
        sni: name.clone(),
        starttls: None,
        expect: name,
    };
    let endpoint = given
        .endpoint(&endpoint)
        .map_err(|why| settings.invalid("ssl_check_after_reload", None, why))?;
    Ok(Some(served::Options {
        endpoints: vec![endpoint],
        dir: dir(settings, dir_args)?,
        ca_file: ca_file(settings, ca)?,
        warn_days: days(settings, "ssl_warn_days", warn_days)?,
        timeout: settings.timeout("ssl_timeout", None)?,
        json: false,
    }))
}

/// The options of `list`.
pub fn list(settings: &Settings, args: &ListArgs) -> Result<list::Options, SslError> {
    Ok(list::Options {
        dir: dir(settings, &args.dir)?,
        json: args.json.json,
    })
}

/// NAME and each `--san` once, checked (`*.` allowed when `wildcard`).
fn sans(name: &str, given: &[String], wildcard: bool) -> Result<Vec<String>, SslError> {
    let mut sans = vec![name.to_owned()];
    for san in given {
        let san = names::checked("--san", san, wildcard)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// `--key-type`, else `ssl_key_type`.
fn key_type(settings: &Settings, cli: Option<&str>) -> Result<KeyType, SslError> {
    Ok(settings.with("ssl_key_type", cli, |text| text.parse::<KeyType>())?)
}

/// `--dir`, else `ssl_dir`.
fn dir(settings: &Settings, args: &DirArgs) -> Result<PathBuf, SslError> {
    Ok(settings.path("ssl_dir", args.dir.clone())?)
}

/// The directory and the group of its keys.
fn store(settings: &Settings, args: &DirArgs) -> Result<Store, SslError> {
    let key_gid = settings.with("ssl_key_group", None, keys::group_id)?;
    Ok(Store::new(dir(settings, args)?, key_gid))
}

/// `--ca-file`, else `ssl_ca_file` (`None`: the system's store).
fn ca_file(settings: &Settings, args: &CaArgs) -> Result<Option<PathBuf>, SslError> {
    Ok(settings.optional_path("ssl_ca_file", args.ca_file.clone())?)
}

/// A number of days, at most 100 years' worth.
fn days(settings: &Settings, key: &str, cli: Option<&str>) -> Result<u64, SslError> {
    Ok(settings.count(key, cli, 0..=36_500)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use clap::Parser;

    use crate::cli::{Cli, Command};

    /// The command line `args` parsed, its settings loaded from a
    /// directory whose `serverconfig/default` holds `text`, and resolved.
    fn resolve(text: &str, args: &[&str]) -> Result<(), SslError> {
        resolve_in(&tempfile::tempdir().expect("tempdir"), text, args)
    }

    /// [`resolve`] with the configuration directory `dir`.
    fn resolve_in(dir: &tempfile::TempDir, text: &str, args: &[&str]) -> Result<(), SslError> {
        let file = dir.path().join("serverconfig/default");
        fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        fs::write(&file, text).expect("write");
        let mut line = vec!["pysk-ssl", "--host", "h.example", "--config-dir"];
        line.push(dir.path().to_str().expect("utf-8"));
        line.extend(args);
        let cli = Cli::try_parse_from(line).expect("parses");
        let report = cli.common.reporter(crate::cli::NAME);
        let settings = cli.common.settings(SWITCHES, &report)?;
        match &cli.command {
            Command::Csr(a) => csr(&settings, a).map(drop),
            Command::Install(a) => install(&settings, a).map(drop),
            Command::Check(a) => check(&settings, a).map(drop),
            Command::List(a) => list(&settings, a).map(drop),
            Command::Served(a) => served(&cli.common, &settings, a).map(drop),
            Command::Acme(a) => acme(&settings, a).map(drop),
            Command::Renew(a) => renew(&settings, a).map(drop),
            Command::Config => Ok(()),
        }
    }

    const LINES: &[&[&str]] = &[
        &["csr", "www.example.org", "--san", "*.example.org"],
        &["install", "www.example.org", "--cert", "c.pem"],
        &["check"],
        &["list"],
        &["served", "www.example.org:443", "--starttls", "smtp"],
        &[
            "acme",
            "www.example.org",
            "--san",
            "example.org",
            "--webroot",
            "/var/www",
        ],
        &["renew", "--dry-run"],
        &["config"],
    ];

    #[test]
    fn every_subcommand_resolves_from_no_configuration_and_from_a_file() {
        let file = "ssl_dir=/srv/ssl\nssl_key_group=root\nssl_key_type=rsa2048\n\
                    ssl_ca_file=/etc/ca.pem\nssl_warn_days=20\nssl_crit_days=5\n\
                    ssl_reload_command=\"systemctl reload nginx\"\nssl_wait=3\nssl_timeout=4\nssl_check_after_reload=127.0.0.1:443\n\
                    ssl_acme_account=/srv/acme.json\nssl_acme_directory=https://acme.example/dir\n";
        for line in LINES {
            resolve("ssl_key_group=root\n", line).expect("defaults");
            resolve(file, line).expect("file");
        }
    }

    #[test]
    fn bad_values_are_named_where_they_came_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("serverconfig/default");
        let err = resolve_in(
            &dir,
            "ssl_key_group=root\nssl_key_type=dsa\n",
            &["csr", "a.example"],
        )
        .expect_err("dsa");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: ssl_key_type: \"dsa\": expected ec-p256, ec-p384, rsa2048 or rsa4096",
                file.display()
            )
        );
        let err = resolve_in(
            &dir,
            "ssl_key_group=root\nssl_check_after_reload=nohostport\n",
            &["install", "a.example.org", "--cert", "c.pem"],
        )
        .expect_err("no port");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: ssl_check_after_reload: \"nohostport\": expected HOST:PORT",
                file.display()
            )
        );
        assert_eq!(
            pysk_common::exit::ToolError::exit_code(&err),
            pysk_common::exit::CONFIG
        );
        let err = resolve("ssl_key_group=root\n", &["check", "--crit-days", "40"])
            .expect_err("crit above warn");
        assert_eq!(
            err.to_string(),
            "--crit-days: 40 is above the warning threshold 30"
        );
        let err = resolve_in(
            &dir,
            "ssl_key_group=no-such-group-here\n",
            &["csr", "a.example"],
        )
        .expect_err("group");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1: ssl_key_group: \"no-such-group-here\": no such group",
                file.display()
            )
        );
        let err = resolve("ssl_key_group=root\n", &["csr", "x_y.example"]).expect_err("name");
        assert_eq!(
            err.to_string(),
            "NAME: \"x_y.example\": character '_' not allowed in a host name label"
        );
    }
}
