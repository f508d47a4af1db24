//! `pysk-db mysql` against a real MariaDB 10.11 as a hand-run
//! `mariadb-install-db` leaves it (test database and anonymous accounts
//! included): root reached by `unix_socket`; what each subcommand changes,
//! read back from `mysql.user`, `mysql.db` and `SHOW GRANTS`; dry runs that
//! change nothing; second runs that find nothing to change.

use mysql::prelude::Queryable;

use pysk_db::mysql::connect::{Target, connect};
use pysk_tests::mariadb::Mariadb;
use pysk_tests::tmpfs::Tmpfs;
use pysk_tests::{TempDir, assert_stderr_is, scratch, stdout, tool, write_switches};

/// A scratch directory, a running MariaDB, switches pointing at it.
struct Env {
    dir: TempDir,
    db: Mariadb,
}

impl Env {
    fn new(auth: &str) -> Option<Env> {
        let dir = scratch();
        let db = Mariadb::start(&dir.path().join("my"))?;
        write_switches(
            &dir.path().join("config"),
            &[
                ("db_mysql_socket", db.socket.display().to_string()),
                ("db_mysql_auth", auth.to_owned()),
                (
                    "db_state_dir",
                    dir.path().join("state").display().to_string(),
                ),
            ],
        );
        Some(Env { dir, db })
    }

    fn tool(&self) -> pysk_tests::TestCommand {
        tool("pysk-db").config_dir(&self.dir.path().join("config"))
    }

    /// What setup looks at and what it must keep: accounts, database
    /// grants, databases, root's and PUBLIC's grants, the ed25519 plugin.
    fn catalogs(&self) -> String {
        [
            "SELECT user, host FROM mysql.user ORDER BY user, host",
            "SELECT host, db, user FROM mysql.db ORDER BY db, user",
            "SHOW DATABASES",
            "SHOW GRANTS FOR root@localhost",
            "SHOW GRANTS FOR PUBLIC",
            "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'",
        ]
        .map(|sql| format!("{sql}:\n{}\n", self.db.mariadb(sql)))
        .concat()
    }
}

#[test]
fn root_reaches_mariadb_by_unix_socket_and_a_missing_socket_or_held_lock_is_named() {
    let Some(env) = Env::new("ed25519") else {
        return;
    };
    let db = &env.db;
    // The library's connect: root over the socket, as the log shows.
    let target = Target {
        socket: db.socket.clone(),
        timeout: std::time::Duration::from_secs(1),
    };
    let mut conn = connect(&target).expect("connected");
    let row: Option<(String, String)> = conn
        .query_first("SELECT CURRENT_USER(), @@socket")
        .expect("a query");
    assert_eq!(
        row,
        Some(("root@localhost".to_owned(), db.socket.display().to_string()))
    );
    // The timeout is the handshake's: a statement may take longer.
    let slept: Option<u8> = conn.query_first("SELECT SLEEP(2)").expect("a long query");
    assert_eq!(slept, Some(0));
    assert!(
        db.log_text()
            .contains("Connect\troot@localhost on  using Socket"),
        "{}",
        db.log_text()
    );

    // The binary: a socket that is not there is named, exit 69.
    let gone = env.dir.path().join("no-such.sock");
    let gone_config = env.dir.path().join("gone");
    write_switches(
        &gone_config,
        &[("db_mysql_socket", gone.display().to_string())],
    );
    for args in [["mysql", "setup", "--dry-run"], ["-q", "mysql", "check"]] {
        let out = tool("pysk-db")
            .config_dir(&gone_config)
            .args(args)
            .fails_with(69);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: {}: No such file or directory (db_mysql_socket)\n",
                gone.display()
            ),
        );
    }

    // A server that takes the connection and never answers: given up
    // on after db_connect_timeout, named, 69; the lock is free again.
    let hung = env.dir.path().join("hung.sock");
    let listener = std::os::unix::net::UnixListener::bind(&hung).expect("a listener");
    let hung_config = env.dir.path().join("hung");
    write_switches(
        &hung_config,
        &[
            ("db_mysql_socket", hung.display().to_string()),
            ("db_connect_timeout", "1".to_owned()),
            (
                "db_state_dir",
                env.dir.path().join("state").display().to_string(),
            ),
        ],
    );
    let started = std::time::Instant::now();
    let out = tool("pysk-db")
        .config_dir(&hung_config)
        .args(["mysql", "setup", "--dry-run"])
        .fails_with(69);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: {}: no answer within 1 s (db_connect_timeout)\n",
            hung.display()
        ),
    );
    drop(listener);

    // Another run holds the lock: a mutating run and its dry run give up
    // after --wait with 75, while check --optimize, under a lock of its
    // own, goes ahead; a held check lock stops only another check
    // that changes tables; plain check takes no lock.
    let state = env.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("the state directory");
    let before = env.catalogs();
    let held = |name: &str| {
        let lock = state.join(name);
        let holder = std::fs::File::create(&lock).expect("the lock file");
        holder.lock().expect("the lock held");
        (lock, holder)
    };
    let refused = |args: &[&str], lock: &std::path::Path| {
        let out = env.tool().args(args).args(["--wait", "0.2"]).fails_with(75);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: {}: another run still held the lock after 0.2 s\n",
                lock.display()
            ),
        );
    };
    let (lock, holder) = held("pysk-db.lock");
    refused(&["mysql", "drop", "test"], &lock);
    refused(&["mysql", "setup", "--dry-run"], &lock);
    env.tool()
        .args(["-q", "mysql", "check", "--optimize"])
        .succeeds();
    drop(holder);
    let (lock, holder) = held("pysk-db-mysql-check.lock");
    refused(&["mysql", "check", "--optimize"], &lock);
    env.tool().args(["-q", "mysql", "check"]).succeeds();
    assert_eq!(env.catalogs(), before, "nothing changed");
    drop(holder);
    env.tool()
        .args(["mysql", "drop", "test", "--wait", "0.2"])
        .succeeds();
}

/// Root's grants as `mariadb-install-db` makes them, which setup keeps.
const ROOT_GRANTS: &str = "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA \
    mysql_native_password USING 'invalid' OR unix_socket WITH GRANT OPTION\n\
    GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION";

