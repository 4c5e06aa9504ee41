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

/// Variables `cargo run` sets for the program it runs (xtask) that a nested cargo must not
/// inherit: build scripts that watch them (`ring`'s does) would rebuild on every call.
const KEPT_CARGO_VARS: &[&str] = &["CARGO_HOME", "CARGO_INCREMENTAL", "CARGO_LOG"];
const KEPT_CARGO_PREFIXES: &[&str] = &[
    "CARGO_TERM_",
    "CARGO_TARGET_",
    "CARGO_PROFILE_",
    "CARGO_BUILD_",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_CACHE_",
    "CARGO_ALIAS_",
    "CARGO_UNSTABLE_",
];

/// True when a variable named `name` is one `cargo run` set for xtask, not one the user set
/// for cargo.
fn set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_")
        && !KEPT_CARGO_VARS.contains(&name)
        && !KEPT_CARGO_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A `cargo` command (the one that runs xtask, when known) without the environment `cargo run`
/// gave xtask.
pub fn cargo() -> Command {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            command.env_remove(&name);
        }
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_variables_of_cargo_run_are_dropped() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO_PROFILE_RELEASE_INCREMENTAL",
            "CARGO_BUILD_JOBS",
            "PATH",
            "RUSTFLAGS",
        ] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }
}
