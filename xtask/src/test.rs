//! `cargo xtask test`: the whole check that CI runs (`.ci/run`).
//!
//! Steps: setup, `cargo fmt --check`, `cargo clippy -D warnings`, `cargo deny check bans licenses
//! sources`, build (every test binary, `cargo test --no-run`), then the tests and, beside them,
//! the images (`cargo xtask images`; only the real-node tests need them and wait for them). The
//! tests: every test binary (unit tests, integration tests against the real programs, e2e
//! scenarios, the real nodes of `e2e/tests/real.rs` one test at a time, as `cargo xtask e2e
//! --real` runs them) and the doc tests, a few binaries at once (see `test_pool`). Every step runs even after an earlier one failed, so one run shows every
//! problem; the summary names the failed steps and the exit code is non-zero.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::test_pool::{self, Gate, Job};
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
    let mut jobs = Vec::new();
    steps.push(timed("build", || {
        jobs = build_tests(root, args.filter.as_deref())?;
        Ok(format!("{} test binaries", jobs.len()))
    }));
    let built = steps.last().is_some_and(|s| s.ok);

    // The images (a release build, then the archives) are built beside the tests: only the
    // real-node tests need them, and they wait for them without taking a slot. The doc tests
    // wait for the build to end (both take cargo's lock on the target dir).
    let images_done: Gate = Arc::new(OnceLock::new());
    let images_ok: Gate = Arc::new(OnceLock::new());
    let images = {
        let root = root.to_owned();
        let gates = OpenOnDrop([Arc::clone(&images_done), Arc::clone(&images_ok)]);
        std::thread::spawn(move || {
            eprintln!("\n== images (built beside the tests) ==");
            let start = Instant::now();
            let result = crate::images::build(
                &root,
                &crate::images::default_out(&root),
                &crate::images::all(),
            )
            .map(|built| format!("{} archives", built.len()));
            let _ = gates.0[1].set(result.is_ok());
            drop(gates);
            (result, start.elapsed())
        })
    };

    let mut counts = Counts::default();
    let mut real = Counts::default();
    let mut failures = Failures::default();
    let tests = timed("tests", || {
        if !built {
            anyhow::bail!("skipped: the tests did not build");
        }
        for job in &mut jobs {
            if job.name == REAL {
                job.after = Some(Arc::clone(&images_ok));
            }
        }
        let mut doc = doc_tests(root, args.filter.as_deref());
        doc.after = Some(Arc::clone(&images_done));
        jobs.push(doc);
        (counts, real) = run_jobs(root, std::mem::take(&mut jobs), &mut failures)?;
        let detail = format!(
            "{} passed, {} failed, {} ignored (of which real nodes: {} passed, {} failed)",
            counts.passed, counts.failed, counts.ignored, real.passed, real.failed
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
        if real.passed == 0 && args.filter.is_none() {
            anyhow::bail!("{detail}: no real-node test ran");
        }
        Ok(detail)
    });
    let images = match images.join() {
        Ok((result, took)) => step("images", result, took),
        Err(_) => step(
            "images",
            Err(anyhow::anyhow!("the build panicked")),
            Duration::ZERO,
        ),
    };
    steps.push(images);
    steps.push(tests);

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
    let is_check = |s: &&Step| s.name != "tests";
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

/// The job name of the real-node tests (`e2e/tests/real.rs`).
const REAL: &str = "e2e::real";

fn timed(name: &'static str, f: impl FnOnce() -> anyhow::Result<String>) -> Step {
    eprintln!("\n== {name} ==");
    let start = Instant::now();
    let result = f();
    step(name, result, start.elapsed())
}

fn step(name: &'static str, result: anyhow::Result<String>, took: Duration) -> Step {
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

/// Sets every gate still unset to `false` when dropped: a panicking build must not leave the
/// jobs waiting for it forever. The first gate means "finished", so it is set to `true`.
struct OpenOnDrop([Gate; 2]);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let _ = self.0[0].set(true);
        let _ = self.0[1].set(false);
    }
}

