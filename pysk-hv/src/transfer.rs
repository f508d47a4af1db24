//! `copy` and `fetch`: one file to or from every host picked, as jobs of
//! the same [`fanout`] as `exec`, with the same classes, summary,
//! `--json`, `last-run.json` and `--dry-run`.
//!
//! The transport is the system's `ssh` running `cat` on the host, the file
//! on ssh's stdin (copy) or stdout (fetch), rather than `scp` or `sftp`:
//! one ssh per host is what `exec` already starts, classifies from its
//! `-E` log and ends with a remote `timeout`, so a copy is told apart
//! exactly like a command (`scp -O` would need its own log parsing, and
//! its sink writes in place, so a host would hold half a file when the
//! connection dies); the data goes through unchanged, byte for byte, as
//! ssh does not touch the bytes of a session without a terminal.
//!
//! - copy: `cat` into a temporary file beside DEST (under `umask 077`),
//!   its size checked against SRC's (a connection lost midway gives `cat`
//!   an early end of its input, not an error), `chmod` to the permission
//!   bits of SRC, `sync` (so that a power loss cannot leave an empty
//!   file in DEST's place), `mv -f` over DEST, `sync` of DEST's
//!   directory (so that the rename itself lasts): atomic on the host;
//!   the temporary file is removed again when a step fails or
//!   the shell is ended by HUP, INT, TERM or PIPE (a lost connection, the
//!   remote `timeout`), though not by KILL. The file belongs to the
//!   account logged in as.
//! - fetch: `cat -- REMOTE`, its stdout written as it comes into a
//!   temporary file (owner-only) in `DIR/<host>/` (made owner-only), and
//!   for each host that ended ok (cat's status comes after all its
//!   bytes) renamed to `DIR/<host>/<name of REMOTE>` when it holds every
//!   byte that came, synced before and its directory after: never held
//!   in memory, so a log or a disk image of any size is fine. The
//!   temporary files of the other hosts are removed, and the directories
//!   made for them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pysk_common::atomic;
use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::classify::Class;
use crate::error::HvError;
use crate::exec;
use crate::fanout;
use crate::ssh;

/// Which way the file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// A local file to every host.
    Copy {
        /// The local file.
        src: PathBuf,
        /// Where it goes on each host (a directory there gets SRC's name
        /// inside it).
        dest: String,
    },
    /// A file of every host into `dir/<host>/`.
    Fetch {
        /// The file on each host.
        remote: String,
        /// The local directory.
        dir: PathBuf,
    },
}

/// The options of `copy` and `fetch`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts, ssh, fanout, timeout, state, `--json`, `--dry-run`.
    pub run: crate::run::Run,
    /// The file and its way.
    pub transfer: Transfer,
}

/// Runs `copy` or `fetch`; any remote output on `out` and stderr.
pub fn run(options: &Options, report: &Reporter, out: &mut dyn Write) -> Result<Outcome, HvError> {
    let run = &options.run;
    let (shell, stdin) = match &options.transfer {
        Transfer::Copy { src, dest } => (copy_command(src, dest)?, Some(src.as_path())),
        Transfer::Fetch { remote, .. } => {
            local_name(remote)?;
            (format!("cat -- {}", ssh::quote(remote)), None)
        }
    };
    let Some(prepared) = crate::run::prepare(run, report)? else {
        return Ok(Outcome::Success);
    };
    let remote = ssh::remote_command(&[shell], run.timeout);
    if run.dry_run {
        return exec::dry_run(run, &prepared.hosts, &remote, out);
    }
    let mut jobs = exec::jobs(run, &prepared.hosts, prepared.private.path(), &remote)?;
    let fetching = match &options.transfer {
        Transfer::Fetch { remote, dir } => Some(Fetching::prepare(dir, remote, &mut jobs)?),
        Transfer::Copy { .. } => None,
    };
    let limits = run.limits(stdin, !run.json && stdin.is_some(), !run.json);
    let outcomes = fanout::run(&jobs, limits, report, out);
    if let Some(fetching) = fetching {
        fetching.conclude(&jobs, outcomes.as_deref().unwrap_or_default())?;
    }
    exec::finish(run, &outcomes?, report)
}

