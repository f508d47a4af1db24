//! `pysk-db pg` against a real PostgreSQL 15 started with Debian's
//! authentication rules: what each subcommand changes, read back from the
//! catalogs; dry runs that change nothing; second runs that find nothing
//! to change.

use std::path::Path;

use pysk_tests::pg::Postgres;
use pysk_tests::{TempDir, assert_stderr_is, scratch, stdout, tool, write_switches};

/// A scratch directory, a running PostgreSQL, switches pointing at it.
struct Env {
    dir: TempDir,
    pg: Postgres,
}

impl Env {
    fn new() -> Option<Env> {
        let dir = scratch();
        let pg = Postgres::start(&dir.path().join("pg"))?;
        write_switches(
            &dir.path().join("config"),
            &[
                ("db_pg_socket_dir", pg.socket_dir.display().to_string()),
                ("db_pg_port", pg.port.to_string()),
                (
                    "db_state_dir",
                    dir.path().join("state").display().to_string(),
                ),
            ],
        );
        Some(Env { dir, pg })
    }

    fn tool(&self) -> pysk_tests::TestCommand {
        tool("pysk-db").config_dir(&self.dir.path().join("config"))
    }

    /// PUBLIC's privilege on template1, as the catalog says.
    fn public_has(&self, privilege: &str) -> String {
        self.pg
            .psql(&format!(
                "SELECT has_database_privilege('public', 'template1', '{privilege}')"
            ))
            .trim()
            .to_owned()
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// The tool with `db_pg_socket_dir` a directory that does not exist:
    /// a run that gets as far as connecting exits 69, so 65 proves that a
    /// refusal came before any connection.
    fn offline(&self) -> pysk_tests::TestCommand {
        let config = self.dir.path().join("offline");
        write_switches(
            &config,
            &[
                (
                    "db_pg_socket_dir",
                    self.dir.path().join("no-such-dir").display().to_string(),
                ),
                ("db_state_dir", self.state().display().to_string()),
            ],
        );
        tool("pysk-db").config_dir(&config)
    }
}

#[test]
fn setup_takes_back_what_everyone_was_granted_once() {
    let Some(env) = Env::new() else { return };
    // initdb already leaves PUBLIC only CONNECT on template1: a fresh
    // cluster has nothing to change there.
    assert_eq!(env.public_has("TEMPORARY"), "f");
    let plan = env.tool().args(["pg", "setup", "--dry-run"]).succeeds();
    assert_eq!(stdout(&plan), "nothing to change\n");
    // A cluster where someone granted it (as an old setup script did).
    env.pg
        .psql("GRANT TEMPORARY ON DATABASE template1 TO PUBLIC");
    assert_eq!(env.public_has("TEMPORARY"), "t");
    let plan = env.tool().args(["pg", "setup", "--dry-run"]).succeeds();
    assert_eq!(
        stdout(&plan),
        "would revoke PUBLIC's TEMPORARY on the database template1: \
         REVOKE TEMPORARY ON DATABASE template1 FROM PUBLIC;\n"
    );
    assert_eq!(
        env.public_has("TEMPORARY"),
        "t",
        "a dry run changes nothing"
    );
    assert!(!env.state().exists(), "a dry run creates nothing");

    let out = env.tool().args(["pg", "setup"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: revoked PUBLIC's TEMPORARY on the database template1\n",
    );
    assert_eq!(env.public_has("TEMPORARY"), "f");
    assert_eq!(env.public_has("CONNECT"), "t", "CONNECT is kept");
    // PostgreSQL 15 grants no CREATE on the schema public: nothing to do.
    assert_eq!(
        env.pg
            .psql("SELECT has_schema_privilege('public', 'public', 'CREATE')")
            .trim(),
        "f"
    );

    // A database whose schema public still lets everyone create (as
    // PostgreSQL 14 and older made every one).
    env.pg.psql("CREATE DATABASE legacy");
    env.pg
        .psql_in("legacy", "GRANT CREATE ON SCHEMA public TO PUBLIC");
    let public_creates = || {
        env.pg.psql_in(
            "legacy",
            "SELECT has_schema_privilege('public', 'public', 'CREATE')",
        )
    };
    assert_eq!(public_creates(), "t");
    let plan = env.tool().args(["pg", "setup", "--dry-run"]).succeeds();
    assert_eq!(
        stdout(&plan),
        "would revoke PUBLIC's CREATE on the schema public of \"legacy\": \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;\n"
    );
    let out = env.tool().args(["pg", "setup"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: revoked PUBLIC's CREATE on the schema public of \"legacy\"\n",
    );
    assert_eq!(public_creates(), "f");

    let again = env.tool().args(["pg", "setup"]).succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: PUBLIC's grants are as setup leaves them\n",
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(
        &env.tool().args(["pg", "setup", "--json"]).succeeds(),
    ))
    .expect("JSON");
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "dry_run": false, "changes": [], "unchanged": 5})
    );
}

impl Env {
    /// A password file only root may read.
    fn password(&self, name: &str, password: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        pysk_tests::secret_file(&path, password);
        path
    }

    fn create(&self, db: &str, owner: &str, password: &Path) -> pysk_tests::TestCommand {
        self.tool()
            .args(["pg", "create", db, "--owner", owner, "--password-file"])
            .arg(password)
    }
}

