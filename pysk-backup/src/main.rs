//! `pysk-backup`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_backup::cli::NAME, pysk_backup::try_main)
}
