//! `pysk-backup`: validated database dumps, encrypted incremental backups
//! with duplicity or restic, and restores that are proven.
//!
//! - [`engine`]: duplicity and restic behind one interface.
//! - [`run`]: the nightly job: backup, check, and only then retention.
//! - [`verify`], [`status`], [`list`], [`restore_files`] (`restore`): the
//!   backup's integrity, what it holds, its files, a file brought back.
//! - [`drill`], [`restore_db`] (`restore-db`): dumps restored into
//!   throw-away servers and counted, or into the production server;
//!   [`fetch`] finds the dump set, [`load`] feeds it to the servers.
//!
//! The command line is in [`cli`]; [`settings`] resolves every option
//! (command line, else switch, else default); this file only dispatches.

pub mod child;
pub mod cli;
pub mod drill;
pub mod dump;
pub mod engine;
pub mod error;
pub mod fetch;
pub mod list;
pub mod load;
pub mod restore_db;
pub mod restore_files;
pub mod run;
pub mod settings;
pub mod status;
pub mod verify;

use std::io;

use pysk_common::exit::Outcome;

pub use cli::Cli;
use cli::Command;
pub use error::BackupError;

/// The tool's entry point: parses the command line, resolves the options,
/// runs the subcommand.
pub fn try_main() -> Result<Outcome, BackupError> {
    let Cli { common, command } = pysk_common::cli::parse::<Cli>(settings::SWITCHES);
    let report = common.reporter(cli::NAME);
    let settings = common.settings(settings::SWITCHES, &report)?;
    let mut out = io::stdout().lock();
    match command {
        Command::Run(args) => run::run(&settings::run(&settings, &args)?, &report, &mut out),
        Command::Verify(args) => {
            verify::run(&settings::verify(&settings, &args)?, &report, &mut out)
        }
        Command::Status(args) => {
            status::run(&settings::status(&settings, &args)?, &report, &mut out)
        }
        Command::List(args) => list::run(&settings::list(&settings, &args)?, &report, &mut out),
        Command::Restore(args) => {
            restore_files::run(&settings::restore(&settings, &args)?, &report, &mut out)
        }
        Command::Config => {
            settings::check(&settings)?;
            common.print_config(&settings, &mut out)?;
            Ok(Outcome::Success)
        }
        Command::Dump(args) => {
            let summary = dump::run(&settings::dump(&settings, &args)?, &report)?;
            dump::show(&summary, args.json.json, &report, &mut out)?;
            Ok(Outcome::Success)
        }
        Command::Drill(args) => drill::run(&settings::drill(&settings, &args)?, &report, &mut out),
        Command::RestoreDb(args) => {
            restore_db::run(&settings::restore_db(&settings, &args)?, &report, &mut out)
        }
    }
}