#[test]
fn create_makes_the_database_with_its_owner_and_no_password_reaches_the_log() {
    let Some(env) = Env::new() else { return };
    let secret = "Kunde-Pa55 wört!";
    let pw = env.password("shop.pw", secret);
    let plan = env
        .create("shop", "shop_admin", &pw)
        .arg("--dry-run")
        .succeeds();
    assert_eq!(
        stdout(&plan),
        "would make the role shop: CREATE ROLE \"shop\" NOLOGIN;\n\
         would make the login role shop_admin: CREATE ROLE \"shop_admin\" LOGIN PASSWORD '***';\n\
         would make shop_admin a member of shop: GRANT \"shop\" TO \"shop_admin\";\n\
         would make the database shop: CREATE DATABASE \"shop\" OWNER \"shop_admin\";\n\
         would make ALL on shop's schema public to shop_admin: GRANT ALL ON SCHEMA public TO \"shop_admin\";\n"
    );
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'shop%'")
            .trim(),
        "0"
    );

    let out = env.create("shop", "shop_admin", &pw).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: made the role shop\n\
         pysk-db: made the login role shop_admin\n\
         pysk-db: made shop_admin a member of shop\n\
         pysk-db: made the database shop\n\
         pysk-db: made ALL on shop's schema public to shop_admin\n",
    );
    assert_eq!(
        env.pg
            .psql(
                "SELECT r.rolcanlogin, u.rolcanlogin, pg_has_role('shop_admin', 'shop', 'MEMBER'), \
                 pg_get_userbyid(d.datdba) FROM pg_roles r, pg_roles u, pg_database d \
                 WHERE r.rolname = 'shop' AND u.rolname = 'shop_admin' AND d.datname = 'shop'"
            )
            .trim(),
        "f|t|t|shop_admin"
    );
    let login = env
        .pg
        .login("shop_admin", secret, "shop", "SELECT current_user");
    assert!(login.status.success(), "{login:?}");
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "shop_admin");
    assert!(
        !env.pg.log_text().contains(secret),
        "the plaintext reached the log"
    );

    // A second run with the same password changes nothing and says so.
    let again = env.create("shop", "shop_admin", &pw).succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: shop exists, owned by shop_admin\n",
    );
    // Another password is set again, as a verifier.
    let other = env.password("shop2.pw", "another one");
    let out = env.create("shop", "shop_admin", &other).succeeds();
    assert_stderr_is(&out, "pysk-db: set shop_admin's password\n");
    assert!(!env.pg.log_text().contains("another one"));

    // Hostile names are refused before any connection (the offline
    // switches make a connection exit 69), nothing changed.
    let roles = env.pg.psql("SELECT count(*) FROM pg_roles");
    let pw_arg = pw.to_str().expect("a UTF-8 path");
    for bad in [
        "a\"; DROP DATABASE shop; --",
        "a`b",
        &"a".repeat(64),
        "../x",
        "shоp",
    ] {
        for args in [
            &[
                "pg",
                "create",
                bad,
                "--owner",
                "shop_admin",
                "--password-file",
                pw_arg,
            ][..],
            &[
                "pg",
                "create",
                "shop",
                "--owner",
                bad,
                "--password-file",
                pw_arg,
            ],
            &["pg", "add-db", bad, "--owner", "shop_admin"],
            &["pg", "add-db", "shop_x", "--owner", bad],
            &[
                "pg",
                "add-db",
                "shop_x",
                "--owner",
                "shop_admin",
                "--template",
                bad,
            ],
            &["pg", "password", bad, "--password-file", pw_arg],
            &["pg", "drop", bad],
            &["pg", "vacuum", "shop", bad],
        ] {
            let out = env.offline().args(args).fails_with(65);
            let err = pysk_tests::stderr(&out);
            assert!(
                err.ends_with("not a name this tool takes (db_name_pattern ^[a-z_][a-z0-9_]{0,62}$); nothing changed\n"),
                "{args:?}: {err}"
            );
        }
    }
    assert_eq!(roles, env.pg.psql("SELECT count(*) FROM pg_roles"));
    // A database owned by someone else is not taken over.
    env.pg.psql("CREATE DATABASE theirs");
    let out = env.create("theirs", "shop_admin", &pw).fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the database theirs exists, owned by postgres, not shop_admin; nothing changed\n",
    );
}

