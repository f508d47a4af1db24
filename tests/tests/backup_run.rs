//! `pysk-backup run`, the whole nightly job, against a real PostgreSQL 15
//! and MariaDB 10.11 and both engines (duplicity to a `file://` target,
//! restic to a local repository): the dump set restored from the backup
//! byte for byte; `--only` carrying the other dumps over; a dump
//! connection terminated mid-dump failing the run with nothing uploaded
//! or pruned; `kill -9` of a run while pg_dump waits on a lock and while
//! the engine runs (found by its parent pid, never by timing), each
//! followed by a run that succeeds, and at random moments of a run, each
//! leaving a whole `current` and the last backup; the passphrase in no command line and
//! in no environment but the engine child's while the dumpers run;
//! `status` showing the restore proofs of the current set's databases.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use pysk_tests::backup::{
    children, environments_holding, grow, hold_pg_lock, release_pg, snapshot, staging, wait_for,
    waiting_pg_dump,
};
use pysk_tests::mariadb::Mariadb;
use pysk_tests::pg::Postgres;
use pysk_tests::{TempDir, TestCommand, require, scratch, secret_file, stderr, stdout, tool};
use serde_json::Value;

const PASSPHRASE: &str = "run-canary-passphrase-93a7e2";
const ENGINES: [&str; 2] = ["duplicity", "restic"];

/// Both servers, a source tree holding the dump directory, and switches
/// for each engine (its own target and state).
struct Env {
    dir: TempDir,
    pg: Postgres,
    maria: Mariadb,
}

impl Env {
    fn start() -> Option<Env> {
        for program in ENGINES {
            require(program, program)?;
        }
        require("gpgconf", "gnupg")?;
        let dir = scratch();
        let pg = Postgres::start(&dir.path().join("pg"))?;
        let maria = Mariadb::start(&dir.path().join("maria"))?;
        pg.psql("CREATE DATABASE shop");
        pg.psql_in(
            "shop",
            "CREATE TABLE orders (id int PRIMARY KEY, ref text); \
             INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 3000) g; \
             CREATE TABLE events (id int, at date) PARTITION BY RANGE (at); \
             CREATE TABLE events_2026 PARTITION OF events \
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
        );
        maria.mariadb(
            "CREATE DATABASE blog; \
             CREATE TABLE blog.posts (id int PRIMARY KEY, body text); \
             USE blog; INSERT INTO posts SELECT seq, md5(seq) FROM seq_1_to_50;",
        );
        let env = Env { dir, pg, maria };
        fs::create_dir_all(env.root().join("etc")).expect("mkdir");
        fs::write(env.root().join("etc/hosts"), "127.0.0.1 localhost\n").expect("write");
        secret_file(&env.path("passphrase"), &format!("{PASSPHRASE}\n"));
        let notify = env.path("notify.sh");
        fs::write(&notify, "#!/bin/sh\necho \"$1\" >> \"$0.log\"\n").expect("write");
        fs::set_permissions(&notify, fs::Permissions::from_mode(0o755)).expect("chmod");
        for engine in ENGINES {
            env.switches(engine, &maria_socket(&env.maria));
        }
        Some(env)
    }

