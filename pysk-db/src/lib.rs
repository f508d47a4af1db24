//! `pysk-db`: PostgreSQL and MariaDB setup and upkeep that never leaks a
//! password and never trusts a name.
//!
//! - [`names`]: the name rule (`db_name_pattern`) every database and
//!   account name is checked against before any connection, and the
//!   quoting every statement uses all the same.
//! - [`pg`]: PostgreSQL, reached as its superuser by peer authentication:
//!   `setup`, `create`, `add-db`, `password`, `drop`, `vacuum`.
//! - [`mysql`]: MariaDB, reached as root by `unix_socket`
//!   authentication: `setup`, `create`, `password`, `drop`, `check`.
//!
//! - [`list`]: both servers' databases.
//! - [`password`]: where a new account's password comes from.
//!
//! The command line is in [`cli`]; [`settings`] resolves every option
//! (command line, else switch, else default); this file only dispatches.

pub mod cli;
pub mod error;
pub mod list;
pub mod mysql;
pub mod names;
pub mod password;
pub mod pg;
pub mod plan;
pub mod settings;

use std::io;

use pysk_common::exit::Outcome;

pub use cli::Cli;
use cli::{Command, MysqlCommand, PgCommand};
pub use error::DbError;

/// The tool's entry point: parses the command line, resolves the options,
/// runs the subcommand.
pub fn try_main() -> Result<Outcome, DbError> {
    let Cli { common, command } = pysk_common::cli::parse::<Cli>(settings::SWITCHES);
    let report = common.reporter(cli::NAME);
    let settings = common.settings(settings::SWITCHES, &report)?;
    let mut out = io::stdout().lock();
    match command {
        Command::Pg(PgCommand::Create(args)) => {
            pg::create::run(&settings::pg_create(&settings, &args)?, &report, &mut out)
        }
        Command::Pg(PgCommand::AddDb(args)) => {
            pg::create::run(&settings::pg_add_db(&settings, &args)?, &report, &mut out)
        }
        Command::Pg(PgCommand::Password(args)) => {
            pg::password::run(&settings::pg_password(&settings, &args)?, &report, &mut out)
        }
        Command::Pg(PgCommand::Drop(args)) => {
            pg::drop::run(&settings::pg_drop(&settings, &args)?, &report, &mut out)
        }
        Command::Pg(PgCommand::Vacuum(args)) => {
            pg::vacuum::run(&settings::pg_vacuum(&settings, &args)?, &report, &mut out)
        }
        Command::Pg(PgCommand::Setup(args)) => {
            pg::setup::run(&settings::pg_setup(&settings, &args)?, &report, &mut out)
        }
        Command::Mysql(MysqlCommand::Setup(args)) => {
            mysql::setup::run(&settings::mysql_setup(&settings, &args)?, &report, &mut out)
        }
        Command::Mysql(MysqlCommand::Create(args)) => mysql::create::run(
            &settings::mysql_create(&settings, &args)?,
            &report,
            &mut out,
        ),
        Command::List(args) => list::run(&settings::list(&settings, &args)?, &report, &mut out),
        Command::Mysql(MysqlCommand::Password(args)) => mysql::password::run(
            &settings::mysql_password(&settings, &args)?,
            &report,
            &mut out,
        ),
        Command::Mysql(MysqlCommand::Drop(args)) => {
            mysql::drop::run(&settings::mysql_drop(&settings, &args)?, &report, &mut out)
        }
        Command::Mysql(MysqlCommand::Check(args)) => {
            mysql::check::run(&settings::mysql_check(&settings, &args)?, &report, &mut out)
        }
        Command::Config => {
            common.print_config(&settings, &mut out)?;
            Ok(Outcome::Success)
        }
    }
}
