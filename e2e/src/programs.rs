//! The external programs tests run, and a clear failure when one is missing.
//!
//! Tests never skip silently: a missing program fails the test with the package that provides it
//! and the command that installs everything (`cargo xtask setup`).

use std::path::{Path, PathBuf};

/// A program a test needs, and the Debian package that ships it.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// File name looked up on `PATH`.
    pub name: &'static str,
    /// Debian package that provides it.
    pub package: &'static str,
}

/// The OVS/OVN programs the L1 tests start.
pub const OVN_PROGRAMS: &[Program] = &[
    Program {
        name: "ovsdb-server",
        package: "openvswitch-switch",
    },
    Program {
        name: "ovsdb-tool",
        package: "openvswitch-switch",
    },
    Program {
        name: "ovs-vswitchd",
        package: "openvswitch-switch",
    },
    Program {
        name: "ovs-vsctl",
        package: "openvswitch-switch",
    },
    Program {
        name: "ovn-northd",
        package: "ovn-central",
    },
    Program {
        name: "ovn-controller",
        package: "ovn-host",
    },
    Program {
        name: "ovn-nbctl",
        package: "ovn-central",
    },
    Program {
        name: "ip",
        package: "iproute2",
    },
];

/// A required program is not installed.
#[derive(Debug, thiserror::Error)]
#[error(
    "required program `{name}` was not found on PATH; install the Debian package `{package}` \
     (or run `cargo xtask setup`, which installs everything the tests need)"
)]
pub struct MissingProgram {
    /// The program's file name.
    pub name: &'static str,
    /// The package that provides it.
    pub package: &'static str,
}

/// Finds `name` on `PATH` (also `/usr/sbin` and `/sbin`, where Debian puts daemons).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Resolves every program in `programs`, failing on the first missing one.
pub fn require(programs: &[Program]) -> Result<Vec<PathBuf>, MissingProgram> {
    programs
        .iter()
        .map(|p| {
            find_on_path(p.name).ok_or(MissingProgram {
                name: p.name,
                package: p.package,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_its_package_and_the_setup_command() {
        let err = require(&[Program {
            name: "no-such-program-kube-ovn",
            package: "pkg-x",
        }])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no-such-program-kube-ovn") && err.contains("pkg-x"),
            "{err}"
        );
        assert!(err.contains("cargo xtask setup"), "{err}");
    }

    #[test]
    fn ovn_programs_are_installed() {
        // `cargo xtask test` runs setup first, so on CI this proves setup installed them.
        require(OVN_PROGRAMS).unwrap();
    }
}