#[test]
fn setup_removes_exactly_the_insecure_defaults_once() {
    let Some(env) = Env::new("ed25519") else {
        return;
    };
    let db = &env.db;
    let hostname = db.mariadb("SELECT LOWER(@@hostname)");
    // A remote root someone added, and what an admin made on purpose,
    // which must stay: an account at '%' and its grant on a test_ name.
    db.mariadb(
        "CREATE USER 'root'@'10.0.0.%' IDENTIFIED VIA unix_socket; \
         CREATE USER 'alice'@'%' IDENTIFIED VIA unix_socket; \
         GRANT SELECT ON `test_x`.* TO 'alice'@'%'; CREATE DATABASE shop",
    );
    let before = env.catalogs();
    let mut anonymous = vec!["localhost".to_owned(), hostname.clone()];
    anonymous.sort();
    anonymous.dedup();
    let drops: String = anonymous
        .iter()
        .map(|host| {
            format!("would drop the anonymous account ''@'{host}': DROP USER ``@`{host}`;\n")
        })
        .collect();
    let expected_plan = format!(
        "would install the ed25519 authentication plugin: INSTALL SONAME 'auth_ed25519';\n\
         {drops}\
         would drop the remote root account 'root'@'10.0.0.%': DROP USER `root`@`10.0.0.%`;\n\
         would revoke PUBLIC's privileges on test: REVOKE ALL PRIVILEGES ON `test`.* FROM PUBLIC;\n\
         would revoke PUBLIC's privileges on test\\_%: REVOKE ALL PRIVILEGES ON `test\\_%`.* FROM PUBLIC;\n\
         would drop the database test: DROP DATABASE `test`;\n"
    );
    let plan = env.tool().args(["mysql", "setup", "--dry-run"]).succeeds();
    assert_eq!(stdout(&plan), expected_plan);
    assert_eq!(env.catalogs(), before, "a dry run changes nothing");
    assert!(
        !env.dir.path().join("state").exists(),
        "a dry run creates nothing"
    );

    let out = env.tool().args(["mysql", "setup"]).succeeds();
    let done: String = expected_plan
        .lines()
        .map(|line| {
            let (head, _) = line.split_once(": ").expect("a plan line");
            let head = head.strip_prefix("would ").expect("would");
            let (verb, what) = head.split_once(' ').expect("a verb");
            let verb = match verb {
                "drop" => "dropped",
                "revoke" => "revoked",
                _ => "installed",
            };
            format!("pysk-db: {verb} {what}\n")
        })
        .collect();
    assert_stderr_is(&out, &done);

    assert_eq!(
        db.mariadb("SELECT user, host FROM mysql.user ORDER BY user, host"),
        "PUBLIC\t\nalice\t%\nmariadb.sys\tlocalhost\nmysql\tlocalhost\nroot\tlocalhost"
    );
    assert_eq!(
        db.mariadb("SELECT host, db, user, Select_priv FROM mysql.db ORDER BY db, user"),
        "%\ttest_x\talice\tY"
    );
    assert_eq!(
        db.mariadb("SHOW DATABASES"),
        "information_schema\nmysql\nperformance_schema\nshop\nsys"
    );
    assert_eq!(db.mariadb("SHOW GRANTS FOR root@localhost"), ROOT_GRANTS);
    assert_eq!(db.mariadb("SHOW GRANTS FOR PUBLIC"), "");
    assert_eq!(
        db.mariadb(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'"
        ),
        "ACTIVE"
    );
    // Root still comes in by unix_socket: the second run is root's.
    let after = env.catalogs();
    let again = env.tool().args(["mysql", "setup"]).succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: no anonymous account, remote root or test database\n",
    );
    let plan = env.tool().args(["mysql", "setup", "--dry-run"]).succeeds();
    assert_eq!(stdout(&plan), "nothing to change\n");
    let doc: serde_json::Value = serde_json::from_str(&stdout(
        &env.tool().args(["mysql", "setup", "--json"]).succeeds(),
    ))
    .expect("JSON");
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "dry_run": false, "changes": [], "unchanged": 7})
    );
    assert_eq!(env.catalogs(), after, "the second runs changed nothing");
}

impl Env {
    /// A password file only root may read.
    fn password(&self, name: &str, password: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        pysk_tests::secret_file(&path, password);
        path
    }

    fn create(&self, db: &str, password: &std::path::Path) -> pysk_tests::TestCommand {
        self.tool()
            .args(["mysql", "create", db, "--password-file"])
            .arg(password)
    }
}

#[test]
fn create_makes_the_accounts_and_database_and_no_password_reaches_the_log() {
    for (auth, clause) in [
        ("ed25519", "IDENTIFIED VIA ed25519 USING '***'"),
        ("mysql_native_password", "IDENTIFIED BY PASSWORD '***'"),
    ] {
        let Some(env) = Env::new(auth) else {
            return;
        };
        let db = &env.db;
        env.tool().args(["mysql", "setup"]).succeeds();
        let secret = "Kunde-Pa55 wört!";
        let pw = env.password("shop.pw", secret);
        let plan = env
            .create("shop_db", &pw)
            .args([
                "--user",
                "shop",
                "--account-host",
                "localhost",
                "--account-host",
                "10.0.0.%",
            ])
            .arg("--dry-run")
            .succeeds();
        let wide = "pysk-db: the account shop@10.0.0.% may log in from every host \
                    that matches 10.0.0.%\n";
        assert_stderr_is(&plan, wide);
        assert_eq!(
            stdout(&plan),
            format!(
                "would make the account shop@localhost: CREATE USER `shop`@`localhost` {clause};\n\
                 would make the account shop@10.0.0.%: CREATE USER `shop`@`10.0.0.%` {clause};\n\
                 would make the database shop_db: CREATE DATABASE `shop_db` CHARACTER SET utf8mb4;\n\
                 would make ALL on shop_db to shop@localhost: GRANT ALL PRIVILEGES ON `shop\\_db`.* TO `shop`@`localhost`;\n\
                 would make ALL on shop_db to shop@10.0.0.%: GRANT ALL PRIVILEGES ON `shop\\_db`.* TO `shop`@`10.0.0.%`;\n"
            )
        );
        assert_eq!(
            db.mariadb("SELECT COUNT(*) FROM mysql.user WHERE user = 'shop'"),
            "0"
        );

        let out = env
            .create("shop_db", &pw)
            .args([
                "--user",
                "shop",
                "--account-host",
                "localhost",
                "--account-host",
                "10.0.0.%",
            ])
            .succeeds();
        assert_stderr_is(
            &out,
            &format!(
                "{wide}pysk-db: made the account shop@localhost\n\
             pysk-db: made the account shop@10.0.0.%\n\
             pysk-db: made the database shop_db\n\
             pysk-db: made ALL on shop_db to shop@localhost\n\
             pysk-db: made ALL on shop_db to shop@10.0.0.%\n"
            ),
        );
        assert_eq!(
            db.mariadb(
                "SELECT user, host, plugin FROM mysql.user WHERE user = 'shop' ORDER BY host"
            ),
            format!("shop\t10.0.0.%\t{auth}\nshop\tlocalhost\t{auth}")
        );
        assert_eq!(
            db.mariadb("SHOW GRANTS FOR shop@localhost")
                .lines()
                .nth(1)
                .expect("the database grant"),
            "GRANT ALL PRIVILEGES ON `shop\\\\_db`.* TO `shop`@`localhost`"
        );
        assert_eq!(
            db.mariadb(
                "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME = 'shop_db'"
            ),
            "utf8mb4"
        );
        let login = db.login(
            "shop",
            secret,
            "CREATE TABLE shop_db.t (i INT); SELECT CURRENT_USER()",
        );
        assert!(login.status.success(), "{login:?}");
        assert_eq!(stdout(&login), "shop@localhost\n");
        let wrong = db.login("shop", "not it", "SELECT 1");
        assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
        // The grant is this database only: `_` is no wildcard.
        let other = db.login("shop", secret, "CREATE DATABASE shopxdb");
        assert_eq!(other.status.code(), Some(1), "{other:?}");

        // A second run with the same password changes nothing.
        let again = env
            .create("shop_db", &pw)
            .args([
                "--user",
                "shop",
                "--account-host",
                "localhost",
                "--account-host",
                "10.0.0.%",
            ])
            .succeeds();
        assert_stderr_is(
            &again,
            "pysk-db: nothing to change: shop_db exists, with ALL to shop at localhost, 10.0.0.%\n",
        );
        // Another password is set again, as a hash; the JSON says so.
        let other = env.password("shop2.pw", "another one");
        let doc: serde_json::Value = serde_json::from_str(&stdout(
            &env.create("shop_db", &other)
                .args(["--user", "shop", "--json"])
                .succeeds(),
        ))
        .expect("JSON");
        assert_eq!(
            doc,
            serde_json::json!({"version": 1, "dry_run": false, "database": "shop_db",
                "user": "shop", "hosts": ["localhost"], "changes": [{
                    "action": "set",
                    "what": "shop@localhost's password",
                    "sql": format!("ALTER USER `shop`@`localhost` {clause}")}],
                "warnings": []})
        );
        assert!(db.login("shop", "another one", "SELECT 1").status.success());
        let log = db.log_text();
        assert!(
            !log.contains(secret),
            "the plaintext reached the log:\n{log}"
        );
        assert!(!log.contains("another one"), "{log}");

        // Hostile names are refused before any connection, nothing changed.
        let before = env.catalogs();
        let connects = db.log_text().matches("Connect\t").count();
        for bad in [
            "a\"; DROP DATABASE shop_db; --",
            "a`b",
            &"a".repeat(64),
            "../x",
            "shоp",
        ] {
            let out = env.create(bad, &pw).fails_with(65);
            assert!(
                pysk_tests::stderr(&out).ends_with("; nothing changed\n"),
                "{out:?}"
            );
            let out = env.create("ok", &pw).args(["--user", bad]).fails_with(65);
            assert!(
                pysk_tests::stderr(&out).ends_with("; nothing changed\n"),
                "{out:?}"
            );
        }
        for bad in ["a`b", "h' OR 1", ""] {
            let out = env
                .create("ok", &pw)
                .args(["--account-host", bad])
                .fails_with(2);
            assert_stderr_is(
                &out,
                &format!(
                    "pysk-db: --account-host: {bad:?}: not a host this tool takes \
                     (letters, digits and .-_%:/)\n"
                ),
            );
        }
        for (option, bad) in [
            ("--charset", "utf8; DROP DATABASE shop_db"),
            ("--collation", "Latin1"),
        ] {
            let out = env.create("ok", &pw).args([option, bad]).fails_with(2);
            assert_stderr_is(
                &out,
                &format!(
                    "pysk-db: {option}: {bad:?}: not a name this tool takes (a-z, 0-9 and _)\n"
                ),
            );
        }
        assert_eq!(
            db.log_text().matches("Connect\t").count(),
            connects,
            "no connection"
        );
        assert_eq!(env.catalogs(), before);
        create_checks_the_character_set_and_collation(&env, &pw);
        create_takes_back_what_it_made_when_the_server_refuses(&env, &pw);
    }
}

