//! The steps of a plan: what each does, how it is shown, how it is
//! undone.

use std::fs::{self, DirBuilder};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pysk_common::{atomic, failpoint};

use super::FAILPOINT;
use super::files::File;
use super::options::{Backend, Options};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make a directory with a mode (the root of `dir`, a mount point,
    /// `root/.ssh`); undone by removing it, never across a mount.
    Mkdir(PathBuf, u32),
    /// Make a directory when missing (the root's `root/.ssh`, which
    /// openssh-server may have made) and give it a mode.
    Ensure(PathBuf, u32),
    /// Run a program; `undo` is the program that reverses it, if any.
    Run {
        /// The step's name (for the failpoint).
        name: &'static str,
        /// The program and its arguments.
        argv: Vec<String>,
        /// What reverses it.
        undo: Option<Vec<String>>,
    },
    /// `mmdebstrap` into `root`, checked for `etc/os-release`.
    Bootstrap {
        /// The program and its arguments.
        argv: Vec<String>,
        /// Where.
        root: PathBuf,
    },
    /// Write a file (atomically: a temporary file renamed over it).
    Write(File),
    /// Make the symbolic link `link` pointing to `target` (what
    /// `systemctl enable` makes).
    Link {
        /// The step's name (for the failpoint).
        name: &'static str,
        /// The link.
        link: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// Copy the file the root's link `from` (`vmlinuz`, `initrd.img`)
    /// leads to, within the root, out of the root to `to`.
    Copy {
        /// The step's name (for the failpoint).
        name: &'static str,
        /// The root.
        root: PathBuf,
        /// The link or file, relative to the root.
        from: &'static str,
        /// Where the copy goes.
        to: PathBuf,
    },
    /// `systemctl daemon-reload`, when systemd runs.
    Reload,
    /// Mount the disk on the root; undone by unmounting it when it is
    /// still mounted there.
    Mount {
        /// The program and its arguments.
        argv: Vec<String>,
        /// The mount point.
        root: PathBuf,
    },
    /// A step inside the new root: nothing to undo on its own, as the
    /// root goes as a whole (the directory, or the disk).
    InRoot(Box<Step>),
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
    let (device, create, undo) = match o.backend {
        Backend::Dir => return vec![Step::Mkdir(o.root(), 0o755)],
        Backend::Image => {
            let image = o.image().display().to_string();
            let create = argv(&["truncate", "-s", &size, &image]);
            let undo = argv(&["rm", "-f", &image]);
            (image, create, undo)
        }
        Backend::Lvm => {
            let create = argv(&["lvcreate", "-L", &format!("{size}b"), "-n", &o.name, &o.vg]);
            let undo = argv(&["lvremove", "-f", &format!("{}/{}", o.vg, o.name)]);
            (o.volume().display().to_string(), create, undo)
        }
    };
    let mount = match o.backend {
        Backend::Image => argv(&["mount", "-o", "loop", &device, &root]),
        _ => argv(&["mount", &device, &root]),
    };
    vec![
        Step::Run {
            name: "disk",
            argv: create,
            undo: Some(undo),
        },
        Step::Run {
            name: "mkfs",
            argv: argv(&["mkfs.ext4", "-q", &device]),
            undo: None,
        },
        Step::Mkdir(o.root(), 0o755),
        Step::Mount {
            argv: mount,
            root: o.root(),
        },
    ]
}

/// The packages a server needs beyond `minbase`: init, udev, a kernel,
/// sshd, `ip`.
pub const INCLUDE: &str = "systemd-sysv,udev,linux-image-amd64,openssh-server,iproute2";

/// The `dir` backend's hooks: 9p and its virtio transport into the
/// initramfs (their dependencies, such as netfs, come with them), so
/// that the kernel can mount the root qemu shares.
const NINEP_HOOKS: [&str; 2] = [
    "printf '9p\\n9pnet_virtio\\n' >>\"$1/etc/initramfs-tools/modules\"",
    "chroot \"$1\" update-initramfs -u",
];

/// The `mmdebstrap` step of `o`.
pub fn bootstrap(o: &Options) -> Step {
    let root = o.root().display().to_string();
    let mut words = argv(&["mmdebstrap", "--variant=minbase"]);
    words.push(format!("--include={INCLUDE}"));
    if o.backend == Backend::Dir {
        words.extend(NINEP_HOOKS.iter().map(|h| format!("--customize-hook={h}")));
    }
    words.extend([o.release.clone(), root, o.mirror.clone()]);
    Step::Bootstrap {
        argv: words,
        root: o.root(),
    }
}

/// The last steps: the kernel and initramfs copied out of the root of
/// `image` and `lvm`, which are then unmounted.
pub fn finish(o: &Options) -> Vec<Step> {
    match o.backend {
        Backend::Dir => Vec::new(),
        Backend::Image | Backend::Lvm => {
            let root = o.root().display().to_string();
            vec![
                Step::Copy {
                    name: "kernel",
                    root: o.root(),
                    from: "vmlinuz",
                    to: o.kernel(),
                },
                Step::Copy {
                    name: "initrd",
                    root: o.root(),
                    from: "initrd.img",
                    to: o.initrd(),
                },
                Step::Run {
                    name: "umount",
                    argv: argv(&["umount", &root]),
                    undo: None,
                },
            ]
        }
    }
}

/// The host's steps: the unit, its enabling link, `daemon-reload`.
pub fn unit(o: &Options, file: File) -> Vec<Step> {
    vec![
        Step::Write(file),
        Step::Link {
            name: "enable",
            link: o.unit_link(),
            target: o.unit(),
        },
        Step::Reload,
    ]
}

/// `word` as the shell would need it in a command line: as it is when
/// plain, else in single quotes.
fn shown(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    match plain {
        true => word.to_owned(),
        false => crate::ssh::quote(word),
    }
}

impl Step {
    /// The step's name, as the failpoint names it.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Mkdir(..) | Step::Ensure(..) => "mkdir",
            Step::Run { name, .. } | Step::Link { name, .. } | Step::Copy { name, .. } => name,
            Step::Bootstrap { .. } => "bootstrap",
            Step::Write(file) => file.step,
            Step::Reload => "reload",
            Step::Mount { .. } => "mount",
            Step::InRoot(step) => step.name(),
        }
    }

    /// One line that says what the step does (a command line, quoted
    /// as a shell would need it).
    pub fn title(&self) -> String {
        let line = |words: &[String]| words.iter().map(|w| shown(w)).collect::<Vec<_>>().join(" ");
        match self {
            Step::Mkdir(dir, mode) => format!("mkdir -m {mode:04o} {}", dir.display()),
            Step::Ensure(dir, mode) => format!("mkdir -p -m {mode:04o} {}", dir.display()),
            Step::Run { argv, .. } | Step::Bootstrap { argv, .. } | Step::Mount { argv, .. } => {
                line(argv)
            }
            Step::InRoot(step) => step.title(),
            Step::Write(file) => format!("write {} ({:04o})", file.path.display(), file.mode),
            Step::Link { link, target, .. } => {
                format!("ln -s {} {}", target.display(), link.display())
            }
            Step::Copy { root, from, to, .. } => {
                format!("cp {}/{from} {} (0644)", root.display(), to.display())
            }
            Step::Reload => "systemctl daemon-reload (when systemd runs)".to_owned(),
        }
    }

    /// Writes step `n`: its title and, for a file, every line of it
    /// after `| `.
    pub fn show(&self, n: usize, out: &mut impl Write) -> Result<(), pysk_common::Error> {
        let mut text = format!("{n}. {}\n", self.title());
        let inner = match self {
            Step::InRoot(step) => step,
            step => step,
        };
        if let Step::Write(file) = inner {
            for line in String::from_utf8_lossy(&file.bytes).lines() {
                text.push_str(&format!("   | {line}\n"));
            }
        }
        out.write_all(text.as_bytes())
            .map_err(pysk_common::Error::Stdout)
    }

    /// Fails when the failpoint names this step (tests only).
    pub fn injected(&self) -> Result<(), String> {
        match failpoint::hit(FAILPOINT, self.name()) {
            true => Err("failure injected".to_owned()),
            false => Ok(()),
        }
    }

    /// Does the step.
    pub fn apply(&self) -> Result<(), String> {
        match self {
            Step::Mkdir(dir, mode) => make_dir(dir, *mode, false),
            Step::Ensure(dir, mode) => make_dir(dir, *mode, true),
            Step::Run { argv, .. } | Step::Mount { argv, .. } => run(argv),
            Step::InRoot(step) => step.apply(),
            Step::Bootstrap { argv, root } => {
                run(argv)?;
                match root.join("etc/os-release").is_file() {
                    true => Ok(()),
                    false => Err(format!(
                        "{}: no etc/os-release: nothing was installed",
                        root.display()
                    )),
                }
            }
            Step::Write(file) => write(file),
            Step::Link { link, target, .. } => link_to(target, link),
            Step::Copy { root, from, to, .. } => copy_out(root, from, to),
            Step::Reload => match Path::new(SYSTEMD_RUNNING).is_dir() {
                true => run(&argv(&["systemctl", "daemon-reload"])),
                false => Ok(()),
            },
        }
    }

    /// Undoes the step.
    pub fn undo(&self) -> Result<(), String> {
        match self {
            Step::Mkdir(dir, _) => remove_unmounted(dir),
            Step::Run {
                undo: Some(argv), ..
            } => run(argv),
            Step::Run { undo: None, .. } | Step::Bootstrap { .. } | Step::Reload => Ok(()),
            Step::Ensure(..) => Ok(()),
            Step::InRoot(_) => Ok(()),
            Step::Mount { root, .. } => match mount_point(root)? {
                true => run(&argv(&["umount", &root.display().to_string()])),
                false => Ok(()),
            },
            Step::Write(File { path, .. })
            | Step::Link { link: path, .. }
            | Step::Copy { to: path, .. } => fs::remove_file(path).map_err(|e| e.to_string()),
        }
    }
}

