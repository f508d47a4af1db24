//! The bytes of every file `create` writes: into the new root (hostname,
//! network, resolv.conf, hosts, fstab, authorized_keys, the first-boot
//! script and its unit) and the systemd unit in hv_unit_dir that starts
//! qemu.

use std::path::{Path, PathBuf};

use super::options::{Backend, Options};
use super::step::Step;
use crate::mac::Mac;

/// A file to write: where, its mode, its bytes, and the step's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The step's name (for the failpoint and the messages).
    pub step: &'static str,
    /// Where it goes.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

fn file(step: &'static str, path: PathBuf, mode: u32, text: String) -> File {
    File {
        step,
        path,
        mode,
        bytes: text.into_bytes(),
    }
}

/// The steps inside the new root, in order: its files, and the links
/// that enable systemd-networkd and the first-boot unit (what
/// `systemctl enable` would make).
pub fn root_steps(o: &Options, mac: Mac) -> Vec<Step> {
    let root = o.root();
    let mut steps = vec![
        Step::Write(file(
            "hostname",
            root.join("etc/hostname"),
            0o644,
            format!("{}\n", o.name),
        )),
        Step::Write(file("network", root.join(NETWORK), 0o644, network(o, mac))),
        Step::Write(file(
            "resolv.conf",
            root.join("etc/resolv.conf"),
            0o644,
            resolv(o),
        )),
        Step::Write(file("hosts", root.join("etc/hosts"), 0o644, hosts(o))),
        Step::Write(file("fstab", root.join("etc/fstab"), 0o644, fstab(o))),
        enable(
            &root,
            "sockets.target.wants",
            "/lib/systemd/system/systemd-networkd.socket",
        ),
        enable(
            &root,
            "multi-user.target.wants",
            "/lib/systemd/system/systemd-networkd.service",
        ),
    ];
    if let Some(keys) = &o.authorized_keys {
        steps.push(Step::Ensure(root.join("root/.ssh"), 0o700));
        steps.push(Step::Write(File {
            step: "authorized_keys",
            path: root.join("root/.ssh/authorized_keys"),
            mode: 0o600,
            bytes: keys.clone(),
        }));
    }
    steps.push(Step::Write(file(
        "first-boot",
        root.join(FIRST_BOOT),
        0o755,
        first_boot(o),
    )));
    steps.push(Step::Write(file(
        "first-boot",
        root.join(FIRST_BOOT_UNIT),
        0o644,
        first_boot_unit(),
    )));
    steps.push(enable(
        &root,
        "multi-user.target.wants",
        &format!("/{FIRST_BOOT_UNIT}"),
    ));
    steps
        .into_iter()
        .map(|s| Step::InRoot(Box::new(s)))
        .collect()
}

/// The networkd file, in the root.
const NETWORK: &str = "etc/systemd/network/10-pysk.network";
/// The first-boot script, in the root.
pub const FIRST_BOOT: &str = "usr/local/sbin/pysk-first-boot";
/// The unit that runs it, in the root.
const FIRST_BOOT_UNIT: &str = "etc/systemd/system/pysk-first-boot.service";

/// The link in the root's `etc/systemd/system/<wants>/` to the unit
/// `target` (a path inside the guest).
fn enable(root: &Path, wants: &str, target: &str) -> Step {
    let target = PathBuf::from(target);
    let name = target.file_name().map(PathBuf::from).unwrap_or_default();
    Step::Link {
        name: "enable",
        link: root.join("etc/systemd/system").join(wants).join(name),
        target,
    }
}

fn network(o: &Options, mac: Mac) -> String {
    let mut text = format!(
        "[Match]\nMACAddress={mac}\n\n[Network]\nAddress={}/{}\n",
        o.ip, o.prefix
    );
    if let Some(gateway) = &o.gateway {
        text.push_str(&format!("Gateway={gateway}\n"));
    }
    for dns in &o.dns {
        text.push_str(&format!("DNS={dns}\n"));
    }
    text
}

fn resolv(o: &Options) -> String {
    match o.dns.is_empty() {
        true => "# no name server: hv_dns was empty\n".to_owned(),
        false => o.dns.iter().map(|d| format!("nameserver {d}\n")).collect(),
    }
}

fn hosts(o: &Options) -> String {
    let short = o.name.split('.').next().unwrap_or(&o.name);
    let names = if short == o.name {
        o.name.clone()
    } else {
        format!("{} {short}", o.name)
    };
    format!(
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{} {names}\n",
        o.ip
    )
}

fn fstab(o: &Options) -> String {
    match o.backend {
        Backend::Dir => "root / 9p trans=virtio,version=9p2000.L,rw 0 0\n".to_owned(),
        Backend::Image | Backend::Lvm => "/dev/vda / ext4 errors=remount-ro 0 1\n".to_owned(),
    }
}

fn first_boot(o: &Options) -> String {
    format!(
        "#!/bin/sh\n\
         # First boot of {}: new ssh host keys, then this script is removed\n\
         # (its unit runs only while it is there).\n\
         set -e\n\
         rm -f /etc/ssh/ssh_host_*\n\
         ssh-keygen -A\n\
         rm -f \"$0\"\n",
        o.name
    )
}

fn first_boot_unit() -> String {
    format!(
        "[Unit]\n\
         Description=pysk first boot: new ssh host keys\n\
         ConditionPathExists=/{FIRST_BOOT}\n\
         Before=ssh.service\n\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=/{FIRST_BOOT}\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The host's systemd unit that starts the virtual server.
pub fn unit_file(o: &Options, mac: Mac) -> File {
    file("unit", o.unit(), 0o644, unit(o, mac))
}

/// The systemd unit: qemu with the kernel, the root, the memory and the
/// MAC.
pub fn unit(o: &Options, mac: Mac) -> String {
    let (append, disk) = match o.backend {
        Backend::Dir => (
            "root=root rootfstype=9p rootflags=trans=virtio,version=9p2000.L rw console=ttyS0",
            format!(
                "-virtfs local,path={},mount_tag=root,security_model=passthrough,id=root",
                o.root().display()
            ),
        ),
        Backend::Image => (
            "root=/dev/vda rw console=ttyS0",
            format!("-drive file={},format=raw,if=virtio", o.image().display()),
        ),
        Backend::Lvm => (
            "root=/dev/vda rw console=ttyS0",
            format!("-drive file={},format=raw,if=virtio", o.volume().display()),
        ),
    };
    format!(
        "[Unit]\n\
         Description=pysk virtual server {name}\n\
         After=network.target\n\n\
         [Service]\n\
         ExecStart=/usr/bin/qemu-system-x86_64 -name {name} -machine accel=kvm:tcg -m {ram} -nographic \\\n  \
         -kernel {kernel} -initrd {initrd} \\\n  \
         -append \"{append}\" \\\n  \
         {disk} \\\n  \
         -netdev bridge,id=n0,br={bridge} -device virtio-net-pci,netdev=n0,mac={mac}\n\
         Restart=on-failure\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = o.name,
        ram = o.ram_mib,
        kernel = o.kernel().display(),
        initrd = o.initrd().display(),
        bridge = o.bridge,
    )
}