/// A statement the server refuses after the accounts were made (here
/// CREATE DATABASE, since the server may not make the database's
/// directory in its data directory): the accounts this run made are
/// dropped again, latest first, and said.
fn create_takes_back_what_it_made_when_the_server_refuses(env: &Env, pw: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let db = &env.db;
    let mode = std::fs::metadata(&db.data_dir).expect("stat").permissions();
    std::fs::set_permissions(&db.data_dir, std::fs::Permissions::from_mode(0o555))
        .expect("the data directory read-only");
    let before = env.catalogs();
    let out = env
        .create("stray", pw)
        .args(["--account-host", "localhost", "--account-host", "10.0.0.%"])
        .fails_with(69);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: the account stray@10.0.0.% may log in from every host that matches \
             10.0.0.%\n\
             pysk-db: made the account stray@localhost\n\
             pysk-db: made the account stray@10.0.0.%\n\
             pysk-db: {}: CREATE DATABASE `stray` CHARACTER SET utf8mb4: \
             Can't create database 'stray' (errno: 13 \"Permission denied\") (1006); \
             the account stray@10.0.0.%, the account stray@localhost made by this run \
             were dropped again\n",
            db.socket.display()
        ),
    );
    std::fs::set_permissions(&db.data_dir, mode).expect("the data directory as it was");
    assert_eq!(env.catalogs(), before, "nothing left behind");
}

/// A character set or collation the server lacks, or a collation of
/// another character set, is refused while planning (no account made); an
/// existing database of another one is left as it is, and said.
fn create_checks_the_character_set_and_collation(env: &Env, pw: &std::path::Path) {
    let db = &env.db;
    let before = env.catalogs();
    for (args, why) in [
        (
            ["--charset", "latin1", "--collation", "utf8mb4_bin"],
            "--collation: \"utf8mb4_bin\": not a collation of the character set latin1",
        ),
        (
            ["--charset", "nosuch", "--collation", "nosuch_bin"],
            "--charset: \"nosuch\": not a character set this server knows",
        ),
        (
            ["--charset", "utf8mb4", "--collation", "utf8mb4_nosuch_ci"],
            "--collation: \"utf8mb4_nosuch_ci\": not a collation this server knows",
        ),
    ] {
        let out = env.create("enc5", pw).args(args).fails_with(2);
        assert_stderr_is(&out, &format!("pysk-db: {why}\n"));
    }
    assert_eq!(env.catalogs(), before, "no account made");
    env.create("enc5", pw)
        .args(["-q", "--charset", "latin1", "--collation", "latin1_bin"])
        .succeeds();
    let differs = "pysk-db: the database enc5 exists with the character set latin1 and the \
                   collation latin1_bin, not";
    let out = env.create("enc5", pw).succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "{differs} the character set utf8mb4: left as it is\n\
             pysk-db: nothing to change: enc5 exists, with ALL to enc5 at localhost\n"
        ),
    );
    let out = env
        .create("enc5", pw)
        .args([
            "--charset",
            "latin1",
            "--collation",
            "latin1_swedish_ci",
            "--json",
        ])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let warning = format!("{differs} the collation latin1_swedish_ci: left as it is");
    assert_eq!(doc["warnings"], serde_json::json!([warning[9..]]));
    assert_stderr_is(&out, &format!("{warning}\n"));
    assert_eq!(
        db.mariadb(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'enc5'"
        ),
        "latin1\tlatin1_bin"
    );
    // MariaDB 10.10's character-set-independent collations are known.
    env.create("enc6", pw)
        .args(["--collation", "utf8mb4_uca1400_ai_ci", "--dry-run"])
        .succeeds();
}

