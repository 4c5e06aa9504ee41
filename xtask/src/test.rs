//! `cargo xtask test`: the whole check that CI runs (`.ci/run`).
//!
//! Steps: setup, `cargo fmt --check`, `cargo clippy -D warnings`, `cargo deny check bans licenses
//! sources`, `cargo test --workspace` (unit tests, integration tests against the real
//! programs, e2e scenarios), and last the real nodes (L3): the images (`cargo xtask images`),
//! then `e2e/tests/real.rs` one test at a time, as `cargo xtask e2e --real` runs them. Every step runs even after an earlier one failed, so one run shows
//! every problem; the summary names the failed steps and the exit code is non-zero.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{cmd, setup};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip `setup` (for a machine known to have everything).
    #[arg(long)]
    no_setup: bool,
    /// Only run tests whose name contains this (passed to `cargo test`); lints still run.
    filter: Option<String>,
}

/// The outcome of one step.
#[derive(Debug)]
struct Step {
    name: &'static str,
    ok: bool,
    took: Duration,
    detail: String,
}

/// Test counts summed over every test binary's `test result:` line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    /// Adds the numbers of one libtest summary line:
    /// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim_start().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(num)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = num
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
            else {
                continue;
            };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// The first lines of every panic in a test run's output (the message, up to the backtrace),
/// repeated after the run so they are the last thing a truncated CI log shows.
#[derive(Debug, Default)]
struct Failures {
    excerpts: Vec<Vec<String>>,
    open: bool,
}

impl Failures {
    /// Lines kept per panic, and characters per line.
    const LINES: usize = 40;
    const WIDTH: usize = 240;
    /// Panics shown in the summary.
    const SHOWN: usize = 4;

    fn feed(&mut self, line: &str) {
        let line = strip_ansi(line);
        if line.starts_with("thread '") && line.contains(" panicked at ") {
            self.excerpts.push(vec![clip(&line)]);
            self.open = true;
            return;
        }
        if !self.open {
            return;
        }
        let end = line.starts_with("stack backtrace:")
            || line.starts_with("note: run with `RUST_BACKTRACE")
            || line.starts_with("---- ")
            || line == "failures:"
            || line.starts_with("test result: ");
        match self.excerpts.last_mut() {
            Some(lines) if !end && lines.len() < Self::LINES => lines.push(clip(&line)),
            _ => self.open = false,
        }
    }

    fn print(&self) {
        if self.excerpts.is_empty() {
            return;
        }
        println!();
        println!(
            "== failures: {} panic(s), the first lines of each ==",
            self.excerpts.len()
        );
        for lines in self.excerpts.iter().take(Self::SHOWN) {
            println!();
            for l in lines {
                println!("{l}");
            }
        }
    }
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(Failures::WIDTH) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

/// `line` without ANSI escape sequences (`ESC [ ... letter`), as tracing colours them.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Runs every step and fails if any failed.
pub fn run(root: &Path, args: &TestArgs) -> anyhow::Result<()> {
    let mut steps = Vec::new();

    if !args.no_setup {
        steps.push(timed("setup", || setup::run().map(|()| String::new())));
    }
    steps.push(timed("fmt", || {
        cargo_ok(
            root,
            &["fmt", "--all", "--", "--check"],
            "run `cargo fmt --all`",
        )
    }));
    steps.push(timed("clippy", || {
        cargo_ok(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            "fix the warnings above",
        )
    }));
    steps.push(timed("deny", || {
        cargo_ok(
            root,
            &["deny", "check", "bans", "licenses", "sources"],
            "see the report above",
        )
    }));
    let mut counts = Counts::default();
    let mut failures = Failures::default();
    steps.push(timed("tests", || {
        counts = cargo_test(root, args.filter.as_deref(), &mut failures)?;
        let detail = format!(
            "{} passed, {} failed, {} ignored",
            counts.passed, counts.failed, counts.ignored
        );
        if counts.failed > 0 {
            anyhow::bail!("{detail}");
        }
        if counts.ignored > 0 {
            anyhow::bail!("{detail}: tests may not be skipped; remove the #[ignore]");
        }
        if counts.passed == 0 {
            anyhow::bail!("no test ran");
        }
        Ok(detail)
    }));

    steps.push(timed("images", || {
        let built = crate::images::build(
            root,
            &crate::images::default_out(root),
            &crate::images::all(),
        )?;
        Ok(format!("{} archives", built.len()))
    }));
    let images_ok = steps.last().is_some_and(|s| s.ok);
    steps.push(timed("real", || {
        if !images_ok {
            anyhow::bail!("skipped: the images did not build");
        }
        let real = cargo_test_args(
            root,
            // `--workspace`, as the tests step: the same feature set, so nothing is rebuilt
            // (with `-p e2e` cargo resolved features for e2e alone and rebuilt four crates).
            &["test", "--workspace", "--test", "real"],
            &["--test-threads=1"],
            args.filter.as_deref(),
            &mut failures,
        )?;
        counts.passed += real.passed;
        counts.failed += real.failed;
        counts.ignored += real.ignored;
        let detail = format!("{} passed, {} failed", real.passed, real.failed);
        if real.failed > 0 || real.passed == 0 && args.filter.is_none() {
            anyhow::bail!("{detail}");
        }
        Ok(detail)
    }));

    let failed_steps: Vec<&str> = steps.iter().filter(|s| !s.ok).map(|s| s.name).collect();
    failures.print();
    println!();
    println!("== cargo xtask test: summary ==");
    for s in &steps {
        let verdict = if s.ok { "ok" } else { "FAILED" };
        println!(
            "{:<8} {:<7} {:>7.1}s  {}",
            s.name,
            verdict,
            s.took.as_secs_f64(),
            s.detail
        );
    }
    // Checks (fmt, clippy, ...) count as one each beside the individual tests.
    let is_check = |s: &&Step| !matches!(s.name, "tests" | "real");
    let checks_ok = steps.iter().filter(|s| s.ok).filter(is_check).count() as u64;
    let checks_failed = steps.iter().filter(|s| !s.ok).filter(is_check).count() as u64;
    println!(
        "(tests: {} passed, {} failed; checks: {checks_ok} passed, {checks_failed} failed)",
        counts.passed, counts.failed
    );
    println!(
        "xtask: {} passed, {} failed",
        counts.passed + checks_ok,
        counts.failed + checks_failed
    );
    if failed_steps.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("failed: {}", failed_steps.join(", "))
    }
}

