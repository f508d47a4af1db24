//! `pysk-dns`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_dns::cli::NAME, pysk_dns::try_main)
}
