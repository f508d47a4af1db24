//! What `install` and `packages` share: a script that first finds the
//! host's package manager ([`DETECT`]), run on every host picked with
//! all its output kept ([`fan`]), its names or nothing on stdin.

use pysk_common::inventory::{Host, Inventory};
use pysk_common::report::Reporter;

use crate::error::HvError;
use crate::fanout;
use crate::run::Run;
use crate::ssh;

/// Detects the host's manager into `$m` (`apt`, `pacman` or `dnf`), or
/// ends the script with 69; shared with `packages`.
pub const DETECT: &str = r#"if command -v apt-get >/dev/null 2>&1; then m=apt
elif command -v pacman >/dev/null 2>&1; then m=pacman
elif command -v dnf >/dev/null 2>&1; then m=dnf
else echo 'no apt-get, pacman or dnf on this host' >&2; exit 69; fi
"#;

/// A check of the picked hosts (and the inventory they came from) made
/// before any host is contacted.
pub(crate) type HostCheck<'a> = dyn Fn(&Inventory, &[Host]) -> Result<(), HvError> + 'a;

/// Runs `script` on every host picked (once `check` has passed the
/// inventory and them), `input` its stdin (none when empty), every output
/// kept; `None` when there were no hosts to run on.
pub(crate) fn fan(
    run: &Run,
    script: &str,
    input: &[u8],
    check: &HostCheck<'_>,
    report: &Reporter,
) -> Result<Option<Vec<fanout::Outcome>>, HvError> {
    let Some(prepared) = crate::run::prepare(run, report)? else {
        return Ok(None);
    };
    check(&prepared.inventory, &prepared.hosts)?;
    let remote = ssh::remote_command(&[script.to_owned()], run.timeout);
    let private = prepared.private.path();
    let stdin = private.join("stdin");
    if !input.is_empty() {
        std::fs::write(&stdin, input).map_err(pysk_common::error::write_err(&stdin))?;
    }
    let jobs = crate::run::jobs(run, &prepared.hosts, private, &remote)?;
    let limits = run.limits((!input.is_empty()).then_some(stdin.as_path()), false, false);
    fanout::run(&jobs, limits, report, &mut std::io::sink()).map(Some)
}
