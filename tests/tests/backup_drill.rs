//! `pysk-backup drill` and `restore-db` against a real PostgreSQL 15 and
//! MariaDB 10.11 (the "production" servers, with data, roles and grants),
//! a dump set made by the tool's own `dump` and a backup made by its
//! `run` (duplicity to a `file://` target): the drill proves both
//! servers' databases in throw-away servers and writes `drills.json`; a
//! cut dump file or a miscounted manifest fails it, naming the database
//! and the tables; `--from-backup` drills the set the backup holds;
//! `restore-db` of both kinds under `--as` is compared table by table
//! (rows and a checksum of them) with the original; an existing name is
//! refused with 65; no throw-away server is left running.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use pysk_tests::backup::wait_for;
use pysk_tests::mariadb::Mariadb;
use pysk_tests::pg::Postgres;
use pysk_tests::{
    TempDir, TestCommand, require, scratch, secret_file, stderr, stdout, tool, write_switches,
};
use serde_json::Value;

/// Both production servers, a source tree holding the dump directory, a
/// duplicity target, and the tool's own temporary directory.
struct Env {
    dir: TempDir,
    pg: Postgres,
    maria: Mariadb,
}

impl Env {
    fn start() -> Option<Env> {
        require("duplicity", "duplicity")?;
        require("gpgconf", "gnupg")?;
        let dir = scratch();
        let pg = Postgres::start(&dir.path().join("pg"))?;
        let maria = Mariadb::start(&dir.path().join("maria"))?;
        let env = Env { dir, pg, maria };
        for d in ["src", "tmp"] {
            fs::create_dir(env.path(d)).expect("mkdir");
        }
        fs::set_permissions(env.path("tmp"), fs::Permissions::from_mode(0o711)).expect("chmod");
        secret_file(&env.path("passphrase"), "drill-passphrase\n");
        env.switches();
        env.fill();
        Some(env)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dumps(&self) -> PathBuf {
        self.path("src/dumps")
    }

    fn switches(&self) {
        let p = |name: &str| self.path(name).display().to_string();
        write_switches(
            &self.path("config"),
            &[
                ("backup_engine", "duplicity".into()),
                ("backup_source", p("src")),
                ("backup_target", format!("file://{}", p("target"))),
                ("backup_passphrase_file", p("passphrase")),
                ("backup_dump_dir", self.dumps().display().to_string()),
                ("backup_state_dir", p("state")),
                ("db_pg_socket_dir", self.pg.socket_dir.display().to_string()),
                ("db_pg_port", self.pg.port.to_string()),
                ("db_mysql_socket", self.maria.socket.display().to_string()),
            ],
        );
    }

    /// The tool, its temporary files below `tmp/` (to find what it
    /// leaves).
    fn pysk(&self) -> TestCommand {
        tool("pysk-backup")
            .config_dir(&self.path("config"))
            .env("TMPDIR", self.path("tmp"))
    }

    /// Roles owning and granted tables, several schemas and kinds; a
    /// MariaDB database with InnoDB and MyISAM tables and an account.
    fn fill(&self) {
        self.pg.psql(
            "CREATE ROLE shop_owner LOGIN; CREATE ROLE reporter NOLOGIN; \
             CREATE DATABASE shop OWNER shop_owner;",
        );
        self.pg.psql_in(
            "shop",
            "SET ROLE shop_owner; \
             CREATE TABLE orders (id int PRIMARY KEY, ref text); \
             INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 1200) g; \
             CREATE SCHEMA sales; CREATE TABLE sales.\"Line Items\" (id int, note text); \
             INSERT INTO sales.\"Line Items\" SELECT g, 'n' || g FROM generate_series(1, 37) g; \
             CREATE TABLE empty_one (id int); \
             GRANT SELECT ON orders TO reporter;",
        );
        self.maria.mariadb(
            "CREATE DATABASE blog; \
             CREATE TABLE blog.posts (id int PRIMARY KEY, body text) ENGINE=InnoDB; \
             USE blog; INSERT INTO posts SELECT seq, md5(seq) FROM seq_1_to_500; \
             CREATE TABLE blog.legacy (id int) ENGINE=MyISAM; \
             INSERT INTO blog.legacy VALUES (1), (2), (3); \
             CREATE USER 'blogger'@'localhost' IDENTIFIED BY 'pw'; \
             GRANT ALL ON blog.* TO 'blogger'@'localhost';",
        );
    }

    /// A tablespace `ts` in the scratch tree holding `shop`'s empty
    /// table; its directory.
    fn tablespace(&self) -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        let dir = self.path("ts");
        fs::create_dir(&dir).expect("mkdir");
        let owner = fs::metadata(&self.pg.data_dir).expect("the data directory");
        std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid())).expect("chown");
        self.pg.psql(&format!(
            "CREATE TABLESPACE ts OWNER shop_owner LOCATION '{}'",
            dir.display()
        ));
        self.pg
            .psql_in("shop", "ALTER TABLE empty_one SET TABLESPACE ts");
        dir
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.pysk().args(args).arg("--json").succeeds();
        let doc: Value = serde_json::from_str(&stdout(&out)).expect("a JSON document");
        assert_eq!(doc["version"], 1, "{doc}");
        doc
    }

    fn drills(&self) -> Value {
        let text = fs::read(self.path("state/drills.json")).expect("drills.json");
        serde_json::from_slice(&text).expect("drills.json is JSON")
    }

    /// The name of the set `current` points to.
    fn current(&self) -> String {
        let link = fs::read_link(self.dumps().join("current")).expect("current");
        link.file_name()
            .expect("a set")
            .to_string_lossy()
            .into_owned()
    }

    /// Every PostgreSQL table of `db`: its rows and an MD5 of them in
    /// order.
    fn pg_tables(&self, db: &str) -> String {
        self.pg.psql_in(
            db,
            "SELECT 'orders', count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM orders t \
             UNION ALL SELECT 'lines', count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) \
                 FROM sales.\"Line Items\" t \
             UNION ALL SELECT 'empty', count(*), md5(string_agg(t::text, ',')) FROM empty_one t",
        )
    }

    /// Every MariaDB table of `db`: its rows and an MD5 of them in order.
    fn maria_tables(&self, db: &str) -> String {
        self.maria.mariadb(&format!(
            "SELECT 'posts', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, body) ORDER BY id)) \
                 FROM `{db}`.posts \
             UNION ALL SELECT 'legacy', COUNT(*), MD5(GROUP_CONCAT(id ORDER BY id)) \
                 FROM `{db}`.legacy"
        ))
    }
}

