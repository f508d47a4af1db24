//! `pysk-hv create` with a scratch `hv_vm_root`, `hv_vm_dir`,
//! `hv_unit_dir` and `hv_state_dir`: `--plan` prints every step and
//! every file exactly and changes nothing (the MAC gives way to NAME#1's
//! when NAME's is in use); a taken NAME, a bad `--ip`, `--ram` or switch
//! is refused; a step made to fail undoes those before it; a rollback
//! never removes across a mount left in the root, and unmounts a loop
//! mount before removing; `--backend dir` makes a real root with
//! mmdebstrap, every file written compared with its mode, and
//! `--backend image` a real image on a loop device; each boots in qemu
//! with the unit's arguments and is reachable by ssh with the authorized
//! key.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pysk_tests::{TempDir, assert_stderr_is, scratch, stderr, stdout, tool, write_switches};

/// The MACs of `web1` and `web1#1` (see hv_mac.rs).
const WEB1: &str = "66:9a:7f:b2:af:47";
const WEB1_1: &str = "d2:81:3c:f3:84:66";

/// The authorized key of the plan tests.
const KEY: &str = "ssh-ed25519 AAAAC3Nz test@example\n";

/// What mmdebstrap installs beyond minbase.
const INCLUDE: &str = "--include=systemd-sysv,udev,linux-image-amd64,openssh-server,iproute2";

/// The `dir` backend's hooks, as the plan shows them.
const HOOKS: &str = "'--customize-hook=printf '\\''9p\\n9pnet_virtio\\n'\\'' \
                     >>\"$1/etc/initramfs-tools/modules\"' \
                     '--customize-hook=chroot \"$1\" update-initramfs -u'";