#[test]
fn password_is_set_as_a_verifier_once_and_drop_refuses_a_busy_database() {
    let Some(env) = Env::new() else { return };
    let first = env.password("first.pw", "first secret");
    env.create("blog", "blog_admin", &first).succeeds();
    let second = env.password("second.pw", "second secret");
    let password = |file: &Path| {
        env.tool()
            .args(["pg", "password", "blog_admin", "--password-file"])
            .arg(file)
    };
    let plan = password(&second).arg("--dry-run").succeeds();
    assert_eq!(
        stdout(&plan),
        "would set blog_admin's password: ALTER ROLE \"blog_admin\" PASSWORD '***';\n"
    );
    let out = password(&second).succeeds();
    assert_stderr_is(&out, "pysk-db: set blog_admin's password\n");
    let login = env
        .pg
        .login("blog_admin", "second secret", "blog", "SELECT 1");
    assert!(login.status.success(), "{login:?}");
    let old = env
        .pg
        .login("blog_admin", "first secret", "blog", "SELECT 1");
    assert!(!old.status.success(), "the old password no longer works");
    let again = password(&second).succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: blog_admin has this password already\n",
    );
    assert!(!env.pg.log_text().contains("second secret"));
    let out = env
        .tool()
        .args(["pg", "password", "nobody_here", "--password-file"])
        .arg(&second)
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: there is no role nobody_here; nothing changed\n",
    );

    // A session in the database: drop refuses, --force ends it.
    let mut session = std::process::Command::new(env.pg_psql_path())
        .args(["-X", "-q", "-h"])
        .arg(&env.pg.socket_dir)
        .args([
            "-p",
            &env.pg.port.to_string(),
            "-U",
            "blog_admin",
            "-d",
            "blog",
        ])
        .args(["-c", "SELECT pg_sleep(30)"])
        .env("PGPASSWORD", "second secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a session");
    wait_for_session(&env, "blog");
    let out = env.tool().args(["pg", "drop", "blog"]).fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the database blog has 1 connection(s): --force ends them; nothing changed\n",
    );
    let plan = env
        .tool()
        .args(["pg", "drop", "blog", "--force", "--dry-run"])
        .succeeds();
    assert_eq!(
        stdout(&plan),
        "would drop the database blog: DROP DATABASE \"blog\" WITH (FORCE);\n\
         would drop the role blog: DROP ROLE \"blog\";\n"
    );
    let out = env
        .tool()
        .args(["pg", "drop", "blog", "--force"])
        .succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: dropped the database blog\npysk-db: dropped the role blog\n",
    );
    let _ = session.wait();
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_database WHERE datname = 'blog'")
            .trim(),
        "0"
    );
    let again = env.tool().args(["pg", "drop", "blog"]).succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: there is no database blog nor group role blog\n",
    );

    // A customer's login named like a database is not the database's
    // group role: it stays, and so does a superuser of that name.
    env.pg
        .psql("CREATE ROLE blog LOGIN; CREATE ROLE boss LOGIN SUPERUSER");
    let out = env.tool().args(["pg", "drop", "blog"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: the role blog stays: it is a login role, not a NOLOGIN group role\n\
         pysk-db: nothing to change: there is no database blog\n",
    );
    // A group role made by hand, with no database of its name, carries
    // what its members were granted: it is dropped only with a database.
    env.pg
        .psql("CREATE ROLE readonly NOLOGIN; GRANT readonly TO boss");
    let out = env.tool().args(["pg", "drop", "readonly"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: the role readonly stays: there is no database readonly, and a group role \
         is dropped only with its database\n\
         pysk-db: nothing to change: there is no database readonly\n",
    );
    let out = env
        .tool()
        .args(["pg", "drop", "readonly", "--json"])
        .succeeds();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("JSON"),
        serde_json::json!({"version": 1, "dry_run": false, "database": "readonly",
                           "changes": [], "role_kept": "without its database"})
    );
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_roles WHERE rolname = 'readonly'"),
        "1"
    );
    let out = env.tool().args(["pg", "drop", "boss", "--json"]).succeeds();
    assert_stderr_is(&out, "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("JSON"),
        serde_json::json!({"version": 1, "dry_run": false, "database": "boss",
                           "changes": [], "role_kept": "a superuser"})
    );
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_roles WHERE rolname IN ('blog', 'boss')"),
        "2"
    );
    // PostgreSQL's own databases are refused before any connection.
    for db in ["postgres", "template0", "template1"] {
        let out = env.offline().args(["pg", "drop", db]).fails_with(65);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: database \"{db}\": PostgreSQL's own, never dropped; nothing changed\n"
            ),
        );
    }
    // --json: what was dropped, and the password set.
    env.create("news", "news_admin", &first).succeeds();
    let third = env.password("third.pw", "third secret");
    let out = env
        .tool()
        .args(["pg", "password", "news_admin", "--json", "--password-file"])
        .arg(&third)
        .succeeds();
    assert_stderr_is(&out, "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("JSON"),
        serde_json::json!({"version": 1, "dry_run": false, "user": "news_admin", "changes": [
            {"action": "set", "database": "postgres", "what": "news_admin's password",
             "sql": "ALTER ROLE \"news_admin\" PASSWORD '***'"}]})
    );
    let out = env.tool().args(["pg", "drop", "news", "--json"]).succeeds();
    assert_stderr_is(&out, "");
    let drop = |what: &str, sql: &str| serde_json::json!({"action": "drop", "database": "postgres", "what": what, "sql": sql});
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("JSON"),
        serde_json::json!({"version": 1, "dry_run": false, "database": "news", "changes": [
            drop("the database news", "DROP DATABASE \"news\""),
            drop("the role news", "DROP ROLE \"news\""),
        ]})
    );
    assert_eq!(
        env.pg.psql(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'news'; \
             SELECT count(*) FROM pg_database WHERE datname = 'news'"
        ),
        "0\n0"
    );
}

impl Env {
    fn pg_psql_path(&self) -> std::path::PathBuf {
        self.pg.bin_dir.join("psql")
    }
}

/// Waits until a session is connected to `db` (up to ten seconds).
fn wait_for_session(env: &Env, db: &str) {
    for _ in 0..100 {
        let n = env.pg.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"
        ));
        if n.trim() != "0" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no session in {db}");
}

#[test]
fn a_generated_password_is_written_once_and_add_db_serves_an_existing_owner() {
    let Some(env) = Env::new() else { return };
    let out_file = env.dir.path().join("generated.pw");
    let plan = env
        .tool()
        .args([
            "pg",
            "create",
            "wiki",
            "--owner",
            "wiki_admin",
            "--generate-password",
        ])
        .arg(&out_file)
        .arg("--dry-run")
        .succeeds();
    assert!(
        stdout(&plan).contains("PASSWORD '***'"),
        "{}",
        stdout(&plan)
    );
    assert!(!out_file.exists(), "a dry run writes no password");
    let out = env
        .tool()
        .args([
            "pg",
            "create",
            "wiki",
            "--owner",
            "wiki_admin",
            "--generate-password",
        ])
        .arg(&out_file)
        .succeeds();
    let password = std::fs::read_to_string(&out_file).expect("the password");
    let password = password.trim_end();
    assert_eq!(password.len(), 24);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&out_file).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !pysk_tests::stderr(&out).contains(password),
        "never printed"
    );
    assert!(!env.pg.log_text().contains(password), "never logged");
    let login = env.pg.login("wiki_admin", password, "wiki", "SELECT 1");
    assert!(login.status.success(), "{login:?}");
    let again = env
        .tool()
        .args([
            "pg",
            "create",
            "wiki",
            "--owner",
            "wiki_admin",
            "--generate-password",
        ])
        .arg(&out_file)
        .succeeds();
    // The file written is the password of later runs: nothing to change.
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: wiki exists, owned by wiki_admin\n",
    );
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("the password"),
        format!("{password}\n")
    );
    // An owner that exists, whose password this run would not know.
    let elsewhere = env.dir.path().join("elsewhere.pw");
    let refused = env
        .tool()
        .args([
            "pg",
            "create",
            "wiki2",
            "--owner",
            "wiki_admin",
            "--generate-password",
        ])
        .arg(&elsewhere)
        .fails_with(65);
    assert_stderr_is(
        &refused,
        "pysk-db: the role wiki_admin exists, but not --generate-password's file: give its \
         password with --password-file, or use add-db; nothing changed\n",
    );
    assert!(!elsewhere.exists(), "nothing written");
    // Nor is another provisioning's file, written by an earlier run, put
    // on an owner that exists: only its own password passes.
    let other = env.password("other.pw", "another customer's");
    let refused = env
        .tool()
        .args([
            "pg",
            "create",
            "wiki2",
            "--owner",
            "wiki_admin",
            "--generate-password",
        ])
        .arg(&other)
        .fails_with(65);
    assert_stderr_is(
        &refused,
        "pysk-db: the role wiki_admin exists, and --generate-password's file holds another \
         password: give its password with --password-file, or use add-db; nothing changed\n",
    );
    let login = env.pg.login("wiki_admin", password, "wiki", "SELECT 1");
    assert!(login.status.success(), "the password stays: {login:?}");

    let out = env
        .tool()
        .args(["pg", "add-db", "wiki_test", "--owner", "wiki_admin"])
        .succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: made the role wiki_test\n\
         pysk-db: made wiki_admin a member of wiki_test\n\
         pysk-db: made the database wiki_test\n\
         pysk-db: made ALL on wiki_test's schema public to wiki_admin\n",
    );
    let again = env
        .tool()
        .args(["pg", "add-db", "wiki_test", "--owner", "wiki_admin"])
        .succeeds();
    assert_stderr_is(
        &again,
        "pysk-db: nothing to change: wiki_test exists, owned by wiki_admin\n",
    );
    // The owner that exists kept its password.
    let login = env
        .pg
        .login("wiki_admin", password, "wiki_test", "SELECT 1");
    assert!(
        login.status.success(),
        "the password is unchanged: {login:?}"
    );
    // A database made from template0 with its own encoding and locale.
    env.tool()
        .args(["-q", "pg", "add-db", "wiki_c", "--owner", "wiki_admin"])
        .args([
            "--template",
            "template0",
            "--encoding",
            "SQL_ASCII",
            "--locale",
            "C",
        ])
        .succeeds();
    assert_eq!(
        env.pg
            .psql(
                "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database \
                 WHERE datname = 'wiki_c'"
            )
            .trim(),
        "SQL_ASCII|C"
    );
    let out = env
        .tool()
        .args([
            "pg",
            "add-db",
            "wiki_x",
            "--owner",
            "wiki_admin",
            "--locale",
            "C'; --",
        ])
        .fails_with(2);
    assert_stderr_is(
        &out,
        "pysk-db: --locale: \"C'; --\": not an encoding or locale name\n",
    );
    let out = env
        .tool()
        .args(["pg", "add-db", "other", "--owner", "nobody_here"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: there is no role nobody_here: pg create makes it, with a password; nothing changed\n",
    );
}

