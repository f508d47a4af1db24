//! `pysk-dns`: the central name server's zones, from the records every
//! managed server publishes.
//!
//! - `fetch` ([`fetch`]): every server's document over HTTPS, validated
//!   completely ([`document`], [`name`]) and kept as its snapshot
//!   ([`snapshot`]) only when good.
//! - `build` ([`build`]): a plan of zones assembled from all snapshots
//!   ([`zone`]), rendered ([`render`]) with serials that change only with
//!   the content ([`serial`]), checked against what BIND refuses
//!   ([`bindcheck`]), then shown (`--dry-run`) or written
//!   atomically; `--reload` reloads the name server and checks what it
//!   serves ([`reload`]).
//! - `serial`: a zone's serial ([`serial::lookup`]). `config`: the
//!   effective switches.
//!
//! The command line is in [`cli`], every option is resolved in
//! [`settings`], the state directory and its lock are [`state`], the
//! `--json` documents [`summary`]; this file only dispatches and prints.

pub mod bindcheck;
pub mod build;
pub mod cli;
pub mod document;
pub mod error;
pub mod fetch;
pub mod name;
pub mod owner;
pub mod reload;
pub mod render;
pub mod reserved;
pub mod serial;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod summary;
pub mod zone;

use std::io::{self, Write};

use pysk_common::cli::CommonArgs;
use pysk_common::exit::Outcome;
use pysk_common::report::{self, Reporter};
use pysk_common::settings::Settings;

pub use cli::Cli;
use cli::{BuildArgs, Command, FetchArgs, SerialArgs};
pub use error::DnsError;

/// The tool's entry point: parses the command line, resolves the
/// subcommand's options, runs it and prints its result.
pub fn try_main() -> Result<Outcome, DnsError> {
    let Cli { common, command } = pysk_common::cli::parse::<Cli>(settings::SWITCHES);
    let report = common.reporter(cli::NAME);
    let settings = common.settings(settings::SWITCHES, &report)?;
    match command {
        Command::Fetch(args) => run_fetch(&common, &settings, &args, &report),
        Command::Build(args) => run_build(&common, &settings, &args, &report),
        Command::Serial(args) => run_serial(&settings, &args),
        Command::Config => {
            common.print_config(&settings, &mut io::stdout().lock())?;
            Ok(Outcome::Success)
        }
    }
}

/// `fetch`: every server's document into its snapshot; the fates on
/// stderr, or the `--json` document.
fn run_fetch(
    common: &CommonArgs,
    settings: &Settings,
    args: &FetchArgs,
    report: &Reporter,
) -> Result<Outcome, DnsError> {
    let location = settings::location(common, settings, &args.state)?;
    let options = settings::fetch_options(settings, args)?;
    let fates = fetch::run(&location, &options, report)?;
    let outcome = fetch::report(&fates, report, options.json);
    if options.json {
        report::print_json(&summary::fetch(&fates))?;
    }
    Ok(outcome)
}

/// `build`: zone files and the include from the snapshots (a dry run's
/// diff on stdout), then the `--json` document.
fn run_build(
    common: &CommonArgs,
    settings: &Settings,
    args: &BuildArgs,
    report: &Reporter,
) -> Result<Outcome, DnsError> {
    let location = settings::location(common, settings, &args.state)?;
    let options = settings::build_options(settings, args, &location.dir)?;
    let built = build::run(&location, &options, report, &mut io::stdout().lock())?;
    if options.json {
        report::print_json(&built.summary)?;
    }
    Ok(built.outcome)
}

/// `serial`: a zone's serial on stdout.
fn run_serial(settings: &Settings, args: &SerialArgs) -> Result<Outcome, DnsError> {
    let state_dir = settings::serial_state_dir(settings, args)?;
    let serial = serial::lookup(&state_dir, &args.zone)?;
    writeln!(io::stdout(), "{serial}").map_err(pysk_common::Error::Stdout)?;
    Ok(Outcome::Success)
}
