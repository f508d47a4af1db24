//! `pysk-ssl`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_ssl::cli::NAME, pysk_ssl::try_main)
}
