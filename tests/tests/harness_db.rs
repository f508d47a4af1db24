//! The database harness against the real servers: a PostgreSQL and a
//! MariaDB started in a scratch directory answer, log every statement,
//! take password logins over their socket, start as Debian's defaults
//! leave them, and are gone with every process when dropped.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pysk_tests::mariadb::Mariadb;
use pysk_tests::pg::Postgres;
use pysk_tests::{scratch, stderr, stdout};

/// The process `root` and its descendants (pid and state letter), from
/// `/proc/<pid>/stat`; PostgreSQL's children each lead a process group of
/// their own, so they are found by parent, not by group.
fn tree(root: u32) -> Vec<(u32, char)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold blanks and ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let state = fields[0].chars().next().unwrap_or('?');
        let ppid: u32 = fields[1].parse().unwrap_or(0);
        all.push((pid, ppid, state));
    }
    let mut found: Vec<(u32, char)> = all
        .iter()
        .filter(|(pid, _, _)| *pid == root)
        .map(|(pid, _, state)| (*pid, *state))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].0;
        found.extend(
            all.iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(pid, _, state)| (*pid, *state)),
        );
        i += 1;
    }
    found
}

/// The owner of a running process.
fn process_uid(pid: u32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}"))
        .expect("the process exists")
        .uid()
}

/// The uid of system account `name`, from `/etc/passwd`.
fn uid_of(name: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .unwrap_or_else(|| panic!("account {name} in /etc/passwd"))
}

/// Asserts that `pids` (once the server and its descendants) are all
/// gone: neither running nor left as zombies.
fn assert_all_gone(pids: &[(u32, char)]) {
    for (pid, _) in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} of the server is still there: {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
    }
}

/// Waits (bounded) for a client that the server's stop disconnected, and
/// kills it if it is somehow still there.
fn reap(mut client: Child) -> std::process::Output {
    let start = Instant::now();
    while client.try_wait().expect("wait for the client").is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = client.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    client.wait_with_output().expect("the client's output")
}

#[test]
fn postgres_answers_as_debian_sets_it_up_and_logs_every_statement() {
    let dir = scratch();
    let start = Instant::now();
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    eprintln!("postgres ready in {:?}", start.elapsed());

    assert_eq!(pg.psql("SELECT 'pysk-marker-' || 6 * 7"), "pysk-marker-42");
    // The newest version installed is the one running.
    let major = pg.psql("SELECT current_setting('server_version_num')::int / 10000");
    assert_eq!(
        pg.bin_dir.parent().and_then(Path::file_name),
        Some(std::ffi::OsStr::new(&major)),
        "the server of {}",
        pg.bin_dir.display()
    );
    assert_eq!(
        pg.psql("SELECT current_user, current_setting('listen_addresses')"),
        "postgres|"
    );
    assert_eq!(
        pg.psql("SHOW unix_socket_directories"),
        pg.socket_dir.to_str().expect("UTF-8")
    );
    assert!(
        pg.socket_dir.join(format!(".s.PGSQL.{}", pg.port)).exists(),
        "the socket is named after the port"
    );
    assert_eq!(
        pg.psql("SHOW data_directory"),
        pg.data_dir.display().to_string()
    );
    // Debian's authentication: postgres by peer, every other role by
    // SCRAM, as the server itself parsed the file.
    assert_eq!(
        pg.psql(
            "SELECT type, database, user_name, address, auth_method \
             FROM pg_hba_file_rules ORDER BY line_number"
        ),
        "local|{all}|{postgres}||peer\n\
         local|{all}|{all}||scram-sha-256\n\
         host|{all}|{all}|127.0.0.1|scram-sha-256\n\
         host|{all}|{all}|::1|scram-sha-256\n\
         local|{replication}|{all}||peer\n\
         host|{replication}|{all}|127.0.0.1|scram-sha-256\n\
         host|{replication}|{all}|::1|scram-sha-256"
    );
    // It runs as postgres, as every process it started does.
    let postgres = uid_of("postgres");
    let members = tree(pg.pid());
    assert!(
        members.len() >= 4,
        "postmaster and its helpers: {members:?}"
    );
    for (pid, _) in &members {
        assert_eq!(process_uid(*pid), postgres, "process {pid}");
    }

    // Several statements, each on its own (CREATE DATABASE refuses a
    // transaction block), stopping at the first error.
    pg.psql("CREATE DATABASE harness_db; CREATE TABLE t (n int); INSERT INTO t VALUES (1)");
    assert_eq!(
        pg.psql_in("harness_db", "SELECT current_database()"),
        "harness_db"
    );
    let failed = pg.psql_output("postgres", "SELECT 1/0; INSERT INTO t VALUES (2)");
    assert_eq!(failed.status.code(), Some(3), "ON_ERROR_STOP: {failed:?}");
    assert!(stderr(&failed).contains("division by zero"), "{failed:?}");
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "1");

    let log = pg.log_text();
    assert!(
        log.contains("postgres@postgres LOG:  statement: SELECT 'pysk-marker-' || 6 * 7\n"),
        "the marker statement in the log:\n{log}"
    );
}

