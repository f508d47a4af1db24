//! `pysk-hv create NAME`: a new virtual server as a plan of steps (the
//! disk, `mmdebstrap`, the files of its root, the systemd unit that
//! starts qemu), shown whole with `--plan` or applied in order; a step
//! that fails undoes those before it, in reverse, and says so.
//!
//! - [`options`]: the options, checked before anything is changed.
//! - [`files`]: the bytes of every file written.
//! - [`step`]: what each step does and how it is undone.

pub mod files;
pub mod options;
pub mod step;

use std::io::Write;

use pysk_common::exit::Outcome;
use pysk_common::report::Reporter;

use crate::error::HvError;
pub use options::{Backend, Options, options};
use step::Step;

/// The environment variable naming the step a test makes fail.
pub const FAILPOINT: &str = "PYSK_HV_FAILPOINT";

/// The steps that make the virtual server of `options`, in order.
pub fn plan(options: &Options) -> Vec<Step> {
    let mut steps = step::disk(options);
    steps.push(Step::Bootstrap {
        release: options.release.clone(),
        root: options.root(),
        mirror: options.mirror.clone(),
    });
    steps.extend(files::all(options).into_iter().map(Step::from));
    steps.extend(step::finish(options));
    steps
}

/// Shows (`--plan`) or applies the plan of `options`.
pub fn run(options: &Options, report: &Reporter, out: &mut impl Write) -> Result<Outcome, HvError> {
    options.refuse_existing()?;
    let steps = plan(options);
    if options.plan {
        for (i, step) in steps.iter().enumerate() {
            step.show(i + 1, out)?;
        }
        return Ok(Outcome::Success);
    }
    options::require_root()?;
    apply(&steps, report, out)?;
    Ok(Outcome::Success)
}

/// Applies `steps` in order; on a failure undoes the ones done, in
/// reverse, each said on stderr, and returns the failure.
fn apply(steps: &[Step], report: &Reporter, out: &mut impl Write) -> Result<(), HvError> {
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
        writeln!(out, "{}. {}", i + 1, step.title()).map_err(pysk_common::Error::Stdout)?;
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