/// A configuration directory whose `hv_vm_root` is `<scratch>/vm`,
/// `hv_vm_dir` `<scratch>/vms`, `hv_unit_dir` `<scratch>/units` (all
/// there and empty) and `hv_state_dir` `<scratch>/state`.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup::with(&[
            ("hv_gateway", "192.0.2.1"),
            ("hv_dns", "192.0.2.53, 192.0.2.54"),
        ])
    }

    /// With the network switches `net` (and the test key).
    fn with(net: &[(&str, &str)]) -> Setup {
        let setup = Setup { dir: scratch() };
        for dir in ["vm", "vms", "units"] {
            fs::create_dir(setup.path(dir)).expect("mkdir");
        }
        fs::write(setup.path("keys"), KEY).expect("keys");
        let mut switches: Vec<(&str, String)> = vec![
            ("hv_vm_root", setup.root().display().to_string()),
            ("hv_vm_dir", setup.vms().display().to_string()),
            ("hv_unit_dir", setup.units().display().to_string()),
            ("hv_state_dir", setup.path("state").display().to_string()),
            (
                "hv_authorized_keys",
                setup.path("keys").display().to_string(),
            ),
        ];
        switches.extend(net.iter().map(|(k, v)| (*k, (*v).to_owned())));
        write_switches(&setup.path("config"), &switches);
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

    fn units(&self) -> PathBuf {
        self.path("units")
    }

    /// `create web1 --size 2G --ram 512M --ip 192.0.2.17/24` and `extra`.
    fn create(&self, extra: &[&str]) -> pysk_tests::TestCommand {
        self.create_as("web1", "512M", "192.0.2.17/24").args(extra)
    }

    /// `create NAME --size 2G --ram RAM --ip IP`.
    fn create_as(&self, name: &str, ram: &str, ip: &str) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .args(["create", name, "--size", "2G", "--ram", ram, "--ip", ip])
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

/// What one step writes: a file (path, mode, text) or a link (path,
/// target).
enum Made {
    File(PathBuf, u32, String),
    Link(PathBuf, String),
}

/// The host's unit of `web1` under `setup` with `backend` and `mac`.
fn unit(setup: &Setup, backend: &str, mac: &str) -> String {
    let vm = setup.root().display().to_string();
    let (kernel, initrd, append, disk) = match backend {
        "dir" => (
            format!("{vm}/web1/vmlinuz"),
            format!("{vm}/web1/initrd.img"),
            "root=root rootfstype=9p rootflags=trans=virtio,version=9p2000.L rw console=ttyS0",
            format!(
                "-virtfs local,path={vm}/web1,mount_tag=root,security_model=passthrough,id=root"
            ),
        ),
        _ => (
            format!("{vm}/web1.vmlinuz"),
            format!("{vm}/web1.initrd"),
            "root=/dev/vda rw console=ttyS0",
            format!("-drive file={vm}/web1.img,format=raw,if=virtio"),
        ),
    };
    format!(
        "[Unit]\nDescription=pysk virtual server web1\nAfter=network.target\n\n[Service]\n\
         ExecStart=/usr/bin/qemu-system-x86_64 -name web1 -machine accel=kvm:tcg -m 512 -nographic \\\n  \
         -kernel {kernel} -initrd {initrd} \\\n  \
         -append \"{append}\" \\\n  \
         {disk} \\\n  \
         -netdev bridge,id=n0,br=br0 -device virtio-net-pci,netdev=n0,mac={mac}\n\
         Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

const FIRST_BOOT: &str = "#!/bin/sh\n# First boot of web1: new ssh host keys, then this script is removed\n\
                          # (its unit runs only while it is there).\n\
                          set -e\nrm -f /etc/ssh/ssh_host_*\nssh-keygen -A\nrm -f \"$0\"\n";

const FIRST_BOOT_UNIT: &str = "[Unit]\nDescription=pysk first boot: new ssh host keys\n\
                               ConditionPathExists=/usr/local/sbin/pysk-first-boot\n\
                               Before=ssh.service\n\n[Service]\nType=oneshot\n\
                               ExecStart=/usr/local/sbin/pysk-first-boot\n\n\
                               [Install]\nWantedBy=multi-user.target\n";

/// Everything written into web1's root at `r`, in order, for `backend`,
/// `mac`, the address `ip` with `gateway` and name servers `dns`.
fn root_files(r: &Path, backend: &str, mac: &str, net: &Net) -> Vec<Made> {
    let file = |p: &str, mode, text: &str| Made::File(r.join(p), mode, text.to_owned());
    let link = |p: &str, target: &str| Made::Link(r.join(p), target.to_owned());
    let gateway = net
        .gateway
        .map(|g| format!("Gateway={g}\n"))
        .unwrap_or_default();
    let dns: String = net.dns.iter().map(|d| format!("DNS={d}\n")).collect();
    let network = format!(
        "[Match]\nMACAddress={mac}\n\n[Network]\nAddress={}\n{gateway}{dns}",
        net.address
    );
    let resolv: String = net
        .dns
        .iter()
        .map(|d| format!("nameserver {d}\n"))
        .collect();
    let ip = net.address.split('/').next().unwrap_or_default();
    let hosts =
        format!("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{ip} web1\n");
    let fstab = match backend {
        "dir" => "root / 9p trans=virtio,version=9p2000.L,rw 0 0\n",
        _ => "/dev/vda / ext4 errors=remount-ro 0 1\n",
    };
    let wants = "etc/systemd/system/multi-user.target.wants";
    vec![
        file("etc/hostname", 0o644, "web1\n"),
        file("etc/systemd/network/10-pysk.network", 0o644, &network),
        file("etc/resolv.conf", 0o644, &resolv),
        file("etc/hosts", 0o644, &hosts),
        file("etc/fstab", 0o644, fstab),
        link(
            "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
            "/lib/systemd/system/systemd-networkd.socket",
        ),
        link(
            &format!("{wants}/systemd-networkd.service"),
            "/lib/systemd/system/systemd-networkd.service",
        ),
        Made::File(r.join("root/.ssh"), 0o700, String::new()),
        file("root/.ssh/authorized_keys", 0o600, &net.key),
        file("usr/local/sbin/pysk-first-boot", 0o755, FIRST_BOOT),
        file(
            "etc/systemd/system/pysk-first-boot.service",
            0o644,
            FIRST_BOOT_UNIT,
        ),
        link(
            &format!("{wants}/pysk-first-boot.service"),
            "/etc/systemd/system/pysk-first-boot.service",
        ),
    ]
}

/// The network of a test's virtual server, and its key.
struct Net {
    address: &'static str,
    gateway: Option<&'static str>,
    dns: Vec<&'static str>,
    key: String,
}

/// The network of [`Setup::new`].
fn plan_net() -> Net {
    Net {
        address: "192.0.2.17/24",
        gateway: Some("192.0.2.1"),
        dns: vec!["192.0.2.53", "192.0.2.54"],
        key: KEY.to_owned(),
    }
}

/// `text` with `   | ` before each line.
fn quoted(text: &str) -> String {
    text.lines().map(|l| format!("   | {l}\n")).collect()
}

/// The plan's lines of `made`.
fn shown(made: &Made) -> String {
    match made {
        Made::File(path, 0o700, _) => format!("mkdir -p -m 0700 {}\n", path.display()),
        Made::File(path, mode, text) => {
            format!("write {} ({mode:04o})\n{}", path.display(), quoted(text))
        }
        Made::Link(path, target) => format!("ln -s {target} {}\n", path.display()),
    }
}

/// The whole `--plan` of the `dir` backend.
fn dir_plan(setup: &Setup, mac: &str) -> String {
    let r = setup.root().join("web1");
    let u = setup.units();
    let mut steps = vec![
        format!("mkdir -m 0755 {}\n", r.display()),
        format!(
            "mmdebstrap --variant=minbase {INCLUDE} {HOOKS} bookworm {} http://deb.debian.org/debian\n",
            r.display()
        ),
    ];
    steps.extend(root_files(&r, "dir", mac, &plan_net()).iter().map(shown));
    steps.push(format!(
        "write {}/pysk-vm-web1.service (0644)\n{}",
        u.display(),
        quoted(&unit(setup, "dir", mac))
    ));
    steps.push(format!(
        "ln -s {0}/pysk-vm-web1.service {0}/multi-user.target.wants/pysk-vm-web1.service\n",
        u.display()
    ));
    steps.push("systemctl daemon-reload (when systemd runs)\n".to_owned());
    numbered(&steps)
}

/// `steps` numbered from 1.
fn numbered(steps: &[String]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect()
}

#[test]
fn plan_prints_every_step_and_file_exactly_and_changes_nothing() {
    let setup = Setup::new();
    // web1's own MAC is taken by another definition: web1#1's is used.
    let other = format!("ExecStart=qemu -net nic,macaddr={WEB1}\n");
    fs::write(setup.vms().join("web0.service"), &other).expect("web0");
    let out = setup.create(&["--plan"]).succeeds();
    assert_eq!(stdout(&out), dir_plan(&setup, WEB1_1));
    assert_stderr_is(&out, "");
    assert!(listing(&setup.root()).is_empty());
    assert_eq!(listing(&setup.vms()), ["web0.service"]);
    assert!(listing(&setup.units()).is_empty());
    assert!(!setup.path("state").exists(), "--plan makes no lock file");
}

#[test]
fn plan_of_image_and_lvm_makes_mounts_copies_the_kernel_and_unmounts() {
    let setup = Setup::new();
    let r = setup.root().join("web1").display().to_string();
    let vm = setup.root().display().to_string();
    let steps = |backend: &str| -> Vec<String> {
        let out = setup.create(&["--plan", "--backend", backend]).succeeds();
        let text = stdout(&out);
        assert!(
            text.contains(&quoted("/dev/vda / ext4 errors=remount-ro 0 1\n")),
            "{text}"
        );
        text.lines()
            .filter(|l| !l.starts_with("   |") && !l.contains(". write ") && !l.contains(". ln "))
            .map(str::to_owned)
            .collect()
    };
    let bootstrap =
        format!("mmdebstrap --variant=minbase {INCLUDE} bookworm {r} http://deb.debian.org/debian");
    let tail = |first: usize| {
        [
            format!("{}. mkdir -p -m 0700 {r}/root/.ssh", first),
            format!("{}. cp {r}/vmlinuz {vm}/web1.vmlinuz (0644)", first + 5),
            format!("{}. cp {r}/initrd.img {vm}/web1.initrd (0644)", first + 6),
            format!("{}. umount {r}", first + 7),
            format!(
                "{}. systemctl daemon-reload (when systemd runs)",
                first + 10
            ),
        ]
    };
    let img = format!("{vm}/web1.img");
    let mut image = vec![
        format!("1. truncate -s 2147483648 {img}"),
        format!("2. mkfs.ext4 -q {img}"),
        format!("3. mkdir -m 0755 {r}"),
        format!("4. mount -o loop {img} {r}"),
        format!("5. {bootstrap}"),
    ];
    image.extend(tail(13));
    assert_eq!(steps("image"), image);
    let mut lvm = vec![
        "1. lvcreate -L 2147483648b -n web1 vg0".to_owned(),
        "2. mkfs.ext4 -q /dev/vg0/web1".to_owned(),
        format!("3. mkdir -m 0755 {r}"),
        format!("4. mount /dev/vg0/web1 {r}"),
        format!("5. {bootstrap}"),
    ];
    lvm.extend(tail(13));
    assert_eq!(steps("lvm"), lvm);
    assert!(listing(&setup.root()).is_empty());
}

#[test]
fn a_taken_name_or_a_bad_option_is_refused() {
    let setup = Setup::new();
    let unit = setup.units().join("pysk-vm-web1.service");
    fs::write(&unit, "").expect("unit");
    let out = setup.create(&[]).fails_with(65);
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {}: exists already: web1 is taken\n",
            unit.display()
        ),
    );
    fs::remove_file(&unit).expect("rm");
    let mut cases: Vec<([&str; 3], String)> = ["10.0.0.300/24", "10.0.0.1/33", "web"]
        .into_iter()
        .map(|bad| {
            (
                ["web1", "512M", bad],
                format!("--ip: {bad:?}: not A.B.C.D[/N]"),
            )
        })
        .collect();
    cases.push((
        ["web1", "12X", "192.0.2.17"],
        "--ram: \"12X\": not a size such as 512M or 10G".to_owned(),
    ));
    cases.push((
        ["web_1", "512M", "192.0.2.17"],
        "\"web_1\": not a host name: character '_' not allowed in a host name label".to_owned(),
    ));
    for ([name, ram, ip], why) in cases {
        let out = setup.create_as(name, ram, ip).fails_with(2);
        assert_stderr_is(&out, &format!("pysk-hv: {why}\n"));
    }
    assert!(listing(&setup.root()).is_empty());
    assert!(listing(&setup.units()).is_empty());
}

#[test]
fn a_bad_switch_value_is_refused_naming_file_and_line() {
    let file = |setup: &Setup| setup.path("config/serverconfig/default");
    for (key, value, why) in [
        ("hv_bridge", "br0 -x", "character ' ' not allowed"),
        (
            "hv_bridge",
            "averylongbridgename",
            "expected 1 to 15 characters",
        ),
        ("hv_vg", "-vg", "must not start with '-'"),
        ("hv_release", "--foo", "must not start with '-'"),
        (
            "hv_mirror",
            "-http://x",
            "expected a URL such as http://deb.debian.org/debian",
        ),
        (
            "hv_gateway",
            "1.2.3.4 5.6.7.8",
            "\"1.2.3.4 5.6.7.8\" is not one IP address",
        ),
        (
            "hv_dns",
            "192.0.2.53, [::1]",
            "\"[::1]\" is not one IP address",
        ),
        (
            "hv_vm_root",
            "/srv/vm,x",
            "character ',' not allowed (the path goes into qemu's options)",
        ),
    ] {
        let setup = Setup::with(&[(key, value)]);
        let out = setup.create(&["--plan"]).fails_with(78);
        // The key is the sixth line: after the five of Setup::with.
        assert_stderr_is(
            &out,
            &format!(
                "pysk-hv: {}:6: {key}: {value:?}: {why}\n",
                file(&setup).display()
            ),
        );
        assert_eq!(stdout(&out), "");
    }
}

#[test]
fn no_name_server_is_a_warning_and_a_resolv_conf_that_says_so() {
    let setup = Setup::with(&[]);
    let out = setup.create(&["--plan"]).succeeds();
    assert_stderr_is(&out, "pysk-hv: hv_dns is empty: web1 gets no name server\n");
    let r = setup.root().join("web1");
    let text = stdout(&out);
    let resolv = format!(
        "write {}/etc/resolv.conf (0644)\n   | # no name server: hv_dns was empty\n",
        r.display()
    );
    assert!(text.contains(&resolv), "{text}");
    let network = "   | [Network]\n   | Address=192.0.2.17/24\n5. write ";
    assert!(text.contains(network), "{text}");
}

#[test]
fn a_failing_step_undoes_the_steps_before_it() {
    let setup = Setup::new();
    let out = setup
        .create(&[])
        .env("PYSK_HV_FAILPOINT", "bootstrap")
        .fails_with(73);
    let r = setup.root().join("web1").display().to_string();
    assert_eq!(stdout(&out), "");
    let step2 = format!(
        "mmdebstrap --variant=minbase {INCLUDE} {HOOKS} bookworm {r} http://deb.debian.org/debian"
    );
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: 1. mkdir -m 0755 {r}\n\
             pysk-hv: step 2 failed: {step2}: failure injected; undoing the steps before it\n\
             pysk-hv: undone: 1. mkdir -m 0755 {r}\n\
             pysk-hv: not made: step 2 failed, the steps before it undone\n"
        ),
    );
    assert!(listing(&setup.root()).is_empty());
    assert!(listing(&setup.units()).is_empty());
}