/// The entries of `dir` (the top level: a server's `PG_<version>_…`).
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Pids whose command line contains `needle`.
fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// The drill's databases by key: (proven, tables, rows).
fn drilled(doc: &Value) -> Vec<(String, bool, u64, u64)> {
    doc["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .map(|d| {
            (
                format!(
                    "{}/{}",
                    d["server"].as_str().expect("server"),
                    d["database"].as_str().expect("database")
                ),
                d["proven"].as_bool().expect("proven"),
                d["tables"].as_u64().expect("tables"),
                d["rows"].as_u64().expect("rows"),
            )
        })
        .collect()
}

/// What a drill of the filled servers proves.
fn all_proven() -> Vec<(String, bool, u64, u64)> {
    vec![
        ("postgresql/postgres".into(), true, 0, 0),
        ("postgresql/shop".into(), true, 3, 1237),
        ("mariadb/blog".into(), true, 2, 503),
        ("mariadb/test".into(), true, 0, 0),
    ]
}

#[test]
fn the_drill_proves_both_servers_and_fails_on_a_cut_or_miscounted_dump() {
    let Some(env) = Env::start() else {
        return;
    };
    let tablespace = env.tablespace();
    let tablespace_before = entries(&tablespace);
    assert_eq!(tablespace_before.len(), 1, "{tablespace_before:?}");
    env.pysk().arg("dump").succeeds();
    let set = env.current();
    let doc = env.json(&["drill"]);
    assert_eq!(drilled(&doc), all_proven(), "{doc}");
    assert_eq!(
        entries(&tablespace),
        tablespace_before,
        "the drill wrote in the production tablespace"
    );
    assert_eq!(
        (doc["set"].as_str(), doc["from_backup"].as_bool()),
        (Some(set.as_str()), Some(false))
    );
    let drills = env.drills();
    assert_eq!(drills["version"], 1);
    let keys: Vec<&String> = drills["databases"]
        .as_object()
        .expect("map")
        .keys()
        .collect();
    assert_eq!(
        keys,
        [
            "mariadb/blog",
            "mariadb/test",
            "postgresql/postgres",
            "postgresql/shop"
        ]
    );
    assert_eq!(drills["databases"]["postgresql/shop"]["set"], set.as_str());
    assert_eq!(drills["databases"]["postgresql/shop"]["tables"], 3);
    let shop_proven = drills["databases"]["postgresql/shop"]["proven"].clone();
    let tmp = env.path("tmp").display().to_string();
    assert_eq!(
        pids_with_cmdline(&tmp),
        Vec::<u32>::new(),
        "a throw-away server is left"
    );
    assert_eq!(
        fs::read_dir(env.path("tmp")).expect("tmp").count(),
        0,
        "temporary files left"
    );

    // A cut PostgreSQL dump: that database fails, the others are proven.
    let shop = env.dumps().join("current/postgresql/shop.dump");
    let whole = fs::read(&shop).expect("the dump");
    fs::write(&shop, &whole[..whole.len() / 2]).expect("cut");
    let out = env.pysk().arg("drill").fails_with(1);
    let err = stderr(&out);
    assert!(
        err.contains("pysk-backup: postgresql/shop: ") && err.contains("shop.dump"),
        "{err}"
    );
    assert!(
        err.contains("the drill failed for 1 of 4 databases: postgresql/shop\n"),
        "{err}"
    );
    assert!(
        err.contains("pysk-backup: mariadb/blog: proven, 2 tables, 503 rows"),
        "{err}"
    );
    fs::write(&shop, &whole).expect("mend");
    let drills = env.drills();
    assert_eq!(
        drills["databases"]["postgresql/shop"]["proven"], shop_proven,
        "a failed drill keeps the last proof"
    );
    let blog_proven = drills["databases"]["mariadb/blog"]["proven"].clone();

    // A cut MariaDB dump.
    let blog = env.dumps().join("current/mariadb/blog.sql.gz");
    let whole = fs::read(&blog).expect("the dump");
    fs::write(&blog, &whole[..whole.len() - 40]).expect("cut");
    let out = env.pysk().arg("drill").fails_with(1);
    assert!(
        stderr(&out).contains("the drill failed for 1 of 4 databases: mariadb/blog\n"),
        "{}",
        stderr(&out)
    );
    fs::write(&blog, &whole).expect("mend");
    assert_eq!(
        env.drills()["databases"]["mariadb/blog"]["proven"],
        blog_proven,
        "a failed drill keeps the last proof"
    );

    // A manifest whose count differs from the dump's rows.
    let manifest = env.dumps().join("current/manifest.json");
    let text = fs::read_to_string(&manifest).expect("manifest");
    fs::write(
        &manifest,
        text.replace("\"public.orders\": 1200", "\"public.orders\": 1201"),
    )
    .expect("edit");
    let out = env.pysk().arg("drill").fails_with(1);
    let err = stderr(&out);
    assert!(
        err.contains("pysk-backup: postgresql/shop: row counts differ: public.orders (recorded 1201, restored 1200)\n"),
        "{err}"
    );
    assert_eq!(
        pids_with_cmdline(&tmp),
        Vec::<u32>::new(),
        "a throw-away server is left"
    );
}