fn timed(name: &'static str, f: impl FnOnce() -> anyhow::Result<String>) -> Step {
    eprintln!("\n== {name} ==");
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    match result {
        Ok(detail) => Step {
            name,
            ok: true,
            took,
            detail,
        },
        Err(err) => {
            eprintln!("{name}: {err:#}");
            Step {
                name,
                ok: false,
                took,
                detail: format!("{err:#}"),
            }
        }
    }
}

fn cargo_ok(root: &Path, args: &[&str], hint: &str) -> anyhow::Result<String> {
    let st = cmd::status(Command::new(cargo()).args(args).current_dir(root))?;
    if st.success() {
        Ok(String::new())
    } else {
        anyhow::bail!("{hint}")
    }
}

/// Runs `cargo test --workspace`, streaming its output and summing its result lines.
fn cargo_test(
    root: &Path,
    filter: Option<&str>,
    failures: &mut Failures,
) -> anyhow::Result<Counts> {
    cargo_test_args(
        root,
        &["test", "--workspace", "--no-fail-fast"],
        &[],
        filter,
        failures,
    )
}

/// Runs `cargo <args> -- <harness args> [filter]`, streaming its output and summing its result
/// lines.
fn cargo_test_args(
    root: &Path,
    args: &[&str],
    harness: &[&str],
    filter: Option<&str>,
    failures: &mut Failures,
) -> anyhow::Result<Counts> {
    let mut command = Command::new(cargo());
    command.args(args).current_dir(root);
    if !harness.is_empty() || filter.is_some() {
        command.arg("--").args(harness);
    }
    if let Some(f) = filter {
        command.arg(f);
    }
    eprintln!("+ {}", cmd::display(&command));
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", cmd::display(&command)))?;
    let mut counts = Counts::default();
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo test output")?;
            counts.add_line(&line);
            failures.feed(&line);
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() && counts.failed == 0 {
        // A build error or a crashed test binary: no `test result` line says so.
        anyhow::bail!("`cargo test` failed with {status} (build error or crashed test binary)");
    }
    Ok(counts)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_each_panic_message_up_to_its_backtrace() {
        let mut f = Failures::default();
        for line in [
            "---- a stdout ----",
            "\u{1b}[2m2026-12-03T19:02:17Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m noise before",
            "thread 'a' (26606) panicked at controller/tests/faults.rs:499:6:",
            "called `Result::unwrap()` on an `Err` value: Elapsed(())",
            "\u{1b}[31mERROR\u{1b}[0m coloured",
            "stack backtrace:",
            "   0: frame",
            "test b ... ok",
            "thread 'c' panicked at e2e/tests/real/chart.rs:280:13:",
            "c not Ready",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored",
        ] {
            f.feed(line);
        }
        assert_eq!(
            f.excerpts,
            vec![
                vec![
                    "thread 'a' (26606) panicked at controller/tests/faults.rs:499:6:".to_owned(),
                    "called `Result::unwrap()` on an `Err` value: Elapsed(())".to_owned(),
                    "ERROR coloured".to_owned(),
                ],
                vec![
                    "thread 'c' panicked at e2e/tests/real/chart.rs:280:13:".to_owned(),
                    "c not Ready".to_owned(),
                ],
            ]
        );
        let long = "x".repeat(1000);
        f.feed("thread 'd' panicked at x.rs:1:1:");
        for _ in 0..100 {
            f.feed(&long);
        }
        let last = f.excerpts.last().unwrap();
        assert_eq!(last.len(), Failures::LINES);
        assert!(last[1].len() <= Failures::WIDTH + 3);
    }

    #[test]
    fn counts_sum_libtest_result_lines_and_ignore_other_lines() {
        let mut c = Counts::default();
        c.add_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        c.add_line(
            "test result: FAILED. 2 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        c.add_line("test foo ... ok");
        c.add_line("running 3 tests");
        assert_eq!(
            c,
            Counts {
                passed: 5,
                failed: 4,
                ignored: 1
            }
        );
    }
}