/// A stand-in for mmdebstrap that dies as a real one can, with a file
/// system still bind-mounted in the root: `$2/proc` on `$PYSK_TEST_BIND`.
const DYING_MMDEBSTRAP: &str = "#!/bin/sh\n\
    for a; do root=$prev; prev=$a; done\n\
    mkdir -p \"$root/proc\" && mount --bind \"$PYSK_TEST_BIND\" \"$root/proc\" && exit 1\n\
    exit 2\n";

#[test]
fn a_rollback_never_removes_through_a_mount_left_in_the_root() {
    if !nix_is_root() {
        eprintln!("SKIPPED: bind mounts need root");
        return;
    }
    let setup = Setup::new();
    let bin = setup.path("bin");
    fs::create_dir(&bin).expect("mkdir bin");
    fs::write(bin.join("mmdebstrap"), DYING_MMDEBSTRAP).expect("stand-in");
    fs::set_permissions(bin.join("mmdebstrap"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let host = setup.path("host");
    fs::create_dir(&host).expect("mkdir host");
    fs::write(host.join("precious"), "keep\n").expect("precious");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = setup
        .create(&[])
        .env("PATH", path)
        .env("PYSK_TEST_BIND", &host)
        .output();
    let r = setup.root().join("web1");
    let mounted = r.join("proc");
    let unmount = Command::new("umount").arg(&mounted).status();
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(
        unmount.is_ok_and(|s| s.success()),
        "the bind mount was left"
    );
    let step2 = format!(
        "mmdebstrap --variant=minbase {INCLUDE} {HOOKS} bookworm {} http://deb.debian.org/debian",
        r.display()
    );
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: 1. mkdir -m 0755 {r}\n\
             pysk-hv: step 2 failed: {step2}: mmdebstrap: exit status: 1; undoing the steps before it\n\
             pysk-hv: NOT undone: 1. mkdir -m 0755 {r}: {m} is still mounted: {r} left in place\n\
             pysk-hv: not made: step 2 failed, 1 steps before it NOT undone (see above)\n",
            r = r.display(),
            m = mounted.display()
        ),
    );
    assert_eq!(
        fs::read_to_string(host.join("precious")).expect("kept"),
        "keep\n"
    );
    assert_eq!(listing(&r), ["proc"]);
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// Skips (outside CI) a run that failed because the mirror is out of
/// reach; true when the test goes on.
fn mirror_reached(out: &Output) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let err = stderr(out);
    if !out.status.success() && !ci && err.contains("Failed to fetch") {
        eprintln!("SKIPPED: the package mirror is not reachable:\n{err}");
        return false;
    }
    true
}