#[test]
fn restore_db_brings_back_both_kinds_from_the_set_and_the_backup() {
    let Some(env) = Env::start() else {
        return;
    };
    env.pysk().arg("dump").succeeds();
    env.pysk().arg("run").succeeds();
    let backed = env.current();
    // A newer set that the backup does not hold.
    env.pg.psql_in("shop", "DELETE FROM orders WHERE id > 1000");
    env.maria.mariadb("DELETE FROM blog.posts WHERE id > 400");
    env.pysk().args(["dump", "--force"]).succeeds();
    assert_ne!(env.current(), backed);

    assert!(!env.path("state/verified.json").exists());
    let out = env
        .pysk()
        .args(["drill", "--from-backup", "--json"])
        .succeeds();
    // The document replaces the lines, as with dump --json.
    assert_eq!(stderr(&out), "");
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("a JSON document");
    assert_eq!(drilled(&doc), all_proven(), "{doc}");
    assert_eq!(
        (doc["set"].as_str(), doc["from_backup"].as_bool()),
        (Some(backed.as_str()), Some(true))
    );
    // What the drill read back is proven, as a verify proves it:
    // retention keeps that chain.
    let proven: Value =
        serde_json::from_slice(&fs::read(env.path("state/verified.json")).expect("verified.json"))
            .expect("JSON");
    let status = env.json(&["status"]);
    assert_eq!(
        (&proven["version"], &proven["engine"], &proven["backup"]),
        (&1.into(), &"duplicity".into(), &status["last_full"]),
        "{proven} {status}"
    );

    let status = stdout(&env.pysk().arg("status").succeeds());
    assert!(
        status.contains(&format!(
            "\nrestore proven: postgresql/shop at {} (dump set {backed}, 3 tables)\n",
            env.drills()["databases"]["postgresql/shop"]["proven"]
                .as_str()
                .expect("a time")
        )),
        "{status}"
    );

    // From the local set: the rows as they are now.
    let out = env
        .pysk()
        .args(["restore-db", "shop", "--as", "shop_now", "--dry-run"])
        .succeeds();
    assert_eq!(
        stdout(&out),
        format!(
            "would restore PostgreSQL database shop of the dump set {} as shop_now\n",
            env.current()
        )
    );
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_database WHERE datname = 'shop_now'"),
        "0"
    );
    env.pysk()
        .args(["restore-db", "shop", "--as", "shop_now"])
        .succeeds();
    assert_eq!(env.pg_tables("shop_now"), env.pg_tables("shop"));
    assert!(
        env.pg_tables("shop").starts_with("orders|1000|"),
        "{}",
        env.pg_tables("shop")
    );
    assert_eq!(
        env.pg.psql_in("shop_now", "SELECT tableowner, has_table_privilege('reporter', 'orders', 'SELECT') FROM pg_tables WHERE tablename = 'orders'"),
        "shop_owner|t",
        "owners and grants kept"
    );
    env.pysk()
        .args(["restore-db", "blog", "--as", "blog_now"])
        .succeeds();
    assert_eq!(env.maria_tables("blog_now"), env.maria_tables("blog"));

    // From the backup: the rows as they were.
    let shop_then = env.pg_tables("shop");
    env.pysk()
        .args([
            "restore-db",
            "postgresql/shop",
            "--as",
            "shop_then",
            "--time",
            "now",
        ])
        .succeeds();
    let then = env.pg_tables("shop_then");
    assert!(
        then.starts_with("orders|1200|") && then != shop_then,
        "{then}"
    );
    env.pysk()
        .args(["restore-db", "blog", "--as", "blog_then", "--time", "now"])
        .succeeds();
    assert!(
        env.maria_tables("blog_then").starts_with("posts\t500\t"),
        "{}",
        env.maria_tables("blog_then")
    );

    // Names that are taken, unknown or against the rule change nothing.
    let out = env.pysk().args(["restore-db", "shop"]).fails_with(65);
    assert!(
        stderr(&out).contains("PostgreSQL database shop exists already"),
        "{}",
        stderr(&out)
    );
    let out = env
        .pysk()
        .args(["restore-db", "blog", "--as", "blog_now"])
        .fails_with(65);
    assert!(
        stderr(&out).contains("MariaDB database blog_now exists already"),
        "{}",
        stderr(&out)
    );
    let out = env.pysk().args(["restore-db", "nothere"]).fails_with(65);
    assert!(
        stderr(&out).contains("nothere: no such database in the dump set"),
        "{}",
        stderr(&out)
    );
    env.pysk()
        .args(["restore-db", "shop", "--as", "Bad-Name"])
        .fails_with(65);
    assert_eq!(env.pg_tables("shop_now"), env.pg_tables("shop"));

    // A cut dump is refused before anything is made.
    let shop = env.dumps().join("current/postgresql/shop.dump");
    let whole = fs::read(&shop).expect("the dump");
    fs::write(&shop, &whole[..whole.len() - 1]).expect("cut");
    let out = env
        .pysk()
        .args(["restore-db", "shop", "--as", "shop_cut"])
        .fails_with(1);
    assert!(
        stderr(&out).contains("but the manifest records"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.pg
            .psql("SELECT count(*) FROM pg_database WHERE datname = 'shop_cut'"),
        "0"
    );
}

