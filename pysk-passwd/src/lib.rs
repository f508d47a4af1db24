//! `pysk-passwd`: the control panel's user database in the system's
//! account files.
//!
//! - [`database`]: the JSON document, parsed; [`validate`] (with [`hash`])
//!   decides whether it may be written, all or nothing.
//! - [`files`]: the root's account files, read as bytes; [`plan`]: their
//!   new content, unmanaged lines untouched.
//! - [`pwlock`]: `.pwd.lock` and shadow-utils' `<file>.lock`, as the
//!   system's tools take them; [`sync`]: the locked read-plan-write and
//!   `check`; [`commit`]: the changed files written as one set (staged,
//!   an intent record, renames), an interrupted set finished; [`homes`]: home directories made without following links;
//!   [`summary`]: their `--json` documents.
//! - [`htpasswd`]: the users' `name:hash` lines for the panel's web login.
//!
//! The command line is in [`cli`]; [`settings`] resolves every option
//! (command line, else switch, else default); this file only dispatches.

pub mod cli;
pub mod commit;
pub mod database;
pub mod error;
pub mod files;
pub mod hash;
pub mod homes;
pub mod htpasswd;
pub mod plan;
pub mod pwlock;
pub mod settings;
pub mod summary;
pub mod sync;
pub mod validate;

use std::io;

use pysk_common::exit::Outcome;

pub use cli::Cli;
use cli::Command;
pub use error::PasswdError;

/// The tool's entry point: parses the command line, resolves the options,
/// runs the subcommand.
pub fn try_main() -> Result<Outcome, PasswdError> {
    let Cli { common, command } = pysk_common::cli::parse::<Cli>(settings::SWITCHES);
    let report = common.reporter(cli::NAME);
    let settings = common.settings(settings::SWITCHES, &report)?;
    let mut out = io::stdout().lock();
    match command {
        Command::Config => {
            common.print_config(&settings, &mut out)?;
            Ok(Outcome::Success)
        }
        Command::Sync(args) => sync::sync(&settings::sync(&settings, &args)?, &report, &mut out),
        Command::Check(args) => sync::check(&settings::check(&settings, &args)?, &report, &mut out),
        Command::Htpasswd(args) => {
            htpasswd::run(&settings::htpasswd(&settings, &args)?, &report, &mut out)
        }
    }
}
