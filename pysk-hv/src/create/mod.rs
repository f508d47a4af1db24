//! `pysk-hv create NAME`: a new virtual server as a plan of steps (the
//! disk, `mmdebstrap` of a bootable root, the files of its root, the
//! kernel qemu boots, the systemd unit that starts qemu, enabled),
//! shown whole with `--plan` on stdout or applied in order, each step
//! said on stderr; a step that fails undoes those before it, in reverse,
//! and says so.
//!
//! - [`options`]: the options, checked before anything is changed.
//! - [`files`]: the bytes of every file written.
//! - [`step`]: what each step does and how it is undone.

pub mod files;
pub mod options;
pub mod step;

use std::io::Write;

use pysk_common::exit::Outcome;
use pysk_common::lock::Lock;
use pysk_common::report::Reporter;

use crate::error::HvError;
use crate::mac::{self, Mac};
pub use options::{Backend, Options};
use step::Step;

/// The environment variable naming the step a test makes fail.
pub const FAILPOINT: &str = "PYSK_HV_FAILPOINT";

/// The steps that make the virtual server of `options` with `mac`, in
/// order.
pub fn plan(options: &Options, mac: Mac) -> Vec<Step> {
    let mut steps = step::disk(options);
    steps.push(step::bootstrap(options));
    steps.extend(files::root_steps(options, mac));
    steps.extend(step::finish(options));
    steps.extend(step::unit(options, files::unit_file(options, mac)));
    steps
}

/// Shows (`--plan`) or applies the plan of `options`. The tool's lock is
/// held from deriving the MAC to the last step (`--plan` only waits for
/// a lock that exists), so that two runs never take the same MAC or
/// NAME.
pub fn run(options: &Options, report: &Reporter, out: &mut impl Write) -> Result<Outcome, HvError> {
    let lock = options.state_dir.join(mac::LOCK);
    let _lock = match options.plan {
        true => Lock::existing(&lock, options.wait)?,
        false => {
            options::require_root()?;
            Some(Lock::acquire(&lock, options.wait)?)
        }
    };
    options.refuse_existing()?;
    let used = mac::in_use(&[options.vm_dir.clone(), options.unit_dir.clone()], report)?;
    let (mac, _) = mac::derive_free(&options.name, &used)?;
    if options.dns.is_empty() {
        report.warn(format_args!(
            "hv_dns is empty: {} gets no name server",
            options.name
        ));
    }
    let steps = plan(options, mac);
    if options.plan {
        for (i, step) in steps.iter().enumerate() {
            step.show(i + 1, out)?;
        }
        return Ok(Outcome::Success);
    }
    apply(&steps, report)?;
    Ok(Outcome::Success)
}

/// Applies `steps` in order, each said on stderr; on a failure undoes
/// the ones done, in reverse, each said, and returns the failure.
fn apply(steps: &[Step], report: &Reporter) -> Result<(), HvError> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = step.injected().and_then(|()| step.apply()) {
            report.warn(format_args!(
                "step {} failed: {}: {e}; undoing the steps before it",
                i + 1,
                step.title()
            ));
            let kept = undo(&steps[..i], report);
            let undone = match kept {
                0 => "the steps before it undone".to_owned(),
                n => format!("{n} steps before it NOT undone (see above)"),
            };
            return Err(HvError::Step(format!(
                "not made: step {} failed, {undone}",
                i + 1
            )));
        }
        report.info(format_args!("{}. {}", i + 1, step.title()));
    }
    Ok(())
}

/// Undoes `done` in reverse, each said on stderr; returns how many could
/// not be undone.
fn undo(done: &[Step], report: &Reporter) -> usize {
    let mut kept = 0;
    for (j, step) in done.iter().enumerate().rev() {
        match step.undo() {
            Ok(()) => report.warn(format_args!("undone: {}. {}", j + 1, step.title())),
            Err(e) => {
                kept += 1;
                report.warn(format_args!("NOT undone: {}. {}: {e}", j + 1, step.title()));
            }
        }
    }
    kept
}
