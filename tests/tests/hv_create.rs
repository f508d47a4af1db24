//! `pysk-hv create` with a scratch `hv_vm_root` and `hv_vm_dir`: `--plan`
//! prints every step and every file exactly and changes nothing (the MAC
//! gives way to NAME#1's when NAME's is in use); a taken NAME, a bad
//! `--ip` or `--ram` is refused; `--backend dir` makes a real root with
//! mmdebstrap; a step made to fail undoes those before it.

use std::fs;
use std::path::{Path, PathBuf};

use pysk_tests::{TempDir, assert_stderr_is, scratch, stderr, stdout, tool, write_switches};

/// The MACs of `web1` and `web1#1` (see hv_mac.rs).
const WEB1: &str = "66:9a:7f:b2:af:47";
const WEB1_1: &str = "d2:81:3c:f3:84:66";

/// A configuration directory whose `hv_vm_root` is `<scratch>/vm` and
/// `hv_vm_dir` `<scratch>/vms`, both there and empty.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let setup = Setup { dir: scratch() };
        fs::create_dir(setup.root()).expect("mkdir vm");
        fs::create_dir(setup.vms()).expect("mkdir vms");
        fs::write(setup.path("keys"), "ssh-ed25519 AAAAC3Nz test@example\n").expect("keys");
        write_switches(
            &setup.path("config"),
            &[
                ("hv_vm_root", setup.root().display().to_string()),
                ("hv_vm_dir", setup.vms().display().to_string()),
                ("hv_gateway", "192.0.2.1".to_owned()),
                ("hv_dns", "192.0.2.53, 192.0.2.54".to_owned()),
                (
                    "hv_authorized_keys",
                    setup.path("keys").display().to_string(),
                ),
            ],
        );
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self) -> PathBuf {
        self.path("vm")
    }

    fn vms(&self) -> PathBuf {
        self.path("vms")
    }

    fn create(&self, args: &[&str]) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .arg("create")
            .args(args)
    }
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The unit of `web1` with the `dir` backend under `root`.
fn dir_unit(root: &Path, mac: &str) -> String {
    let r = root.join("web1").display().to_string();
    format!(
        "[Unit]\nDescription=pysk virtual server web1\nAfter=network.target\n\n[Service]\n\
         ExecStart=/usr/bin/qemu-system-x86_64 -name web1 -machine accel=kvm:tcg -m 512 -nographic \\\n  \
         -fsdev local,id=root,path={r},security_model=passthrough \\\n  \
         -device virtio-9p-pci,fsdev=root,mount_tag=root \\\n  \
         -kernel {r}/vmlinuz -initrd {r}/initrd.img \\\n  \
         -append \"root=root rootfstype=9p rootflags=trans=virtio rw console=ttyS0\" \\\n  \
         -netdev bridge,id=n0,br=br0 -device virtio-net-pci,netdev=n0,mac={mac}\n\
         Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

const NETWORK: &str = "[Match]\nName=en* eth*\n\n[Network]\nAddress=192.0.2.17/24\n\
                       Gateway=192.0.2.1\nDNS=192.0.2.53\nDNS=192.0.2.54\n";

/// `text` with `   | ` before each line.
fn quoted(text: &str) -> String {
    text.lines().map(|l| format!("   | {l}\n")).collect()
}

#[test]
fn plan_prints_every_step_and_file_exactly_and_changes_nothing() {
    let setup = Setup::new();
    // web1's own MAC is taken by another definition: web1#1's is used.
    let other = format!("ExecStart=qemu -net nic,macaddr={WEB1}\n");
    fs::write(setup.vms().join("web0.service"), &other).expect("web0");
    let out = setup
        .create(&[
            "web1",
            "--size",
            "2G",
            "--ram",
            "512M",
            "--ip",
            "192.0.2.17/24",
            "--plan",
        ])
        .succeeds();
    let r = setup.root().join("web1").display().to_string();
    let v = setup.vms().display().to_string();
    let first_boot = "#!/bin/sh\n# First boot of web1: new ssh host keys, then this script is removed.\n\
                      set -e\nrm -f /etc/ssh/ssh_host_*\n\
                      if command -v ssh-keygen >/dev/null; then ssh-keygen -A; fi\nrm -f \"$0\"\n";
    let expected = format!(
        "1. mkdir {r}\n\
         2. mmdebstrap --variant=minbase bookworm {r} http://deb.debian.org/debian\n\
         3. write {r}/etc/hostname (0644)\n{}\
         4. write {r}/etc/systemd/network/10-pysk.network (0644)\n{}\
         5. write {r}/etc/resolv.conf (0644)\n{}\
         6. write {r}/etc/hosts (0644)\n{}\
         7. write {r}/etc/fstab (0644)\n{}\
         8. write {r}/root/.ssh/authorized_keys (0600)\n{}\
         9. write {r}/usr/local/sbin/pysk-first-boot (0755)\n{}\
         10. write {v}/pysk-vm-web1.service (0644)\n{}",
        quoted("web1\n"),
        quoted(NETWORK),
        quoted("nameserver 192.0.2.53\nnameserver 192.0.2.54\n"),
        quoted("127.0.0.1 localhost\n192.0.2.17 web1\n"),
        quoted("root / 9p trans=virtio,version=9p2000.L,rw 0 0\n"),
        quoted("ssh-ed25519 AAAAC3Nz test@example\n"),
        quoted(first_boot),
        quoted(&dir_unit(&setup.root(), WEB1_1)),
    );
    assert_eq!(stdout(&out), expected);
    assert!(listing(&setup.root()).is_empty());
    assert_eq!(listing(&setup.vms()), ["web0.service"]);
}

#[test]
fn plan_of_image_and_lvm_makes_and_mounts_the_disk_then_unmounts_it() {
    let setup = Setup::new();
    let r = setup.root().join("web1").display().to_string();
    let steps = |backend: &str| -> Vec<String> {
        let out = setup
            .create(&[
                "web1",
                "--size",
                "2G",
                "--ram",
                "512",
                "--ip",
                "192.0.2.17",
                "--plan",
            ])
            .args(["--backend", backend])
            .succeeds();
        let text = stdout(&out);
        assert!(
            text.contains("   | /dev/vda / ext4 errors=remount-ro 0 1\n"),
            "{text}"
        );
        text.lines()
            .filter(|l| !l.starts_with("   |") && !l.contains(". write "))
            .map(str::to_owned)
            .collect()
    };
    let img = format!("{}/web1.img", setup.root().display());
    assert_eq!(
        steps("image"),
        [
            format!("1. truncate -s 2147483648 {img}"),
            format!("2. mkfs.ext4 -q {img}"),
            format!("3. mkdir {r}"),
            format!("4. mount -o loop {img} {r}"),
            format!("5. mmdebstrap --variant=minbase bookworm {r} http://deb.debian.org/debian"),
            format!("14. umount {r}"),
        ]
    );
    assert_eq!(
        steps("lvm"),
        [
            "1. lvcreate -L 2147483648b -n web1 vg0".to_owned(),
            "2. mkfs.ext4 -q /dev/vg0/web1".to_owned(),
            format!("3. mkdir {r}"),
            format!("4. mount /dev/vg0/web1 {r}"),
            format!("5. mmdebstrap --variant=minbase bookworm {r} http://deb.debian.org/debian"),
            format!("14. umount {r}"),
        ]
    );
    assert!(listing(&setup.root()).is_empty());
}

#[test]
fn a_taken_name_or_a_bad_option_is_refused() {
    let setup = Setup::new();
    let ok = [
        "web1",
        "--size",
        "2G",
        "--ram",
        "512M",
        "--ip",
        "192.0.2.17/24",
    ];
    fs::write(setup.vms().join("pysk-vm-web1.service"), "").expect("unit");
    let out = setup.create(&ok).fails_with(65);
    let unit = setup.vms().join("pysk-vm-web1.service");
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {}: exists already: web1 is taken\n",
            unit.display()
        ),
    );
    fs::remove_file(&unit).expect("rm");
    for (i, bad) in ["10.0.0.300/24", "10.0.0.1/33", "web"]
        .into_iter()
        .enumerate()
    {
        let mut args = ok.to_vec();
        args[6] = bad;
        let out = setup.create(&args).fails_with(2);
        assert!(stderr(&out).contains("--ip: "), "{i}: {}", stderr(&out));
    }
    let mut args = ok.to_vec();
    args[4] = "12X";
    let out = setup.create(&args).fails_with(2);
    assert!(
        stderr(&out).contains("--ram: \"12X\": not a size"),
        "{}",
        stderr(&out)
    );
    assert!(listing(&setup.root()).is_empty());
    assert!(listing(&setup.vms()).is_empty());
}