/// Makes `dir` (its parents too when `existing` is allowed, a directory
/// already there then being kept) and gives it `mode`.
fn make_dir(dir: &Path, mode: u32, existing: bool) -> Result<(), String> {
    DirBuilder::new()
        .mode(mode)
        .recursive(existing)
        .create(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Where systemd keeps its runtime state: there only when it runs.
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// Makes the link `link` to `target`, its directory made first.
fn link_to(target: &Path, link: &Path) -> Result<(), String> {
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("{}: {e}", link.display()))
}

/// How many links are followed inside a root before giving up.
const MAX_LINKS: usize = 8;

/// Copies the file `root/from` leads to (its links read as the guest
/// reads them: an absolute target is inside the root) to `to`, 0644.
fn copy_out(root: &Path, from: &str, to: &Path) -> Result<(), String> {
    let mut path = root.join(from);
    for _ in 0..MAX_LINKS {
        let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.file_type().is_file() {
            let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            return write(&File {
                step: "copy",
                path: to.to_path_buf(),
                mode: 0o644,
                bytes,
            });
        }
        if !meta.file_type().is_symlink() {
            return Err(format!("{}: not a file", path.display()));
        }
        let target = fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = match target.is_absolute() {
            true => root.to_path_buf(),
            false => path.parent().unwrap_or(root).to_path_buf(),
        };
        path = base.join(target.strip_prefix("/").unwrap_or(&target));
    }
    Err(format!("{}/{from}: too many links", root.display()))
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
        None => remove_tree(dir),
    }
}