/// The shell text that writes stdin to `dest` on the host, atomically,
/// with the permission bits of `src`, and only when all of its bytes
/// came; `src` must be a regular file.
fn copy_command(src: &Path, dest: &str) -> Result<String, HvError> {
    let meta = fs::metadata(src).map_err(pysk_common::error::read_err(src))?;
    if meta.is_dir() {
        return Err(HvError::Usage(format!(
            "{}: a directory (copy takes a file)",
            src.display()
        )));
    }
    if !meta.is_file() {
        return Err(HvError::Usage(format!(
            "{}: not a regular file",
            src.display()
        )));
    }
    // Readable now, so that no host gets an empty file for it.
    fs::File::open(src).map_err(pysk_common::error::read_err(src))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| HvError::Usage(format!("{}: a file has a name", src.display())))?;
    if dest.is_empty() {
        return Err(HvError::Usage("DEST: empty".to_owned()));
    }
    let mode = meta.permissions().mode() & 0o777;
    // `s` says a failure's message with DEST in place of the temporary
    // file's name (each replacement shortens it, so the loop ends).
    Ok(format!(
        "d={}; if [ -d \"$d\" ]; then d=\"${{d%/}}\"/{}; fi; t=\"$d.pysk-hv.$$\"; umask 077; \
         trap 'rm -f \"$t\"' EXIT; trap 'exit 1' HUP INT TERM PIPE; \
         s() {{ while :; do case $e in *\"$t\"*) e=\"${{e%%\"$t\"*}}$d${{e#*\"$t\"}}\";; \
         *) break;; esac; done; printf '%s\\n' \"$e\" >&2; exit 1; }}; \
         e=$({{ cat > \"$t\"; }} 2>&1) || s; n=$(wc -c < \"$t\"); if [ $n -ne {size} ]; then \
         echo \"$d: $n of {size} bytes came, left as it was\" >&2; exit 1; fi; \
         e=$({{ chmod {mode:o} \"$t\" && sync -- \"$t\" && mv -f \"$t\" \"$d\" && \
         sync -- \"$(dirname -- \"$d\")\"; }} 2>&1) || s",
        ssh::quote(dest),
        ssh::quote(&name),
        size = meta.len(),
    ))
}

/// The name a fetched `remote` gets under `DIR/<host>/`: its last part.
fn local_name(remote: &str) -> Result<&str, HvError> {
    Path::new(remote)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| HvError::Usage(format!("{remote:?}: not the path of a file")))
}

/// A fetch under way: each host's stdout goes straight into a temporary
/// file in `DIR/<host>/`, made owner-only, which becomes
/// `DIR/<host>/<name>` when the host ended ok.
struct Fetching {
    /// `DIR`, and whether this run made it.
    dir: (PathBuf, bool),
    /// Each host's directory (in job order), whether this run made it,
    /// and its final file.
    hosts: Vec<(PathBuf, bool, PathBuf)>,
}

impl Fetching {
    /// Makes `dir/<host>/` for every job (owner-only, when missing) and
    /// points its stdout at a temporary file there.
    fn prepare(dir: &Path, remote: &str, jobs: &mut [fanout::Job]) -> Result<Fetching, HvError> {
        let name = local_name(remote)?;
        let made = !dir.exists();
        let mut hosts = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            let host_dir = dir.join(&job.host);
            let host_made = !host_dir.exists();
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&host_dir)
                .map_err(pysk_common::error::write_err(&host_dir))?;
            job.stdout_to = Some(host_dir.join(format!(".{name}.pysk-hv.{}", std::process::id())));
            hosts.push((host_dir.clone(), host_made, host_dir.join(name)));
        }
        Ok(Fetching {
            dir: (dir.to_owned(), made),
            hosts,
        })
    }

    /// Each ok host's file, when all of its bytes are in it, synced and
    /// renamed into place (then its directory synced); every other
    /// temporary file removed, with the directories this run made for
    /// nothing. `outcomes` is empty when the run failed.
    fn conclude(self, jobs: &[fanout::Job], outcomes: &[fanout::Outcome]) -> Result<(), HvError> {
        for (index, (job, (host_dir, made, path))) in jobs.iter().zip(&self.hosts).enumerate() {
            let Some(tmp) = &job.stdout_to else {
                continue;
            };
            match outcomes.get(index) {
                Some(o) if o.class == Class::Ok => commit(tmp, path, o.stdout_bytes)?,
                _ => {
                    let _ = fs::remove_file(tmp);
                    if *made {
                        let _ = fs::remove_dir(host_dir);
                    }
                }
            }
        }
        if self.dir.1 {
            // Fails, as it should, when a host's file is in it.
            let _ = fs::remove_dir(&self.dir.0);
        }
        Ok(())
    }
}

