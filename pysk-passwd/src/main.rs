//! `pysk-passwd`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run(pysk_passwd::cli::NAME, pysk_passwd::try_main)
}