#[test]
fn password_sets_a_hash_leaves_the_same_one_alone_and_refuses_a_missing_account() {
    for (auth, clause) in [
        ("ed25519", "IDENTIFIED VIA ed25519 USING '***'"),
        ("mysql_native_password", "IDENTIFIED BY PASSWORD '***'"),
    ] {
        let Some(env) = Env::new(auth) else {
            return;
        };
        let db = &env.db;
        env.tool().args(["mysql", "setup"]).succeeds();
        let old = env.password("old.pw", "alt-Pa55 ä");
        env.create("shop", &old)
            .args(["--account-host", "localhost", "--account-host", "10.0.0.%"])
            .succeeds();
        let secret = "neu-Pa55 wört!";
        let new = env.password("new.pw", secret);
        let password = || {
            env.tool()
                .args(["mysql", "password", "shop", "--password-file"])
                .arg(&new)
        };
        let before =
            db.mariadb("SELECT host, authentication_string FROM mysql.user WHERE user = 'shop'");
        let plan = password().arg("--dry-run").succeeds();
        assert_eq!(
            stdout(&plan),
            format!(
                "would set shop@10.0.0.%'s password: ALTER USER `shop`@`10.0.0.%` {clause};\n\
                 would set shop@localhost's password: ALTER USER `shop`@`localhost` {clause};\n"
            )
        );
        assert_eq!(
            db.mariadb("SELECT host, authentication_string FROM mysql.user WHERE user = 'shop'"),
            before
        );
        let out = password().args(["--account-host", "localhost"]).succeeds();
        assert_stderr_is(&out, "pysk-db: set shop@localhost's password\n");
        assert!(db.login("shop", secret, "SELECT 1").status.success());
        assert_eq!(
            db.login("shop", "alt-Pa55 ä", "SELECT 1").status.code(),
            Some(1)
        );
        // Every host when none is named: only the one still different.
        let out = password().succeeds();
        assert_stderr_is(&out, "pysk-db: set shop@10.0.0.%'s password\n");
        let after =
            db.mariadb("SELECT host, authentication_string FROM mysql.user WHERE user = 'shop'");
        let again = password().succeeds();
        assert_stderr_is(
            &again,
            "pysk-db: nothing to change: shop has this password already at 10.0.0.%, localhost\n",
        );
        let doc: serde_json::Value =
            serde_json::from_str(&stdout(&password().arg("--json").succeeds())).expect("JSON");
        assert_eq!(
            doc,
            serde_json::json!({"version": 1, "dry_run": false, "user": "shop",
                "hosts": ["10.0.0.%", "localhost"], "changes": []})
        );
        assert_eq!(
            db.mariadb("SELECT host, authentication_string FROM mysql.user WHERE user = 'shop'"),
            after
        );
        let log = db.log_text();
        assert!(
            !log.contains(secret),
            "the plaintext reached the log:\n{log}"
        );
        assert!(!log.contains("alt-Pa55"), "{log}");

        let out = env
            .tool()
            .args(["mysql", "password", "nobody", "--password-file"])
            .arg(&new)
            .fails_with(65);
        assert_stderr_is(
            &out,
            "pysk-db: there is no account nobody; nothing changed\n",
        );
        let out = password()
            .args(["--account-host", "192.0.2.1"])
            .fails_with(65);
        assert_stderr_is(
            &out,
            "pysk-db: there is no account shop@192.0.2.1; nothing changed\n",
        );
        for bad in ["a`b", "shоp", "../x"] {
            env.tool()
                .args(["mysql", "password", bad, "--password-file"])
                .arg(&new)
                .fails_with(65);
        }
        assert_eq!(
            db.mariadb("SELECT host, authentication_string FROM mysql.user WHERE user = 'shop'"),
            after
        );
        password_says_when_the_plugin_changes(&env, auth, &new);
    }
}

/// With db_mysql_auth switched, the same password moves each account to
/// the other plugin, and the plan and the report say so.
fn password_says_when_the_plugin_changes(env: &Env, auth: &str, file: &std::path::Path) {
    let (other, clause, install) = match auth {
        "ed25519" => ("mysql_native_password", "IDENTIFIED BY PASSWORD '***'", ""),
        _ => (
            "ed25519",
            "IDENTIFIED VIA ed25519 USING '***'",
            "would install the ed25519 authentication plugin: INSTALL SONAME 'auth_ed25519';\n",
        ),
    };
    let config = env.dir.path().join("other");
    write_switches(
        &config,
        &[
            ("db_mysql_socket", env.db.socket.display().to_string()),
            ("db_mysql_auth", other.to_owned()),
            (
                "db_state_dir",
                env.dir.path().join("state").display().to_string(),
            ),
        ],
    );
    let password = || {
        tool("pysk-db")
            .config_dir(&config)
            .args(["mysql", "password", "shop", "--password-file"])
            .arg(file)
    };
    let moved = format!("and its authentication from {auth} to {other}");
    let plan = password().arg("--dry-run").succeeds();
    assert_eq!(
        stdout(&plan),
        format!(
            "{install}would set shop@10.0.0.%'s password, {moved}: \
             ALTER USER `shop`@`10.0.0.%` {clause};\n\
             would set shop@localhost's password, {moved}: \
             ALTER USER `shop`@`localhost` {clause};\n"
        )
    );
    let out = password().args(["--account-host", "localhost"]).succeeds();
    let installed = if install.is_empty() {
        ""
    } else {
        "pysk-db: installed the ed25519 authentication plugin\n"
    };
    assert_stderr_is(
        &out,
        &format!("{installed}pysk-db: set shop@localhost's password, {moved}\n"),
    );
    assert_eq!(
        env.db
            .mariadb("SELECT host, plugin FROM mysql.user WHERE user = 'shop' ORDER BY host"),
        format!("10.0.0.%\t{auth}\nlocalhost\t{other}")
    );
}

#[test]
fn drop_removes_the_database_and_its_accounts_once() {
    let Some(env) = Env::new("mysql_native_password") else {
        return;
    };
    let db = &env.db;
    env.tool().args(["mysql", "setup"]).succeeds();
    let pw = env.password("shop.pw", "Pa55-drop");
    env.create("shop", &pw)
        .args(["--account-host", "localhost", "--account-host", "10.0.0.%"])
        .succeeds();
    env.create("blog", &pw).succeeds();
    db.mariadb("CREATE TABLE shop.t (i INT)");
    let catalogs = "SELECT user, host FROM mysql.user WHERE user IN ('shop', 'blog') \
                    ORDER BY user, host; SELECT db, user FROM mysql.db ORDER BY db; \
                    SHOW DATABASES LIKE 'shop'";
    let before = db.mariadb(catalogs);
    let plan = env
        .tool()
        .args(["mysql", "drop", "shop", "--dry-run"])
        .succeeds();
    assert_eq!(
        stdout(&plan),
        "would drop the database shop: DROP DATABASE `shop`;\n\
         would drop the account shop@10.0.0.%: DROP USER `shop`@`10.0.0.%`;\n\
         would drop the account shop@localhost: DROP USER `shop`@`localhost`;\n"
    );
    assert_eq!(db.mariadb(catalogs), before);
    let out = env.tool().args(["mysql", "drop", "shop"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: dropped the database shop\n\
         pysk-db: dropped the account shop@10.0.0.%\n\
         pysk-db: dropped the account shop@localhost\n",
    );
    assert_eq!(db.mariadb(catalogs), "blog\tlocalhost\nblog\tblog");
    let again = env.tool().args(["mysql", "drop", "shop"]).succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: there is no database shop nor account shop\n",
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(
        &env.tool()
            .args(["mysql", "drop", "shop", "--json"])
            .succeeds(),
    ))
    .expect("JSON");
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "dry_run": false, "database": "shop",
            "user": "shop", "changes": [], "kept": []})
    );
    // The server's own are refused; hostile names too, before connecting.
    env.tool()
        .args(["mysql", "drop", "shop", "--user", "root"])
        .fails_with(65);
    env.tool().args(["mysql", "drop", "mysql"]).fails_with(65);
    for bad in ["a`b", "a\"; DROP DATABASE blog; --", "shоp"] {
        env.tool().args(["mysql", "drop", bad]).fails_with(65);
    }
    assert_eq!(db.mariadb("SHOW GRANTS FOR root@localhost"), ROOT_GRANTS);
    assert_eq!(db.mariadb("SHOW DATABASES LIKE 'blog'"), "blog");
    drop_keeps_an_account_used_elsewhere_and_ends_sessions_only_by_force(&env);
}

