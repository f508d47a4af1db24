//! The files of each name in `ssl_dir`, and installing a new set of them
//! so that a server never loads a key with another key's certificate.
//!
//! Per name: `NAME.key` (mode 0640, group `ssl_key_group`), `NAME.crt`
//! (the leaf), `NAME_chain.crt` (the intermediates), `NAME_combined.crt`
//! (leaf and chain, what nginx and Dovecot load), `NAME.csr`, and
//! `NAME_pending.key`, the key of the last CSR until `install` takes it.
//!
//! The four live names are symbolic links into one directory of sets:
//! `NAME.key` → `.sets/NAME/current/NAME.key`, and `.sets/NAME/current`
//! → `<n>`, a directory holding one complete, matching set. An install
//! writes the set `<n+1>` whole ([`atomic::Batch`]: each file staged,
//! one `syncfs`, the renames, the directory synced), then flips `current`
//! with one `rename` of a new link over it: every live name changes at
//! the same instant. What a crash between two steps leaves:
//!
//! 1. before the flip: `current` still names the old set; the half-made
//!    `<n+1>` is unseen and the next install removes it;
//! 2. after the flip, before the live links exist (a first install): a
//!    name is missing or a link into the new set, never a file of
//!    another set: a server fails to load, it does not load a wrong pair;
//! 3. after the links, before the pending key is removed: the pending key
//!    is the live one; the next `csr` replaces it.
//!
//! Live names that are not yet these links — regular files installed by
//! hand before pysk, or symbolic links the admin made elsewhere (a
//! certbot-like `NAME.key` → `../archive/NAME/privkey3.pem`) — are first
//! adopted: what the names show is taken whole into a set of its own (`0`,
//! or the one after `current`): a regular file hard-linked, a link's
//! target copied (its mode and owner kept), a name already linked through
//! `current` hard-linked from there. `current` is pointed at that set
//! (crash point `adopted`), then each name replaced by its link. Every
//! name shows the same content throughout, so each relink moves between
//! two views of one consistent set, and the new set is written only
//! after. A link that dangles, loops or leads to something other than a
//! regular file is an error before anything is written.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use pysk_common::Error;
use pysk_common::atomic::{self, Batch, Options};
use pysk_common::error::{cause, read_err, write_err};
use pysk_common::failpoint;

use crate::certs::MAX_FILE;

/// The environment variable naming the crash point of the kill tests.
pub const FAILPOINT: &str = "PYSK_SSL_FAILPOINT";

/// One of the live files of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `NAME.key`.
    Key,
    /// `NAME.crt`.
    Cert,
    /// `NAME_chain.crt`.
    Chain,
    /// `NAME_combined.crt`.
    Combined,
}

impl Part {
    /// Every part, in the order a set is written.
    pub const ALL: [Part; 4] = [Part::Cert, Part::Chain, Part::Combined, Part::Key];

    /// Its file name for `name`.
    pub fn file(self, name: &str) -> String {
        match self {
            Part::Key => format!("{name}.key"),
            Part::Cert => format!("{name}.crt"),
            Part::Chain => format!("{name}_chain.crt"),
            Part::Combined => format!("{name}_combined.crt"),
        }
    }
}

/// The content of a set, one text per [`Part`].
#[derive(Debug, Clone)]
pub struct Set {
    /// The private key (PEM).
    pub key: Vec<u8>,
    /// The leaf (PEM).
    pub cert: Vec<u8>,
    /// The intermediates (PEM), possibly empty.
    pub chain: Vec<u8>,
}

impl Set {
    /// The content of `part`.
    fn content(&self, part: Part) -> Vec<u8> {
        match part {
            Part::Key => self.key.clone(),
            Part::Cert => self.cert.clone(),
            Part::Chain => self.chain.clone(),
            Part::Combined => [&self.cert[..], &self.chain[..]].concat(),
        }
    }
}

/// The certificate directory and the group of its keys.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    key_gid: u32,
}

impl Store {
    /// The store in `dir`, keys readable by the group `key_gid`.
    pub fn new(dir: PathBuf, key_gid: u32) -> Store {
        Store { dir, key_gid }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock file of `csr` and `install`.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(".pysk-ssl.lock")
    }

    /// The live file `part` of `name`.
    pub fn live(&self, name: &str, part: Part) -> PathBuf {
        self.dir.join(part.file(name))
    }

