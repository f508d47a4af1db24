//! The steps of a plan: what each does, how it is shown, how it is
//! undone.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::FAILPOINT;
use super::files::File;
use super::options::{Backend, Options};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make a directory (the root of `dir`, a mount point).
    Mkdir(PathBuf),
    /// Run a program; `undo` is the program that reverses it, if any.
    Run {
        /// The step's name (for the failpoint).
        name: &'static str,
        /// The program and its arguments.
        argv: Vec<String>,
        /// What reverses it.
        undo: Option<Vec<String>>,
    },
    /// `mmdebstrap` of the release into the root, checked for
    /// `/etc/os-release`.
    Bootstrap {
        /// The Debian release.
        release: String,
        /// Where.
        root: PathBuf,
        /// The mirror.
        mirror: String,
    },
    /// Write a file.
    Write(File),
}

impl From<File> for Step {
    fn from(file: File) -> Step {
        Step::Write(file)
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// The disk steps of `o`'s backend, up to a root to bootstrap into.
pub fn disk(o: &Options) -> Vec<Step> {
    let root = o.root().display().to_string();
    let size = o.size.to_string();
    let (device, mut steps) = match o.backend {
        Backend::Dir => return vec![Step::Mkdir(o.root())],
        Backend::Image => {
            let image = o.image().display().to_string();
            let create = argv(&["truncate", "-s", &size, &image]);
            let undo = Some(argv(&["rm", "-f", &image]));
            (
                image,
                vec![Step::Run {
                    name: "disk",
                    argv: create,
                    undo,
                }],
            )
        }
        Backend::Lvm => {
            let create = argv(&["lvcreate", "-L", &format!("{size}b"), "-n", &o.name, &o.vg]);
            let undo = Some(argv(&["lvremove", "-f", &format!("{}/{}", o.vg, o.name)]));
            let volume = o.volume().display().to_string();
            (
                volume,
                vec![Step::Run {
                    name: "disk",
                    argv: create,
                    undo,
                }],
            )
        }
    };
    let mkfs = argv(&["mkfs.ext4", "-q", &device]);
    steps.push(Step::Run {
        name: "mkfs",
        argv: mkfs,
        undo: None,
    });
    steps.push(Step::Mkdir(o.root()));
    let mount = match o.backend {
        Backend::Image => argv(&["mount", "-o", "loop", &device, &root]),
        _ => argv(&["mount", &device, &root]),
    };
    let undo = Some(argv(&["umount", &root]));
    steps.push(Step::Run {
        name: "mount",
        argv: mount,
        undo,
    });
    steps
}

/// The last steps: unmount the root of `image` and `lvm`.
pub fn finish(o: &Options) -> Vec<Step> {
    match o.backend {
        Backend::Dir => Vec::new(),
        Backend::Image | Backend::Lvm => {
            let root = o.root().display().to_string();
            vec![Step::Run {
                name: "umount",
                argv: argv(&["umount", &root]),
                undo: None,
            }]
        }
    }
}

impl Step {
    /// The step's name, as the failpoint names it.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Mkdir(_) => "disk",
            Step::Run { name, .. } => name,
            Step::Bootstrap { .. } => "bootstrap",
            Step::Write(file) => file.step,
        }
    }

    /// One line that says what the step does.
    pub fn title(&self) -> String {
        match self {
            Step::Mkdir(dir) => format!("mkdir {}", dir.display()),
            Step::Run { argv, .. } => argv.join(" "),
            Step::Bootstrap { .. } => self.bootstrap_argv().join(" "),
            Step::Write(file) => format!("write {} ({:04o})", file.path.display(), file.mode),
        }
    }

    /// Writes step `n`: its title and, for a file, every line of it
    /// after `| `.
    pub fn show(&self, n: usize, out: &mut impl Write) -> Result<(), pysk_common::Error> {
        let mut text = format!("{n}. {}\n", self.title());
        if let Step::Write(file) = self {
            for line in String::from_utf8_lossy(&file.bytes).lines() {
                text.push_str(&format!("   | {line}\n"));
            }
        }
        out.write_all(text.as_bytes())
            .map_err(pysk_common::Error::Stdout)
    }

