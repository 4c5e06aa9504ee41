//! `kube-ovn`: the CNI plugin binary Multus runs for kube-ovn attachments.

use std::io::Write;
use std::process::ExitCode;

use cni::error::{CniError, code};
use cni::version;

fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let outcome = match command.as_str() {
        "VERSION" => serde_json::to_string(&version::version_result())
            .map_err(|e| CniError::new(version::LATEST, code::IO_FAILURE, e.to_string())),
        "" => Err(CniError::new(
            version::LATEST,
            code::INVALID_ENV,
            "CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime or Multus",
        )),
        other => Err(CniError::new(
            version::LATEST,
            code::INVALID_ENV,
            format!("CNI_COMMAND {other:?} is not supported by this build of kube-ovn"),
        )),
    };
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(json) => {
            let _ = writeln!(stdout, "{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            let _ = writeln!(stdout, "{}", err.to_json());
            ExitCode::FAILURE
        }
    }
}