#[test]
fn vacuum_skips_and_names_a_table_another_session_holds_and_does_the_rest() {
    let Some(env) = Env::new() else { return };
    let pw = env.password("shop.pw", "shop secret");
    env.create("shop", "shop_admin", &pw).succeeds();
    // items has a TOAST table, holding a value over 2 kB.
    let tables = "CREATE TABLE orders (id int PRIMARY KEY); \
                  CREATE TABLE items (id int PRIMARY KEY, note text); \
                  INSERT INTO orders SELECT generate_series(1, 1000); \
                  INSERT INTO items SELECT generate_series(1, 1000); \
                  UPDATE items SET note = (SELECT string_agg(md5(g::text), '') \
                  FROM generate_series(1, 200) g) WHERE id = 1;";
    let made = env.pg.login("shop_admin", "shop secret", "shop", tables);
    assert!(made.status.success(), "{made:?}");
    // Another session holds orders, as a migration would.
    let mut holder = std::process::Command::new(env.pg_psql_path())
        .args(["-X", "-q", "-h"])
        .arg(&env.pg.socket_dir)
        .args([
            "-p",
            &env.pg.port.to_string(),
            "-U",
            "shop_admin",
            "-d",
            "shop",
        ])
        .args([
            "-c",
            "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30);",
        ])
        .env("PGPASSWORD", "shop secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a session");
    for _ in 0..100 {
        let locks = env.pg.psql_in(
            "shop",
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'orders' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        );
        if locks.trim() == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A lock timeout far longer than the run may take: were the table
    // waited for, not skipped at once, the run would last a minute and
    // name it as timed out.
    let started = std::time::Instant::now();
    let out = env
        .tool()
        .args([
            "pg",
            "vacuum",
            "shop",
            "--analyze",
            "--json",
            "--lock-timeout",
            "60",
        ])
        .succeeds();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "vacuum waited on the held table"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let shop = &doc["databases"][0];
    assert_eq!(shop["database"], "shop");
    // Tables as objects, not SQL text a script would have to take apart.
    assert_eq!(
        shop["skipped"],
        serde_json::json!([{"schema": "public", "table": "orders"}])
    );
    assert_eq!(shop["timed_out"], serde_json::json!([]));
    assert_eq!(shop["failed"], serde_json::json!([]));
    let tables = shop["tables"].as_u64().expect("tables");
    assert_eq!(shop["vacuumed"].as_u64(), Some(tables - 1));
    assert!(
        env.pg
            .log_text()
            .contains("skipping vacuum of \"orders\" --- lock not available"),
        "SKIP_LOCKED skipped it"
    );
    let analyzed = env.pg.psql_in(
        "shop",
        "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL \
         FROM pg_stat_user_tables ORDER BY relname",
    );
    assert_eq!(analyzed.trim(), "items|t|t\norders|f|f");
    // A quiet run still says a table it skipped: the nightly cron job's
    // mail is how anyone learns of it. The summary line is not trouble.
    let out = env.tool().args(["-q", "pg", "vacuum", "shop"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: shop: skipped, held by another session: \"public\".\"orders\"\n",
    );
    // REINDEX CONCURRENTLY has no SKIP_LOCKED: the lock_timeout stops it,
    // and it leaves no half-built index behind.
    let out = env
        .tool()
        .args([
            "pg",
            "vacuum",
            "shop",
            "--reindex",
            "--json",
            "--lock-timeout",
            "1",
        ])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    // An open transaction in the database makes REINDEX CONCURRENTLY wait
    // for it on every table (it waits out older snapshots): the
    // lock_timeout ends each, and every half-built index is dropped.
    assert_eq!(doc["databases"][0]["reindexed"], 0, "{doc}");
    assert_eq!(
        doc["databases"][0]["reindex_skipped"],
        serde_json::json!([
            {"schema": "public", "table": "items"},
            {"schema": "public", "table": "orders"}
        ]),
        "{doc}"
    );
    assert_eq!(
        doc["databases"][0]["failed"],
        serde_json::json!([]),
        "{doc}"
    );
    let invalid = || {
        env.pg.psql_in(
            "shop",
            "SELECT count(*), count(*) FILTER (WHERE c.relnamespace = 'pg_toast'::regnamespace) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid",
        )
    };
    assert_eq!(
        env.pg.psql_in(
            "shop",
            "SELECT count(*) FROM pg_class WHERE oid = (SELECT reltoastrelid FROM pg_class \
             WHERE relname = 'items') AND relpages > 0"
        ),
        "1",
        "items' TOAST table holds the note"
    );
    assert_eq!(invalid(), "0|0", "none left, on the TOAST table either");
    // Another session's REINDEX CONCURRENTLY of items, waiting for the
    // holder's transaction: its half-built indexes are not dropped under
    // it.
    let mut other = std::process::Command::new(env.pg_psql_path())
        .args(["-X", "-q", "-h"])
        .arg(&env.pg.socket_dir)
        .args(["-p", &env.pg.port.to_string(), "-U", "shop_admin", "-d"])
        .args(["shop", "-c", "REINDEX TABLE CONCURRENTLY items"])
        .env("PGPASSWORD", "shop secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a session");
    for _ in 0..100 {
        if invalid() == "2|1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(invalid(), "2|1", "the other session's build is under way");
    let out = env
        .tool()
        .args(["pg", "vacuum", "shop", "--reindex", "--json"])
        .args(["--lock-timeout", "1"])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["databases"][0]["reindexed"], 0, "{doc}");
    assert_eq!(invalid(), "2|1", "another session's build is left alone");
    // That session stopped leaves them behind: the next run drops them
    // first, then reindexes. It is ended (and gone) before the holder, or
    // freed by the holder's end it could finish its REINDEX first.
    env.pg.psql(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
         WHERE datname = 'shop' AND query LIKE 'REINDEX%'",
    );
    let _ = other.wait();
    env.pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = 'shop' AND pid <> pg_backend_pid()",
    );
    let _ = holder.wait();
    assert_eq!(invalid(), "2|1", "the stopped REINDEX left its indexes");
    // Once the session is gone, both tables are reindexed.
    wait_for_no_session(&env, "shop");
    let out = env
        .tool()
        .args(["pg", "vacuum", "shop", "--reindex", "--json"])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["databases"][0]["reindexed"], 2, "{doc}");
    assert_eq!(
        doc["databases"][0]["failed"],
        serde_json::json!([]),
        "{doc}"
    );
    assert_eq!(invalid(), "0|0", "the leftovers of the stopped run dropped");
    // A partitioned table is analyzed as a whole (VACUUM has nothing to do
    // on it: its partitions are tables of their own).
    let made = env.pg.login(
        "shop_admin",
        "shop secret",
        "shop",
        "CREATE TABLE events (id int) PARTITION BY RANGE (id); \
         CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000); \
         INSERT INTO events SELECT generate_series(1, 999);",
    );
    assert!(made.status.success(), "{made:?}");
    let plan = env
        .tool()
        .args(["pg", "vacuum", "shop", "--analyze", "--dry-run"])
        .succeeds();
    assert!(
        stdout(&plan).contains("would analyze shop: \"public\".\"events\"\n")
            && stdout(&plan).contains("would vacuum shop: \"public\".\"events_1\"\n"),
        "{}",
        stdout(&plan)
    );
    env.tool()
        .args(["-q", "pg", "vacuum", "shop", "--analyze"])
        .succeeds();
    assert_eq!(
        env.pg.psql_in(
            "shop",
            "SELECT count(*) > 0 FROM pg_stats WHERE tablename = 'events' AND inherited"
        ),
        "t"
    );
    // Every database, two at a time, reported in their order.
    let out = env
        .tool()
        .args([
            "pg",
            "vacuum",
            "--all",
            "--analyze",
            "--jobs",
            "2",
            "--json",
        ])
        .succeeds();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let names: Vec<&str> = doc["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .map(|d| d["database"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["postgres", "shop", "template1"]);
    assert!(
        doc["databases"]
            .as_array()
            .expect("databases")
            .iter()
            .all(|d| d["skipped"] == serde_json::json!([]) && d["vacuumed"] == d["tables"]),
        "{doc}"
    );
}

#[test]
fn vacuum_takes_the_lock_refuses_a_missing_database_and_goes_on_past_a_failing_one() {
    let Some(env) = Env::new() else { return };
    env.pg.psql("CREATE DATABASE shop; CREATE DATABASE broken");
    // At least one database at a time; neither databases nor --all is a
    // usage error that says --all exists.
    let out = env
        .offline()
        .args(["pg", "vacuum", "shop", "--jobs", "0"])
        .fails_with(2);
    assert_stderr_is(&out, "pysk-db: --jobs: \"0\": at least 1\n");
    let out = env.offline().args(["pg", "vacuum"]).fails_with(2);
    assert!(
        pysk_tests::stderr(&out).contains("required arguments were not provided:\n  <DB|--all>"),
        "{}",
        pysk_tests::stderr(&out)
    );
    // A database that does not exist is bad input, said before anything
    // is done.
    let out = env
        .tool()
        .args(["pg", "vacuum", "nosuch", "shop"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: there is no database nosuch; nothing changed\n",
    );
    let out = env
        .tool()
        .args(["pg", "vacuum", "template0"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the database template0 takes no connections; nothing changed\n",
    );
    // One that fails on the way (here: its connections refused) is named,
    // and the others are still done.
    let hba = env.pg.data_dir.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    std::fs::write(&hba, format!("local broken postgres reject\n{rules}")).expect("write");
    env.pg.psql("SELECT pg_reload_conf()");
    for _ in 0..100 {
        if !env.pg.psql_output("broken", "SELECT 1").status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = env
        .tool()
        .args(["pg", "vacuum", "broken", "shop", "--json"])
        .fails_with(1);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let (broken, shop) = (&doc["databases"][0], &doc["databases"][1]);
    assert_eq!(broken["database"], "broken");
    assert_eq!(broken["tables"], 0);
    // The database's own failure names no table.
    assert_eq!(broken["failed"][0].get("table"), None);
    let why = broken["failed"][0]["why"].as_str().expect("a failure");
    assert!(
        why.contains("database \"broken\"") && why.ends_with("(28000)"),
        "{why}"
    );
    assert_eq!(shop["database"], "shop");
    assert_eq!(shop["failed"], serde_json::json!([]));
    assert!(shop["tables"].as_u64() > Some(0), "{doc}");
    assert_eq!(shop["vacuumed"], shop["tables"]);

    // Vacuum runs under a lock of its own, one vacuum at a time, never in
    // the way of the subcommands that make and drop: a held vacuum lock
    // is exit 75 for vacuum, the other lock for setup, and a dry run
    // waits for the vacuum lock when its file is there.
    let changes = env.state().join("pysk-db.lock");
    let held =
        pysk_common::lock::Lock::acquire(&changes, std::time::Duration::ZERO).expect("the lock");
    let out = env.tool().args(["pg", "setup"]).fails_with(75);
    assert!(
        pysk_tests::stderr(&out).starts_with(&format!("pysk-db: {}", changes.display())),
        "{}",
        pysk_tests::stderr(&out)
    );
    env.tool().args(["-q", "pg", "vacuum", "shop"]).succeeds();
    drop(held);
    let lock_file = env.state().join("pysk-db-pg-vacuum.lock");
    let held =
        pysk_common::lock::Lock::acquire(&lock_file, std::time::Duration::ZERO).expect("the lock");
    let out = env.tool().args(["pg", "vacuum", "shop"]).fails_with(75);
    assert!(
        pysk_tests::stderr(&out).starts_with(&format!("pysk-db: {}", lock_file.display())),
        "{}",
        pysk_tests::stderr(&out)
    );
    env.tool().args(["pg", "drop", "nosuch"]).succeeds();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(held);
    });
    let started = std::time::Instant::now();
    env.tool()
        .args(["pg", "vacuum", "shop", "--dry-run", "--wait", "20"])
        .succeeds();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1400),
        "the dry run waited for the lock"
    );
    release.join().expect("released");
}