#[test]
fn a_failing_step_undoes_the_steps_before_it() {
    let setup = Setup::new();
    let out = setup
        .create(&[
            "web1",
            "--size",
            "2G",
            "--ram",
            "512M",
            "--ip",
            "192.0.2.17/24",
        ])
        .env("PYSK_HV_FAILPOINT", "bootstrap")
        .fails_with(73);
    let r = setup.root().join("web1").display().to_string();
    assert_eq!(stdout(&out), format!("1. mkdir {r}\n"));
    let step2 =
        format!("2. mmdebstrap --variant=minbase bookworm {r} http://deb.debian.org/debian");
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: step 2 failed: {}: failure injected; undoing the steps before it\n\
             pysk-hv: undone: 1. mkdir {r}\n\
             pysk-hv: not made: step 2 failed, the steps before it undone\n",
            &step2[3..]
        ),
    );
    assert!(listing(&setup.root()).is_empty());
    assert!(listing(&setup.vms()).is_empty());
}

#[test]
fn backend_dir_makes_a_real_root_with_mmdebstrap() {
    if pysk_tests::require("mmdebstrap", "mmdebstrap").is_none() {
        return;
    }
    let setup = Setup::new();
    let out = setup
        .create(&[
            "web1",
            "--size",
            "2G",
            "--ram",
            "512M",
            "--ip",
            "192.0.2.17/24",
        ])
        .output();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let err = stderr(&out);
    if !out.status.success() && !ci && err.contains("Failed to fetch") {
        eprintln!("SKIPPED: the package mirror is not reachable:\n{err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    let root = setup.root().join("web1");
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(read("etc/os-release").contains("bookworm"));
    assert_eq!(read("etc/hostname"), "web1\n");
    assert_eq!(read("etc/systemd/network/10-pysk.network"), NETWORK);
    assert_eq!(
        read("root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAC3Nz test@example\n"
    );
    let unit = fs::read_to_string(setup.vms().join("pysk-vm-web1.service")).expect("unit");
    assert_eq!(unit, dir_unit(&setup.root(), WEB1));
    assert!(unit.contains(&format!("mac={WEB1}\n")));
    assert_eq!(stdout(&out).lines().count(), 10, "{}", stdout(&out));
}

#[test]
fn a_failure_after_mmdebstrap_undoes_every_step_before_it() {
    if pysk_tests::require("mmdebstrap", "mmdebstrap").is_none() {
        return;
    }
    let setup = Setup::new();
    let out = setup
        .create(&[
            "web1",
            "--size",
            "2G",
            "--ram",
            "512M",
            "--ip",
            "192.0.2.17/24",
        ])
        .env("PYSK_HV_FAILPOINT", "unit")
        .output();
    let err = stderr(&out);
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !ci && err.contains("Failed to fetch") {
        eprintln!("SKIPPED: the package mirror is not reachable:\n{err}");
        return;
    }
    assert_eq!(out.status.code(), Some(73), "{err}");
    assert_eq!(stdout(&out).lines().count(), 9, "{}", stdout(&out));
    let undone: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("pysk-hv: undone: "))
        .map(|l| l.split_once(". ").map_or(l, |(n, _)| n))
        .collect();
    assert_eq!(
        undone,
        ["9", "8", "7", "6", "5", "4", "3", "2", "1"],
        "{err}"
    );
    assert!(err.ends_with("pysk-hv: not made: step 10 failed, the steps before it undone\n"));
    assert!(listing(&setup.root()).is_empty());
    assert!(listing(&setup.vms()).is_empty());
}
