//! Running external commands with their command line echoed, and clear errors.

use std::process::{Command, ExitStatus};

use anyhow::{Context, bail};

/// Renders a command for humans: program and arguments separated by spaces.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with inherited stdio after printing it; returns its exit status.
pub fn status(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    eprintln!("+ {}", display(cmd));
    cmd.status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))
}

/// Runs `cmd` and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let st = status(cmd)?;
    if !st.success() {
        bail!("`{}` failed with {st}", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout when it exits 0, `None` otherwise (or if it cannot
/// start).
pub fn output_ok(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