/// Waits until no session is connected to `db` (up to ten seconds).
fn wait_for_no_session(env: &Env, db: &str) {
    for _ in 0..100 {
        let n = env.pg.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"
        ));
        if n.trim() == "0" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("a session stays in {db}");
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
    let Some(env) = Env::new() else { return };
    let secret = "cmdline-canary-7f3a91";
    let pw = env.password("canary.pw", secret);
    for args in [
        vec![
            "pg",
            "create",
            "canary",
            "--owner",
            "canary_admin",
            "--password-file",
        ],
        vec!["pg", "password", "canary_admin", "--password-file"],
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
    assert!(!env.pg.log_text().contains(secret));
}

#[test]
fn create_hands_the_owner_no_role_it_does_not_own_and_no_superuser() {
    let Some(env) = Env::new() else { return };
    let pw = env.password("cust.pw", "cust secret");
    // Names PostgreSQL keeps, and an owner named like the database, are
    // refused before any connection.
    let offline = |db: &str, owner: &str, expected: &str| {
        let out = env
            .offline()
            .args(["pg", "create", db, "--owner", owner, "--password-file"])
            .arg(&pw)
            .fails_with(65);
        assert_stderr_is(&out, &format!("pysk-db: {expected}; nothing changed\n"));
    };
    offline(
        "pg_execute_server_program",
        "cust",
        "database \"pg_execute_server_program\": PostgreSQL keeps role names beginning with pg_ for its own",
    );
    offline(
        "shop",
        "pg_monitor",
        "owner \"pg_monitor\": PostgreSQL keeps role names beginning with pg_ for its own",
    );
    offline(
        "app",
        "app",
        "the owner app has the database's name: the database's role app is a NOLOGIN group role \
         of its own, so the owner needs another name",
    );
    let out = env
        .offline()
        .args(["pg", "add-db", "app", "--owner", "app"])
        .fails_with(65);
    assert!(
        pysk_tests::stderr(&out).starts_with("pysk-db: the owner app has the database's name"),
        "{}",
        pysk_tests::stderr(&out)
    );

    // A role named like the database that is more than a bare NOLOGIN
    // group role is not handed to the owner.
    env.pg.psql(
        "CREATE ROLE admin LOGIN SUPERUSER; CREATE ROLE blog LOGIN; \
         CREATE ROLE crm NOLOGIN CREATEDB; CREATE ROLE ops NOLOGIN; \
         GRANT pg_read_all_data TO ops",
    );
    for (db, why) in [
        ("admin", "a superuser"),
        ("blog", "a login role"),
        (
            "crm",
            "a role with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS",
        ),
        ("ops", "a member of another role"),
        ("postgres", "one of PostgreSQL's own"),
    ] {
        let out = env.create(db, "cust", &pw).fails_with(65);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: the role {db} exists and is {why}, not a NOLOGIN group role: \
                 cust is not made a member of it; nothing changed\n"
            ),
        );
    }
    // A bare NOLOGIN role is still not handed over when it owns or holds
    // something, or has members already.
    env.pg.psql(
        "CREATE ROLE reports NOLOGIN; GRANT CONNECT ON DATABASE postgres TO reports; \
         CREATE ROLE crew NOLOGIN; CREATE ROLE alice LOGIN; GRANT crew TO alice",
    );
    for (db, why) in [
        ("reports", "owns objects or holds privileges"),
        ("crew", "has the members alice"),
    ] {
        let out = env.create(db, "cust", &pw).fails_with(65);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: the role {db} exists and {why}: cust is not made a member of it; \
                 nothing changed\n"
            ),
        );
    }
    // Nor is a superuser made a database's owner, or given a password.
    let out = env.create("shop", "postgres", &pw).fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the role postgres is a superuser: a customer's database is not given to one; \
         nothing changed\n",
    );
    // Nor a privileged role, nor another database's group role (its
    // members would share the database), nor is a NOLOGIN role made a
    // login by add-db, which sets no password.
    env.pg.psql(
        "CREATE ROLE mighty LOGIN CREATEROLE; CREATE ROLE team NOLOGIN; \
         CREATE ROLE team_admin LOGIN; GRANT team TO team_admin; CREATE ROLE sleepy NOLOGIN",
    );
    for (owner, why) in [
        (
            "mighty",
            "a role with CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS",
        ),
        ("team", "a group role other roles are members of"),
    ] {
        let out = env.create("shop", owner, &pw).fails_with(65);
        assert_stderr_is(
            &out,
            &format!(
                "pysk-db: the role {owner} is {why}: a customer's database is not given to one; \
                 nothing changed\n"
            ),
        );
    }
    let out = env
        .tool()
        .args(["pg", "add-db", "shop", "--owner", "sleepy"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the role sleepy cannot log in (NOLOGIN): add-db does not make it a login \
         role without a password; pg create with --password-file does; nothing changed\n",
    );
    // pg password puts no password on the superuser.
    let out = env
        .tool()
        .args(["pg", "password", "postgres", "--password-file"])
        .arg(&pw)
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: the role postgres is a superuser: its password is not set by this tool; \
         nothing changed\n",
    );
    assert_eq!(
        env.pg.psql(
            "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_authid \
             WHERE rolname IN ('mighty', 'team', 'sleepy') AND rolpassword IS NULL \
             AND (NOT rolcanlogin OR rolname <> 'sleepy')"
        ),
        "mighty,sleepy,team"
    );
    assert_eq!(
        env.pg.psql(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('cust', 'shop'); \
                 SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'"
        ),
        "0\nt"
    );

    // An owner that exists NOLOGIN, with this very password: it is made a
    // login role, and its password is left alone.
    env.pg
        .psql("CREATE ROLE lazy NOLOGIN PASSWORD 'cust secret'");
    let create = || env.create("lazy_db", "lazy", &pw).arg("--json");
    let doc = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_str(&stdout(out)).expect("JSON")
    };
    let step = |database: &str, what: &str, sql: &str| serde_json::json!({"action": "make", "database": database, "what": what, "sql": sql});
    let changes = serde_json::json!([
        step(
            "postgres",
            "the role lazy_db",
            "CREATE ROLE \"lazy_db\" NOLOGIN"
        ),
        step(
            "postgres",
            "lazy a member of lazy_db",
            "GRANT \"lazy_db\" TO \"lazy\""
        ),
        step(
            "postgres",
            "the database lazy_db",
            "CREATE DATABASE \"lazy_db\" OWNER \"lazy\""
        ),
        step(
            "lazy_db",
            "ALL on lazy_db's schema public to lazy",
            "GRANT ALL ON SCHEMA public TO \"lazy\""
        ),
        // Last: a run that fails before leaves the owner as it was.
        step("postgres", "lazy a login role", "ALTER ROLE \"lazy\" LOGIN"),
    ]);
    let mut expected = serde_json::json!({
        "version": 1, "dry_run": true, "database": "lazy_db", "owner": "lazy", "changes": changes,
        "warnings": []
    });
    let plan = create().arg("--dry-run").succeeds();
    assert_eq!(doc(&plan), expected);
    assert_eq!(
        env.pg
            .psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'lazy'"),
        "f",
        "a dry run changes nothing"
    );
    let out = create().succeeds();
    expected["dry_run"] = false.into();
    assert_eq!(doc(&out), expected);
    assert_stderr_is(&out, "");
    let login = env.pg.login("lazy", "cust secret", "lazy_db", "SELECT 1");
    assert!(login.status.success(), "{login:?}");
    expected["changes"] = serde_json::json!([]);
    assert_eq!(doc(&create().succeeds()), expected);
}

