//! Running the workspace's test binaries a few at a time.
//!
//! `cargo test` runs its test binaries one after the other; most of ours spend their time waiting
//! on real programs (kube-apiserver, ovsdb-server, kubelets), so running three at once roughly
//! halves the wall time on two cores. Each job's output goes to a file and is printed whole when
//! the job ends, so the log reads as one binary after another. The longest jobs start first
//! (durations of earlier runs are kept beside the build in `xtask-test-timings.tsv`).
//!
//! A job that looks at state the whole host shares (every host interface, say) is marked
//! exclusive and runs alone after the others. A job may wait for a [`Gate`] (the real-node
//! tests for the images, built beside the other tests); it takes no slot while it waits, and
//! the pool runs one job fewer until the gate opens.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Jobs at once unless `XTASK_TEST_JOBS` says otherwise.
const DEFAULT_JOBS: usize = 3;

/// A job still running after this long is killed and counted as failed: a hung test must not
/// eat the whole CI budget.
const JOB_TIMEOUT: Duration = Duration::from_secs(25 * 60);

/// Test binaries that must run alone: they compare state of the whole host before and after.
const EXCLUSIVE: &[&str] = &["e2e::teardown"];

/// What a job waits for: open once set; `false` means it failed and the job does not run.
pub type Gate = Arc<OnceLock<bool>>;

/// One test binary (or the doc tests) to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// `<package>::<target>`, e.g. `controller::chaos`; `<package>` alone for unit tests of a
    /// library.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Runs alone, after every other job.
    pub exclusive: bool,
    /// `program` is cargo: started without the environment `cargo run` gave xtask.
    pub cargo: bool,
    /// Starts only once this gate is set; not at all when it is set to `false`.
    pub after: Option<Gate>,
}

impl Job {
    /// A test binary `executable` of target `target` in package `package` (rooted at `dir`),
    /// run with the harness arguments `harness` and the optional name filter.
    pub fn binary(
        package: &str,
        target: &str,
        executable: &Path,
        dir: &Path,
        harness: &[&str],
        filter: Option<&str>,
    ) -> Self {
        let name = job_name(package, target);
        let mut args: Vec<String> = harness.iter().map(|s| (*s).to_owned()).collect();
        args.extend(filter.map(str::to_owned));
        Job {
            exclusive: EXCLUSIVE.contains(&name.as_str()),
            name,
            program: executable.to_owned(),
            args,
            cwd: dir.to_owned(),
            cargo: false,
            after: None,
        }
    }
}

/// `<package>::<target>`, or `<package>` when the target is the package's own library.
pub fn job_name(package: &str, target: &str) -> String {
    if package.replace('-', "_") == target.replace('-', "_") {
        package.to_owned()
    } else {
        format!("{package}::{target}")
    }
}

/// How one job ended.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub took: Duration,
    /// Everything the job printed, stdout and stderr interleaved.
    pub output: String,
    /// `None` when the job could not start or was killed for running too long (the reason is
    /// in `output`).
    pub success: Option<bool>,
}

/// How many jobs run at once: `XTASK_TEST_JOBS` (at least 1) or the default.
pub fn jobs_from_env() -> usize {
    std::env::var("XTASK_TEST_JOBS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(DEFAULT_JOBS)
}

/// Durations of earlier runs, by job name (missing or unreadable file: none known).
pub fn load_timings(path: &Path) -> HashMap<String, f64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    parse_timings(&text)
}

fn parse_timings(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter_map(|line| {
            let (name, secs) = line.split_once('\t')?;
            let secs = secs.trim().parse::<f64>().ok()?;
            (secs.is_finite() && secs >= 0.0).then(|| (name.to_owned(), secs))
        })
        .collect()
}

/// Writes `timings` (merged over the old file, so a filtered run keeps the others' figures).
pub fn save_timings(path: &Path, fresh: &[(String, f64)]) {
    let mut all = load_timings(path);
    for (name, secs) in fresh {
        all.insert(name.clone(), *secs);
    }
    let mut rows: Vec<_> = all.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let text: String = rows.iter().map(|(n, s)| format!("{n}\t{s:.1}\n")).collect();
    if let Err(err) = std::fs::write(path, text) {
        eprintln!("tests: cannot write {}: {err}", path.display());
    }
}

