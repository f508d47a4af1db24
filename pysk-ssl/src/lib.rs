//! `pysk-ssl`: private keys and CSRs, certificates installed only when
//! their chain verifies, expiry checks cron can trust.
//!
//! - [`csr`]: a new key (kept pending) and its CSR; [`keys`] makes and
//!   reads keys, [`names`] checks and matches DNS names.
//! - [`install`]: the gate; [`certs`] reads certificates without trusting
//!   them, [`chain`] orders and verifies the path to a trust anchor and
//!   judges expiry, names and key; [`store`] writes a name's files as one
//!   set; [`reload`] runs `ssl_reload_command` and remembers one that
//!   failed.
//! - [`acme`]: a certificate ordered from an ACME CA (HTTP-01 through a
//!   webroot), then installed through the same gate; [`renew`]: every
//!   ACME-managed name that is due ordered again.
//! - [`check`]: every installed certificate judged (lines, `--json`,
//!   `--nagios`); [`list`]: what is installed; [`served`]: the chain
//!   servers present (STARTTLS too) against the one installed, for the
//!   [`endpoints`] of the command line, a list or the inventory.
//!
//! The command line is in [`cli`]; [`settings`] resolves every option
//! (command line, else switch, else default); this file only dispatches.

pub mod acme;
pub mod certs;
pub mod chain;
pub mod check;
pub mod cli;
pub mod csr;
pub mod endpoints;
pub mod error;
pub mod install;
pub mod keys;
pub mod list;
pub mod names;
pub mod reload;
pub mod renew;
pub mod served;
pub mod settings;
pub mod store;

use std::io::{self, Write};

use pysk_common::exit::Outcome;

pub use cli::Cli;
use cli::Command;
pub use error::SslError;

/// The tool's entry point: parses the command line, resolves the options,
/// runs the subcommand. `check --nagios` reports its errors as Nagios'
/// unknown ([`check::nagios`]).
pub fn try_main() -> Result<Outcome, SslError> {
    let cli = pysk_common::cli::parse::<Cli>(settings::SWITCHES);
    let mut out = io::stdout().lock();
    if matches!(&cli.command, Command::Check(args) if args.nagios) {
        return check::nagios(&mut out, |out| dispatch(cli, out));
    }
    dispatch(cli, &mut out)
}

/// Resolves the settings and runs the subcommand.
fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<Outcome, SslError> {
    let Cli { common, command } = cli;
    let report = common.reporter(cli::NAME);
    let settings = common.settings(settings::SWITCHES, &report)?;
    match command {
        Command::Config => {
            common.print_config(&settings, out)?;
            Ok(Outcome::Success)
        }
        Command::Csr(args) => csr::run(&settings::csr(&settings, &args)?, &report, out),
        Command::Install(args) => install::run(&settings::install(&settings, &args)?, &report, out),
        Command::Acme(args) => acme::run(&settings::acme(&settings, &args)?, &report, out),
        Command::Renew(args) => renew::run(&settings::renew(&settings, &args)?, &report, out),
        Command::Check(args) => check::run(&settings::check(&settings, &args)?, &report, out),
        Command::Served(args) => {
            served::run(&settings::served(&common, &settings, &args)?, &report)
        }
        Command::List(args) => list::run(&settings::list(&settings, &args)?, &report, out),
    }
}