#[test]
fn a_server_that_accepts_and_never_answers_is_given_up_on_and_named() {
    // A socket that accepts connections and never says a word, as a
    // wedged server does: the startup exchange gets no answer.
    let dir = scratch();
    let socket = dir.path().join(".s.PGSQL.5999");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let config = dir.path().join("config");
    write_switches(
        &config,
        &[
            ("db_pg_socket_dir", dir.path().display().to_string()),
            ("db_pg_port", "5999".to_owned()),
            // Connected to as it is: the connect, not the account, is
            // what this is about.
            ("db_pg_superuser", "root".to_owned()),
            ("db_connect_timeout", "1".to_owned()),
            (
                "db_state_dir",
                dir.path().join("state").display().to_string(),
            ),
        ],
    );
    let started = std::time::Instant::now();
    let out = tool("pysk-db")
        .config_dir(&config)
        .args(["pg", "setup", "--dry-run"])
        .fails_with(69);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: {}: no answer within 1 s (db_connect_timeout)\n",
            socket.display()
        ),
    );
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(8),
        "{took:?}"
    );
    // A socket that is not there names the switches that name it.
    let elsewhere = dir.path().join("elsewhere");
    write_switches(
        &elsewhere,
        &[
            ("db_pg_socket_dir", dir.path().display().to_string()),
            ("db_pg_port", "5998".to_owned()),
            ("db_pg_superuser", "root".to_owned()),
        ],
    );
    let out = tool("pysk-db")
        .config_dir(&elsewhere)
        .args(["pg", "vacuum", "--all", "--dry-run"])
        .fails_with(69);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: {}: No such file or directory (db_pg_socket_dir, db_pg_port)\n",
            dir.path().join(".s.PGSQL.5998").display()
        ),
    );
    // A refused name shows a letter of another script as its code, so a
    // look-alike never reads as the Latin word.
    let out = tool("pysk-db")
        .config_dir(&elsewhere)
        .args(["pg", "drop", "sh\u{43e}p"])
        .fails_with(65);
    assert_stderr_is(
        &out,
        "pysk-db: database \"sh\\u{43e}p\": not a name this tool takes \
         (db_name_pattern ^[a-z_][a-z0-9_]{0,62}$); nothing changed\n",
    );
}

