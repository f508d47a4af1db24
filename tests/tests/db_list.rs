//! `pysk-db list` against a real PostgreSQL 15 and MariaDB 10.11 at
//! once: each server's databases with owners, sizes and sessions, and a
//! server not running here said and left out, and one that fails named
//! while the other is still listed.

use pysk_tests::mariadb::Mariadb;
use pysk_tests::pg::Postgres;
use pysk_tests::{assert_stderr_is, scratch, secret_file, stdout, tool, write_switches};

#[test]
fn list_shows_both_servers_databases_and_says_which_is_not_running() {
    let dir = scratch();
    let Some(pg) = Postgres::start(&dir.path().join("pg")) else {
        return;
    };
    let Some(maria) = Mariadb::start(&dir.path().join("maria")) else {
        return;
    };
    let config = dir.path().join("config");
    let switches = |mysql_socket: String| {
        write_switches(
            &config,
            &[
                ("db_pg_socket_dir", pg.socket_dir.display().to_string()),
                ("db_pg_port", pg.port.to_string()),
                ("db_mysql_socket", mysql_socket),
                ("db_mysql_auth", "mysql_native_password".to_owned()),
                (
                    "db_state_dir",
                    dir.path().join("state").display().to_string(),
                ),
            ],
        );
    };
    switches(maria.socket.display().to_string());
    let pw = dir.path().join("pw");
    secret_file(&pw, "list secret");
    let pysk = || tool("pysk-db").config_dir(&config);
    pysk()
        .args([
            "-q",
            "pg",
            "create",
            "shop",
            "--owner",
            "shop_admin",
            "--password-file",
        ])
        .arg(&pw)
        .succeeds();
    pysk()
        .args(["-q", "mysql", "create", "blog", "--password-file"])
        .arg(&pw)
        .succeeds();
    let out = pysk().args(["list", "--json"]).succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let rows: Vec<(String, String, String)> = doc["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .map(|d| {
            (
                d["server"].as_str().expect("server").to_owned(),
                d["name"].as_str().expect("name").to_owned(),
                d["owners"].to_string(),
            )
        })
        .collect();
    let pg_row = |name: &str, owner: &str| {
        (
            "postgresql".to_owned(),
            name.to_owned(),
            format!("[\"{owner}\"]"),
        )
    };
    assert_eq!(
        rows,
        [
            pg_row("postgres", "postgres"),
            pg_row("shop", "shop_admin"),
            pg_row("template1", "postgres"),
            (
                "mariadb".to_owned(),
                "blog".to_owned(),
                "[\"blog@localhost\"]".to_owned()
            ),
            // mariadb-install-db's test database, open to PUBLIC until
            // mysql setup removes it.
            (
                "mariadb".to_owned(),
                "test".to_owned(),
                "[\"PUBLIC\"]".to_owned()
            ),
        ]
    );
    assert!(doc["databases"][1]["bytes"].as_u64().expect("bytes") > 0);
    assert_eq!(doc["not_running"], serde_json::json!([]));
    assert_eq!(doc["failed"], serde_json::json!([]));

    // No MariaDB here: said, and PostgreSQL's databases still listed.
    let gone = dir.path().join("no-such.sock");
    switches(gone.display().to_string());
    let out = pysk().arg("list").succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: not running here: {}: No such file or directory\n",
            gone.display()
        ),
    );
    let lines: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split('\t').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "postgresql postgres postgres",
            "postgresql shop shop_admin",
            "postgresql template1 postgres"
        ]
    );
    let doc: serde_json::Value =
        serde_json::from_str(&stdout(&pysk().args(["list", "--json"]).succeeds())).expect("JSON");
    assert_eq!(
        doc["not_running"],
        serde_json::json!([{"server": "mariadb", "socket": gone.display().to_string()}])
    );
    assert_eq!(doc["failed"], serde_json::json!([]));

    // A stale socket (a killed server's): named on stderr, PostgreSQL
    // still listed, exit 1.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("a socket"));
    switches(stale.display().to_string());
    let out = pysk().arg("list").fails_with(1);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: not listed: {}: Connection refused (db_mysql_socket)\n",
            stale.display()
        ),
    );
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    let out = pysk().args(["list", "--json"]).fails_with(1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["databases"].as_array().expect("databases").len(), 3);
    assert_eq!(doc["not_running"], serde_json::json!([]));
    assert_eq!(
        doc["failed"],
        serde_json::json!([{"server": "mariadb", "socket": stale.display().to_string(),
            "reason": "Connection refused (db_mysql_socket)"}])
    );
}
