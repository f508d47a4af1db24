//! What a run leaves out is carried over from the last good set, so that
//! `current` always holds every database: a server left out by
//! `--postgres`/`--mysql` (or of whose databases `--only` names none)
//! keeps all its dumps, a server dumped with `--only` keeps those of its
//! other databases. Each carried dump is hard-linked into the new set,
//! its manifest entry kept and marked `"carried": true` with the set it
//! was made in. A database `--exclude` names is not carried, nor the
//! dumps of a server dropped with `--force` when its socket is gone, nor
//! a database no longer on a server the run connected to (warned about).

use std::fs;
use std::path::{Path, PathBuf};

use pysk_common::error::{read_err, write_err};
use pysk_common::report::Reporter;

use super::set::{self, Entry, Manifest};
use super::{Listed, Options, Planned, Skipped};
use crate::error::BackupError;

/// The last good set.
#[derive(Debug)]
pub struct Previous {
    /// Its directory.
    pub dir: PathBuf,
    /// Its name, the stamp (`20261129T235000Z`).
    pub name: String,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Previous {
    /// The set `current` names, with its manifest; one that cannot be
    /// read is warned about and taken as none.
    pub fn read(dump_dir: &Path, report: &Reporter) -> Option<Previous> {
        let dir = set::current_set(dump_dir)?;
        let name = dir.file_name()?.to_string_lossy().into_owned();
        match Manifest::read(&dir) {
            Ok(manifest) => Some(Previous {
                dir,
                name,
                manifest,
            }),
            Err(e) => {
                report.warn(format_args!("the last dump set: {e}"));
                None
            }
        }
    }
}

/// What a run makes: its plan, the servers and databases it skips, and
/// the databases of each server it connected.
pub type Made<'a> = (&'a [Planned], &'a [Skipped], &'a Listed);

/// The dumps of the last good set this run carries over, marked. A
/// database no longer on its server (as listed, when connected) is not
/// carried, with a warning.
pub fn carried(
    options: &Options,
    previous: Option<&Previous>,
    (plan, skipped, listed): Made<'_>,
    report: &Reporter,
) -> Vec<Entry> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let carries = |e: &Entry| {
        let dumped = plan.iter().any(|p| p.server == e.server);
        let dropped = skipped
            .iter()
            .any(|s| s.server == e.server && s.database.is_none());
        match (&e.database, dumped) {
            _ if dropped => false,
            (None, false) => true,
            (None, true) => false,
            (Some(db), false) => still_there(e, db, listed, report),
            (Some(db), true) => {
                !options.only.is_empty()
                    && !options.exclude.contains(db)
                    && !plan.iter().any(|p| p.database.as_ref() == Some(db))
                    && still_there(e, db, listed, report)
            }
        }
    };
    let entries = previous.manifest.dumps.iter().filter(|e| carries(e));
    entries
        .map(|e| Entry {
            carried: true,
            from: Some(e.from.clone().unwrap_or_else(|| previous.name.clone())),
            ..e.clone()
        })
        .collect()
}

/// Whether the database `db` of `entry` is still on its server (taken as
/// so when the server was not connected); warned about when not.
fn still_there(entry: &Entry, db: &String, listed: &Listed, report: &Reporter) -> bool {
    let gone = listed
        .of(&entry.server)
        .is_some_and(|dbs| !dbs.contains(db));
    if gone {
        report.warn(format_args!(
            "{} database {db} is no longer on the server; not carried over",
            super::display(&entry.server)
        ));
    }
    !gone
}

/// Hard-links each carried dump from the last good set into `staging`,
/// after checking it still has the size its manifest gives.
pub fn link(previous: &Previous, carried: &[Entry], staging: &Path) -> Result<(), BackupError> {
    for entry in carried {
        let from = previous.dir.join(&entry.file);
        let to = staging.join(&entry.file);
        let bytes = fs::metadata(&from).map_err(read_err(&from))?.len();
        if bytes != entry.bytes {
            return Err(BackupError::Failed {
                step: format!("carrying {} over", from.display()),
                reason: format!(
                    "{bytes} bytes, but its manifest says {}: the last good set was changed",
                    entry.bytes
                ),
            });
        }
        if let Some(dir) = to.parent() {
            set::make_dir(dir)?;
        }
        fs::hard_link(&from, &to).map_err(write_err(&to))?;
    }
    Ok(())
}