#[test]
fn a_create_the_server_refuses_part_way_takes_back_what_it_made() {
    let Some(env) = Env::new() else { return };
    let pw = env.password("x.pw", "x secret");
    env.pg.psql("CREATE ROLE o LOGIN");
    let memberships = |role: &str| {
        env.pg.psql(&format!(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member \
             WHERE u.rolname = '{role}'"
        ))
    };
    let roles = |names: &str| {
        env.pg.psql(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ({names})"
        ))
    };
    // The roles are made in one transaction, CREATE DATABASE (which no
    // transaction can hold) then fails on a locale the server lacks: the
    // group role and the membership are taken back.
    let out = env
        .tool()
        .args([
            "pg",
            "add-db",
            "x",
            "--owner",
            "o",
            "--locale",
            "xx_YY.UTF-8",
        ])
        .fails_with(69);
    let socket = env.pg.socket_dir.join(format!(".s.PGSQL.{}", env.pg.port));
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: made the role x\n\
             pysk-db: made o a member of x\n\
             pysk-db: {}: CREATE DATABASE \"x\" OWNER \"o\" LOCALE 'xx_YY.UTF-8': invalid \
             locale name: \"xx_YY.UTF-8\" (42809); o's membership in x, the role x made by \
             this run were dropped again\n",
            socket.display()
        ),
    );
    assert_eq!(roles("'x'"), "0");
    assert_eq!(memberships("o"), "0");
    assert_eq!(roles("'o'"), "1", "the owner that was there stays");
    // create's login role goes too.
    let out = env
        .create("x2", "x2_admin", &pw)
        .args(["--locale", "xx_YY.UTF-8"])
        .fails_with(69);
    assert!(
        pysk_tests::stderr(&out).ends_with(
            "; x2_admin's membership in x2, the login role x2_admin, the role x2 made by \
             this run were dropped again\n"
        ),
        "{}",
        pysk_tests::stderr(&out)
    );
    assert_eq!(roles("'x2', 'x2_admin'"), "0");
    // An owner that exists, given another password: its ALTER ROLE comes
    // last, so the failed run leaves its password as it was.
    env.pg.psql("ALTER ROLE o PASSWORD 'o old'");
    let out = env
        .create("x4", "o", &pw)
        .args(["--locale", "xx_YY.UTF-8"])
        .fails_with(69);
    assert!(
        pysk_tests::stderr(&out)
            .ends_with("; o's membership in x4, the role x4 made by this run were dropped again\n"),
        "{}",
        pysk_tests::stderr(&out)
    );
    let login = env.pg.login("o", "o old", "postgres", "SELECT 1");
    assert!(login.status.success(), "the old password stays: {login:?}");
    assert_eq!(roles("'x4'"), "0");
    // A template without the schema public: there is nothing to grant on,
    // and the database is made.
    env.pg.psql("CREATE DATABASE bare");
    env.pg.psql_in("bare", "DROP SCHEMA public");
    let out = env
        .tool()
        .args(["pg", "add-db", "x5", "--owner", "o", "--template", "bare"])
        .succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: made the role x5\n\
         pysk-db: made o a member of x5\n\
         pysk-db: made the database x5\n",
    );
    // A grant the new database refuses (an event trigger its template
    // carries): the database made is dropped again, after the session in
    // it is closed, and the roles with it.
    env.pg.psql("CREATE DATABASE nogrant");
    env.pg.psql_in(
        "nogrant",
        "CREATE FUNCTION no_grant() RETURNS event_trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no grants here'; END $$; \
         CREATE EVENT TRIGGER no_grant ON ddl_command_start WHEN TAG IN ('GRANT') \
         EXECUTE FUNCTION no_grant()",
    );
    let out = env
        .tool()
        .args([
            "pg",
            "add-db",
            "x6",
            "--owner",
            "o",
            "--template",
            "nogrant",
        ])
        .fails_with(69);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-db: made the role x6\n\
             pysk-db: made o a member of x6\n\
             pysk-db: made the database x6\n\
             pysk-db: {}: GRANT ALL ON SCHEMA public TO \"o\": no grants here (P0001); the \
             database x6, o's membership in x6, the role x6 made by this run were dropped \
             again\n",
            socket.display()
        ),
    );
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_database WHERE datname = 'x6'"),
        "0"
    );
    assert_eq!(roles("'x6'"), "0");
    // An encoding the server does not know is a bad option, said before
    // anything is made.
    let out = env
        .create("x3", "x3_admin", &pw)
        .args(["--encoding", "NOSUCH"])
        .fails_with(2);
    assert_stderr_is(
        &out,
        "pysk-db: --encoding: \"NOSUCH\": not an encoding this server knows\n",
    );
    assert_eq!(roles("'x3', 'x3_admin'"), "0");
    // The same run, with a locale the server has, goes through: and a
    // database that is there with another encoding or locale is left as
    // it is, with a warning (in --json too).
    env.create("x2", "x2_admin", &pw)
        .args(["--locale", "C.UTF-8"])
        .succeeds();
    let same = env
        .tool()
        .args(["pg", "add-db", "x2", "--owner", "x2_admin"])
        .args(["--encoding", "utf-8", "--locale", "C.utf8"])
        .succeeds();
    assert_stderr_is(
        &same,
        "pysk-db: nothing to change: x2 exists, owned by x2_admin\n",
    );
    let out = env
        .tool()
        .args(["pg", "add-db", "x2", "--owner", "x2_admin", "--json"])
        .args(["--encoding", "LATIN1", "--locale", "C"])
        .succeeds();
    let warnings = [
        "the database x2 exists with the encoding UTF8, not LATIN1 as --encoding asks: \
         left as it is",
        "the database x2 exists with the locale C.UTF-8, not C as --locale asks: left as it is",
    ];
    assert_stderr_is(
        &out,
        &format!("pysk-db: {}\npysk-db: {}\n", warnings[0], warnings[1]),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["warnings"], serde_json::json!(warnings));
    assert_eq!(doc["changes"], serde_json::json!([]));
    assert_eq!(
        env.pg
            .psql("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'x2'"),
        "UTF8"
    );
}