/// The command name (`comm`) of `pid`.
fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A server left from a killed drill, as one started before the servers
/// died with their drill would be: `mariadbd` as `mysql` on the killed
/// drill's data, its pid file where the drill writes it.
fn leftover_mariadbd(drill_dir: &std::path::Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let dir = drill_dir.join("mariadb");
    let owner = fs::metadata(&dir).expect("the killed drill's MariaDB");
    let d = |name: &str| dir.join(name).display().to_string();
    let child = std::process::Command::new("mariadbd")
        .args([
            "--no-defaults".to_owned(),
            format!("--datadir={}", d("data")),
            format!("--tmpdir={}", d("tmp")),
            format!("--socket={}", d("left.sock")),
            "--skip-networking".into(),
            format!("--pid-file={}", d("mariadbd.pid")),
            format!("--log-error={}", d("left.log")),
            "--innodb-log-file-size=16M".into(),
            "--innodb-use-native-aio=0".into(),
        ])
        .uid(std::os::unix::fs::MetadataExt::uid(&owner))
        .gid(std::os::unix::fs::MetadataExt::gid(&owner))
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mariadbd");
    let pid = child.id().to_string();
    wait_for("the leftover server's pid file", || {
        let text = fs::read_to_string(dir.join("mariadbd.pid")).unwrap_or_default();
        (text.trim() == pid).then_some(())
    });
    child
}

