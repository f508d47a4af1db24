//! What the `pysk-backup` tests share: a dump directory read byte for
//! byte, its staging directories, a PostgreSQL session holding a lock and
//! the pg_dump that waits on it (found through `pg_stat_activity`, never
//! by timing), and a process's children by their parent pid.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::pg::Postgres;

/// How long a test waits for something it expects to happen.
pub const BOUND: Duration = Duration::from_secs(60);

/// Every file below `dir` (and where each link points), with its bytes:
/// a dump set compared byte for byte.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let key = path.strip_prefix(dir).expect("below").to_path_buf();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("link");
                files.insert(key, target.into_os_string().into_encoded_bytes());
            } else if meta.is_dir() {
                todo.push(path);
            } else {
                files.insert(key, fs::read(&path).expect("read"));
            }
        }
    }
    files
}

/// The staging directories left in `dumps/sets/`.
pub fn staging(dumps: &Path) -> Vec<String> {
    fs::read_dir(dumps.join("sets"))
        .expect("sets/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".new-"))
        .collect()
}

/// Polls `probe` until it gives something, failing the test after
/// [`BOUND`].
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            start.elapsed() < BOUND,
            "{what} did not happen within {BOUND:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The options connecting a PostgreSQL client to `pg` as `postgres`.
pub fn pg_args(pg: &Postgres) -> Vec<String> {
    vec![
        format!("--host={}", pg.socket_dir.display()),
        format!("--port={}", pg.port),
        "--username=postgres".into(),
    ]
}

/// A session holding an exclusive lock on `table` alone (not its
/// partitions) in `database`, until [`release_pg`].
pub fn hold_pg_lock(pg: &Postgres, database: &str, table: &str) -> Child {
    let owner = fs::metadata(&pg.data_dir).expect("the data directory");
    let mut args = pg_args(pg);
    args.extend([
        format!("--dbname={database}"),
        format!("--command=LOCK TABLE ONLY {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)"),
    ]);
    let child = Command::new(pg.bin_dir.join("psql"))
        .args(&args)
        .uid(owner.uid())
        .gid(owner.gid())
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    wait_for("the lock", || {
        let held = pg.psql_in(
            database,
            &format!(
                "SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass \
                 AND mode = 'AccessExclusiveLock' AND granted"
            ),
        );
        (held == "1").then_some(())
    });
    child
}

/// The backend of a pg_dump waiting for a lock.
pub fn waiting_pg_dump(pg: &Postgres) -> String {
    wait_for("pg_dump waiting for the lock", || {
        let pid = pg.psql(
            "SELECT pid FROM pg_stat_activity \
             WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'",
        );
        (!pid.is_empty()).then_some(pid)
    })
}

/// Ends the lock holder of [`hold_pg_lock`]: its session (which would not
/// notice its client gone while it sleeps), then its client.
pub fn release_pg(pg: &Postgres, mut child: Child) {
    pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LOCK TABLE ONLY %'",
    );
    child.kill().expect("kill the lock holder");
    child.wait().expect("wait");
}

/// The pids of the children of `parent` named `name` (their `comm`).
pub fn children(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc") {
        let entry = entry.expect("entry");
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map_or("", |(_, c)| c);
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// A large file, so that a run lasts long enough to be watched.
pub fn grow(src: &Path, megabytes: usize) {
    let mut state = 0x9e37_79b9_u32;
    let bytes: Vec<u8> = (0..megabytes << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[1]
        })
        .collect();
    fs::write(src.join("large.bin"), bytes).expect("write the large file");
}

/// Pids whose `file` (`cmdline`, `environ`) holds `needle`.
pub fn holding(file: &str, needle: &str) -> Vec<u32> {
    let entries = fs::read_dir("/proc").expect("read /proc");
    let pids = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    pids.filter(|pid| {
        fs::read(format!("/proc/{pid}/{file}"))
            .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
    })
    .collect()
}

/// Asserts that no command line holds `secret` (`what` names the run in
/// the failure); the pids whose environment does.
pub fn environments_holding(secret: &str, what: &str) -> Vec<u32> {
    let argv = holding("cmdline", secret);
    assert_eq!(argv, Vec::<u32>::new(), "{what}: in a command line");
    holding("environ", secret)
}
