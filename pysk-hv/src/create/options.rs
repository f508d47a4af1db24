//! The options of `create`, each checked before anything is changed: a
//! bad NAME, `--size`, `--ram` or `--ip` is a usage error (2); a NAME
//! whose disk or unit exists is refused (65); applying needs root (77).

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use pysk_common::error::read_err;
use pysk_common::hostname;

use crate::error::HvError;

/// Where the virtual server's root file system lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A directory under hv_vm_root, given to qemu over virtio-9p.
    Dir,
    /// A sparse image file under hv_vm_root with ext4, loop-mounted.
    Image,
    /// A logical volume of hv_vg with ext4.
    Lvm,
}

/// Everything `create` needs, resolved (in `settings::create`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The virtual server's name (its hostname).
    pub name: String,
    /// The disk's size in bytes.
    pub size: u64,
    /// The memory in MiB.
    pub ram_mib: u64,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// `--plan`: show, change nothing.
    pub plan: bool,
    /// The disk's kind.
    pub backend: Backend,
    /// Where disks and roots go (switch `hv_vm_root`).
    pub vm_root: PathBuf,
    /// The virtual servers' definitions, whose MACs are in use (switch
    /// `hv_vm_dir`).
    pub vm_dir: PathBuf,
    /// Where the systemd unit goes (switch `hv_unit_dir`).
    pub unit_dir: PathBuf,
    /// Where the tool's lock is (switch `hv_state_dir`).
    pub state_dir: PathBuf,
    /// How long to wait for the lock (`--wait`, switch `hv_wait`).
    pub wait: Duration,
    /// The volume group of `--backend lvm` (switch `hv_vg`).
    pub vg: String,
    /// The Debian release (switch `hv_release`).
    pub release: String,
    /// The mirror (switch `hv_mirror`).
    pub mirror: String,
    /// The gateway, if any (switch `hv_gateway`).
    pub gateway: Option<IpAddr>,
    /// The name servers (switch `hv_dns`).
    pub dns: Vec<IpAddr>,
    /// The bytes of `/root/.ssh/authorized_keys`, if any (switch
    /// `hv_authorized_keys`, a file).
    pub authorized_keys: Option<Vec<u8>>,
    /// The bridge the network device joins (switch `hv_bridge`).
    pub bridge: String,
}

/// The bytes of the file `path` names, if any.
pub fn keys(path: Option<PathBuf>) -> Result<Option<Vec<u8>>, HvError> {
    match path {
        None => Ok(None),
        Some(p) => Ok(Some(fs::read(&p).map_err(read_err(&p))?)),
    }
}

/// A host name (`common::hostname`), or a usage error saying why not.
pub fn check_name(name: &str) -> Result<(), HvError> {
    hostname::check(name).map_err(|why| HvError::Usage(format!("{name:?}: not a host name: {why}")))
}

/// `A.B.C.D/N` (N 1 to 32) or `A.B.C.D` (/24).
pub fn parse_ip(text: &str) -> Result<(Ipv4Addr, u8), HvError> {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "24"));
    let bad = || pysk_common::Error::option("--ip", format!("{text:?}: not A.B.C.D[/N]"));
    let ip = addr.parse().map_err(|_| bad())?;
    let prefix = prefix.parse().ok().filter(|p| (1..=32).contains(p));
    Ok((ip, prefix.ok_or_else(bad)?))
}

/// A size: a whole number with a suffix K, M, G or T (powers of 1024),
/// more than zero; a bare number is MiB.
pub fn parse_size(option: &str, text: &str) -> Result<u64, HvError> {
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 20),
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n >= 1 << 20)
        .ok_or_else(|| {
            pysk_common::Error::option(option, format!("{text:?}: not a size such as 512M or 10G"))
                .into()
        })
}

impl Options {
    /// The directory the root file system is made in (the disk itself
    /// with `dir`, its mount point otherwise).
    pub fn root(&self) -> PathBuf {
        self.vm_root.join(&self.name)
    }

    /// The image file of `--backend image`.
    pub fn image(&self) -> PathBuf {
        self.vm_root.join(format!("{}.img", self.name))
    }

    /// The block device of `--backend lvm`.
    pub fn volume(&self) -> PathBuf {
        Path::new("/dev").join(&self.vg).join(&self.name)
    }

    /// The systemd unit that starts the virtual server.
    pub fn unit(&self) -> PathBuf {
        self.unit_dir.join(self.unit_name())
    }

    /// The unit's file name.
    pub fn unit_name(&self) -> String {
        format!("pysk-vm-{}.service", self.name)
    }

    /// The link in `multi-user.target.wants` that enables the unit.
    pub fn unit_link(&self) -> PathBuf {
        self.unit_dir
            .join("multi-user.target.wants")
            .join(self.unit_name())
    }

    /// The kernel qemu boots (`image`, `lvm`: a copy beside the disk;
    /// `dir`: the root's own link).
    pub fn kernel(&self) -> PathBuf {
        match self.backend {
            Backend::Dir => self.root().join("vmlinuz"),
            Backend::Image | Backend::Lvm => self.vm_root.join(format!("{}.vmlinuz", self.name)),
        }
    }

    /// The initial RAM disk qemu boots with, as [`Options::kernel`].
    pub fn initrd(&self) -> PathBuf {
        match self.backend {
            Backend::Dir => self.root().join("initrd.img"),
            Backend::Image | Backend::Lvm => self.vm_root.join(format!("{}.initrd", self.name)),
        }
    }

    /// Refuses a NAME whose disk, root, kernel or unit is there already
    /// (65).
    pub fn refuse_existing(&self) -> Result<(), HvError> {
        let mut paths = vec![self.root(), self.unit(), self.unit_link()];
        match self.backend {
            Backend::Dir => {}
            Backend::Image => paths.extend([self.image(), self.kernel(), self.initrd()]),
            Backend::Lvm => paths.extend([self.volume(), self.kernel(), self.initrd()]),
        }
        match paths.iter().find(|p| fs::symlink_metadata(p).is_ok()) {
            Some(p) => Err(HvError::Exists(format!(
                "{}: exists already: {} is taken",
                p.display(),
                self.name
            ))),
            None => Ok(()),
        }
    }
}

/// Refuses to change anything unless run as root (77).
pub fn require_root() -> Result<(), HvError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(HvError::NotRoot(
            "create needs root (mmdebstrap, mount, the unit)".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_a_suffix_or_mean_mib() {
        assert_eq!(parse_size("--size", "10G").ok(), Some(10 << 30));
        assert_eq!(parse_size("--ram", "512m").ok(), Some(512 << 20));
        assert_eq!(parse_size("--ram", "2048").ok(), Some(2048 << 20));
        assert_eq!(parse_size("--size", "1T").ok(), Some(1 << 40));
        for bad in ["", "0", "G", "-1G", "1.5G", "512K", "99999999999T"] {
            assert!(parse_size("--size", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_address_takes_a_prefix_or_is_a_24() {
        let ip = Ipv4Addr::new(192, 0, 2, 17);
        assert_eq!(parse_ip("192.0.2.17/28").ok(), Some((ip, 28)));
        assert_eq!(parse_ip("192.0.2.17").ok(), Some((ip, 24)));
        for bad in ["192.0.2.17/0", "192.0.2.17/33", "192.0.2/24", "web", "::1"] {
            assert!(parse_ip(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_name_is_a_host_name() {
        assert!(check_name("web7.example.org").is_ok());
        for bad in ["", "-x", ".x", "a b", "a/b", "a;b", "a_b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