fn cargo_ok(root: &Path, args: &[&str], hint: &str) -> anyhow::Result<String> {
    let st = cmd::status(cmd::cargo().args(args).current_dir(root))?;
    if st.success() {
        Ok(String::new())
    } else {
        anyhow::bail!("{hint}")
    }
}

/// Builds every test binary of the workspace (`cargo test --no-run`), and the real-node tests
/// (`test = false` in e2e, so `cargo test` alone leaves them out), and returns them as jobs.
fn build_tests(root: &Path, filter: Option<&str>) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    // `--workspace` for both: the same feature set, so the second build reuses the first.
    for extra in [&[][..], &["--test", "real"][..]] {
        let mut command = cmd::cargo();
        command
            .args([
                "test",
                "--workspace",
                "--no-run",
                "--message-format=json-render-diagnostics",
            ])
            .args(extra)
            .current_dir(root);
        eprintln!("+ {}", cmd::display(&command));
        let out = command
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start `{}`", cmd::display(&command)))?;
        if !out.status.success() {
            anyhow::bail!("`{}` failed with {}", cmd::display(&command), out.status);
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(artifact) = TestArtifact::parse(line) {
                let harness: &[&str] = if artifact.target == "real" {
                    // One at a time: each test brings up its own kubelets.
                    &["--test-threads=1"]
                } else {
                    &[]
                };
                let job = Job::binary(
                    &artifact.package,
                    &artifact.target,
                    &artifact.executable,
                    &artifact.dir,
                    harness,
                    filter,
                );
                if !jobs.iter().any(|j: &Job| j.name == job.name) {
                    jobs.push(job);
                }
            }
        }
    }
    if !jobs.iter().any(|j| j.name == REAL) {
        anyhow::bail!("cargo built no {REAL} test binary");
    }
    Ok(jobs)
}

/// A test executable from cargo's JSON messages.
#[derive(Debug, PartialEq, Eq)]
struct TestArtifact {
    package: String,
    target: String,
    executable: PathBuf,
    /// The package's directory: cargo runs its tests there.
    dir: PathBuf,
}

impl TestArtifact {
    /// Reads one line of `--message-format=json` output; `None` unless it is a test executable.
    fn parse(line: &str) -> Option<Self> {
        let msg: serde_json::Value = serde_json::from_str(line).ok()?;
        if msg.get("reason")?.as_str()? != "compiler-artifact"
            || !msg.pointer("/profile/test")?.as_bool()?
        {
            return None;
        }
        let executable = PathBuf::from(msg.get("executable")?.as_str()?);
        let dir = Path::new(msg.get("manifest_path")?.as_str()?)
            .parent()?
            .to_owned();
        Some(TestArtifact {
            package: package_name(msg.get("package_id")?.as_str()?, &dir)?,
            target: msg.pointer("/target/name")?.as_str()?.to_owned(),
            executable,
            dir,
        })
    }
}

/// The package name in a cargo package id: `path+file:///x/ovn-api#0.1.0` (name = the dir),
/// `path+file:///x/dir#name@0.1.0`, or the older `name 0.1.0 (path+file:///x)`.
fn package_name(id: &str, dir: &Path) -> Option<String> {
    if let Some((_, fragment)) = id.split_once('#') {
        return match fragment.split_once('@') {
            Some((name, _)) => Some(name.to_owned()),
            None => Some(dir.file_name()?.to_string_lossy().into_owned()),
        };
    }
    id.split_whitespace().next().map(str::to_owned)
}