/// An account with grants on another database is kept (and said); the
/// sessions on the database or of the user refuse the drop until --force
/// ends them.
fn drop_keeps_an_account_used_elsewhere_and_ends_sessions_only_by_force(env: &Env) {
    let db = &env.db;
    let pw = env.password("app.pw", "Pa55-app");
    env.create("app1", &pw).args(["--user", "app"]).succeeds();
    env.create("app2", &pw)
        .args(["--user", "app", "--account-host", "localhost"])
        .args(["--account-host", "127.0.0.1"])
        .succeeds();
    let kept = "pysk-db: kept the account app@localhost: it also holds grants on app1\n";
    // A session of app@localhost (the socket's), which is kept: app2's
    // drop neither counts nor ends it.
    let mut of_user = mysql::Conn::new(
        mysql::OptsBuilder::new()
            .socket(Some(db.socket.to_string_lossy()))
            .user(Some("app"))
            .pass(Some("Pa55-app")),
    )
    .expect("app's session");
    let out = env
        .tool()
        .args([
            "mysql",
            "drop",
            "app2",
            "--user",
            "app",
            "--dry-run",
            "--json",
        ])
        .succeeds();
    assert_stderr_is(&out, kept);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        doc["kept"],
        serde_json::json!([{"account": "app@localhost", "grants_elsewhere": ["app1"]}])
    );
    assert_eq!(
        stdout(&out).matches("\"action\"").count(),
        3,
        "{}",
        stdout(&out)
    );
    let out = env
        .tool()
        .args(["mysql", "drop", "app2", "--user", "app"])
        .succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "{kept}pysk-db: dropped the database app2\n\
             pysk-db: dropped the account app@127.0.0.1\n\
             pysk-db: revoked ALL on app2 from app@localhost\n"
        ),
    );
    // The grant on app2 is gone too: a later app2 is not app's.
    assert_eq!(
        db.mariadb("SELECT db, user, host FROM mysql.db WHERE user = 'app'"),
        "app1\tapp\tlocalhost"
    );
    let accounts = "SELECT user, host FROM mysql.user WHERE user = 'app'";
    assert_eq!(db.mariadb(accounts), "app\tlocalhost");
    assert_eq!(
        db.login("app", "Pa55-app", "USE app1").status.code(),
        Some(0)
    );
    of_user
        .query_drop("SELECT 1")
        .expect("app@localhost's session goes on");

    // Every grant a kept account holds on the database is taken back:
    // create's escaped pattern, a raw one by hand (which also matches
    // appXx), table, column and routine grants.
    env.create("app_x", &pw)
        .args(["-q", "--user", "app"])
        .succeeds();
    db.mariadb(
        "GRANT SELECT ON `app_x`.* TO app@localhost; \
         CREATE TABLE app_x.t (i INT, j INT); \
         GRANT INSERT ON app_x.t TO app@localhost WITH GRANT OPTION; \
         GRANT UPDATE (j) ON app_x.t TO app@localhost; \
         CREATE PROCEDURE app_x.p() SELECT 1; \
         GRANT EXECUTE ON PROCEDURE app_x.p TO app@localhost",
    );
    let on_app_x = ["db", "tables_priv", "columns_priv", "procs_priv"]
        .map(|t| format!("SELECT '{t}', Db FROM mysql.{t} WHERE User = 'app' AND Db LIKE 'app%x'"))
        .join(" UNION ALL ");
    assert_eq!(
        db.mariadb(&on_app_x),
        "db\tapp\\\\_x\ndb\tapp_x\ntables_priv\tapp_x\ncolumns_priv\tapp_x\nprocs_priv\tapp_x"
    );
    let out = env
        .tool()
        .args(["mysql", "drop", "app_x", "--user", "app"])
        .succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: kept the account app@localhost: it also holds grants on app1\n\
         pysk-db: dropped the database app_x\n\
         pysk-db: revoked ALL on app_x from app@localhost\n\
         pysk-db: revoked ALL on app_x (a pattern) from app@localhost\n\
         pysk-db: revoked ALL on app_x.t from app@localhost\n\
         pysk-db: revoked GRANT OPTION on app_x.t from app@localhost\n\
         pysk-db: revoked ALL on procedure app_x.p from app@localhost\n",
    );
    assert_eq!(db.mariadb(&on_app_x), "");

    // A session on app1 (root's) and one of app@localhost, dropped now
    // while app@127.0.0.1 (app3's) is kept: refused, then ended.
    env.create("app3", &pw)
        .args(["--user", "app", "--account-host", "127.0.0.1"])
        .succeeds();
    let target = Target {
        socket: db.socket.clone(),
        timeout: std::time::Duration::from_secs(5),
    };
    let mut on_db = connect(&target).expect("root");
    on_db.query_drop("USE app1").expect("USE");
    let ids = [on_db.connection_id(), of_user.connection_id()];
    let before = db.mariadb(accounts);
    for args in [vec!["--dry-run"], vec![]] {
        let out = env
            .tool()
            .args(["mysql", "drop", "app1", "--user", "app"])
            .args(args)
            .fails_with(65);
        assert_stderr_is(
            &out,
            "pysk-db: the database app1 and the account app@localhost have 2 session(s): \
             --force ends them; nothing changed\n",
        );
    }
    assert_eq!(db.mariadb(accounts), before);
    let plan = env
        .tool()
        .args([
            "mysql",
            "drop",
            "app1",
            "--user",
            "app",
            "--force",
            "--dry-run",
        ])
        .succeeds();
    assert_eq!(
        stdout(&plan),
        format!(
            "would end the session {1} of app: KILL CONNECTION {1};\n\
             would end the session {0} of root on app1: KILL CONNECTION {0};\n\
             would drop the database app1: DROP DATABASE `app1`;\n\
             would drop the account app@localhost: DROP USER `app`@`localhost`;\n",
            ids[0], ids[1]
        )
    );
    let out = env
        .tool()
        .args(["mysql", "drop", "app1", "--user", "app", "--force"])
        .succeeds();
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: kept the account app@127.0.0.1: it also holds grants on app3\n\
             pysk-db: ended the session {} of app\n\
             pysk-db: ended the session {} of root on app1\n\
             pysk-db: dropped the database app1\n\
             pysk-db: dropped the account app@localhost\n",
            ids[1], ids[0]
        ),
    );
    assert!(
        on_db.query_drop("SELECT 1").is_err(),
        "root's session ended"
    );
    assert!(
        of_user.query_drop("SELECT 1").is_err(),
        "app's session ended"
    );
    assert_eq!(db.mariadb(accounts), "app\t127.0.0.1");
}

