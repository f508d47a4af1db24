//! `pysk-db`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_db::cli::NAME, pysk_db::try_main)
}