    fn bootstrap_argv(&self) -> Vec<String> {
        let Step::Bootstrap {
            release,
            root,
            mirror,
        } = self
        else {
            return Vec::new();
        };
        let root = root.display().to_string();
        argv(&["mmdebstrap", "--variant=minbase", release, &root, mirror])
    }

    /// Fails when the failpoint names this step (tests only).
    pub fn injected(&self) -> Result<(), String> {
        match std::env::var_os(FAILPOINT) {
            Some(v) if v == self.name() => Err("failure injected".to_owned()),
            _ => Ok(()),
        }
    }

    /// Does the step.
    pub fn apply(&self) -> Result<(), String> {
        match self {
            Step::Mkdir(dir) => fs::create_dir(dir).map_err(|e| e.to_string()),
            Step::Run { argv, .. } => run(argv),
            Step::Bootstrap { root, .. } => {
                run(&self.bootstrap_argv())?;
                match root.join("etc/os-release").is_file() {
                    true => Ok(()),
                    false => Err(format!(
                        "{}: no etc/os-release: nothing was installed",
                        root.display()
                    )),
                }
            }
            Step::Write(file) => write(file).map_err(|e| e.to_string()),
        }
    }

    /// Undoes the step.
    pub fn undo(&self) -> Result<(), String> {
        match self {
            Step::Mkdir(dir) => remove_unmounted(dir),
            Step::Run {
                undo: Some(argv), ..
            } => run(argv),
            Step::Run { undo: None, .. } | Step::Bootstrap { .. } => Ok(()),
            Step::Write(file) => fs::remove_file(&file.path).map_err(|e| e.to_string()),
        }
    }
}

/// Removes the directory `dir` made, unless a file system is still
/// mounted at or below it (mmdebstrap's `/proc` and `/dev`, the disk
/// itself): removing through a mount point would delete what is on it.
fn remove_unmounted(dir: &Path) -> Result<(), String> {
    let table = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    match mounted_below(&table, dir) {
        Some(point) => Err(format!(
            "{} is still mounted: {} left in place",
            point.display(),
            dir.display()
        )),
        None => fs::remove_dir_all(dir).map_err(|e| e.to_string()),
    }
}

/// The first mount point of a `/proc/self/mountinfo` table that is `dir`
/// or lies below it (mount points there have blanks and such written as
/// octal escapes, `\040`).
fn mounted_below(table: &str, dir: &Path) -> Option<PathBuf> {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape(point)))
        .find(|point| point.starts_with(dir))
}

/// A mountinfo field with its `\NNN` octal escapes undone.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `file`, its directories made first.
fn write(file: &File) -> io::Result<()> {
    if let Some(parent) = file.path.parent() {
        fs::create_dir_all(parent)?;
    }
    let _ = fs::remove_file(&file.path);
    fs::write(&file.path, &file.bytes)?;
    fs::set_permissions(&file.path, fs::Permissions::from_mode(file.mode))
}

/// Runs `argv`, its output on stderr; an exit other than 0 is the error.
fn run(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("no program")?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("{program}: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 0:50 / /srv/vm/web\\0401/proc rw shared:40 - proc proc rw
91 22 7:0 / /srv/vm/web2 rw shared:41 - ext4 /dev/loop0 rw
";

    #[test]
    fn a_mount_at_or_below_the_directory_is_found_escapes_undone() {
        let below = mounted_below(TABLE, Path::new("/srv/vm/web 1"));
        assert_eq!(below, Some(PathBuf::from("/srv/vm/web 1/proc")));
        let at = mounted_below(TABLE, Path::new("/srv/vm/web2"));
        assert_eq!(at, Some(PathBuf::from("/srv/vm/web2")));
        assert_eq!(mounted_below(TABLE, Path::new("/srv/vm/web3")), None);
        assert_eq!(mounted_below(TABLE, Path::new("/srv/vm/web")), None);
    }
}
