//! pysk-db's connection to PostgreSQL as its superuser, against a real
//! PostgreSQL 15 with Debian's authentication rules: root is let in as
//! `postgres` by peer authentication, for the connect alone, and is root
//! again afterwards; an unreachable server is named by its socket. The
//! binary run as `postgres` itself connects as it is, run as another
//! account it is told to run as root or `postgres`, and a
//! `db_pg_superuser` with no system account is a configuration error.

use pysk_common::exit::ToolError;
use pysk_db::pg::connect::{Target, connect};
use pysk_tests::pg::Postgres;
use pysk_tests::{assert_stderr_is, scratch, stdout, tool, write_switches};

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
        connect_timeout: std::time::Duration::from_secs(10),
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
        format!(
            "{}: No such file or directory (db_pg_socket_dir, db_pg_port)",
            gone.socket().display()
        )
    );
    assert_eq!(err.exit_code(), 69);
    // In the same test, not one beside it: the switch of ids above is the
    // whole process's, and a child started as another account meanwhile
    // could not drop root's privileges.
    the_superuser_account_connects_as_it_is_and_no_one_else_but_root_does(&pg, dir.path());
}

fn the_superuser_account_connects_as_it_is_and_no_one_else_but_root_does(
    pg: &Postgres,
    dir: &std::path::Path,
) {
    let config = |name: &str, superuser: &str| {
        let path = dir.join(name);
        write_switches(
            &path,
            &[
                ("db_pg_socket_dir", pg.socket_dir.display().to_string()),
                ("db_pg_port", pg.port.to_string()),
                ("db_pg_superuser", superuser.to_owned()),
                ("db_state_dir", dir.join("state").display().to_string()),
            ],
        );
        path
    };
    let good = config("config", "postgres");
    let run_as = |account: &str, args: &[&str]| {
        let mut cmd = tool("pysk-db").config_dir(&good).args(args).command();
        pg.run_as(&mut cmd, account);
        cmd.output().expect("run pysk-db")
    };
    // As postgres (a crontab of its own), without any switch of ids.
    let out = run_as("postgres", &["pg", "vacuum", "postgres", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("would vacuum postgres: \"pg_catalog\".\"pg_class\"\n"),
        "{}",
        stdout(&out)
    );
    // As another account: told what to do, not an internal error.
    let out = run_as("nobody", &["pg", "setup", "--dry-run"]);
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert_stderr_is(
        &out,
        "pysk-db: run as root or as postgres: PostgreSQL's superuser is reached through \
         that account; nothing changed\n",
    );
    // A superuser account that does not exist is a bad switch.
    let bad = config("bad", "no_such_account");
    let out = tool("pysk-db")
        .config_dir(&bad)
        .args(["pg", "setup", "--dry-run"])
        .fails_with(78);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: {}:3: db_pg_superuser: \"no_such_account\": no system account of that name\n",
            bad.join("serverconfig/default").display()
        ),
    );
}