#[test]
fn a_killed_drill_leaves_no_server_running_and_the_next_drill_sweeps_its_directory() {
    let Some(env) = Env::start() else {
        return;
    };
    // Enough rows that the drill is still loading when it is killed.
    env.maria.mariadb(
        "CREATE TABLE blog.bulk (id int PRIMARY KEY, v text) ENGINE=InnoDB; \
         USE blog; INSERT INTO bulk SELECT seq, repeat(md5(seq), 4) FROM seq_1_to_300000;",
    );
    env.pysk().arg("run").succeeds();
    let tmp = env.path("tmp").display().to_string();
    let mut drill = env.pysk().args(["drill", "--from-backup"]).spawn();
    wait_for("the drill's mariadb client loading", || {
        pids_with_cmdline(&tmp)
            .into_iter()
            .find(|&pid| comm(pid) == "mariadb")
    });
    drill.kill().expect("SIGKILL");
    drill.wait().expect("wait");
    wait_for("every throw-away server gone with the drill", || {
        pids_with_cmdline(&tmp).is_empty().then_some(())
    });
    let left: Vec<PathBuf> = fs::read_dir(env.path("tmp"))
        .expect("tmp")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(left.len(), 1, "only the drill's own directory: {left:?}");
    // The set fetched from the backup (decrypted dumps) lies below the
    // state directory, in a directory only root may enter.
    let fetch = env.path("state/fetch");
    let fetched: Vec<String> = fs::read_dir(&fetch)
        .expect("state/fetch")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        fetched.len() == 1 && fetched[0].starts_with("pysk-fetch-"),
        "{fetched:?}"
    );
    let mode = fs::metadata(&fetch)
        .expect("state/fetch")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // A server still running in it is stopped, the directories removed.
    let mut server = leftover_mariadbd(&left[0]);
    let out = env.pysk().args(["drill", "--from-backup"]).succeeds();
    assert!(
        stderr(&out).contains(&format!(
            "pysk-backup: stopping a killed drill's server (pid {}) in {}\n",
            server.id(),
            left[0].display()
        )),
        "{}",
        stderr(&out)
    );
    let status = server.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert_eq!(pids_with_cmdline(&tmp), Vec::<u32>::new());
    assert_eq!(fs::read_dir(env.path("tmp")).expect("tmp").count(), 0);
    assert_eq!(fs::read_dir(&fetch).expect("state/fetch").count(), 0);
    assert_eq!(
        env.drills()["databases"]["mariadb/blog"]["tables"],
        3,
        "the next drill proves the database"
    );
}