#[test]
fn check_reports_every_table_but_the_servers_own() {
    let Some(env) = Env::new("ed25519") else {
        return;
    };
    let db = &env.db;
    db.mariadb(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (i INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO shop.orders VALUES (1), (2); \
         CREATE TABLE shop.`odd``name` (i INT) ENGINE=MyISAM; \
         CREATE TABLE shop.hist (i INT) ENGINE=InnoDB WITH SYSTEM VERSIONING; \
         INSERT INTO shop.hist VALUES (1); UPDATE shop.hist SET i = 2; \
         CREATE DATABASE blog; CREATE TABLE blog.posts (t TEXT) ENGINE=MyISAM; \
         INSERT INTO blog.posts VALUES ('x'); CREATE VIEW blog.v AS SELECT 1",
    );
    let out = env.tool().args(["mysql", "check"]).succeeds();
    assert_eq!(
        stdout(&out),
        "blog.posts: status: OK\nshop.hist: status: OK\nshop.odd`name: status: OK\n\
         shop.orders: status: OK\n"
    );
    assert_stderr_is(&out, "");
    // Quiet and well: nothing at all, for cron.
    let out = env.tool().args(["-q", "mysql", "check"]).succeeds();
    assert_eq!(stdout(&out), "");
    assert_stderr_is(&out, "");

    // A dry run lists the statements, runs none and makes no state.
    let statements = |log: &str| {
        ["ANALYZE TABLE", "OPTIMIZE TABLE", "REPAIR TABLE"].map(|s| log.matches(s).count())
    };
    let ran = statements(&db.log_text());
    let plan = env
        .tool()
        .args(["mysql", "check", "--analyze", "--dry-run"])
        .succeeds();
    assert_eq!(
        stdout(&plan),
        "would analyze blog.posts: ANALYZE TABLE `blog`.`posts`;\n\
         would analyze shop.hist: ANALYZE TABLE `shop`.`hist`;\n\
         would analyze shop.odd`name: ANALYZE TABLE `shop`.`odd``name`;\n\
         would analyze shop.orders: ANALYZE TABLE `shop`.`orders`;\n"
    );
    assert_stderr_is(&plan, "");
    let doc: serde_json::Value = serde_json::from_str(&stdout(
        &env.tool()
            .args(["mysql", "check", "--optimize", "--dry-run", "--json"])
            .succeeds(),
    ))
    .expect("JSON");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["operation"], "optimize");
    assert_eq!(
        doc["tables"][3],
        serde_json::json!({"database": "shop", "table": "orders", "engine": "InnoDB",
            "messages": []})
    );
    assert_eq!(doc["skipped"], serde_json::json!([]));
    assert_eq!(statements(&db.log_text()), ran, "a dry run runs none");
    assert!(!env.dir.path().join("state").exists(), "nor makes state");

    let out = env.tool().args(["mysql", "check", "--analyze"]).succeeds();
    assert_eq!(
        stdout(&out),
        "blog.posts: status: Table is already up to date\n\
         shop.hist: status: OK\n\
         shop.odd`name: status: Table is already up to date\n\
         shop.orders: status: OK\n"
    );
    let out = env.tool().args(["mysql", "check", "--optimize"]).succeeds();
    assert_eq!(
        stdout(&out),
        "blog.posts: status: Table is already up to date\n\
         shop.hist: note: Table does not support optimize, doing recreate + analyze instead\n\
         shop.hist: status: OK\n\
         shop.odd`name: status: Table is already up to date\n\
         shop.orders: note: Table does not support optimize, doing recreate + analyze instead\n\
         shop.orders: status: OK\n"
    );
    assert_stderr_is(
        &out,
        "pysk-db: OPTIMIZE TABLE rebuilds an InnoDB table whole: it needs the \
         table's size again on disk and blocks writes to it briefly at start and end\n",
    );
    // It says nothing is wrong: -q hides it.
    let out = env
        .tool()
        .args(["-q", "mysql", "check", "--optimize"])
        .succeeds();
    assert_stderr_is(&out, "");
    assert_eq!(
        db.mariadb("SELECT i FROM shop.hist FOR SYSTEM_TIME ALL ORDER BY i"),
        "1\n2",
        "the history kept"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(
        &env.tool().args(["mysql", "check", "--json"]).succeeds(),
    ))
    .expect("JSON");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["operation"], "check");
    assert_eq!(doc["errors"], 0);
    assert_eq!(doc["tables"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        doc["tables"][3],
        serde_json::json!({"database": "shop", "table": "orders", "engine": "InnoDB",
            "messages": [{"msg_type": "status", "msg_text": "OK"}]})
    );
    // A MyISAM table whose index file is garbage reports an error: exit 1.
    let myi = db.data_dir.join("blog/posts.MYI");
    db.mariadb("FLUSH TABLES");
    let mut bytes = std::fs::read(&myi).expect("the index file");
    for b in bytes.iter_mut() {
        *b = 0xff;
    }
    std::fs::write(&myi, &bytes).expect("garbage written");
    db.mariadb("FLUSH TABLES");
    let out = env.tool().args(["mysql", "check"]).fails_with(1);
    let text = stdout(&out);
    assert!(text.contains("blog.posts: error: "), "{text}");
    assert!(
        text.ends_with(
            "shop.hist: status: OK\nshop.odd`name: status: OK\nshop.orders: status: OK\n"
        ),
        "{text}"
    );
    assert_stderr_is(&out, "pysk-db: blog.posts reports an error\n");
    // Quiet: the trouble alone.
    let quiet = env.tool().args(["-q", "mysql", "check"]).fails_with(1);
    // (The server says "Error" and "error" here, both trouble.)
    let trouble: String = text
        .lines()
        .filter(|l| l.starts_with("blog.posts: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(trouble.contains("blog.posts: error: "), "{trouble}");
    assert_eq!(stdout(&quiet), trouble);
    assert_stderr_is(&quiet, "pysk-db: blog.posts reports an error\n");
}

#[test]
fn a_generated_password_is_written_once_and_an_empty_one_is_refused() {
    let Some(env) = Env::new("ed25519") else {
        return;
    };
    let db = &env.db;
    let out_file = env.dir.path().join("generated.pw");
    let generate = || {
        env.tool()
            .args(["mysql", "create", "wiki", "--generate-password"])
            .arg(&out_file)
    };
    let plan = generate().arg("--dry-run").succeeds();
    assert!(
        stdout(&plan).contains("IDENTIFIED VIA ed25519 USING '***'"),
        "{}",
        stdout(&plan)
    );
    assert!(!out_file.exists(), "a dry run writes no password");

    let out = generate().succeeds();
    let password = std::fs::read_to_string(&out_file).expect("the password");
    let password = password.strip_suffix('\n').expect("one line");
    assert_eq!(password.len(), 24);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&out_file).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !pysk_tests::stderr(&out).contains(password),
        "never printed"
    );
    assert!(!db.log_text().contains(password), "never logged");
    let login = db.login("wiki", password, "SELECT CURRENT_USER()");
    assert_eq!(stdout(&login), "wiki@localhost\n", "{login:?}");

    // Written once: a second run takes it as the password, and finds
    // nothing to change; an account whose password this run would not
    // know is refused, nothing written.
    let again = generate().succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: wiki exists, with ALL to wiki at localhost\n",
    );
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("the password"),
        format!("{password}\n")
    );
    let elsewhere = env.dir.path().join("elsewhere.pw");
    let refused = env
        .tool()
        .args([
            "mysql",
            "create",
            "wiki2",
            "--user",
            "wiki",
            "--generate-password",
        ])
        .arg(&elsewhere)
        .fails_with(65);
    assert_stderr_is(
        &refused,
        "pysk-db: the account wiki@localhost exists, but not --generate-password's file: \
         give its password with --password-file; nothing changed\n",
    );
    assert!(!elsewhere.exists(), "nothing written");
    // An existing OUT is taken only when it is the account's password: a
    // file of another password (a leftover, another site's) is refused
    // the same way, and the account keeps its own.
    let other = env.password("other.pw", "Other-Pa55");
    let hashes = "SELECT host, authentication_string FROM mysql.user WHERE user = 'wiki'";
    let before = db.mariadb(hashes);
    let refused = env
        .tool()
        .args(["mysql", "create", "wiki2", "--user", "wiki"])
        .arg("--generate-password")
        .arg(&other)
        .fails_with(65);
    assert_stderr_is(
        &refused,
        "pysk-db: the account wiki@localhost exists with another password than \
         --generate-password's file: give its password with --password-file; nothing changed\n",
    );
    assert_eq!(db.mariadb(hashes), before);
    assert_eq!(db.mariadb("SHOW DATABASES LIKE 'wiki2'"), "");
    let login = db.login("wiki", password, "SELECT CURRENT_USER()");
    assert_eq!(stdout(&login), "wiki@localhost\n", "{login:?}");
    // The same provisioning's file, for a second database: passes.
    let second = env
        .tool()
        .args(["mysql", "create", "wiki2", "--user", "wiki"])
        .arg("--generate-password")
        .arg(&out_file)
        .succeeds();
    assert_stderr_is(
        &second,
        "pysk-db: made the database wiki2\n\
         pysk-db: made ALL on wiki2 to wiki@localhost\n",
    );
    assert_eq!(db.mariadb(hashes), before);

    // An empty password file is no password; one with a carriage return
    // or a second line holds a password nobody could type.
    for (name, content, why) in [
        ("empty.pw", "", "is empty"),
        (
            "crlf.pw",
            "secret\r\n",
            "holds a line break or another control character (one line is the password)",
        ),
        (
            "two.pw",
            "secret\nmore\n",
            "holds a line break or another control character (one line is the password)",
        ),
    ] {
        let file = env.password(name, content);
        let out = env.create("blog", &file).fails_with(65);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: the password file {} {why}; nothing changed\n",
                file.display()
            ),
        );
    }
    assert_eq!(db.mariadb("SHOW DATABASES LIKE 'blog'"), "");
}

