//! `pysk-hv`: commands across the fleet over the system's OpenSSH, with
//! each host's result told apart: ok, exit N, a signal, unreachable,
//! connection lost, host key, auth, timed out.
//!
//! - [`targets`]: the hosts a command runs on, from the inventory: `-w`
//!   node sets ([`nodeset`]), `-g` groups, `-x`, `--rerun` of the last
//!   run's failed or unreachable hosts.
//! - [`ssh`]: each host's ssh command line and the remote command, quoted
//!   for the host's shell, under a remote `timeout`.
//! - [`classify`]: how a host's run ended, from ssh's exit status, the
//!   time it took and ssh's own log.
//! - [`run`]: what every subcommand that reaches hosts shares (its
//!   [`run::Run`]) and the start of such a run: hosts picked, warned
//!   about, a private directory for the ssh logs.
//! - [`exec`]: a command on every host picked, run through [`fanout`]
//!   (one ssh per host, at most F at once, one writer), told by
//!   [`summary`] (stderr lines, `--gather`, `--json`, `last-run.json`).
//! - [`transfer`]: `copy` and `fetch`, a file to or from every host
//!   picked, as jobs of the same [`fanout`], told the same way.
//! - [`install`] and [`packages`]: packages installed with each host's
//!   own manager, and the hosts' package sets compared, as jobs of the
//!   same [`fanout`] ([`manager`]: the manager found, the script run).
//! - [`conf`]: `conf diff|apply`, the configuration tree rendered with
//!   each host's switches, compared and written, as jobs of [`fanout`].
//! - [`mac`]: a locally administered MAC no virtual server uses yet.
//! - [`create`]: a new virtual server as a plan of steps, each undone
//!   when a later one fails.
//!
//! The command line is in [`cli`]; [`settings`] resolves every option
//! (command line, else switch, else default); this file only dispatches.

pub mod classify;
pub mod cli;
pub mod conf;
pub mod create;
pub mod error;
pub mod exec;
pub mod fanout;
pub mod install;
pub mod mac;
pub mod manager;
pub mod nodeset;
pub mod packages;
pub mod run;
pub mod settings;
pub mod ssh;
pub mod summary;
pub mod targets;
pub mod transfer;

use std::io;

use pysk_common::exit::Outcome;

pub use cli::Cli;
use cli::Command;
pub use error::HvError;

/// The tool's entry point: parses the command line, resolves the options,
/// runs the subcommand.
pub fn try_main() -> Result<Outcome, HvError> {
    let Cli { common, command } = pysk_common::cli::parse::<Cli>(settings::SWITCHES);
    let report = common.reporter(cli::NAME);
    let settings = common.settings(settings::SWITCHES, &report)?;
    let mut out = io::stdout().lock();
    match command {
        Command::Exec(args) => exec::run(
            &settings::exec(&common, &settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Copy(args) => transfer::run(
            &settings::copy(&common, &settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Fetch(args) => transfer::run(
            &settings::fetch(&common, &settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Conf(args) => conf::run(
            &settings::conf(&common, &settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Install(args) => install::run(
            &settings::install(&common, &settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Packages(args) => packages::run(
            &settings::packages(&common, &settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Create(args) => {
            create::run(&settings::create(&settings, &args)?, &report, &mut out)
        }
        Command::Mac(args) => mac::run(&settings::mac(&settings, &args)?, &report, &mut out),
        Command::Config => {
            common.print_config(&settings, &mut out)?;
            Ok(Outcome::Success)
        }
    }
}