/// Puts the fetched `tmp` in place as `path` once it holds all `bytes`
/// that came: synced, renamed, the directory synced.
fn commit(tmp: &Path, path: &Path, bytes: u64) -> Result<(), HvError> {
    let file = fs::File::open(tmp).map_err(pysk_common::error::read_err(tmp))?;
    let len = file
        .metadata()
        .map_err(pysk_common::error::read_err(tmp))?
        .len();
    if len != bytes {
        let _ = fs::remove_file(tmp);
        return Err(
            pysk_common::error::write_err(path)(std::io::Error::other(format!(
                "{len} of {bytes} bytes written"
            )))
            .into(),
        );
    }
    file.sync_all()
        .map_err(pysk_common::error::write_err(path))?;
    fs::rename(tmp, path).map_err(pysk_common::error::write_err(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    atomic::sync_dir(dir).map_err(pysk_common::error::write_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Runs `shell` as the host's `sh -c` would, `input` on its stdin.
    fn sh(shell: &str, input: &[u8]) -> std::process::Output {
        let mut child = Command::new("sh")
            .args(["-c", shell])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("feeds");
        child.wait_with_output().expect("ends")
    }

    #[test]
    fn the_copy_command_writes_dest_or_into_a_directory_with_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("it's");
        let bytes: Vec<u8> = (0..=255u8).collect();
        fs::write(&src, &bytes).expect("src");
        fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).expect("chmod");
        let dest = dir.path().join("dest file");
        let shell = copy_command(&src, dest.to_str().expect("utf-8")).expect("command");
        assert!(sh(&shell, &bytes).status.success());
        assert_eq!(fs::read(&dest).expect("dest"), bytes);
        let mode = fs::metadata(&dest).expect("dest").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let into = dir.path().join("sub");
        fs::create_dir(&into).expect("mkdir");
        let shell = copy_command(&src, &format!("{}/", into.display())).expect("command");
        assert!(sh(&shell, &bytes).status.success());
        assert_eq!(fs::read(into.join("it's")).expect("in dir"), bytes);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_copy_that_cannot_write_names_dest_not_its_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("x.txt");
        fs::write(&src, "x\n").expect("src");
        let dest = dir.path().join("nodir/x.txt");
        let shell = copy_command(&src, dest.to_str().expect("utf-8")).expect("command");
        let out = sh(&shell, b"x\n");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).expect("utf-8");
        // dash and bash word it differently; both name the file.
        let named = format!("cannot create {}: ", dest.display());
        let bash = format!("{}: No such file or directory", dest.display());
        assert!(err.contains(&named) || err.contains(&bash), "{err}");
        assert!(!err.contains(".pysk-hv."), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn the_copy_syncs_the_file_before_the_rename_and_the_directory_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("mkdir");
        let log = dir.path().join("sync.log");
        let dest = dir.path().join("dest");
        // A sync that writes down its words and whether DEST is there yet.
        fs::write(
            bin.join("sync"),
            format!(
                "#!/bin/sh\nif [ -e '{}' ]; then w=after; else w=before; fi\n\
                 echo \"$w $*\" >> '{}'\n",
                dest.display(),
                log.display()
            ),
        )
        .expect("fake sync");
        fs::set_permissions(bin.join("sync"), fs::Permissions::from_mode(0o755)).expect("chmod");
        let src = dir.path().join("src");
        fs::write(&src, "x").expect("src");
        let shell = copy_command(&src, dest.to_str().expect("utf-8")).expect("command");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .args(["-c", &shell])
            .stdin(fs::File::open(&src).expect("src"))
            .env("PATH", path)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said = fs::read_to_string(&log).expect("sync ran");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 2, "{said}");
        let temp = lines[0]
            .strip_prefix(&format!("before -- {}.pysk-hv.", dest.display()))
            .unwrap_or_else(|| panic!("{said}"));
        assert!(temp.bytes().all(|b| b.is_ascii_digit()), "{said}");
        assert_eq!(lines[1], format!("after -- {}", dir.path().display()));
    }

    #[test]
    fn a_failed_copy_exits_1_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        fs::write(&src, "x").expect("src");
        let dest = dir.path().join("missing/dest");
        let out = sh(
            &copy_command(&src, dest.to_str().expect("utf-8")).expect("command"),
            b"x",
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(!dest.parent().expect("parent").exists());
    }

    #[test]
    fn a_short_copy_leaves_dest_as_it_was_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        fs::write(&src, "12345").expect("src");
        let dest = dir.path().join("dest");
        fs::write(&dest, "old").expect("dest");
        let shell = copy_command(&src, dest.to_str().expect("utf-8")).expect("command");
        let out = sh(&shell, b"123");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("{}: 3 of 5 bytes came, left as it was\n", dest.display())
        );
        assert_eq!(fs::read(&dest).expect("dest"), b"old");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 2);
    }

    #[test]
    fn copy_refuses_a_directory_and_a_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = copy_command(dir.path(), "/tmp/x").expect_err("a directory");
        assert!(matches!(err, HvError::Usage(_)), "{err}");
        assert!(copy_command(&dir.path().join("nope"), "/tmp/x").is_err());
    }

    #[test]
    fn a_fetched_file_is_named_for_the_remote_ones_last_part() {
        assert_eq!(local_name("/etc/hosts").expect("name"), "hosts");
        assert_eq!(local_name("conf/").expect("name"), "conf");
        assert!(local_name("/").is_err());
        assert!(local_name("..").is_err());
    }
}