/// The set's dumps in order: each server's (PostgreSQL first), its
/// globals or grants before its databases, carried ones after the new.
pub fn ordered(mut dumps: Vec<Entry>) -> Vec<Entry> {
    dumps.sort_by_key(|e| (e.server != super::pg::SERVER, e.database.is_some()));
    dumps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{mysql, pg};

    fn entry(server: &str, kind: &str, database: Option<&str>, from: Option<&str>) -> Entry {
        Entry {
            server: server.into(),
            kind: kind.into(),
            database: database.map(str::to_owned),
            file: format!("{server}/{}", database.unwrap_or(kind)),
            bytes: 1,
            sha256: String::new(),
            tables: Default::default(),
            rows: "exact".into(),
            myisam: Vec::new(),
            carried: from.is_some(),
            from: from.map(str::to_owned),
            options: Default::default(),
        }
    }

    fn planned(server: &'static str, database: Option<&str>) -> Planned {
        let kind = if database.is_some() {
            "database"
        } else {
            "globals"
        };
        Planned {
            server,
            kind,
            database: database.map(str::to_owned),
        }
    }

    /// The dump options of `pysk-backup dump <argv>`, with no switches.
    fn options(argv: &[&str]) -> Options {
        use clap::Parser;
        use pysk_common::switches::Switches;
        let settings =
            pysk_common::settings::Settings::new(crate::settings::SWITCHES, Switches::default());
        let mut full = vec!["pysk-backup", "dump"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::parse_from(full).command {
            crate::cli::Command::Dump(args) => crate::settings::dump(&settings, &args),
            other => panic!("not dump: {other:?}"),
        }
        .expect("options")
    }

    /// A last good set with PostgreSQL's shop, crm (itself carried) and
    /// old, and MariaDB's blog.
    fn previous() -> Previous {
        Previous {
            dir: PathBuf::from("/d/sets/20261129T000000Z"),
            name: "20261129T000000Z".into(),
            manifest: Manifest {
                version: 1,
                created: String::new(),
                host: String::new(),
                dumps: vec![
                    entry(pg::SERVER, "globals", None, None),
                    entry(pg::SERVER, "database", Some("shop"), None),
                    entry(
                        pg::SERVER,
                        "database",
                        Some("crm"),
                        Some("20261128T000000Z"),
                    ),
                    entry(pg::SERVER, "database", Some("old"), None),
                    entry(mysql::SERVER, "grants", None, None),
                    entry(mysql::SERVER, "database", Some("blog"), None),
                ],
            },
        }
    }

    #[test]
    fn only_carries_the_rest_marked_with_its_set_but_not_the_excluded() {
        let options = options(&["--only", "shop", "--exclude", "old"]);
        let plan = [planned(pg::SERVER, None), planned(pg::SERVER, Some("shop"))];
        let carried = carried(
            &options,
            Some(&previous()),
            (&plan, &[], &Listed::default()),
            &quiet(),
        );
        let named: Vec<_> = carried
            .iter()
            .map(|e| (e.file.as_str(), e.from.as_deref()))
            .collect();
        assert_eq!(
            named,
            [
                ("postgresql/crm", Some("20261128T000000Z")),
                ("mariadb/grants", Some("20261129T000000Z")),
                ("mariadb/blog", Some("20261129T000000Z")),
            ]
        );
        assert!(carried.iter().all(|e| e.carried));
    }

    #[test]
    fn a_dropped_server_and_a_full_run_carry_nothing() {
        let plan = [planned(pg::SERVER, None), planned(pg::SERVER, Some("shop"))];
        let dropped = [Skipped {
            server: mysql::SERVER,
            database: None,
            reason: String::new(),
        }];
        let full = options(&[]);
        let made = (&plan[..], &dropped[..], &Listed::default());
        assert!(carried_names(&full, &previous(), made).is_empty());
    }

    #[test]
    fn only_does_not_carry_a_database_gone_from_its_server() {
        let plan = [planned(pg::SERVER, None), planned(pg::SERVER, Some("shop"))];
        let listed = Listed {
            pg: Some(vec!["shop".into(), "crm".into()]),
            mysql: Some(Vec::new()),
        };
        let made = (&plan[..], &[][..], &listed);
        assert_eq!(
            carried_names(&options(&["--only", "shop"]), &previous(), made),
            ["postgresql/crm", "mariadb/grants"]
        );
        let unknown = (&plan[..], &[][..], &Listed::default());
        assert_eq!(
            carried_names(&options(&["--only", "shop"]), &previous(), unknown).len(),
            4,
            "a server not connected keeps all its dumps"
        );
    }

    fn quiet() -> Reporter {
        Reporter::new("pysk-backup", pysk_common::report::Level::Quiet)
    }

    fn carried_names(options: &Options, previous: &Previous, made: Made<'_>) -> Vec<String> {
        carried(options, Some(previous), made, &quiet())
            .into_iter()
            .map(|e| e.file)
            .collect()
    }
}