#[test]
fn postgres_takes_a_password_login_through_the_socket() {
    let dir = scratch();
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    pg.psql(
        "CREATE ROLE alice LOGIN PASSWORD 'plain-alice-secret'; \
         SET password_encryption = 'md5'; \
         CREATE ROLE old LOGIN PASSWORD 'plain-old-secret'",
    );
    assert!(
        pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'")
            .starts_with("SCRAM-SHA-256$4096:"),
        "the server stored a SCRAM verifier"
    );

    let ok = pg.login(
        "alice",
        "plain-alice-secret",
        "postgres",
        "SELECT current_user, pg_backend_pid() <> 0",
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "alice|t\n");

    let wrong = pg.login("alice", "not-the-secret", "postgres", "SELECT 1");
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    assert!(
        stderr(&wrong).contains("password authentication failed for user \"alice\""),
        "{}",
        stderr(&wrong)
    );
    // The socket's line asks for SCRAM: an MD5 hash no longer logs in.
    let md5 = pg.login("old", "plain-old-secret", "postgres", "SELECT 1");
    assert_eq!(md5.status.code(), Some(2), "{md5:?}");
    // The superuser is peer only: a password does not stand in for the
    // OS account.
    let peer = pg.login("postgres", "anything", "postgres", "SELECT 1");
    assert_eq!(peer.status.code(), Some(2), "{peer:?}");
    assert!(
        stderr(&peer).contains("Peer authentication failed for user \"postgres\""),
        "{}",
        stderr(&peer)
    );

    // A password sent in plaintext is in the log: a test that finds none
    // there can fail.
    let log = pg.log_text();
    assert!(
        log.contains("statement: CREATE ROLE alice LOGIN PASSWORD 'plain-alice-secret';"),
        "{log}"
    );
    assert!(
        log.contains("FATAL:  password authentication failed for user \"alice\""),
        "{log}"
    );
}

#[test]
fn postgres_is_gone_with_every_process_after_drop() {
    let dir = scratch();
    let Some(pg) = Postgres::start(dir.path()) else {
        return;
    };
    let socket = pg.socket_dir.join(format!(".s.PGSQL.{}", pg.port));
    // A session still running when the test ends does not hold the stop.
    pg.psql("CREATE ROLE sleeper LOGIN PASSWORD 'sleeper-secret'");
    let client = Command::new(pg.bin_dir.join("psql"))
        .args(["-X", "-w", "-c", "SELECT pg_sleep(60)"])
        .arg("-h")
        .arg(&pg.socket_dir)
        .args([
            "-p",
            &pg.port.to_string(),
            "-U",
            "sleeper",
            "-d",
            "postgres",
        ])
        .env("PGPASSWORD", "sleeper-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start psql");
    let start = Instant::now();
    while pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'sleeper'") != "1" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = pg.pid();
    let members = tree(pid);
    assert!(
        members.len() >= 5,
        "postmaster, helpers, a backend: {members:?}"
    );

    let start = Instant::now();
    drop(pg);
    eprintln!("postgres stopped in {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stopped without the SIGKILL"
    );
    assert_all_gone(&members);
    assert!(!socket.exists(), "the server removed its socket");
    let out = reap(client);
    assert!(!out.status.success(), "the session was cut: {out:?}");
}

/// The accounts a fresh `mariadb-install-db` (root by `unix_socket`, the
/// test database kept) makes, as `user<TAB>host` rows of `mysql.user`
/// sorted, for the machine's `hostname`.
fn stock_accounts(hostname: &str) -> String {
    let mut rows = vec![
        "\tlocalhost".to_owned(),
        "PUBLIC\t".to_owned(),
        "mariadb.sys\tlocalhost".to_owned(),
        "mysql\tlocalhost".to_owned(),
        "root\tlocalhost".to_owned(),
    ];
    if hostname != "localhost" {
        rows.push(format!("\t{hostname}"));
    }
    rows.sort();
    rows.join("\n")
}

/// What the PUBLIC role may do on `test` and `test\_%`: all but GRANT,
/// ALTER ROUTINE and EXECUTE.
const PUBLIC_TEST: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, \
    ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, EVENT, \
    TRIGGER, DELETE HISTORY";