/// The doc tests (`cargo test --doc`), as one job.
fn doc_tests(root: &Path, filter: Option<&str>) -> Job {
    let mut args: Vec<String> = ["test", "--workspace", "--doc"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(f) = filter {
        args.extend(["--".to_owned(), f.to_owned()]);
    }
    Job {
        name: "doc tests".to_owned(),
        program: PathBuf::from(cmd::cargo().get_program()),
        args,
        cwd: root.to_owned(),
        exclusive: false,
        cargo: true,
        after: None,
    }
}

/// Runs `jobs` in the pool, printing each one's output whole as it ends; returns the counts
/// of all of them and of the real-node tests.
fn run_jobs(
    root: &Path,
    jobs: Vec<Job>,
    failures: &mut Failures,
) -> anyhow::Result<(Counts, Counts)> {
    let target = crate::images::target_dir(root);
    let timings_file = target.join("xtask-test-timings.tsv");
    let timings = test_pool::load_timings(&timings_file);
    let width = test_pool::jobs_from_env();
    let jobs = test_pool::order(jobs, &timings);
    eprintln!("tests: {} jobs, {width} at once", jobs.len());
    let mut counts = Counts::default();
    let mut real = Counts::default();
    let mut took = Vec::new();
    let mut out = std::io::stdout();
    test_pool::run(jobs, width, &target.join("xtask-test-logs"), |o| {
        let mut mine = Counts::default();
        let _ = writeln!(
            out,
            "\n     Finished {} in {:.1} s\n",
            o.name,
            o.took.as_secs_f64()
        );
        for line in o.output.lines() {
            mine.add_line(line);
            failures.feed(line);
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        if o.success != Some(true) && mine.failed == 0 {
            // A crash, a build error of the doc tests, or a hang: no `test result` line
            // counts it, so it counts as one failure here.
            mine.failed += 1;
            let why = match o.success {
                Some(_) => "exited with an error and no failed test (crashed?)",
                None => "did not start or was killed for running too long",
            };
            let last: Vec<&str> = o.output.lines().rev().take(20).collect();
            failures.feed(&format!("thread '{}' panicked at xtask: {why}", o.name));
            for line in last.into_iter().rev() {
                failures.feed(line);
            }
            failures.feed("test result: FAILED.");
        }
        eprintln!(
            "tests: {} {} in {:.1} s",
            o.name,
            if o.success == Some(true) {
                "passed"
            } else {
                "FAILED"
            },
            o.took.as_secs_f64()
        );
        counts.passed += mine.passed;
        counts.failed += mine.failed;
        counts.ignored += mine.ignored;
        if o.name == REAL {
            real = mine;
        }
        took.push((o.name, o.took.as_secs_f64()));
    })?;
    test_pool::save_timings(&timings_file, &took);
    Ok((counts, real))
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
    fn test_executables_are_read_from_cargo_messages_and_the_rest_ignored() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/ovn-api#0.1.0","manifest_path":"/w/ovn-api/Cargo.toml","target":{"kind":["test"],"name":"client"},"profile":{"test":true},"executable":"/t/debug/deps/client-abc"}"#;
        assert_eq!(
            TestArtifact::parse(line),
            Some(TestArtifact {
                package: "ovn-api".to_owned(),
                target: "client".to_owned(),
                executable: PathBuf::from("/t/debug/deps/client-abc"),
                dir: PathBuf::from("/w/ovn-api"),
            })
        );
        // A library built for the tests, not a test: no executable, profile.test false.
        let lib = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/ipam#0.1.0","manifest_path":"/w/ipam/Cargo.toml","target":{"kind":["lib"],"name":"ipam"},"profile":{"test":false},"executable":null}"#;
        assert_eq!(TestArtifact::parse(lib), None);
        assert_eq!(
            TestArtifact::parse(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(TestArtifact::parse("Compiling x"), None);
        assert_eq!(
            package_name("path+file:///w/dir#name@0.1.0", Path::new("/w/dir")).as_deref(),
            Some("name")
        );
        assert_eq!(
            package_name("crds 0.1.0 (path+file:///w/crds)", Path::new("/w/crds")).as_deref(),
            Some("crds")
        );
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
