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
}

fn exists(path: &Path) -> bool {
    path.exists()
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
        "would take back PUBLIC's TEMPORARY on the database template1: \
         REVOKE TEMPORARY ON DATABASE template1 FROM PUBLIC;\n"
    );
    assert_eq!(
        env.public_has("TEMPORARY"),
        "t",
        "a dry run changes nothing"
    );
    assert!(!exists(&env.state()), "a dry run creates nothing");

    let out = env.tool().args(["pg", "setup"]).succeeds();
    assert_stderr_is(
        &out,
        "pysk-db: took back PUBLIC's TEMPORARY on the database template1\n",
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
        serde_json::json!({"version": 1, "dry_run": false, "changes": [], "unchanged": 4})
    );
}
