//! `pysk-db mysql` against a real MariaDB 10.11 as a hand-run
//! `mariadb-install-db` leaves it (test database and anonymous accounts
//! included): root reached by `unix_socket`; what each subcommand changes,
//! read back from `mysql.user`, `mysql.db` and `SHOW GRANTS`; dry runs that
//! change nothing; second runs that find nothing to change.

use mysql::prelude::Queryable;

use pysk_common::exit::ToolError;
use pysk_db::mysql::connect::{Target, connect};
use pysk_tests::mariadb::Mariadb;
use pysk_tests::scratch;

#[test]
fn root_reaches_mariadb_by_unix_socket_and_a_missing_socket_is_named() {
    let dir = scratch();
    let Some(db) = Mariadb::start(dir.path()) else {
        return;
    };
    let target = Target {
        socket: db.socket.clone(),
    };
    let mut conn = connect(&target).expect("connected");
    let row: Option<(String, String)> = conn
        .query_first("SELECT CURRENT_USER(), @@socket")
        .expect("a query");
    assert_eq!(
        row,
        Some(("root@localhost".to_owned(), db.socket.display().to_string()))
    );
    assert!(
        db.log_text()
            .contains("Connect\troot@localhost on  using Socket"),
        "{}",
        db.log_text()
    );

    let gone = Target {
        socket: dir.path().join("no-such.sock"),
    };
    let err = connect(&gone).expect_err("no server");
    assert_eq!(
        err.to_string(),
        format!("{}: No such file or directory", gone.socket.display())
    );
    assert_eq!(err.exit_code(), 69);
}
