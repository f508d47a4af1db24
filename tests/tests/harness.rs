//! The harness itself, against a real server process.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use pysk_tests::{Ready, Server, free_port, require, require_in, scratch};

#[test]
fn server_is_ready_when_it_listens_and_gone_after_drop() {
    let Some(python) = require("python3", "python3") else {
        return;
    };
    let dir = scratch();
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(python);
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .current_dir(dir.path());
    let server = Server::start(
        "http.server",
        cmd,
        &dir.path().join("server.log"),
        Ready::Tcp(addr),
        Duration::from_secs(20),
    );
    assert!(TcpStream::connect(addr).is_ok());
    drop(server);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the server still listens after drop"
    );
}

#[test]
#[should_panic(expected = "was not ready within")]
fn server_that_never_gets_ready_fails_in_bounded_time() {
    let dir = scratch();
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let _server = Server::start(
        "sleep",
        cmd,
        &dir.path().join("sleep.log"),
        Ready::File(dir.path().join("never")),
        Duration::from_millis(300),
    );
}

#[test]
fn missing_program_skips_outside_ci_and_fails_in_ci() {
    assert_eq!(require_in("pysk-no-such-program", "nothing", false), None);
    let in_ci = std::panic::catch_unwind(|| require_in("pysk-no-such-program", "nothing", true));
    let msg = in_ci.expect_err("fails under CI=true");
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("install the Debian package nothing"),
        "{text}"
    );
    assert!(require_in("sh", "dash", true).is_some());
}
