//! `pysk-logs`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_logs::cli::NAME, pysk_logs::try_main)
}