#[test]
fn mariadb_answers_with_the_stock_defaults_and_logs_every_statement() {
    let dir = scratch();
    let start = Instant::now();
    let Some(db) = Mariadb::start(dir.path()) else {
        return;
    };
    eprintln!("mariadb ready in {:?}", start.elapsed());

    assert_eq!(
        db.mariadb("SELECT CONCAT('pysk-marker-', 6 * 7)"),
        "pysk-marker-42"
    );
    assert_eq!(
        db.mariadb("SELECT CURRENT_USER(), @@skip_networking, @@socket"),
        format!("root@localhost\t1\t{}", db.socket.display())
    );
    assert!(
        db.mariadb("SELECT VERSION()").contains("MariaDB"),
        "a MariaDB server"
    );
    assert_eq!(
        db.mariadb("SELECT @@character_set_server, @@collation_server, @@datadir, @@tmpdir"),
        format!(
            "utf8mb4\tutf8mb4_general_ci\t{}/\t{}",
            db.data_dir.display(),
            dir.path().join("mariadb/tmp").display()
        )
    );
    assert_eq!(process_uid(db.pid()), uid_of("mysql"), "it runs as mysql");

    // The insecure defaults pysk-db's setup removes: anonymous accounts,
    // the test database, open to everyone through the PUBLIC role.
    let hostname = db.mariadb("SELECT LOWER(@@hostname)");
    assert!(!hostname.contains(['_', '%']), "a plain host name");
    assert_eq!(
        db.mariadb("SELECT user, host FROM mysql.user ORDER BY user, host"),
        stock_accounts(&hostname)
    );
    assert_eq!(
        db.mariadb("SELECT host, db, user, Select_priv, Grant_priv FROM mysql.db ORDER BY db"),
        "\ttest\tPUBLIC\tY\tN\n\ttest\\\\_%\tPUBLIC\tY\tN"
    );
    assert_eq!(
        db.mariadb("SHOW DATABASES"),
        "information_schema\nmysql\nperformance_schema\nsys\ntest"
    );
    assert_eq!(
        db.mariadb("SHOW GRANTS FOR root@localhost"),
        "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA \
         mysql_native_password USING 'invalid' OR unix_socket WITH GRANT OPTION\n\
         GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION"
    );
    assert_eq!(
        db.mariadb("SHOW GRANTS FOR PUBLIC"),
        format!(
            "GRANT {PUBLIC_TEST} ON `test`.* TO PUBLIC\nGRANT {PUBLIC_TEST} ON `test\\\\_%`.* TO PUBLIC"
        )
    );

    let failed = db.mariadb_output("SELECT 1; SELECT * FROM no_such_table");
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(stderr(&failed).contains("ERROR 1046"), "{failed:?}");

    let log = db.log_text();
    assert!(
        log.contains("Query\tSELECT CONCAT('pysk-marker-', 6 * 7)\n"),
        "the marker statement in the general log:\n{log}"
    );
}

#[test]
fn mariadb_takes_a_password_login_through_the_socket() {
    let dir = scratch();
    let Some(db) = Mariadb::start(dir.path()) else {
        return;
    };
    db.mariadb(
        "CREATE USER 'carol'@'localhost' IDENTIFIED BY 'plain-carol-secret'; \
         CREATE USER 'dave'@'%' IDENTIFIED BY 'plain-dave-secret'",
    );
    let ok = db.login("carol", "plain-carol-secret", "SELECT CURRENT_USER()");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "carol@localhost\n");

    let wrong = db.login("carol", "not-the-secret", "SELECT 1");
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(
        stderr(&wrong).contains(
            "ERROR 1045 (28000): Access denied for user 'carol'@'localhost' (using password: YES)"
        ),
        "{}",
        stderr(&wrong)
    );
    // The stock anonymous ''@localhost is more specific than '%': an
    // account at '%' cannot log in through the socket until it is gone.
    let shadowed = db.login("dave", "plain-dave-secret", "SELECT CURRENT_USER()");
    assert_eq!(shadowed.status.code(), Some(1), "{shadowed:?}");
    assert!(
        stderr(&shadowed).contains("Access denied for user 'dave'@'localhost'"),
        "{}",
        stderr(&shadowed)
    );
    db.mariadb("DROP USER ''@'localhost'");
    let dave = db.login("dave", "plain-dave-secret", "SELECT CURRENT_USER()");
    assert!(dave.status.success(), "{}", stderr(&dave));
    assert_eq!(stdout(&dave), "dave@%\n");

    // MariaDB's general log keeps a plaintext password as it came: a test
    // that finds none there can fail.
    let log = db.log_text();
    assert!(log.contains("IDENTIFIED BY 'plain-carol-secret'"), "{log}");
    assert!(
        log.contains("Connect\tcarol@localhost on  using Socket"),
        "{log}"
    );
}

#[test]
fn mariadb_is_gone_with_every_process_after_drop() {
    let dir = scratch();
    let Some(db) = Mariadb::start(dir.path()) else {
        return;
    };
    let socket = db.socket.clone();
    // A session still running when the test ends does not hold the stop.
    let client = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-u", "root", "-N", "-B", "-e", "SELECT SLEEP(60)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let start = Instant::now();
    while db.mariadb(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'",
    ) != "1"
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the session started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = db.pid();
    let members = tree(pid);
    assert_eq!(members.len(), 1, "mariadbd alone, no child: {members:?}");

    let start = Instant::now();
    drop(db);
    eprintln!("mariadb stopped in {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stopped without the SIGKILL"
    );
    assert_all_gone(&members);
    assert!(!socket.exists(), "the server removed its socket");
    let out = reap(client);
    assert!(!out.status.success(), "the session was cut: {out:?}");
}