#[test]
fn optimize_skips_a_table_larger_than_the_free_disk_and_repair_mends_a_broken_one() {
    let dir = scratch();
    // A data directory on a file system of 160 MiB: the server takes 35,
    // the table below 90 more, so there is no room to rebuild it.
    let small = Tmpfs::mount(dir.path().join("small"), "160m");
    let Some(db) = Mariadb::start(small.path()) else {
        return;
    };
    db.mariadb(
        "CREATE DATABASE shop; USE shop; \
         CREATE TABLE shop.big (i INT PRIMARY KEY, t VARCHAR(2000)) ENGINE=InnoDB; \
         INSERT INTO shop.big SELECT seq, REPEAT('x', 2000) FROM seq_1_to_40000; \
         CREATE TABLE shop.small (i INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO shop.small VALUES (1); \
         CREATE TABLE shop.notes (t VARCHAR(10)) ENGINE=MyISAM; \
         INSERT INTO shop.notes VALUES ('a'), ('b')",
    );
    write_switches(
        &dir.path().join("config"),
        &[("db_mysql_socket", db.socket.display().to_string())],
    );
    let tool = || tool("pysk-db").config_dir(&dir.path().join("config"));
    let big = db.data_dir.join("shop/big.ibd");
    let big_before = std::fs::metadata(&big).expect("big.ibd").len();

    // The size weighed is the table's true one, not the statistics that
    // still call the fresh table 16 KiB.
    let out = tool().args(["mysql", "check", "--optimize"]).succeeds();
    assert_eq!(
        stdout(&out),
        "shop.notes: status: OK\n\
         shop.small: note: Table does not support optimize, doing recreate + analyze instead\n\
         shop.small: status: OK\n"
    );
    let err = pysk_tests::stderr(&out);
    let skipped = err
        .strip_prefix(
            "pysk-db: OPTIMIZE TABLE rebuilds an InnoDB table whole: it needs the table's size \
             again on disk and blocks writes to it briefly at start and end\n\
             pysk-db: skipped shop.big: its ",
        )
        .and_then(|rest| rest.strip_suffix(" bytes free for the data directory\n"))
        .unwrap_or_else(|| panic!("{err}"));
    let (bytes, free) = skipped
        .split_once(" bytes exceed the ")
        .unwrap_or_else(|| panic!("{err}"));
    let bytes: u64 = bytes.parse().expect("the table's bytes");
    let free: u64 = free.parse().expect("the free bytes");
    assert!(bytes > 80 << 20 && free < bytes, "{err}");
    assert_eq!(std::fs::metadata(&big).expect("big.ibd").len(), big_before);
    let doc: serde_json::Value = serde_json::from_str(&stdout(
        &tool()
            .args(["mysql", "check", "--optimize", "--json"])
            .succeeds(),
    ))
    .expect("JSON");
    assert_eq!(doc["skipped"][0]["table"], "big");
    assert_eq!(doc["skipped"][0]["bytes"], bytes);
    assert_eq!(doc["tables"].as_array().map(Vec::len), Some(2));
    // A dry run weighs the sizes the statistics give, which the real
    // run has brought up to date: it names the table it would skip.
    let plan = tool()
        .args(["mysql", "check", "--optimize", "--dry-run"])
        .succeeds();
    let plan = stdout(&plan);
    assert!(
        plan.starts_with(&format!(
            "would optimize shop.notes: OPTIMIZE TABLE `shop`.`notes`;\n\
             would optimize shop.small: OPTIMIZE TABLE `shop`.`small`;\n\
             would skip shop.big: its {bytes} bytes exceed the "
        )),
        "{plan}"
    );

    // A MyISAM data file cut short, as a crash leaves it: check finds it,
    // repair mends it, and check finds nothing more.
    let myd = db.data_dir.join("shop/notes.MYD");
    db.mariadb("FLUSH TABLES");
    let bytes = std::fs::read(&myd).expect("the data file");
    std::fs::write(&myd, &bytes[..bytes.len() - 3]).expect("cut short");
    db.mariadb("FLUSH TABLES");
    let out = tool().args(["mysql", "check"]).fails_with(1);
    assert_eq!(
        stdout(&out),
        "shop.big: status: OK\n\
         shop.notes: error: Size of datafile is:        37         Should be: 40\n\
         shop.notes: error: Corrupt\n\
         shop.small: status: OK\n"
    );
    assert_stderr_is(&out, "pysk-db: shop.notes reports an error\n");
    let out = tool().args(["mysql", "check", "--repair"]).succeeds();
    assert_eq!(
        stdout(&out),
        "shop.big: note: The storage engine for the table doesn't support repair\n\
         shop.notes: status: OK\n\
         shop.small: note: The storage engine for the table doesn't support repair\n"
    );
    assert_stderr_is(&out, "");
    let out = tool().args(["mysql", "check"]).succeeds();
    assert_eq!(
        stdout(&out),
        "shop.big: status: OK\nshop.notes: status: OK\nshop.small: status: OK\n"
    );
    drop(db);
}

