//! `pysk-hv mac` with a scratch `hv_vm_dir` and `hv_unit_dir`: a name
//! whose MAC a libvirt definition already holds (in capitals) gives way
//! to `NAME#1`, whose MAC a qemu unit holds (`macaddr=`), so `NAME#2`'s
//! comes out, said on stderr; a unit `create` wrote in `hv_unit_dir`
//! counts too; `--json` names the MACs in use; a random MAC is locally
//! administered, unicast and new; a `hv_vm_dir` that cannot be read is
//! an error naming it; a `create` holding the lock is waited for.

use std::fs;
use std::path::PathBuf;

use pysk_tests::{TempDir, assert_stderr_is, scratch, stderr, stdout, tool, write_switches};

/// SHA-256 of `web1`, `web1#1`, `web1#2`: their first six bytes, the
/// first octet made locally administered and unicast.
const WEB1: &str = "66:9a:7f:b2:af:47";
const WEB1_1: &str = "d2:81:3c:f3:84:66";
const WEB1_2: &str = "fa:d6:0c:d2:cd:b4";

/// A configuration directory whose `hv_vm_dir` is `<scratch>/vms`.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = scratch();
        let setup = Setup { dir };
        fs::create_dir(setup.units()).expect("mkdir units");
        write_switches(
            &setup.path("config"),
            &[
                ("hv_vm_dir", setup.vms().display().to_string()),
                ("hv_unit_dir", setup.units().display().to_string()),
                ("hv_state_dir", setup.path("state").display().to_string()),
            ],
        );
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vms(&self) -> PathBuf {
        self.path("vms")
    }

    fn units(&self) -> PathBuf {
        self.path("units")
    }

    /// `vms/qemu/web0.xml` holding WEB1 in capitals, and
    /// `vms/web9.service` starting qemu with WEB1_1.
    fn with_definitions(self) -> Setup {
        let libvirt = self.vms().join("qemu");
        fs::create_dir_all(&libvirt).expect("mkdir");
        fs::write(
            libvirt.join("web0.xml"),
            format!(
                "<domain type='kvm'>\n  <name>web0</name>\n  <devices>\n    \
                 <interface type='bridge'>\n      <mac address='{}'/>\n      \
                 <source bridge='br0'/>\n    </interface>\n  </devices>\n</domain>\n",
                WEB1.to_uppercase()
            ),
        )
        .expect("xml");
        fs::write(
            self.vms().join("web9.service"),
            format!(
                "[Service]\nExecStart=/usr/bin/qemu-system-x86_64 -m 1024 \\\n  \
                 -net nic,model=virtio,macaddr={WEB1_1} -net tap,ifname=tap9\n"
            ),
        )
        .expect("unit");
        self
    }

    fn mac(&self, args: &[&str]) -> pysk_tests::TestCommand {
        tool("pysk-hv")
            .config_dir(&self.path("config"))
            .arg("mac")
            .args(args)
    }
}

fn first_octet(mac: &str) -> u8 {
    u8::from_str_radix(&mac[..2], 16).expect("hex")
}

#[test]
fn a_name_whose_mac_is_in_use_gives_the_next_free_one_and_says_so() {
    let setup = Setup::new().with_definitions();
    let out = setup.mac(&["--name", "web1"]).succeeds();
    assert_eq!(stdout(&out), format!("{WEB1_2}\n"));
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {WEB1} from web1 is in use ({}): {WEB1_2} from web1#2 instead\n",
            setup.vms().join("qemu/web0.xml").display()
        ),
    );
}

#[test]
fn a_free_name_gives_its_own_mac_every_time() {
    let setup = Setup::new().with_definitions();
    for _ in 0..2 {
        let out = setup.mac(&["--name", "web1#2"]).succeeds();
        assert_eq!(stdout(&out), format!("{WEB1_2}\n"));
        assert_stderr_is(&out, "");
    }
    let empty = Setup::new();
    fs::create_dir_all(empty.vms()).expect("mkdir");
    let out = empty.mac(&["--name", "web1"]).succeeds();
    assert_eq!(stdout(&out), format!("{WEB1}\n"));
    assert_stderr_is(&out, "");
}