/// Removes `dir` and all below it without leaving its file system: a
/// directory on another device is refused, and links are removed, never
/// followed.
fn remove_tree(dir: &Path) -> Result<(), String> {
    let device = fs::symlink_metadata(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .dev();
    remove_below(dir, device)?;
    fs::remove_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Removes what is in `dir`, all on `device`.
fn remove_below(dir: &Path, device: u64) -> Result<(), String> {
    let fail = |p: &Path, e: io::Error| format!("{}: {e}", p.display());
    for entry in fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let path = entry.map_err(|e| fail(dir, e))?.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| fail(&path, e))?;
        if !meta.is_dir() {
            fs::remove_file(&path).map_err(|e| fail(&path, e))?;
        } else if meta.dev() == device {
            remove_below(&path, device)?;
            fs::remove_dir(&path).map_err(|e| fail(&path, e))?;
        } else {
            return Err(format!(
                "{}: another file system: left in place",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Whether a file system is mounted on `dir` itself.
fn mount_point(dir: &Path) -> Result<bool, String> {
    let table = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    Ok(mount_points(&table).any(|p| p == dir))
}

/// The mount points of a `/proc/self/mountinfo` table (blanks and such
/// are written there as octal escapes, `\040`).
fn mount_points(table: &str) -> impl Iterator<Item = PathBuf> {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape(point)))
}

/// The first mount point of a `/proc/self/mountinfo` table that is `dir`
/// or lies below it.
fn mounted_below(table: &str, dir: &Path) -> Option<PathBuf> {
    mount_points(table).find(|point| point.starts_with(dir))
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

/// Writes `file` atomically with its mode, its directories made first.
fn write(file: &File) -> Result<(), String> {
    if let Some(parent) = file.path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let options = atomic::Options {
        mode: Some(file.mode),
        ..atomic::Options::default()
    };
    atomic::replace(&file.path, &file.bytes, options)
        .map(|_| ())
        .map_err(|e| e.to_string())
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