/// Checks every file and link of `made` exactly, modes included.
fn assert_made(made: &[Made]) {
    for m in made {
        match m {
            Made::File(path, mode, text) => {
                let meta = fs::symlink_metadata(path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    meta.permissions().mode() & 0o7777,
                    *mode,
                    "{}",
                    path.display()
                );
                if meta.is_file() {
                    let got = fs::read_to_string(path).expect("read");
                    assert_eq!(&got, text, "{}", path.display());
                }
            }
            Made::Link(path, target) => {
                let got = fs::read_link(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(got, Path::new(target), "{}", path.display());
            }
        }
    }
}

/// The steps said on stderr by a run that applied `plan` (its numbered
/// title lines).
fn said(plan: &str) -> String {
    plan.lines()
        .filter(|l| !l.starts_with("   |"))
        .map(|l| format!("pysk-hv: {l}\n"))
        .collect()
}

/// A real run's setup: the tools there (or the test skipped outside
/// CI), a key made for the test as `hv_authorized_keys`, the network of
/// qemu's user mode (10.0.2.15, gateway .2, name server .3).
struct Real {
    setup: Setup,
    key: PathBuf,
    net: Net,
}

impl Real {
    fn new(tools: &[(&str, &str)]) -> Option<Real> {
        let all = [
            ("mmdebstrap", "mmdebstrap"),
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("ssh-keygen", "openssh-client"),
        ];
        let missing = all
            .iter()
            .chain(tools)
            .any(|(p, pkg)| pysk_tests::require(p, pkg).is_none());
        if missing || !nix_is_root() {
            return None;
        }
        let setup = Setup::with(&[("hv_gateway", "10.0.2.2"), ("hv_dns", "10.0.2.3")]);
        let key = setup.path("id");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status();
        assert!(made.is_ok_and(|s| s.success()), "ssh-keygen");
        let public = fs::read_to_string(key.with_extension("pub")).expect("public key");
        fs::write(setup.path("keys"), &public).expect("keys");
        let net = Net {
            address: "10.0.2.15/24",
            gateway: Some("10.0.2.2"),
            dns: vec!["10.0.2.3"],
            key: public,
        };
        Some(Real { setup, key, net })
    }

    /// `create web1` with `backend` for real; `None` when the mirror is
    /// out of reach outside CI.
    fn create(&self, backend: &str) -> Option<Output> {
        let out = tool("pysk-hv")
            .config_dir(&self.setup.path("config"))
            .args(["create", "web1", "--size", "2G", "--ram", "512M"])
            .args(["--ip", "10.0.2.15/24", "--backend", backend])
            .output();
        if !mirror_reached(&out) {
            return None;
        }
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
        Some(out)
    }

    /// The host's unit and its enabling link, checked exactly; the
    /// unit's text.
    fn assert_unit(&self, backend: &str) -> String {
        let units = self.setup.units();
        let text = unit(&self.setup, backend, WEB1);
        assert_made(&[
            Made::File(units.join("pysk-vm-web1.service"), 0o644, text.clone()),
            Made::Link(
                units.join("multi-user.target.wants/pysk-vm-web1.service"),
                units.join("pysk-vm-web1.service").display().to_string(),
            ),
        ]);
        assert_eq!(
            listing(&units),
            ["multi-user.target.wants", "pysk-vm-web1.service"]
        );
        text
    }
}

#[test]
fn backend_dir_makes_a_real_root_with_mmdebstrap_that_boots() {
    let Some(real) = Real::new(&[]) else {
        return;
    };
    let Some(out) = real.create("dir") else {
        return;
    };
    let root = real.setup.root().join("web1");
    // Every step said, in order, among mmdebstrap's own lines.
    let err = stderr(&out);
    let ours: String = err
        .lines()
        .filter(|l| l.starts_with("pysk-hv: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ours, said(&dir_plan(&real.setup, WEB1)), "{err}");
    assert_made(&root_files(&root, "dir", WEB1, &real.net));
    let unit = real.assert_unit("dir");
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(read("etc/os-release").contains("bookworm"));
    assert!(read("etc/initramfs-tools/modules").ends_with("9p\n9pnet_virtio\n"));
    let old_key = read("etc/ssh/ssh_host_ed25519_key.pub");
    boot_and_reach(&unit, &real.key, &real.setup.path("boot"), &old_key);
}

/// How long the booted server may take to answer ssh (qemu without KVM).
const BOOT_BOUND: Duration = Duration::from_secs(400);

/// Mounts `image` read-only on `at` for as long as it lives.
struct Mounted(PathBuf);

impl Mounted {
    fn new(image: &Path, at: &Path) -> Mounted {
        fs::create_dir_all(at).expect("mkdir mount point");
        let ok = Command::new("mount")
            .args(["-o", "loop,ro"])
            .arg(image)
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount {}", image.display());
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A qemu process, killed when dropped.
struct Qemu(std::process::Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn backend_image_is_made_on_a_loop_device_and_boots_reachable_by_ssh() {
    let Some(real) = Real::new(&[("mkfs.ext4", "e2fsprogs"), ("losetup", "mount")]) else {
        return;
    };
    if real.create("image").is_none() {
        return;
    }
    let vm = real.setup.root();
    assert_eq!(
        listing(&vm),
        ["web1", "web1.img", "web1.initrd", "web1.vmlinuz"]
    );
    assert!(listing(&vm.join("web1")).is_empty(), "unmounted at the end");
    let inside = real.setup.path("inside");
    let old_key = {
        let _mounted = Mounted::new(&vm.join("web1.img"), &inside);
        assert_made(&root_files(&inside, "image", WEB1, &real.net));
        let same = |a: &str, b: &Path| fs::read(inside.join(a)).ok() == fs::read(b).ok();
        assert!(same("vmlinuz", &vm.join("web1.vmlinuz")), "kernel copied");
        assert!(same("initrd.img", &vm.join("web1.initrd")), "initrd copied");
        fs::read_to_string(inside.join("etc/ssh/ssh_host_ed25519_key.pub")).expect("host key")
    };
    let unit = real.assert_unit("image");
    boot_and_reach(&unit, &real.key, &real.setup.path("boot"), &old_key);
}

/// The words of the unit's `ExecStart` from `-kernel` up to the network
/// device (the kernel, initrd, command line and disk qemu is given).
fn boot_words(unit: &str) -> Vec<String> {
    let line = unit
        .split_once("ExecStart=")
        .map(|(_, rest)| rest.replace("\\\n", " "))
        .unwrap_or_default();
    let line = line.lines().next().unwrap_or_default();
    let mut words = Vec::new();
    let (mut word, mut quoted) = (String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    words.push(word);
    let from = words.iter().position(|w| w == "-kernel").expect("-kernel");
    let to = words.iter().position(|w| w == "-netdev").expect("-netdev");
    words[from..to].to_vec()
}

/// Boots with the unit's kernel, initrd, command line, disk and MAC but
/// a user-mode network forwarding a local port to the server's sshd, and
/// logs in with `key`: the host name, the address, the first boot's new
/// host key (not `old_key`) and its script gone.
fn boot_and_reach(unit: &str, key: &Path, scratch: &Path, old_key: &str) {
    fs::create_dir_all(scratch).expect("mkdir");
    let port = pysk_tests::free_port();
    let console = fs::File::create(scratch.join("console")).expect("console");
    // TCG: the same arguments boot under KVM, but a nested KVM cannot be
    // counted on where the tests run.
    let child = Command::new("qemu-system-x86_64")
        .args(["-machine", "accel=tcg", "-m", "512", "-nographic"])
        .args(boot_words(unit))
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"))
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={WEB1}")])
        .stdin(std::process::Stdio::null())
        .stdout(console)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("qemu");
    let _qemu = Qemu(child);
    let known = scratch.join("known_hosts");
    let login = || {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .args(["-p", &port.to_string(), "-o", "BatchMode=yes"])
            .args([
                "-o",
                "ConnectTimeout=5",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args([
                "root@127.0.0.1",
                "hostname; ip -4 -o addr show scope global | cut -d' ' -f2,7",
            ])
            .arg("; cat /etc/ssh/ssh_host_ed25519_key.pub; ls /usr/local/sbin")
            .output()
            .expect("ssh")
    };
    let start = std::time::Instant::now();
    let out = loop {
        let out = login();
        if out.status.success() || start.elapsed() > BOOT_BOUND {
            break out;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let console = fs::read_to_string(scratch.join("console")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nconsole:\n{console}",
        stderr(&out)
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("web1"), "{text}");
    // The name depends on the PCI slot (ens3, ens4 after a 9p device).
    let address = lines.next().and_then(|l| l.split_once(' '));
    assert_eq!(address.map(|a| a.1), Some("10.0.2.15/24"), "{text}");
    let new_key = lines.next().unwrap_or_default();
    assert!(new_key.starts_with("ssh-ed25519 "), "{text}");
    assert_ne!(
        format!("{new_key}\n"),
        old_key,
        "first boot made new host keys"
    );
    assert_eq!(lines.next(), None, "the first-boot script is gone: {text}");
}

#[test]
fn a_failure_after_the_loop_mount_unmounts_before_removing() {
    let tools = [("mkfs.ext4", "e2fsprogs"), ("losetup", "mount")];
    if tools
        .iter()
        .any(|(p, pkg)| pysk_tests::require(p, pkg).is_none())
        || !nix_is_root()
    {
        return;
    }
    let setup = Setup::new();
    let out = setup
        .create(&["--backend", "image"])
        .env("PYSK_HV_FAILPOINT", "bootstrap")
        .fails_with(73);
    let vm = setup.root().display().to_string();
    let r = format!("{vm}/web1");
    let img = format!("{vm}/web1.img");
    let step5 =
        format!("mmdebstrap --variant=minbase {INCLUDE} bookworm {r} http://deb.debian.org/debian");
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: 1. truncate -s 2147483648 {img}\n\
             pysk-hv: 2. mkfs.ext4 -q {img}\n\
             pysk-hv: 3. mkdir -m 0755 {r}\n\
             pysk-hv: 4. mount -o loop {img} {r}\n\
             pysk-hv: step 5 failed: {step5}: failure injected; undoing the steps before it\n\
             pysk-hv: undone: 4. mount -o loop {img} {r}\n\
             pysk-hv: undone: 3. mkdir -m 0755 {r}\n\
             pysk-hv: undone: 2. mkfs.ext4 -q {img}\n\
             pysk-hv: undone: 1. truncate -s 2147483648 {img}\n\
             pysk-hv: not made: step 5 failed, the steps before it undone\n"
        ),
    );
    assert!(listing(&setup.root()).is_empty());
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&r), "{mounts}");
}