    /// The key of `name`'s last CSR, not yet installed.
    pub fn pending_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}_pending.key"))
    }

    /// `name`'s CSR.
    pub fn csr(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.csr"))
    }

    /// Where a run on `name` may have left temporary files: the directory,
    /// the name's directory of sets and `acme`'s directory (cleared under
    /// the lock with [`atomic::remove_stale_in`]).
    pub fn written_dirs(&self, name: &str) -> [PathBuf; 3] {
        [
            self.dir.clone(),
            self.dir.join(".sets").join(name),
            self.acme_dir(),
        ]
    }

    /// Creates the directory (0755) when it is missing.
    pub fn create(&self) -> Result<(), Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(write_err(&self.dir))
    }

    /// Writes a private key to `path` atomically: mode 0640, group
    /// `ssl_key_group`.
    pub fn write_key(&self, path: &Path, pem: &[u8]) -> Result<(), Error> {
        atomic::replace(path, pem, self.key_options()).map(drop)
    }

    /// Writes public content (a CSR) to `path` atomically, mode 0644.
    pub fn write_public(&self, path: &Path, text: &[u8]) -> Result<(), Error> {
        let options = Options {
            mode: Some(0o644),
            ..Options::default()
        };
        atomic::replace(path, text, options).map(drop)
    }

    fn key_options(&self) -> Options {
        Options {
            mode: Some(0o640),
            owner: Some((nix::unistd::geteuid().as_raw(), self.key_gid)),
            backup: false,
        }
    }

    /// Where `acme` keeps what it issued and which names it manages.
    pub fn acme_dir(&self) -> PathBuf {
        self.dir.join(".acme")
    }

    /// The chain `acme` last had issued for `name`.
    pub fn acme_chain(&self, name: &str) -> PathBuf {
        self.acme_dir().join(format!("{name}.pem"))
    }

    /// The record that `name` is ACME-managed (its names, webroot and CA).
    pub fn acme_record(&self, name: &str) -> PathBuf {
        self.acme_dir().join(format!("{name}.json"))
    }

    /// The names with a certificate here (`NAME.crt`), sorted.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(read_err(&self.dir))? {
            let entry = entry.map_err(read_err(&self.dir))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".crt") else {
                continue;
            };
            if !name.starts_with('.') && !name.ends_with("_chain") && !name.ends_with("_combined") {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Installs `set` as `name`'s live files (see the module's steps).
    pub fn install(&self, name: &str, set: &Set) -> Result<(), Error> {
        let live = self.live_names(name)?;
        let sets = self.dir.join(".sets").join(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&sets)
            .map_err(write_err(&sets))?;
        let mut current = current_set(&sets)?;
        if live.iter().any(|(_, state)| !matches!(state, Live::Linked)) {
            let adopted = current.map_or(0, |n| n + 1);
            self.adopt(name, &sets, adopted, current, &live)?;
            current = Some(adopted);
        }
        let next = current.map_or(1, |n| n + 1);
        self.write_set(name, &sets.join(next.to_string()), set)?;
        failpoint::reached(FAILPOINT, "set-written");
        flip(&sets, next)?;
        failpoint::reached(FAILPOINT, "flipped");
        self.link(name)?;
        prune(&sets, next, current)
    }

    /// What each live name of `name` is now; a name that is neither
    /// missing, nor a regular file, nor a link to one is an error, before
    /// anything is written.
    fn live_names(&self, name: &str) -> Result<Vec<(Part, Live)>, Error> {
        let mut live = Vec::new();
        for part in Part::ALL {
            let path = self.live(name, part);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(&path)(e)),
            };
            let state = if meta.is_file() {
                Live::File
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(read_err(&path))?;
                if target == self.link_target(name, part) {
                    Live::Linked
                } else {
                    linked_file(&path, &target)?;
                    Live::Link
                }
            } else {
                return Err(Error::Read {
                    path,
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        "neither a regular file nor a symbolic link; nothing changed",
                    ),
                });
            };
            live.push((part, state));
        }
        Ok(live)
    }

    /// Writes `set` into the new set directory `dir` (a leftover of a
    /// crashed install is removed first).
    fn write_set(&self, name: &str, dir: &Path, set: &Set) -> Result<(), Error> {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(dir)(e)),
        }
        fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .map_err(write_err(dir))?;
        let public = Options {
            mode: Some(0o644),
            ..Options::default()
        };
        let mut batch = Batch::new();
        for part in Part::ALL {
            let options = if part == Part::Key {
                self.key_options()
            } else {
                public
            };
            batch.stage(&dir.join(part.file(name)), &set.content(part), options)?;
        }
        batch.commit()
    }

    /// What the live names show becomes the set `n` (see the module's
    /// doc): hand-made files hard-linked (a key copied with the keys' mode
    /// and group), hand-made links' targets copied,
    /// names already linked hard-linked from the set `current`; then
    /// `current` is pointed at it and every name linked.
    fn adopt(
        &self,
        name: &str,
        sets: &Path,
        n: u64,
        current: Option<u64>,
        live: &[(Part, Live)],
    ) -> Result<(), Error> {
        let dir = sets.join(n.to_string());
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&dir)(e)),
        }
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(write_err(&dir))?;
        let mut copies = Batch::new();
        for (part, state) in live {
            let from = self.live(name, *part);
            let to = dir.join(part.file(name));
            match state {
                // A key made by hand is copied with the keys' mode and
                // group: one others could read is not kept so in the set.
                Live::File | Live::Link if *part == Part::Key => {
                    let content = fs::read(&from).map_err(read_err(&from))?;
                    copies.stage(&to, &content, self.key_options())?;
                }
                Live::File => fs::hard_link(&from, &to).map_err(write_err(&to))?,
                Live::Link => {
                    let meta = fs::metadata(&from).map_err(read_err(&from))?;
                    let content = fs::read(&from).map_err(read_err(&from))?;
                    let options = Options {
                        mode: Some(meta.mode() & 0o7777),
                        owner: Some((meta.uid(), meta.gid())),
                        backup: false,
                    };
                    copies.stage(&to, &content, options)?;
                }
                Live::Linked => {
                    let Some(k) = current else { continue };
                    let from = sets.join(k.to_string()).join(part.file(name));
                    if fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
                        fs::hard_link(&from, &to).map_err(write_err(&to))?;
                    }
                }
            }
        }
        copies.commit()?;
        atomic::sync_dir(&dir).map_err(write_err(&dir))?;
        flip(sets, n)?;
        failpoint::reached(FAILPOINT, "adopted");
        self.link(name)
    }

    /// The target of the live name `part`'s link: its file in `current`.
    fn link_target(&self, name: &str, part: Part) -> PathBuf {
        Path::new(".sets")
            .join(name)
            .join("current")
            .join(part.file(name))
    }

    /// Makes each live name the link into `current`, where it is not.
    fn link(&self, name: &str) -> Result<(), Error> {
        for part in Part::ALL {
            let path = self.live(name, part);
            let target = self.link_target(name, part);
            if fs::read_link(&path).is_ok_and(|t| t == target) {
                continue;
            }
            atomic::replace_link(&target, &path)?;
            failpoint::reached(FAILPOINT, &format!("linked-{}", part.file(name)));
        }
        atomic::sync_dir(&self.dir).map_err(write_err(&self.dir))
    }
}