#[test]
fn the_servers_accounts_other_sign_ins_and_others_databases_are_left_alone() {
    let Some(env) = Env::new("ed25519") else {
        return;
    };
    let db = &env.db;
    env.tool().args(["mysql", "setup"]).succeeds();
    let pw = env.password("a.pw", "Pa55-owner-a");
    db.mariadb(
        "CREATE USER sock@localhost IDENTIFIED VIA unix_socket; \
         CREATE USER chain@localhost IDENTIFIED VIA mysql_native_password \
         USING PASSWORD('old') OR unix_socket",
    );
    let accounts = "SELECT User, Host, Priv FROM mysql.global_priv ORDER BY User, Host; \
                    SHOW DATABASES";
    let before = db.mariadb(accounts);

    // The server's own accounts: refused before any connection, so root
    // keeps its unix_socket login.
    let wide = env.dir.path().join("wide");
    write_switches(
        &wide,
        &[
            ("db_mysql_socket", db.socket.display().to_string()),
            ("db_name_pattern", "^[A-Za-z_.]+".to_owned()),
        ],
    );
    let connects = db.log_text().matches("Connect\t").count();
    for user in ["root", "mysql", "mariadb.sys", "PUBLIC", "Root"] {
        let password = tool("pysk-db")
            .config_dir(&wide)
            .args(["mysql", "password", user, "--password-file"])
            .arg(&pw)
            .fails_with(65);
        let create = tool("pysk-db")
            .config_dir(&wide)
            .args(["mysql", "create", "cust", "--user", user, "--password-file"])
            .arg(&pw)
            .fails_with(65);
        let why = format!("pysk-db: {user} is an account the server needs; nothing changed\n");
        assert_stderr_is(&password, &why);
        assert_stderr_is(&create, &why);
    }
    let out = env
        .create("mysql", &pw)
        .args(["--user", "cust"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: mysql is a system database of the server; nothing changed\n",
    );
    assert_eq!(db.log_text().matches("Connect\t").count(), connects);

    // An account that signs in otherwise keeps its way in.
    for (user, how) in [
        ("sock", "unix_socket"),
        ("chain", "mysql_native_password OR another plugin"),
    ] {
        let why = format!(
            "pysk-db: {user}@localhost signs in by {how}, not by a password alone: \
             left as it is; nothing changed\n"
        );
        let out = env
            .tool()
            .args(["mysql", "password", user, "--password-file"])
            .arg(&pw)
            .fails_with(65);
        assert_stderr_is(&out, &why);
        let out = env
            .create("sockdb", &pw)
            .args(["--user", user])
            .fails_with(65);
        assert_stderr_is(&out, &why);
    }
    assert_eq!(db.mariadb(accounts), before, "nothing changed");
    assert_eq!(db.mariadb("SELECT 1").as_str(), "1", "root still gets in");

    // Someone else's database is not handed over; one with only root's
    // and PUBLIC's grants is taken on.
    env.create("cust_a", &pw).succeeds();
    let catalogs = "SELECT User, Host, Db FROM mysql.db ORDER BY 1, 2, 3; \
                    SELECT User FROM mysql.user ORDER BY 1";
    let before = db.mariadb(catalogs);
    let pw_b = env.password("b.pw", "Pa55-owner-b");
    let out = env
        .create("cust_a", &pw_b)
        .args(["--user", "cust_b"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the database cust_a exists with grants to cust_a@localhost, \
         not cust_b's alone; nothing changed\n",
    );
    assert_eq!(db.mariadb(catalogs), before);
    db.mariadb("CREATE DATABASE legacy; GRANT SELECT ON legacy.* TO PUBLIC");
    let out = env.create("legacy", &pw_b).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: made the account legacy@localhost\n\
         pysk-db: made ALL on legacy to legacy@localhost\n",
    );

    // A grant WITH GRANT OPTION is ALL still; one missing a privilege is
    // not, and is made whole.
    db.mariadb("GRANT ALL ON `cust\\_a`.* TO cust_a@localhost WITH GRANT OPTION");
    let out = env.create("cust_a", &pw).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: nothing to change: cust_a exists, with ALL to cust_a at localhost\n",
    );
    db.mariadb("REVOKE DELETE ON `cust\\_a`.* FROM cust_a@localhost");
    let out = env.create("cust_a", &pw).succeeds();
    assert_stderr_is(&out, "pysk-db: made ALL on cust_a to cust_a@localhost\n");
    assert_eq!(
        db.mariadb(
            "SELECT Delete_priv, Grant_priv FROM mysql.db \
             WHERE User = 'cust_a' AND Db = 'cust\\\\_a'"
        ),
        "Y\tY"
    );
}

/// Whether any process's command line holds `secret` right now.
fn in_some_cmdline(secret: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(secret))
    })
}

#[test]
fn no_password_appears_in_any_command_line_while_the_tool_runs() {
    let Some(env) = Env::new("ed25519") else {
        return;
    };
    let secret = "cmdline-canary-4c8e27";
    let pw = env.password("canary.pw", secret);
    for args in [
        vec!["mysql", "create", "canary", "--password-file"],
        vec!["mysql", "password", "canary", "--password-file"],
    ] {
        let mut child = env.tool().args(&args).arg(&pw).spawn();
        let mut looks = 0;
        while child.try_wait().expect("wait").is_none() {
            assert!(
                !in_some_cmdline(secret),
                "{args:?}: the password is in a command line"
            );
            looks += 1;
        }
        assert!(child.wait().expect("wait").success(), "{args:?}");
        assert!(looks > 0, "{args:?}: the run was watched");
    }
    assert!(env.db.login("canary", secret, "SELECT 1").status.success());
    assert!(!env.db.log_text().contains(secret));
}
