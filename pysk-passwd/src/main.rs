//! `pysk-passwd`: see the library for what it does.

fn main() -> std::process::ExitCode {
    pysk_common::exit::run("pysk-passwd", pysk_passwd::try_main)
}
