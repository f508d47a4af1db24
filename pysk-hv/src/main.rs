//! `pysk-hv`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_hv::cli::NAME, pysk_hv::try_main)
}
