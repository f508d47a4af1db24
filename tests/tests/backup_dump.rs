//! `pysk-backup dump` against a real PostgreSQL 15 and MariaDB 10.11 with
//! data, roles and grants: the manifest checked exactly against the files
//! (sizes, SHA-256 by `sha256sum`, row counts), the dumps restored by
//! `pg_restore` and `mariadb` into second databases; `--only`,
//! `--exclude`, `--dry-run`; a shrunken dump; a missing socket; dump
//! connections terminated by the servers while the dumper waits on a lock
//! (never by timing), dumpers that exit 0 with output that is not whole
//! (stand-ins first on `PATH` around the real ones), and a run killed with
//! SIGKILL, each leaving the last good set as `current`, byte for byte,
//! and no staging directory.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use pysk_tests::backup::{
    children, hold_pg_lock, pg_args, release_pg, snapshot, staging, wait_for, waiting_pg_dump,
};
use pysk_tests::mariadb::Mariadb;
use pysk_tests::pg::Postgres;
use pysk_tests::tmpfs::Tmpfs;
use pysk_tests::{TempDir, TestCommand, scratch, stderr, stdout, tool, write_switches};

/// Both servers and where the tool keeps its dumps.
struct Env {
    dir: TempDir,
    pg: Postgres,
    maria: Mariadb,
    config: PathBuf,
    dumps: PathBuf,
}

impl Env {
    /// Both servers started, filled, and the switches pointing at them.
    fn start() -> Option<Env> {
        let dir = scratch();
        let pg = Postgres::start(&dir.path().join("pg"))?;
        let maria = Mariadb::start(&dir.path().join("maria"))?;
        let env = Env {
            config: dir.path().join("config"),
            dumps: dir.path().join("dumps"),
            dir,
            pg,
            maria,
        };
        env.switches(&env.maria.socket.display().to_string());
        env.fill();
        Some(env)
    }

    /// The switches, MariaDB's socket at `mysql_socket`.
    fn switches(&self, mysql_socket: &str) {
        self.switches_with(mysql_socket, self.pg.port);
    }

    /// The switches, MariaDB's socket at `mysql_socket` and PostgreSQL's
    /// port `pg_port`.
    fn switches_with(&self, mysql_socket: &str, pg_port: u16) {
        let path = |p: &Path| p.display().to_string();
        write_switches(
            &self.config,
            &[
                ("backup_dump_dir", path(&self.dumps)),
                ("backup_state_dir", path(&self.dir.path().join("state"))),
                ("backup_lock_wait_timeout", "300".into()),
                ("db_pg_socket_dir", path(&self.pg.socket_dir)),
                ("db_pg_port", pg_port.to_string()),
                ("db_mysql_socket", mysql_socket.into()),
            ],
        );
    }

    fn pysk(&self) -> TestCommand {
        tool("pysk-backup").config_dir(&self.config)
    }

    /// Roles, grants and tables of several kinds on both servers.
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
             CREATE TABLE events (id int, at date) PARTITION BY RANGE (at); \
             CREATE TABLE events_2026 PARTITION OF events \
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01'); \
             INSERT INTO events SELECT g, '2026-03-01' FROM generate_series(1, 5) g; \
             GRANT SELECT ON orders TO reporter;",
        );
        self.maria.mariadb(
            "CREATE DATABASE blog; \
             CREATE TABLE blog.posts (id int PRIMARY KEY, body text) ENGINE=InnoDB; \
             USE blog; INSERT INTO posts SELECT seq, md5(seq) FROM seq_1_to_10; \
             CREATE TABLE blog.legacy (id int) ENGINE=MyISAM; \
             INSERT INTO blog.legacy VALUES (1), (2), (3); \
             CREATE USER 'blogger'@'localhost' IDENTIFIED BY 'pw'; \
             GRANT ALL ON blog.* TO 'blogger'@'localhost';",
        );
    }

    /// The manifest of the set `current` names.
    fn manifest(&self) -> serde_json::Value {
        let text = fs::read(self.dumps.join("current/manifest.json")).expect("the manifest");
        serde_json::from_slice(&text).expect("the manifest is JSON")
    }

    /// Runs a PostgreSQL program as the `postgres` account, `input` (a
    /// file only root may read) on its stdin.
    fn as_postgres(&self, program: &str, args: &[&str], input: &Path) -> Output {
        let owner = fs::metadata(&self.pg.data_dir).expect("the data directory");
        Command::new(self.pg.bin_dir.join(program))
            .args(args)
            .stdin(fs::File::open(input).expect("the input"))
            .uid(owner.uid())
            .gid(owner.gid())
            .current_dir("/")
            .output()
            .expect("run a PostgreSQL program")
    }

    fn pg_args(&self) -> Vec<String> {
        pg_args(&self.pg)
    }
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a sum")
        .to_owned()
}