#[test]
fn a_latin1_database_keeps_its_encoding_owner_and_character_set() {
    let Some(env) = Env::start() else {
        return;
    };
    env.pg.psql(
        "CREATE DATABASE legacy ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' \
         TEMPLATE template0 OWNER shop_owner",
    );
    env.pg.psql_in(
        "legacy",
        "SET ROLE shop_owner; CREATE TABLE names (n text); \
         INSERT INTO names VALUES ('Müller'), ('Señor');",
    );
    // A routine made under utf8mb4, then the database's default changed:
    // the dump wraps the routine in ALTER DATABASE `old` lines.
    env.maria.mariadb(
        "CREATE DATABASE old CHARACTER SET utf8mb4; \
         CREATE TABLE old.names (n varchar(20)) CHARACTER SET latin1; \
         INSERT INTO old.names VALUES ('Müller'); \
         CREATE PROCEDURE old.hello() SELECT 1; \
         ALTER DATABASE old CHARACTER SET latin1 COLLATE latin1_swedish_ci;",
    );
    env.pysk().arg("dump").succeeds();
    let gunzip = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(env.dumps().join("current/mariadb/old.sql.gz"))
        .output()
        .expect("gzip");
    let sql = String::from_utf8_lossy(&gunzip.stdout);
    assert!(
        sql.contains("\nALTER DATABASE `old` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;\n"),
        "{sql}"
    );
    let doc = env.json(&["drill"]);
    let legacy = drilled(&doc)
        .into_iter()
        .filter(|d| d.0 == "postgresql/legacy" || d.0 == "mariadb/old")
        .collect::<Vec<_>>();
    assert_eq!(
        legacy,
        [
            ("postgresql/legacy".to_owned(), true, 1, 2),
            ("mariadb/old".to_owned(), true, 1, 1)
        ],
        "{doc}"
    );

    env.pysk()
        .args(["restore-db", "legacy", "--as", "legacy_copy"])
        .succeeds();
    assert_eq!(
        env.pg.psql(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype, \
             pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'legacy_copy'"
        ),
        "LATIN1|C|C|shop_owner"
    );
    assert_eq!(
        env.pg.psql_in(
            "legacy_copy",
            "SELECT string_agg(n, ',' ORDER BY n) FROM names"
        ),
        "Müller,Señor"
    );
    // The copy of a dropped original: its ALTER DATABASE lines name the
    // copy, never `old`.
    env.maria.mariadb("DROP DATABASE old");
    env.pysk()
        .args(["restore-db", "old", "--as", "old_copy"])
        .succeeds();
    assert_eq!(
        env.maria.mariadb(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'old%'"
        ),
        "old_copy\tlatin1\tlatin1_swedish_ci"
    );
    assert_eq!(env.maria.mariadb("SELECT n FROM old_copy.names"), "Müller");
    assert_eq!(
        env.maria.mariadb(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES \
             WHERE ROUTINE_NAME = 'hello'"
        ),
        "old_copy\thello"
    );
}