    fn switches(&self, engine: &str, mysql_socket: &str) {
        let path = |p: PathBuf| p.display().to_string();
        let target = match engine {
            "duplicity" => format!("file://{}", self.path("target-duplicity").display()),
            _ => path(self.path("target-restic")),
        };
        pysk_tests::write_switches(
            &self.path(&format!("config-{engine}")),
            &[
                ("backup_engine", engine.to_owned()),
                ("backup_source", path(self.root())),
                ("backup_target", target),
                (
                    "backup_state_dir",
                    path(self.path(&format!("state-{engine}"))),
                ),
                ("backup_passphrase_file", path(self.path("passphrase"))),
                ("backup_dump_dir", path(self.dumps())),
                ("backup_exclude", path(self.root().join("skip"))),
                ("backup_notify_command", path(self.path("notify.sh"))),
                ("backup_lock_wait_timeout", "300".into()),
                ("db_pg_socket_dir", path(self.pg.socket_dir.clone())),
                ("db_pg_port", self.pg.port.to_string()),
                ("db_mysql_socket", mysql_socket.to_owned()),
            ],
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The tree backed up.
    fn root(&self) -> PathBuf {
        self.path("root")
    }

    /// The dump directory, inside the tree backed up.
    fn dumps(&self) -> PathBuf {
        self.root().join("dumps")
    }

    fn tool(&self, engine: &str) -> TestCommand {
        tool("pysk-backup").config_dir(&self.path(&format!("config-{engine}")))
    }

    fn json(&self, engine: &str, args: &[&str]) -> Value {
        let out = self.tool(engine).args(args).arg("--json").succeeds();
        let doc: Value = serde_json::from_str(&stdout(&out)).expect("a JSON document");
        assert_eq!(doc["version"], 1, "{doc}");
        doc
    }

    /// The backups on `engine`'s target, by its `status --json`.
    fn backups(&self, engine: &str) -> usize {
        let status = self.json(engine, &["status"]);
        let chains = status["chains"].as_array().expect("chains");
        chains
            .iter()
            .map(|c| c["sets"].as_array().map_or(0, Vec::len))
            .sum()
    }

    /// The dump directory as restored from `engine`'s backup at `time`.
    fn restored(&self, engine: &str, time: Option<&str>, name: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        let to = self.path(name);
        let mut cmd = self
            .tool(engine)
            .args(["restore", "dumps", "--to"])
            .arg(&to);
        if let Some(time) = time {
            cmd = cmd.args(["--time", time]);
        }
        cmd.succeeds();
        snapshot(&to.join("dumps"))
    }

    fn notified(&self) -> String {
        fs::read_to_string(self.path("notify.sh.log")).unwrap_or_default()
    }

    /// The name of the set `current` names.
    fn current(&self) -> String {
        let link = fs::read_link(self.dumps().join("current")).expect("current");
        link.file_name()
            .expect("a set")
            .to_string_lossy()
            .into_owned()
    }
}

fn maria_socket(maria: &Mariadb) -> String {
    maria.socket.display().to_string()
}

/// `current` names a whole set: every file its manifest lists, with the
/// size and SHA-256 the manifest gives, and nothing else.
fn assert_whole(dumps: &Path) {
    let set = fs::canonicalize(dumps.join("current")).expect("current names a set");
    let manifest: Value =
        serde_json::from_slice(&fs::read(set.join("manifest.json")).expect("manifest"))
            .expect("JSON");
    let mut listed = vec![PathBuf::from("manifest.json")];
    for d in manifest["dumps"].as_array().expect("dumps") {
        let file = set.join(d["file"].as_str().expect("file"));
        let out = std::process::Command::new("sha256sum")
            .arg(&file)
            .output()
            .expect("sha256sum");
        let sum = String::from_utf8_lossy(&out.stdout);
        assert_eq!(d["sha256"].as_str(), sum.split_whitespace().next(), "{d}");
        listed.push(PathBuf::from(d["file"].as_str().expect("file")));
    }
    let mut found: Vec<PathBuf> = snapshot(&set).into_keys().collect();
    listed.sort();
    found.sort();
    assert_eq!(found, listed);
}

#[test]
fn run_dumps_backs_up_and_restores_the_set_byte_for_byte_with_both_engines() {
    let Some(env) = Env::start() else {
        return;
    };
    let out = env.tool("duplicity").args(["run", "--dry-run"]).succeeds();
    let plan = stdout(&out);
    assert!(
        plan.starts_with(
            "would dump PostgreSQL globals\nwould dump PostgreSQL database postgres\n\
             would dump PostgreSQL database shop\nwould dump MariaDB grants\n\
             would dump MariaDB database blog\nwould dump MariaDB database test\n\
             back up "
        ),
        "{plan}"
    );
    assert!(!env.dumps().exists(), "a dry run writes nothing");
    for engine in ENGINES {
        let doc = env.json(engine, &["run"]);
        let set = fs::canonicalize(env.dumps().join("current")).expect("current");
        assert_eq!(doc["dump"]["set"], set.display().to_string(), "{doc}");
        assert_eq!(doc["dump"]["dumps"].as_array().map(Vec::len), Some(6));
        assert!(doc["backup"]["id"].is_string(), "{doc}");
        let local = snapshot(&env.dumps());
        assert_eq!(local.len(), 8, "current, the manifest and six dumps");
        assert_eq!(env.restored(engine, None, &format!("r-{engine}")), local);
        assert_whole(&env.dumps());
    }
    assert_eq!(env.notified(), "start\nsuccess\nstart\nsuccess\n");
    let before = env.current();
    only_carries_the_other_dumps_over(&env);
    status_shows_the_proofs_of_the_current_set(&env, &before);
    let out = env
        .tool("restic")
        .args(["run", "--only", "shop", "--exclude", "shop"])
        .fails_with(2);
    assert_eq!(
        stderr(&out),
        "pysk-backup: --exclude: shop is also named by --only; name it in one of them\n"
    );
    assert_eq!(
        env.notified(),
        "start\nsuccess\nstart\nsuccess\nstart\nsuccess\n",
        "a usage error starts nothing"
    );
}

/// `status` with restic speaks of snapshots; it shows the proofs of the
/// databases in the current set only, says which were of an older set
/// (`before`, shop's, dumped anew since; blog's is carried over from it,
/// so still current) and which were never proven.
fn status_shows_the_proofs_of_the_current_set(env: &Env, before: &str) {
    let drills = serde_json::json!({"version": 1, "databases": {
        "postgresql/shop": {"proven": "2026-11-30T01:00:00Z", "set": before, "tables": 2},
        "mariadb/blog": {"proven": "2026-11-30T01:00:01Z", "set": before, "tables": 1},
        "postgresql/gone": {"proven": "2026-11-30T01:00:02Z", "set": before, "tables": 4}}});
    fs::write(env.path("state-restic/drills.json"), drills.to_string()).expect("drills.json");
    let current = env.current();
    let text = stdout(&env.tool("restic").arg("status").succeeds());
    let (head, proofs) = text.split_once("\nrestore ").expect(&text);
    assert!(head.starts_with("engine: restic\ntarget: "), "{text}");
    assert!(
        head.contains(&format!("\nsnapshots: {}\n", env.backups("restic"))),
        "{text}"
    );
    assert!(!text.contains("full") && !text.contains("chain"), "{text}");
    assert_eq!(
        format!("restore {proofs}"),
        format!(
            "restore proven: postgresql/shop at 2026-11-30T01:00:00Z (dump set {before}, 2 tables)\n\
             restore proof older than current: postgresql/shop proven on set {before}; current is {current}\n\
             restore never proven: postgresql/postgres (pysk-backup drill proves it)\n\
             restore proven: mariadb/blog at 2026-11-30T01:00:01Z (dump set {before}, 1 tables)\n\
             restore never proven: mariadb/test (pysk-backup drill proves it)\n"
        )
    );
    let doc = env.json("restic", &["status"]);
    assert_eq!(doc["current_set"], current.as_str());
    let marks: Vec<_> = doc["proofs"]
        .as_array()
        .expect("proofs")
        .iter()
        .map(|p| (p["database"].as_str(), p["current"].as_bool()))
        .collect();
    assert_eq!(
        marks,
        [
            (Some("postgresql/shop"), Some(false)),
            (Some("postgresql/postgres"), Some(false)),
            (Some("mariadb/blog"), Some(true)),
            (Some("mariadb/test"), Some(false)),
        ]
    );
}

/// `run --only shop`: PostgreSQL's globals and shop dumped anew, the other
/// databases' dumps carried over (hard links, marked with their set), so
/// `current` and the backup still hold every database.
fn only_carries_the_other_dumps_over(env: &Env) {
    let before = env.current();
    let old = snapshot(&env.dumps().join("current/"));
    let doc = env.json("restic", &["run", "--only", "shop"]);
    let made: Vec<&Value> = doc["dump"]["dumps"]
        .as_array()
        .expect("dumps")
        .iter()
        .collect();
    let files = |list: &[&Value]| -> Vec<String> {
        list.iter()
            .map(|d| d["file"].as_str().expect("file").to_owned())
            .collect()
    };
    assert_eq!(
        files(&made),
        ["postgresql/globals.sql", "postgresql/shop.dump"]
    );
    let carried: Vec<&Value> = doc["dump"]["carried"]
        .as_array()
        .expect("carried")
        .iter()
        .collect();
    assert_eq!(
        files(&carried),
        [
            "postgresql/postgres.dump",
            "mariadb/grants.sql.gz",
            "mariadb/blog.sql.gz",
            "mariadb/test.sql.gz"
        ]
    );
    let manifest: Value = serde_json::from_slice(
        &fs::read(env.dumps().join("current/manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    let in_set: Vec<&Value> = manifest["dumps"]
        .as_array()
        .expect("dumps")
        .iter()
        .collect();
    assert_eq!(in_set.len(), 6);
    for c in &carried {
        assert_eq!(
            (&c["carried"], c["from"].as_str()),
            (&true.into(), Some(before.as_str()))
        );
        let file = c["file"].as_str().expect("file");
        assert!(in_set.contains(c), "{c} in the manifest");
        let now = fs::read(env.dumps().join("current").join(file)).expect("carried file");
        assert_eq!(
            Some(&now),
            old.get(Path::new(file)),
            "{file}: the same bytes"
        );
    }
    assert_ne!(env.current(), before);
    assert_whole(&env.dumps());
    assert_eq!(
        env.restored("restic", None, "r-only"),
        snapshot(&env.dumps())
    );
}

/// Runs `args` of `engine`'s tool in the background, as a child of this
/// test.
fn spawn_run(env: &Env, engine: &str, args: &[&str]) -> std::process::Child {
    env.tool(engine).args(args).spawn()
}

#[test]
fn a_dump_connection_killed_mid_dump_fails_the_run_and_uploads_nothing() {
    let Some(env) = Env::start() else {
        return;
    };
    for engine in ENGINES {
        env.json(engine, &["run"]);
        let (good, backups) = (snapshot(&env.dumps()), env.backups(engine));
        let stamp = env.path(&format!("state-{engine}/last-success.json"));
        let stamp_before = fs::read(&stamp).expect("the stamp");
        let blocker = hold_pg_lock(&env.pg, "shop", "events");
        let run = spawn_run(&env, engine, &["run"]);
        let pid = waiting_pg_dump(&env.pg);
        env.pg.psql(&format!("SELECT pg_terminate_backend({pid})"));
        let out = run.wait_with_output().expect("wait");
        release_pg(&env.pg, blocker);
        assert_failed_dump(&out);
        assert!(
            env.notified().ends_with("start\nfailure\n"),
            "{}",
            env.notified()
        );
        assert_eq!(
            snapshot(&env.dumps()),
            good,
            "the last good set, byte for byte"
        );
        assert!(staging(&env.dumps()).is_empty());
        assert_eq!(
            env.backups(engine),
            backups,
            "{engine}: nothing uploaded or pruned"
        );
        assert_eq!(fs::read(&stamp).expect("the stamp"), stamp_before);
    }
}

fn assert_failed_dump(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(
        stderr(out).starts_with(
            "pysk-backup: the dump of PostgreSQL database shop failed: pg_dump exited with 1: \
             pg_dump: error: "
        ),
        "{}",
        stderr(out)
    );
}

/// SIGKILL of the run, then `child` gone with it.
fn kill_run(mut run: std::process::Child, child: u32) {
    run.kill().expect("SIGKILL");
    run.wait().expect("wait");
    let proc = PathBuf::from(format!("/proc/{child}"));
    wait_for("the child to die with the run", || {
        let alive = fs::read_to_string(proc.join("stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, r)| !r.starts_with('Z'))
        });
        (!alive).then_some(())
    });
}

#[test]
fn kill_9_of_a_run_at_several_moments_never_breaks_current_or_the_backup() {
    let Some(env) = Env::start() else {
        return;
    };
    grow(&env.root(), 32);
    for engine in ENGINES {
        let first = env.json(engine, &["run"]);
        let id = first["backup"]["id"].as_str().expect("id").to_owned();
        let backed = snapshot(&env.dumps());

        // While pg_dump waits on a lock.
        let blocker = hold_pg_lock(&env.pg, "shop", "events");
        let run = spawn_run(&env, engine, &["run"]);
        waiting_pg_dump(&env.pg);
        let dumper = wait_for("pg_dump", || children(run.id(), "pg_dump").pop());
        kill_run(run, dumper);
        release_pg(&env.pg, blocker);
        let mut now = snapshot(&env.dumps());
        now.retain(|path, _| !path.to_string_lossy().contains("/.new-"));
        assert_eq!(now, backed, "{engine}: current and its set untouched");

        // While the engine runs: its process found by its parent pid.
        let run = spawn_run(&env, engine, &["run"]);
        let child = wait_for(engine, || children(run.id(), engine).pop());
        kill_run(run, child);
        assert_whole(&env.dumps());
        let restored = env.restored(engine, Some(&id), &format!("k-{engine}"));
        assert_eq!(restored, backed, "{engine}: the previous backup restores");

        let next = env.json(engine, &["run"]);
        assert!(next["backup"]["id"].is_string(), "{next}");
        assert!(staging(&env.dumps()).is_empty());
        assert_eq!(
            env.restored(engine, None, &format!("n-{engine}")),
            snapshot(&env.dumps())
        );
    }
}

/// Whether `pid` is the run's duplicity child or below it (the gpg it
/// runs); `None` when it ended before it could be judged.
fn below_duplicity(run: u32, mut pid: u32) -> Option<bool> {
    for _ in 0..64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        if head.ends_with("(duplicity") && parent == run {
            return Some(true);
        }
        if parent <= 1 {
            return Some(false);
        }
        pid = parent;
    }
    Some(false)
}

#[test]
fn the_passphrase_is_in_no_command_line_and_only_in_the_engine_child_while_dumps_run() {
    let Some(env) = Env::start() else {
        return;
    };
    // A passphrase of its own: the other tests of this file, running at
    // the same time, have engines holding theirs.
    let own = "run-canary-passphrase-only-here-5c1f08";
    secret_file(&env.path("passphrase"), &format!("{own}\n"));
    for engine in ENGINES {
        let blocker = hold_pg_lock(&env.pg, "shop", "events");
        let mut run = spawn_run(&env, engine, &["run"]);
        waiting_pg_dump(&env.pg);
        let mut dumps_seen = 0;
        for _ in 0..20 {
            let environs = environments_holding(own, engine);
            assert_eq!(environs, Vec::<u32>::new(), "{engine}: while dumping");
            dumps_seen += children(run.id(), "pg_dump").len();
        }
        assert_eq!(dumps_seen, 20, "pg_dump ran while sampled");
        release_pg(&env.pg, blocker);
        let mut engine_seen = false;
        while run.try_wait().expect("wait").is_none() {
            for pid in environments_holding(own, engine) {
                let judged = below_duplicity(run.id(), pid);
                assert!(
                    engine == "duplicity" && judged != Some(false),
                    "{engine}: in the environment of {pid}"
                );
            }
            engine_seen |= !children(run.id(), engine).is_empty();
        }
        let out = run.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(engine_seen, "{engine} was never seen running");
    }
}

/// A tiny xorshift generator seeded from the clock: the kill moments
/// differ on every run of the suite, and the seed is in every failure.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Moments(nanos | 1)
    }

    /// A moment between the start and the end of a run lasting `span`.
    fn within(&mut self, span: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        span.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

/// Every process below `root`, found by parent pids.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    found.split_off(1)
}

/// Kills the run with SIGKILL and waits until what it had started is
/// gone too (dumpers and engines die with it; their children follow),
/// reaped by init: restic takes a zombie's lock for a live one.
fn kill_and_settle(mut run: std::process::Child) {
    let below = descendants(run.id());
    run.kill().expect("SIGKILL");
    run.wait().expect("wait");
    wait_for("the killed run's processes to be reaped", || {
        let gone = |pid: &u32| !Path::new(&format!("/proc/{pid}")).exists();
        below.iter().all(gone).then_some(())
    });
}

/// The `current` link and the set it names, as a backup holds them
/// (staging directories and older sets left by a killed run are not).
fn current_view(dumps: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let set = Path::new("sets").join(
        fs::read_link(dumps.join("current"))
            .expect("current")
            .file_name()
            .expect("a set"),
    );
    let mut view = snapshot(dumps);
    view.retain(|path, _| path == Path::new("current") || path.starts_with(&set));
    view
}

#[test]
fn kill_9_of_a_run_at_random_moments_leaves_a_whole_set_and_the_last_backup() {
    let Some(env) = Env::start() else {
        return;
    };
    grow(&env.root(), 16);
    let mut moments = Moments::new();
    let seed = moments.0;
    for engine in ENGINES {
        env.json(engine, &["run"]);
        let started = Instant::now();
        env.json(engine, &["run"]);
        let span = started.elapsed();
        // What the newest backup holds: the set `current` named then.
        let mut newest = current_view(&env.dumps());
        for round in 0..4 {
            let at = moments.within(span);
            let what =
                format!("{engine}, round {round}, killed at {at:?} of {span:?}, seed {seed}");
            let run = spawn_run(&env, engine, &["run"]);
            std::thread::sleep(at);
            kill_and_settle(run);
            assert_whole(&env.dumps());
            let now = current_view(&env.dumps());
            let restored = env.restored(engine, None, &format!("x-{engine}-{round}"));
            assert!(
                restored == newest || restored == now,
                "{what}: the newest backup holds what it held before or the set now current"
            );
            newest = restored;
        }
        let next = env.json(engine, &["run"]);
        assert!(next["backup"]["id"].is_string(), "{next}, seed {seed}");
        assert!(staging(&env.dumps()).is_empty(), "seed {seed}");
        assert_eq!(
            env.restored(engine, None, &format!("y-{engine}")),
            snapshot(&env.dumps()),
            "seed {seed}"
        );
    }
}