#[test]
fn a_full_dump_of_both_servers_is_exact_and_restores() {
    let Some(env) = Env::start() else {
        return;
    };
    let out = env.pysk().args(["dump", "--dry-run"]).succeeds();
    assert_eq!(
        stdout(&out),
        "would dump PostgreSQL globals\nwould dump PostgreSQL database postgres\n\
         would dump PostgreSQL database shop\nwould dump MariaDB grants\n\
         would dump MariaDB database blog\nwould dump MariaDB database test\n"
    );
    assert!(!env.dumps.exists(), "a dry run writes nothing");
    assert!(!env.dir.path().join("state").exists(), "nor a lock file");

    let out = env.pysk().args(["dump", "--json"]).succeeds();
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(summary["version"], 1);
    assert_eq!(summary["dry_run"], false);
    assert_eq!(
        stderr(&out),
        "pysk-backup: the dump of MariaDB database blog: not transactional, so not \
         consistent with the rest of the dump: legacy\n"
    );
    let manifest = env.manifest();
    assert_eq!(summary["dumps"], manifest["dumps"]);
    let set = fs::canonicalize(env.dumps.join("current")).expect("current");
    assert_eq!(summary["set"], set.display().to_string());
    check_manifest(&set, &manifest);
    check_modes(&env.dumps);
    restore_postgres(&env, &set);
    restore_mariadb(&env, &set);
}

/// Every dump named with its file, size, SHA-256 and row counts, exactly.
fn check_manifest(set: &Path, manifest: &serde_json::Value) {
    assert_eq!(manifest["version"], 1);
    let dumps = manifest["dumps"].as_array().expect("dumps");
    let described: Vec<String> = dumps
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {} {}",
                d["server"], d["kind"], d["database"], d["file"], d["tables"], d["rows"]
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            r#""postgresql" "globals" null "postgresql/globals.sql" {} "exact""#,
            r#""postgresql" "database" "postgres" "postgresql/postgres.dump" {} "exact""#,
            r#""postgresql" "database" "shop" "postgresql/shop.dump" {"public.events_2026":5,"public.orders":1200,"sales.Line Items":37} "exact""#,
            r#""mariadb" "grants" null "mariadb/grants.sql.gz" {} "exact""#,
            r#""mariadb" "database" "blog" "mariadb/blog.sql.gz" {"legacy":3,"posts":10} "estimate""#,
            r#""mariadb" "database" "test" "mariadb/test.sql.gz" {} "estimate""#,
        ]
    );
    assert_eq!(dumps[4]["myisam"], serde_json::json!(["legacy"]));
    let mut files = vec!["manifest.json".to_owned()];
    for d in dumps {
        let path = set.join(d["file"].as_str().expect("file"));
        assert_eq!(d["bytes"], fs::metadata(&path).expect("the dump").len());
        assert_eq!(d["sha256"], sha256sum(&path));
        files.push(d["file"].as_str().expect("file").to_owned());
    }
    files.sort();
    let mut found: Vec<String> = snapshot(set)
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found, files,
        "the set holds its dumps and the manifest only"
    );
    let globals = fs::read_to_string(set.join("postgresql/globals.sql")).expect("globals");
    assert!(globals.contains("\nCREATE ROLE shop_owner;\n"), "{globals}");
    assert!(globals.contains("\nCREATE ROLE reporter;\n"), "{globals}");
    let grants = zcat(&set.join("mariadb/grants.sql.gz"));
    assert!(
        grants.contains("\nGRANT ALL PRIVILEGES ON `blog`.* TO `blogger`@`localhost`;\n"),
        "{grants}"
    );
    assert!(
        grants.contains(
            "\nCREATE USER IF NOT EXISTS `blogger`@`localhost` IDENTIFIED BY PASSWORD '*"
        )
    );
}

