//! pysk-db's connection to PostgreSQL as its superuser, against a real
//! PostgreSQL 15 with Debian's authentication rules: root is let in as
//! `postgres` by peer authentication, for the connect alone, and is root
//! again afterwards; an unreachable server is named by its socket.

use pysk_common::exit::ToolError;
use pysk_db::pg::connect::{Target, connect};
use pysk_tests::pg::Postgres;
use pysk_tests::scratch;

#[test]
fn root_reaches_the_superuser_by_peer_authentication_and_is_root_again() {
    let dir = scratch();
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    let target = Target {
        socket_dir: pg.socket_dir.clone(),
        port: pg.port,
        superuser: "postgres".to_owned(),
    };
    let mut client = connect(&target, "postgres").expect("connected");
    let row = client
        .query_one("SELECT current_user::text, session_user::text", &[])
        .expect("a query");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("postgres".to_owned(), "postgres".to_owned())
    );
    // SAFETY: geteuid and getegid only read the calling process's ids.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!((uid, gid), (0, 0), "root and root's group again");
    // Root itself is refused as postgres: only the switch lets it in.
    let refused = postgres::Config::new()
        .host_path(&pg.socket_dir)
        .port(pg.port)
        .user("postgres")
        .connect(postgres::NoTls)
        .err()
        .expect("peer authentication refuses root");
    assert_eq!(
        refused.code().map(|c| c.code().to_owned()),
        Some("28000".to_owned())
    );

    let gone = Target {
        port: pg.port + 1,
        ..target
    };
    let err = connect(&gone, "postgres").err().expect("no server");
    assert_eq!(
        err.to_string(),
        format!("{}: No such file or directory", gone.socket().display())
    );
    assert_eq!(err.exit_code(), 69);
}
