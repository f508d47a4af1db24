//! The bytes of every file `create` writes: into the new root (hostname,
//! network, resolv.conf, hosts, fstab, authorized_keys, the first-boot
//! script) and the systemd unit in hv_vm_dir that starts qemu.

use std::path::PathBuf;

use super::options::{Backend, Options};

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

/// Every file, in the order they are written.
pub fn all(o: &Options) -> Vec<File> {
    let root = o.root();
    let mut files = vec![
        file(
            "hostname",
            root.join("etc/hostname"),
            0o644,
            format!("{}\n", o.name),
        ),
        file(
            "network",
            root.join("etc/systemd/network/10-pysk.network"),
            0o644,
            network(o),
        ),
        file(
            "resolv.conf",
            root.join("etc/resolv.conf"),
            0o644,
            resolv(o),
        ),
        file("hosts", root.join("etc/hosts"), 0o644, hosts(o)),
        file("fstab", root.join("etc/fstab"), 0o644, fstab(o)),
    ];
    if let Some(keys) = &o.authorized_keys {
        files.push(File {
            step: "authorized_keys",
            path: root.join("root/.ssh/authorized_keys"),
            mode: 0o600,
            bytes: keys.clone(),
        });
    }
    files.push(file(
        "first-boot",
        root.join("usr/local/sbin/pysk-first-boot"),
        0o755,
        first_boot(o),
    ));
    files.push(file("unit", o.unit(), 0o644, unit(o)));
    files
}

fn network(o: &Options) -> String {
    let mut text = format!(
        "[Match]\nName=en* eth*\n\n[Network]\nAddress={}/{}\n",
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
    o.dns.iter().map(|d| format!("nameserver {d}\n")).collect()
}

fn hosts(o: &Options) -> String {
    let short = o.name.split('.').next().unwrap_or(&o.name);
    let names = if short == o.name {
        o.name.clone()
    } else {
        format!("{} {short}", o.name)
    };
    format!("127.0.0.1 localhost\n{} {names}\n", o.ip)
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
         # First boot of {}: new ssh host keys, then this script is removed.\n\
         set -e\n\
         rm -f /etc/ssh/ssh_host_*\n\
         if command -v ssh-keygen >/dev/null; then ssh-keygen -A; fi\n\
         rm -f \"$0\"\n",
        o.name
    )
}

/// The systemd unit: qemu with the disk, the memory and the MAC.
pub fn unit(o: &Options) -> String {
    let root = o.root();
    let disk = match o.backend {
        Backend::Dir => format!(
            "-fsdev local,id=root,path={},security_model=passthrough \\\n  \
             -device virtio-9p-pci,fsdev=root,mount_tag=root \\\n  \
             -kernel {}/vmlinuz -initrd {}/initrd.img \\\n  \
             -append \"root=root rootfstype=9p rootflags=trans=virtio rw console=ttyS0\"",
            root.display(),
            root.display(),
            root.display()
        ),
        Backend::Image => format!("-drive file={},format=raw,if=virtio", o.image().display()),
        Backend::Lvm => format!("-drive file={},format=raw,if=virtio", o.volume().display()),
    };
    format!(
        "[Unit]\n\
         Description=pysk virtual server {name}\n\
         After=network.target\n\n\
         [Service]\n\
         ExecStart=/usr/bin/qemu-system-x86_64 -name {name} -machine accel=kvm:tcg -m {ram} -nographic \\\n  \
         {disk} \\\n  \
         -netdev bridge,id=n0,br={bridge} -device virtio-net-pci,netdev=n0,mac={mac}\n\
         Restart=on-failure\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        name = o.name,
        ram = o.ram_mib,
        bridge = o.bridge,
        mac = o.mac,
    )
}