/// What a live name is when an install starts (a missing one is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    /// The link into `current` that [`Store::link`] makes.
    Linked,
    /// A regular file made by hand: hard-linked when adopted.
    File,
    /// A symbolic link made by hand to a regular file: its content copied
    /// when adopted.
    Link,
}

/// Checks that the hand-made link `path` (to `target`) leads to a regular
/// file of at most [`MAX_FILE`] bytes: a link that dangles, loops or leads
/// elsewhere is an error naming both.
fn linked_file(path: &Path, target: &Path) -> Result<(), Error> {
    let why = match fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => return Ok(()),
        Ok(meta) if meta.is_file() => format!(
            "larger than {} KiB: not a key or certificate",
            MAX_FILE >> 10
        ),
        Ok(_) => "not a regular file".to_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => "missing".to_owned(),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => "a loop of links".to_owned(),
        Err(e) => format!("unreadable ({})", cause(&e)),
    };
    Err(Error::Read {
        path: path.to_owned(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a symbolic link to {}, which is {why}; nothing changed",
                target.display()
            ),
        ),
    })
}

/// The set `current` names, if any.
fn current_set(sets: &Path) -> Result<Option<u64>, Error> {
    let link = sets.join("current");
    match fs::read_link(&link) {
        Ok(target) => target
            .to_str()
            .and_then(|t| t.parse().ok())
            .map(Some)
            .ok_or_else(|| Error::Read {
                path: link,
                source: io::Error::other("not a link to a numbered set"),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_err(&link)(e)),
    }
}

/// Points `current` at the set `n` with one rename, then syncs.
fn flip(sets: &Path, n: u64) -> Result<(), Error> {
    atomic::replace_link(Path::new(&n.to_string()), &sets.join("current"))?;
    atomic::sync_dir(sets).map_err(write_err(sets))
}

/// Removes every set but `keep` and the one before it.
fn prune(sets: &Path, keep: u64, previous: Option<u64>) -> Result<(), Error> {
    for entry in fs::read_dir(sets).map_err(read_err(sets))? {
        let entry = entry.map_err(read_err(sets))?;
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        if n != keep && Some(n) != previous {
            fs::remove_dir_all(entry.path()).map_err(write_err(entry.path()))?;
        }
    }
    Ok(())
}