fn zcat(path: &Path) -> String {
    let out = Command::new("zcat").arg(path).output().expect("zcat");
    assert!(out.status.success(), "zcat {}", path.display());
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Dumps are 0600 and directories 0700.
fn check_modes(dumps: &Path) {
    let mut todo = vec![dumps.to_path_buf()];
    while let Some(d) = todo.pop() {
        assert_eq!(
            fs::metadata(&d).expect("dir").mode() & 0o7777,
            0o700,
            "{}",
            d.display()
        );
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                assert_eq!(
                    meta.permissions().mode() & 0o7777,
                    0o600,
                    "{}",
                    path.display()
                );
            }
        }
    }
}

/// `pg_restore --list` names the tables' data; the dump restored into a
/// second database has the same rows.
fn restore_postgres(env: &Env, set: &Path) {
    let file = set.join("postgresql/shop.dump");
    let list = env.as_postgres("pg_restore", &["--list"], &file);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains(" TABLE DATA public orders shop_owner\n"),
        "{list}"
    );
    assert!(
        list.contains(" TABLE DATA sales Line Items shop_owner\n"),
        "{list}"
    );
    env.pg.psql("CREATE DATABASE shop_copy");
    let mut args: Vec<String> = env.pg_args();
    args.extend(["--exit-on-error".into(), "--dbname=shop_copy".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.as_postgres("pg_restore", &args, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = "SELECT (SELECT count(*) FROM orders) || ' ' || \
                 (SELECT count(*) FROM sales.\"Line Items\") || ' ' || \
                 (SELECT count(*) FROM events) || ' ' || \
                 (SELECT sum(length(ref)) FROM orders)";
    assert_eq!(
        env.pg.psql_in("shop_copy", count),
        env.pg.psql_in("shop", count)
    );
    assert_eq!(env.pg.psql_in("shop_copy", count), "1200 37 5 38400");
    let grants = "SELECT has_table_privilege('reporter', 'orders', 'SELECT')";
    assert_eq!(env.pg.psql_in("shop_copy", grants), "t");
}

/// The dump fed to `mariadb` into a second database has the same rows.
fn restore_mariadb(env: &Env, set: &Path) {
    env.maria.mariadb("CREATE DATABASE blog_copy");
    let script = format!(
        "zcat '{}' | mariadb --no-defaults --socket='{}' -u root blog_copy",
        set.join("mariadb/blog.sql.gz").display(),
        env.maria.socket.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |db: &str| {
        env.maria.mariadb(&format!(
            "SELECT (SELECT COUNT(*) FROM {db}.posts), (SELECT COUNT(*) FROM {db}.legacy), \
             (SELECT GROUP_CONCAT(body ORDER BY id) FROM {db}.posts)"
        ))
    };
    assert_eq!(count("blog_copy"), count("blog"));
    assert!(count("blog_copy").starts_with("10\t3\t"));
}

#[test]
fn selection_shrinking_and_missing_servers() {
    let Some(env) = Env::start() else {
        return;
    };
    let out = env.pysk().args(["dump", "--only", "nosuch"]).fails_with(65);
    assert_eq!(
        stderr(&out),
        "pysk-backup: --only nosuch: no such database on the servers dumped; nothing changed\n"
    );
    let out = env
        .pysk()
        .args(["-q", "dump", "--only", "shop", "--only", "blog"])
        .succeeds();
    assert_eq!(stderr(&out), "", "blog's MyISAM table is no news under -q");
    assert_eq!(
        files(&env),
        [
            "postgresql/globals.sql",
            "postgresql/shop.dump",
            "mariadb/grants.sql.gz",
            "mariadb/blog.sql.gz"
        ]
    );
    let first = fs::read_link(env.dumps.join("current")).expect("current");
    let first = first
        .file_name()
        .expect("a set")
        .to_string_lossy()
        .into_owned();
    env.pysk()
        .args(["-q", "dump", "--postgres", "--exclude", "postgres"])
        .succeeds();
    assert_eq!(
        files(&env),
        [
            "postgresql/globals.sql",
            "postgresql/shop.dump",
            "mariadb/grants.sql.gz",
            "mariadb/blog.sql.gz"
        ],
        "MariaDB, left out, is carried over; the excluded database is not"
    );
    let dumps = env.manifest()["dumps"].clone();
    let marks: Vec<_> = (0..4)
        .map(|i| (&dumps[i]["carried"], &dumps[i]["from"]))
        .collect();
    let (yes, from) = (serde_json::json!(true), serde_json::json!(first));
    let carried = (&yes, &from);
    let null = &serde_json::Value::Null;
    assert_eq!(marks, [(null, null), (null, null), carried, carried]);
    let out = env.pysk().args(["-v", "dump"]).succeeds();
    assert_eq!(files(&env).len(), 6);
    assert!(
        stderr(&out)
            .contains("pysk-backup: the dump of PostgreSQL database shop: postgresql/shop.dump (")
    );

    shrinking(&env);
    selection_edges(&env);
    missing_and_unreachable_sockets(&env);
}

/// A dump that shrank below half of the last good one fails the run,
/// unless `--force`.
fn shrinking(env: &Env) {
    let before = snapshot(&env.dumps);
    let last = env.manifest()["dumps"][2]["bytes"].as_u64().expect("bytes");
    env.pg.psql_in("shop", "DELETE FROM orders WHERE id > 20");
    let out = env.pysk().args(["dump"]).fails_with(1);
    let text = stderr(&out);
    let (_, said) = text
        .split_once("pysk-backup: the dump of PostgreSQL database shop failed: ")
        .expect(&text);
    let end = format!(
        " bytes, less than 50 % of the last good dump's {last} bytes \
         (backup_shrink_percent); keep it with --force\n"
    );
    let now: u64 = said.strip_suffix(&end).expect(said).parse().expect("bytes");
    assert!(now * 2 < last);
    assert_eq!(snapshot(&env.dumps), before, "the last good set is kept");
    assert!(staging(&env.dumps).is_empty());
    let out = env.pysk().args(["dump", "--force"]).succeeds();
    assert!(stderr(&out).contains(&format!(
        "pysk-backup: the dump of PostgreSQL database shop: {now} bytes, less than 50 % \
         of the last good dump's {last} bytes; kept (--force)\n"
    )));
    assert_eq!(env.manifest()["dumps"][2]["bytes"], now);
    assert_eq!(env.manifest()["dumps"][2]["tables"]["public.orders"], 20);
}

/// `--only` and `--exclude` naming one database is a usage error; then
/// [`not_databases`] and [`only_edges`].
fn selection_edges(env: &Env) {
    let before = snapshot(&env.dumps);
    let out = env
        .pysk()
        .args(["dump", "--only", "shop", "--exclude", "shop"])
        .fails_with(2);
    assert_eq!(
        stderr(&out),
        "pysk-backup: --exclude: shop is also named by --only; name it in one of them\n"
    );
    assert_eq!(snapshot(&env.dumps), before);
    not_databases(env);
    only_edges(env);
}

/// A PostgreSQL database that takes no connections is named as skipped
/// (and `--only` of it refused); MariaDB's `#mysql50#` names are no
/// databases to dump; the MyISAM note is printed at normal verbosity.
fn not_databases(env: &Env) {
    env.pg.psql("CREATE DATABASE archive");
    env.pg
        .psql("ALTER DATABASE archive WITH ALLOW_CONNECTIONS false");
    fs::create_dir(env.maria.data_dir.join("lost+found")).expect("lost+found");
    env.maria.mariadb("CREATE DATABASE gone");
    assert!(
        env.maria
            .mariadb("SHOW DATABASES")
            .contains("#mysql50#lost+found")
    );
    let out = env.pysk().args(["dump", "--json"]).succeeds();
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        summary["skipped"],
        serde_json::json!([{"server": "postgresql", "database": "archive",
            "reason": "it takes no connections (datallowconn is false)"}])
    );
    assert_eq!(
        stderr(&out),
        "pysk-backup: the dump of MariaDB database blog: not transactional, so not \
         consistent with the rest of the dump: legacy\n",
        "at normal verbosity the MyISAM table is named"
    );
    assert_eq!(summary["dumps"][4]["myisam"], serde_json::json!(["legacy"]));
    assert_eq!(
        files(env)[5..],
        ["mariadb/gone.sql.gz", "mariadb/test.sql.gz"]
    );
    let out = env
        .pysk()
        .args(["dump", "--only", "archive"])
        .fails_with(65);
    assert_eq!(
        stderr(&out),
        "pysk-backup: --only archive: it takes no connections (datallowconn is false); \
         nothing changed\n"
    );
}

/// Under `--only`, a database gone from its server is not carried over,
/// and a server the selection leaves nothing to dump is not connected, so
/// a broken one (a socket nobody serves) does not fail the run.
fn only_edges(env: &Env) {
    env.maria.mariadb("DROP DATABASE gone");
    let dead = env.pg.socket_dir.join(".s.PGSQL.1");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    env.switches_with(&env.maria.socket.display().to_string(), 1);
    let out = env.pysk().args(["-q", "dump", "--only", "blog"]).succeeds();
    assert_eq!(
        stderr(&out),
        "pysk-backup: MariaDB database gone is no longer on the server; not carried over\n"
    );
    let all = [
        "postgresql/globals.sql",
        "postgresql/postgres.dump",
        "postgresql/shop.dump",
        "mariadb/grants.sql.gz",
        "mariadb/blog.sql.gz",
        "mariadb/test.sql.gz",
    ];
    assert_eq!(files(env), all);
    let dumps = env.manifest()["dumps"].clone();
    let carried: Vec<_> = (0..6).map(|i| dumps[i]["carried"] == true).collect();
    assert_eq!(carried, [true, true, true, false, false, true]);

    let dead = env.dir.path().join("dead-maria.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    env.switches(&dead.display().to_string());
    let out = env.pysk().args(["dump", "--only", "shop"]).succeeds();
    let text = stderr(&out);
    assert!(
        text.starts_with(
            "pysk-backup: PostgreSQL database archive: skipped, it takes no connections \
             (datallowconn is false)\n"
        ),
        "{text}"
    );
    let mut shop_first = all;
    shop_first.swap(1, 2);
    assert_eq!(
        files(env),
        shop_first,
        "the new dump before the carried ones"
    );
    env.switches(&env.maria.socket.display().to_string());
}

/// The database files of the current set, in order.
fn files(env: &Env) -> Vec<String> {
    env.manifest()["dumps"]
        .as_array()
        .expect("dumps")
        .iter()
        .map(|d| d["file"].as_str().expect("file").to_owned())
        .collect()
}

/// A server the last set had whose socket is gone fails the run; asked
/// for, it is unavailable (69); a socket nobody serves is too.
fn missing_and_unreachable_sockets(env: &Env) {
    let gone = env.dir.path().join("gone.sock");
    env.switches(&gone.display().to_string());
    let before = snapshot(&env.dumps);
    let out = env.pysk().args(["dump"]).fails_with(1);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-backup: the dump of MariaDB failed: its socket {} is gone, but the last \
             good dump set has its dumps (--force drops them; --postgres or --mysql carries \
             them over)\n",
            gone.display()
        )
    );
    let out = env.pysk().args(["dump", "--mysql"]).fails_with(69);
    assert_eq!(
        stderr(&out),
        format!(
            "pysk-backup: {}: no such socket: is the server running?\n",
            gone.display()
        )
    );
    assert_eq!(snapshot(&env.dumps), before);
    env.pysk().args(["-q", "dump", "--postgres"]).succeeds();
    assert_eq!(files(env).len(), 6, "MariaDB's dumps carried over");
    env.pysk().args(["dump"]).fails_with(1);
    let out = env.pysk().args(["dump", "--force"]).succeeds();
    assert!(
        stderr(&out).starts_with(&format!(
            "pysk-backup: MariaDB: skipped, no socket {}; its dumps of the last good set \
             dropped (--force)\n",
            gone.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(files(env).len(), 3);

    // A socket file nobody listens on.
    let dead = env.dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    env.switches(&dead.display().to_string());
    let out = env.pysk().args(["dump", "--mysql"]).fails_with(69);
    assert!(
        stderr(&out).starts_with(&format!("pysk-backup: {}: ", dead.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dumps_killed_mid_dump_keep_the_last_good_set() {
    let Some(env) = Env::start() else {
        return;
    };
    env.pysk().args(["-q", "dump"]).succeeds();
    let good = snapshot(&env.dumps);

    // pg_dump waits for the lock on events, held by another session (our
    // own session counts its partition, which needs no lock on it).
    let blocker = hold_pg_lock(&env.pg, "shop", "events");
    let run = env.pysk().args(["dump", "--postgres"]).spawn();
    let pid = waiting_pg_dump(&env.pg);
    env.pg.psql(&format!("SELECT pg_terminate_backend({pid})"));
    let out = run.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "pysk-backup: the dump of PostgreSQL database shop failed: pg_dump exited with 1: \
             pg_dump: error: "
        ),
        "{}",
        stderr(&out)
    );
    release_pg(&env.pg, blocker);
    assert_eq!(
        snapshot(&env.dumps),
        good,
        "the last good set, byte for byte"
    );
    assert!(staging(&env.dumps).is_empty());

    // mariadb-dump waits for mysql.event (its --events), locked elsewhere.
    let blocker = hold_mariadb_lock(&env);
    let run = env.pysk().args(["dump", "--mysql"]).spawn();
    let id = wait_for("mariadb-dump waiting on show events", || {
        let list = env.maria.mariadb(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE INFO = 'show events' AND STATE LIKE 'Waiting%'",
        );
        (!list.is_empty()).then_some(list)
    });
    env.maria.mariadb(&format!("KILL {id}"));
    let out = run.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "pysk-backup: the dump of MariaDB database blog failed: mariadb-dump exited with 2: "
        ),
        "{}",
        stderr(&out)
    );
    release_mariadb(&env, blocker);
    assert_eq!(snapshot(&env.dumps), good);
    assert!(staging(&env.dumps).is_empty());

    killed_run_leaves_no_staging(&env, &good);
}

/// SIGKILL of the tool while pg_dump waits: `current` intact, pg_dump gone
/// with it, and the next run removes the staging directory.
fn killed_run_leaves_no_staging(env: &Env, good: &BTreeMap<PathBuf, Vec<u8>>) {
    let blocker = hold_pg_lock(&env.pg, "shop", "events");
    let mut run = env.pysk().args(["dump", "--postgres"]).spawn();
    waiting_pg_dump(&env.pg);
    let dumpers = children(run.id(), "pg_dump");
    assert_eq!(dumpers.len(), 1, "pg_dump is the tool's child");
    run.kill().expect("SIGKILL");
    run.wait().expect("wait");
    assert_eq!(
        staging(&env.dumps).len(),
        1,
        "the killed run's staging directory"
    );
    let proc = PathBuf::from(format!("/proc/{}", dumpers[0]));
    wait_for("pg_dump to die with the tool", || {
        (!proc.exists()).then_some(())
    });
    release_pg(&env.pg, blocker);
    let mut now = snapshot(&env.dumps);
    now.retain(|path, _| !path.starts_with(Path::new("sets").join(&staging(&env.dumps)[0])));
    assert_eq!(&now, good, "current and its set untouched");
    let out = env.pysk().args(["dump"]).succeeds();
    assert!(
        stderr(&out).contains("removed the unfinished dump set of a run that was killed"),
        "{}",
        stderr(&out)
    );
    assert!(staging(&env.dumps).is_empty());
    assert_eq!(files(env).len(), 6);
}

/// A session holding `mysql.event` locked for writing, until released.
fn hold_mariadb_lock(env: &Env) -> Child {
    let child = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", env.maria.socket.display()))
        .args([
            "-u",
            "root",
            "-e",
            "LOCK TABLES mysql.event WRITE; SELECT SLEEP(600)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadb");
    wait_for("the lock on mysql.event", || {
        let n = env.maria.mariadb(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE 'SELECT SLEEP(600)%'",
        );
        (n == "1").then_some(())
    });
    child
}

/// Ends the MariaDB lock holder: its connection, then its client.
fn release_mariadb(env: &Env, mut child: Child) {
    let id = env.maria.mariadb(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(600)%'",
    );
    env.maria.mariadb(&format!("KILL {id}"));
    child.kill().expect("kill the lock holder");
    child.wait().expect("wait");
}

#[test]
fn a_full_dump_directory_is_reported_as_such() {
    let Some(env) = Env::start() else {
        return;
    };
    let small = Tmpfs::mount(env.dir.path().join("small"), "16m");
    let dumps = small.path().join("dumps");
    let dump = |what: &str| {
        env.pysk()
            .args(["dump", what, "--dir"])
            .arg(&dumps)
            .fails_with(73)
    };
    env.pysk()
        .args(["-q", "dump", "--dir"])
        .arg(&dumps)
        .succeeds();
    let good = snapshot(&dumps);
    // Dumps far larger than the pipe's buffer: the dumper is still
    // writing when the file cannot take more.
    env.pg.psql_in(
        "shop",
        "CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t \
         FROM generate_series(1, 60000) g",
    );
    env.maria.mariadb(
        "USE blog; CREATE TABLE blog.bulk ENGINE=InnoDB \
         SELECT seq, concat(md5(seq), md5(seq * 7)) AS t FROM seq_1_to_60000",
    );
    let filler = small.fill_but(64 * 1024);
    for (what, file) in [
        ("--postgres", "postgresql/shop.dump"),
        ("--mysql", "mariadb/blog.sql.gz"),
    ] {
        let out = dump(what);
        let text = stderr(&out);
        let stamp = text
            .strip_prefix(&format!("pysk-backup: {}/sets/.new-", dumps.display()))
            .and_then(|rest| {
                rest.strip_suffix(&format!("/{file}: cannot write: No space left on device\n"))
            })
            .unwrap_or_else(|| panic!("{what}: {text}"));
        assert_eq!(stamp.len(), "20261130T010101Z".len(), "{text}");
        assert!(staging(&dumps).is_empty(), "{what}: no staging left");
    }
    fs::remove_file(filler).expect("remove the filler");
    assert_eq!(snapshot(&dumps), good, "current and its set as they were");
}

/// Puts a stand-in for `program` first on a `PATH` of its own: `script`,
/// in which `REAL` is the real program. The `PATH` the tool then gets.
fn stand_in(env: &Env, program: &str, script: &str) -> String {
    let real = pysk_tests::which(program).expect("the real program");
    let dir = env.dir.path().join(format!("stand-in-{program}"));
    fs::create_dir_all(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.join(program);
    let text = format!("#!/bin/sh\nREAL='{}'\n{script}", real.display());
    fs::write(&path, text).expect("write the stand-in");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", dir.display())
}

/// pg_dump's archive of shop cut in half (its other databases whole).
const CUT_ARCHIVE: &str = r#"case "$*" in *"dbname='shop'"*) ;; *) exec "$REAL" "$@" ;; esac
out=$(mktemp) || exit 1
"$REAL" "$@" | cat > "$out" || exit 1
head -c $(( $(stat -c %s "$out") / 2 )) "$out"
rm -f "$out"
"#;

/// mariadb-dump's output without its last line, `-- Dump completed on …`.
const NOT_COMPLETED: &str = r#""$REAL" "$@" | grep -v '^-- Dump completed on'
"#;

/// pg_dumpall's output without its end, `-- PostgreSQL database cluster
/// dump complete`.
const NO_DUMPALL_END: &str = r#""$REAL" "$@" | grep -v '^-- PostgreSQL database cluster dump complete'
"#;

/// Dumpers that exit 0 and write nothing on stderr, but whose output is
/// not whole: each is caught by the check made for it (pg_restore reading
/// the archive back, the `-- Dump completed` line, pg_dumpall's last
/// line), so the run fails with 1, naming the database and the check, and
/// `current` stays as it was, byte for byte.
#[test]
fn dumps_that_exit_0_but_are_not_whole_fail_their_checks() {
    let Some(env) = Env::start() else {
        return;
    };
    env.pysk().args(["-q", "dump"]).succeeds();
    let good = snapshot(&env.dumps);
    let cases = [
        (
            "pg_dump",
            CUT_ARCHIVE,
            "--postgres",
            "the dump of PostgreSQL database shop failed: reading the dump back: pg_restore \
             exited with 1: pg_restore: error: could not read from input file: end of file",
        ),
        (
            "mariadb-dump",
            NOT_COMPLETED,
            "--mysql",
            "the dump of MariaDB database blog failed: its last line is not \
             \"-- Dump completed on …\": the dump is incomplete",
        ),
        (
            "pg_dumpall",
            NO_DUMPALL_END,
            "--postgres",
            "the dump of PostgreSQL globals failed: its output does not end with \
             \"-- PostgreSQL database cluster dump complete --\"",
        ),
    ];
    for (program, script, server, error) in cases {
        let path = stand_in(&env, program, script);
        let out = env
            .pysk()
            .env("PATH", path)
            .args(["dump", server])
            .fails_with(1);
        assert_eq!(stderr(&out), format!("pysk-backup: {error}\n"), "{program}");
        assert_eq!(snapshot(&env.dumps), good, "{program}: current as it was");
        assert!(staging(&env.dumps).is_empty(), "{program}: no staging left");
    }
}