/// The order jobs start in: non-exclusive ones longest first (unknown durations count as long,
/// so a new binary is not left for last), then the exclusive ones.
pub fn order(mut jobs: Vec<Job>, timings: &HashMap<String, f64>) -> Vec<Job> {
    let expected = |j: &Job| timings.get(&j.name).copied().unwrap_or(f64::MAX);
    jobs.sort_by(|a, b| {
        a.exclusive
            .cmp(&b.exclusive)
            .then(expected(b).total_cmp(&expected(a)))
            .then(a.name.cmp(&b.name))
    });
    jobs
}

/// Runs `jobs` (already ordered) at most `width` at once, exclusive ones alone, calling `done`
/// with each outcome as it ends. `log_dir` holds the jobs' output files.
pub fn run(
    jobs: Vec<Job>,
    width: usize,
    log_dir: &Path,
    mut done: impl FnMut(Outcome),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let (shared, exclusive): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| !j.exclusive);
    run_batch(shared, width.max(1), log_dir, &mut done);
    run_batch(exclusive, 1, log_dir, &mut done);
    Ok(())
}

fn run_batch(jobs: Vec<Job>, width: usize, log_dir: &Path, done: &mut impl FnMut(Outcome)) {
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut queue = jobs;
    let mut running = 0usize;
    loop {
        // While a job waits for a gate, what it waits for (the images' release build) runs
        // beside the pool: one slot fewer leaves it the CPU, so the job it holds up (the
        // real-node tests, the longest) starts sooner.
        let waiting = queue
            .iter()
            .any(|j| j.after.as_ref().is_some_and(|g| g.get().is_none()));
        let slots = if waiting {
            width.saturating_sub(1).max(1)
        } else {
            width
        };
        while running < slots {
            // The first job in order whose gate (if any) is open.
            let Some(next) = queue
                .iter()
                .position(|j| j.after.as_ref().is_none_or(|g| g.get().is_some()))
            else {
                break;
            };
            let job = queue.remove(next);
            eprintln!("tests: started {}", job.name);
            let tx = tx.clone();
            let log = log_dir.join(format!("{}.log", job.name.replace("::", "-")));
            std::thread::spawn(move || {
                let _ = tx.send(run_one(&job, &log));
            });
            running += 1;
        }
        if running == 0 && queue.is_empty() {
            break;
        }
        // Wake up now and then: a gate may open while every slot is busy or none is.
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(outcome) => {
                running -= 1;
                done(outcome);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender gone with jobs counted as running cannot happen (each thread sends
            // once, and `tx` lives here); stop rather than wait forever.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

fn run_one(job: &Job, log: &Path) -> Outcome {
    if job.after.as_ref().and_then(|g| g.get()) == Some(&false) {
        return Outcome {
            name: job.name.clone(),
            took: Duration::ZERO,
            output: "xtask: not started: what it needs failed (see the steps above)\n".to_owned(),
            success: None,
        };
    }
    let start = Instant::now();
    let (output, success) = match spawn(job, log) {
        Ok(child) => wait(child, log),
        Err(err) => (format!("{err:#}\n"), None),
    };
    Outcome {
        name: job.name.clone(),
        took: start.elapsed(),
        output,
        success,
    }
}

fn spawn(job: &Job, log: &Path) -> anyhow::Result<Child> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone().context("cannot share the log file")?;
    let mut command = if job.cargo {
        crate::cmd::cargo()
    } else {
        Command::new(&job.program)
    };
    command
        .args(&job.args)
        .current_dir(&job.cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {}", job.program.display()))
}

fn wait(mut child: Child, log: &Path) -> (String, Option<bool>) {
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > JOB_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(_) => break None,
        }
    };
    let mut output = read_lossy(log);
    match status {
        Some(status) => (output, Some(status.success())),
        None => {
            output.push_str(&format!(
                "\nxtask: killed after {} s without finishing\n",
                JOB_TIMEOUT.as_secs()
            ));
            (output, None)
        }
    }
}

fn read_lossy(path: &Path) -> String {
    let Ok(file) = File::open(path) else {
        return String::new();
    };
    let mut text = String::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf));
        buf.clear();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        Job {
            name: name.to_owned(),
            program: PathBuf::from("/bin/true"),
            args: Vec::new(),
            cwd: PathBuf::from("/"),
            exclusive: EXCLUSIVE.contains(&name),
            cargo: false,
            after: None,
        }
    }

    #[test]
    fn jobs_run_longest_first_unknown_before_known_and_exclusive_last() {
        let timings = parse_timings("a\t10.0\nb\t300.5\ne2e::teardown\t900\nbad line\nc\tNaN\n");
        assert_eq!(timings.len(), 3, "{timings:?}");
        let names: Vec<String> = order(
            vec![
                job("a"),
                job("e2e::teardown"),
                job("b"),
                job("new"),
                job("c"),
            ],
            &timings,
        )
        .into_iter()
        .map(|j| j.name)
        .collect();
        assert_eq!(names, ["c", "new", "b", "a", "e2e::teardown"]);
    }

    #[test]
    fn names_drop_the_target_when_it_is_the_package_library() {
        assert_eq!(job_name("controller", "controller"), "controller");
        assert_eq!(job_name("ovn-api", "ovn_api"), "ovn-api");
        assert_eq!(job_name("e2e", "teardown"), "e2e::teardown");
    }

    #[test]
    fn the_pool_reports_every_job_with_its_output_and_status() {
        let dir = std::env::temp_dir().join(format!("xtask-pool-{}", std::process::id()));
        let mut jobs = Vec::new();
        for (name, script) in [
            ("ok", "echo out; echo err >&2"),
            ("bad", "echo failing; exit 3"),
        ] {
            jobs.push(Job {
                name: name.to_owned(),
                program: PathBuf::from("/bin/sh"),
                args: vec!["-c".to_owned(), script.to_owned()],
                cwd: PathBuf::from("/"),
                exclusive: false,
                cargo: false,
                after: None,
            });
        }
        jobs.push(Job {
            name: "missing".to_owned(),
            program: PathBuf::from("/nonexistent/binary"),
            args: Vec::new(),
            cwd: PathBuf::from("/"),
            exclusive: true,
            cargo: false,
            after: None,
        });
        let mut seen = Vec::new();
        run(jobs, 2, &dir, |o| seen.push(o)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].name, "bad");
        assert_eq!(seen[0].success, Some(false));
        assert_eq!(seen[0].output, "failing\n");
        assert_eq!(seen[1].name, "missing");
        assert_eq!(seen[1].success, None);
        assert!(
            seen[1].output.contains("cannot start"),
            "{}",
            seen[1].output
        );
        assert_eq!(seen[2].success, Some(true));
        assert!(seen[2].output.contains("out\n") && seen[2].output.contains("err\n"));
    }

    #[test]
    fn a_gated_job_waits_without_a_slot_and_is_skipped_when_its_gate_fails() {
        let dir = std::env::temp_dir().join(format!("xtask-gate-{}", std::process::id()));
        let open_later: Gate = Arc::new(OnceLock::new());
        let failed: Gate = Arc::new(OnceLock::new());
        let _ = failed.set(false);
        let sh = |name: &str, script: &str, after: Option<Gate>| Job {
            name: name.to_owned(),
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".to_owned(), script.to_owned()],
            cwd: PathBuf::from("/"),
            exclusive: false,
            cargo: false,
            after,
        };
        let opener = Arc::clone(&open_later);
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            let _ = opener.set(true);
        });
        // One slot: the gated job is first in order but must not hold the slot while it
        // waits, so "free" runs first.
        let jobs = vec![
            sh("gated", "echo gated", Some(open_later)),
            sh("free", "echo free", None),
            sh("skipped", "echo never", Some(failed)),
        ];
        let mut seen = Vec::new();
        run(jobs, 1, &dir, |o| seen.push(o)).unwrap();
        setter.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let at = |name: &str| seen.iter().position(|o| o.name == name).unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            at("free") < at("gated"),
            "the waiting job held the only slot"
        );
        let skipped = &seen[at("skipped")];
        assert_eq!(skipped.success, None);
        assert!(skipped.output.contains("not started"), "{}", skipped.output);
        let gated = &seen[at("gated")];
        assert_eq!(gated.success, Some(true));
        assert_eq!(gated.output, "gated\n");
    }
}
