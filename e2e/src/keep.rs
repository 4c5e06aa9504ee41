//! `cargo xtask e2e --keep`: a scenario's cluster stays up when the scenario ends, for
//! exploring with kubectl, until the user presses Enter (tear down, go on with the next
//! scenario) or Ctrl-C, SIGTERM or SIGHUP (tear down, stop; `cargo xtask` itself is gone by
//! then, so the run dir stays under /dev/shm as after a failed scenario). Asked for by the [`KEEP_ENV`] environment variable.
//!
//! The hold happens in `Cluster`'s `Drop`, so it covers passed and failed scenarios alike. The
//! pod runners (kubelet + Multus stand-ins) are tasks on the test's multi-thread runtime: the
//! hold parks only the dropping thread ([`tokio::task::block_in_place`]), so pods created
//! meanwhile with kubectl still get their interfaces.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set (to anything) to keep each cluster up at the end of its scenario.
pub const KEEP_ENV: &str = "KUBE_OVN_E2E_KEEP";

/// Set once Ctrl-C ended a hold: later clusters are not held (the run is stopping).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether clusters should be held.
pub fn requested() -> bool {
    std::env::var_os(KEEP_ENV).is_some() && !INTERRUPTED.load(Ordering::SeqCst)
}

/// Why the hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Enter (or end of input).
    Enter,
    /// Ctrl-C or SIGTERM.
    Signal,
}

/// The message printed when a cluster is held.
pub fn banner(kubeconfig: &Path, run_dir: &Path) -> String {
    format!(
        "\n== cluster kept up (--keep) ==\n\
         export KUBECONFIG={}\n\
         kubectl get nodes,pods,subnets,vpcs,ips -A\n\
         logs: {}\n\
         Press Enter to tear it down and go on, Ctrl-C to tear it down and stop.\n",
        kubeconfig.display(),
        run_dir.display()
    )
}

/// Prints the banner straight to stderr (past the test harness's output capture) and waits.
pub fn hold(kubeconfig: &Path, run_dir: &Path) -> Released {
    let _ = std::io::stderr().write_all(banner(kubeconfig, run_dir).as_bytes());
    let released = match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(wait()))
        }
        // No runtime of ours to keep serving (or a current-thread one that parking would
        // stall): wait on a runtime of our own.
        _ => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => std::thread::scope(|s| {
                s.spawn(|| rt.block_on(wait()))
                    .join()
                    .unwrap_or(Released::Signal)
            }),
            Err(_) => Released::Enter,
        },
    };
    if released == Released::Signal {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    let _ = writeln!(std::io::stderr(), "tearing the kept cluster down...");
    released
}

async fn wait() -> Released {
    // stdin is read on a plain thread: a blocking read cannot be cancelled, and a detached
    // thread (unlike spawn_blocking) does not hold up the runtime's shutdown.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(());
    });
    // SIGHUP too: a closed terminal must still get the teardown. Once registered, tokio keeps
    // these handlers for the life of the process, so a second Ctrl-C during the teardown
    // cannot kill it halfway (which would leak namespaces and OVS processes).
    let signal = |kind: tokio::signal::unix::SignalKind| async move {
        match tokio::signal::unix::signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    use tokio::signal::unix::SignalKind;
    tokio::select! {
        _ = rx => Released::Enter,
        () = signal(SignalKind::interrupt()) => Released::Signal,
        () = signal(SignalKind::terminate()) => Released::Signal,
        () = signal(SignalKind::hangup()) => Released::Signal,
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed assertion is the report.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_banner_gives_the_kubeconfig_and_how_to_go_on() {
        let b = banner(Path::new("/dev/shm/x/kubeconfig"), Path::new("/dev/shm/x"));
        assert!(b.contains("export KUBECONFIG=/dev/shm/x/kubeconfig"), "{b}");
        assert!(b.contains("Enter") && b.contains("Ctrl-C"), "{b}");
    }
}