#[test]
fn json_names_the_mac_the_name_it_came_from_and_the_macs_in_use() {
    let setup = Setup::new().with_definitions();
    let out = setup.mac(&["--name", "web1", "--json", "-q"]).succeeds();
    assert_eq!(
        stdout(&out),
        format!(
            "{{\n  \"version\": 1,\n  \"mac\": \"{WEB1_2}\",\n  \"derived_from\": \"web1#2\",\n  \
             \"used\": [\n    \"{WEB1}\",\n    \"{WEB1_1}\"\n  ]\n}}\n"
        )
    );
    let out = setup.mac(&["--json"]).succeeds();
    let text = stdout(&out);
    assert!(text.contains("\"derived_from\": null,\n"), "{text}");
}

#[test]
fn a_random_mac_is_locally_administered_unicast_and_new() {
    let setup = Setup::new().with_definitions();
    let macs: Vec<String> = (0..4).map(|_| stdout(&setup.mac(&[]).succeeds())).collect();
    for mac in &macs {
        let mac = mac.strip_suffix('\n').expect("one line");
        assert_eq!(mac.len(), 17, "{mac}");
        assert_eq!(first_octet(mac) & 3, 2, "{mac}");
        assert!(mac != WEB1 && mac != WEB1_1, "{mac}");
    }
    assert!(
        macs.iter()
            .enumerate()
            .all(|(i, a)| macs[..i].iter().all(|b| a != b)),
        "{macs:?}"
    );
}

#[test]
fn a_vm_dir_that_cannot_be_read_is_an_error_naming_it() {
    let setup = Setup::new();
    fs::write(setup.vms(), "not a directory\n").expect("write");
    let out = setup.mac(&["--name", "web1"]).fails_with(74);
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {}: cannot read: Not a directory\n",
            setup.vms().display()
        ),
    );
}

#[test]
fn an_empty_name_is_refused() {
    let setup = Setup::new();
    let out = setup.mac(&["--name", ""]).fails_with(2);
    assert!(stderr(&out).contains("--name"), "{}", stderr(&out));
}

#[test]
fn a_unit_in_hv_unit_dir_holds_its_mac() {
    let setup = Setup::new();
    fs::create_dir_all(setup.vms()).expect("mkdir");
    fs::write(
        setup.units().join("pysk-vm-web0.service"),
        format!("ExecStart=qemu -device virtio-net-pci,netdev=n0,mac={WEB1}\n"),
    )
    .expect("unit");
    let out = setup.mac(&["--name", "web1"]).succeeds();
    assert_eq!(stdout(&out), format!("{WEB1_1}\n"));
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {WEB1} from web1 is in use ({}): {WEB1_1} from web1#1 instead\n",
            setup.units().join("pysk-vm-web0.service").display()
        ),
    );
}

#[test]
fn a_create_holding_the_lock_is_waited_for() {
    let setup = Setup::new();
    fs::create_dir_all(setup.vms()).expect("mkdir");
    let lock = setup.path("state/pysk-hv.lock");
    fs::create_dir_all(setup.path("state")).expect("mkdir state");
    // flock holds the lock while cat waits for its stdin to close.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("flock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let out = loop {
        let out = setup.mac(&["--name", "web1", "--wait", "0"]).output();
        if out.status.code() == Some(75) || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(holder.stdin.take());
    holder.wait().expect("wait flock");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_stderr_is(
        &out,
        &format!(
            "pysk-hv: {}: another run holds the lock; try again later or use --wait\n",
            lock.display()
        ),
    );
    let out = setup.mac(&["--name", "web1", "--wait", "0"]).succeeds();
    assert_eq!(stdout(&out), format!("{WEB1}\n"));
}
