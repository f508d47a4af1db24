//! `pysk-logs`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run("pysk-logs", pysk_logs::try_main)
}
