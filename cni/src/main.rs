//! `kube-ovn`: the CNI plugin binary Multus runs for kube-ovn attachments.

use std::io::{Read, Write};
use std::process::ExitCode;

use cni::error::{CniError, code};
use cni::{plugin, version};

fn main() -> ExitCode {
    let outcome = run();
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(Some(json)) => {
            let _ = writeln!(stdout, "{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(stdout, "{}", err.to_json());
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<Option<String>, CniError> {
    let io_err = |what: &str, e: std::io::Error| {
        CniError::new(version::LATEST, code::IO_FAILURE, format!("{what}: {e}"))
    };
    // Read stdin for every verb, VERSION included: the runtime writes the request there, and a
    // plugin that exits without reading it makes the runtime's write fail with EPIPE.
    let mut stdin = Vec::new();
    std::io::stdin()
        .take(plugin::MAX_STDIN as u64 + 1)
        .read_to_end(&mut stdin)
        .map_err(|e| io_err("reading stdin", e))?;
    // One thread: the plugin makes one request and exits; start-up time matters more.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| io_err("starting the async runtime", e))?;
    runtime.block_on(plugin::run(|k| std::env::var(k).ok(), &stdin))
}
