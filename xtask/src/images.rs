//! `cargo xtask images`: the three container images as OCI archives, without a Docker engine
//! (DESIGN §4). Each archive is an OCI image layout packed as one tar (see `oci.rs`), importable
//! with `ctr -n k8s.io images import`, `kind load image-archive` or `podman load`:
//!
//! - `kube-ovn-controller`: the static `kube-ovn-controller` binary, nothing else.
//! - `kube-ovn-cni`: static `kube-ovn-daemon`, `kubectl-ko` and `kube-ovn` (the CNI plugin, copied to the
//!   host by `install-cni.sh`), and Debian's static busybox for that script and the probe
//!   (see [`static_busybox`]).
//! - `kube-ovn-ovn`: a Debian root file system with Open vSwitch and OVN (`mmdebstrap`, cached
//!   under [`CACHE_DIR`] by its package list), and our start scripts from `images/kube-ovn-ovn/`.
//!
//! Our binaries are release builds linked statically against glibc (`crt-static`), so they run
//! on an empty image and, for the plugin, on any host. They are built for the explicit target
//! `x86_64-unknown-linux-gnu`, so the static flags apply to them and not to build scripts, and
//! the output (`<target dir>/x86_64-unknown-linux-gnu/release`) never invalidates the ordinary
//! builds. The Dockerfiles beside the scripts build the same images with Docker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use oci_spec::image::ConfigBuilder;

use crate::cmd;
use crate::oci::{Layer, Layout, strings};

/// Registry and namespace of the image names, as the charts' values give them.
pub const REGISTRY: &str = "docker.io/kube-ovn-rs";

/// The images, in build order.
pub const IMAGES: [&str; 3] = ["kube-ovn-controller", "kube-ovn-cni", "kube-ovn-ovn"];

/// Our binaries in the `kube-ovn-cni` image, under `/kube-ovn/`: the daemon, the CNI plugin
/// (copied to the host by `install-cni.sh`) and `kubectl-ko` (users copy it out,
/// docs/kubectl-ko.md). The Dockerfile copies the same list.
pub const CNI_IMAGE_BINARIES: [&str; 3] = ["kube-ovn-daemon", "kube-ovn", "kubectl-ko"];

/// Images for the real-node tests (L3), made from Debian's static busybox without a registry:
/// `e2e-pause` is the sandbox (pause) image of each node's containerd (`sleep` forever; the
/// runtime stops a sandbox with SIGKILL), `e2e-workload` the test pods' image (`sh`, `ip`,
/// `ping`, `nc` and the other busybox applets; `sleep` forever unless the pod says otherwise).
/// Not product images: built by `cargo xtask images` with the others, or alone with `--only`.
pub const TEST_IMAGES: [&str; 2] = ["e2e-pause", "e2e-workload"];

/// Busybox applets the workload image links (`busybox --list` of Debian's static build has
/// them all; these are the ones the tests and a person debugging use).
const WORKLOAD_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "ip",
    "ping",
    "ping6",
    "nc",
    "sleep",
    "cat",
    "ls",
    "echo",
    "ps",
    "kill",
    "hostname",
    "ifconfig",
    "route",
    "udhcpc",
    "wget",
    "grep",
    "sed",
    "awk",
    "head",
    "tail",
    "date",
    "env",
    "true",
    "false",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "test",
    "[",
    "arping",
    "traceroute",
    "netstat",
    "nslookup",
    "timeout",
    "wc",
    "tr",
    "seq",
    "uname",
    "id",
    "mount",
];

/// Where the Debian root file systems are cached.
pub const CACHE_DIR: &str = "/var/cache/kube-ovn-rs/images";

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Debian release and packages of the OVN image's root file system.
const SUITE: &str = "bookworm";
const OVN_PACKAGES: &[&str] = &[
    "openvswitch-switch",
    "ovn-central",
    "ovn-host",
    // modprobe openvswitch (kernel datapath), ip for debugging, ps/pgrep for ovs-ctl users.
    "kmod",
    "iproute2",
    "procps",
];
const MIRRORS: &[&str] = &[
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];

/// Debian packages this command needs on the build machine (installed on first use only, not
/// by `cargo xtask setup`: CI does not build images).
const BUILD_PACKAGES: &[&str] = &["mmdebstrap"];

/// Options of `cargo xtask images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Where the archives go (default: `<cargo target dir>/images`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Build only this image (repeatable): kube-ovn-controller, kube-ovn-cni, kube-ovn-ovn,
    /// or the real-node test images e2e-pause, e2e-workload.
    #[arg(long = "only", value_parser = clap::builder::PossibleValuesParser::new(
        IMAGES.iter().chain(TEST_IMAGES.iter())
    ))]
    only: Vec<String>,
}

/// The image tag: `v` + the workspace version (the charts' appVersion).
pub fn tag() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// The default output dir.
pub fn default_out(root: &Path) -> PathBuf {
    target_dir(root).join("images")
}

/// Cargo's target dir: `CARGO_TARGET_DIR`, or `target` in the workspace.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The archive path of `image` in `out`.
pub fn archive(out: &Path, image: &str) -> PathBuf {
    out.join(format!("{image}.oci.tar"))
}

/// Runs the command.
pub fn run(root: &Path, args: &ImagesArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| default_out(root));
    let only: Vec<&str> = if args.only.is_empty() {
        IMAGES.iter().chain(TEST_IMAGES.iter()).copied().collect()
    } else {
        IMAGES
            .iter()
            .chain(TEST_IMAGES.iter())
            .copied()
            .filter(|i| args.only.iter().any(|o| o == i))
            .collect()
    };
    for archive in build(root, &out, &only)? {
        println!("{}", archive.display());
    }
    Ok(())
}

/// Every image: ours, then the real-node test images.
pub fn all() -> Vec<&'static str> {
    IMAGES.iter().chain(TEST_IMAGES.iter()).copied().collect()
}

/// What real nodes need before they start: setup (kubelet, kube-proxy, Multus) and every
/// archive (`e2e --real`, `demo --real`, `bench startup`).
pub fn prepare_real_nodes(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    crate::setup::run()?;
    build(root, &default_out(root), &all())
}

/// Builds `images` into `out`; returns the archives.
pub fn build(root: &Path, out: &Path, images: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    crate::setup::apt_packages(BUILD_PACKAGES)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let bins = build_binaries(root, images)?;
    let mut archives = Vec::new();
    for image in images {
        let started = Instant::now();
        let archive = archive(out, image);
        let layout_dir = out.join(format!("{image}.layout"));
        let layout = Layout::create(&layout_dir)?;
        let (layers, config) = match *image {
            "kube-ovn-controller" => {
                require_static(&bins.join("kube-ovn-controller"))?;
                let mut app = Layer::default();
                app.copy(
                    "/kube-ovn/kube-ovn-controller",
                    &bins.join("kube-ovn-controller"),
                    0o755,
                )?;
                (
                    vec![layout.layer("kube-ovn-controller (static release build)", &app)?],
                    ConfigBuilder::default()
                        .entrypoint(strings(&["/kube-ovn/kube-ovn-controller"]))
                        .user("65534:65534")
                        .env(strings(&["PATH=/kube-ovn"])),
                )
            }
            "kube-ovn-cni" => {
                for binary in CNI_IMAGE_BINARIES {
                    require_static(&bins.join(binary))?;
                }
                let mut base = Layer::default();
                base.copy("/bin/busybox", &static_busybox()?, 0o755)?;
                for applet in [
                    "sh", "cp", "mv", "chmod", "test", "cat", "ls", "echo", "rm", "sleep",
                ] {
                    base.symlink(&format!("/bin/{applet}"), "busybox");
                }
                base.dir("/tmp");
                let mut app = Layer::default();
                for binary in CNI_IMAGE_BINARIES {
                    app.copy(&format!("/kube-ovn/{binary}"), &bins.join(binary), 0o755)?;
                }
                app.copy(
                    "/kube-ovn/install-cni.sh",
                    &root.join("images/kube-ovn-cni/install-cni.sh"),
                    0o755,
                )?;
                (
                    vec![
                        layout.layer("busybox-static (Debian)", &base)?,
                        layout.layer(
                            "kube-ovn-daemon, kube-ovn, kubectl-ko, install-cni.sh",
                            &app,
                        )?,
                    ],
                    ConfigBuilder::default()
                        .entrypoint(strings(&["/kube-ovn/kube-ovn-daemon"]))
                        .env(strings(&["PATH=/bin:/kube-ovn"])),
                )
            }
            "kube-ovn-ovn" => {
                let rootfs = debian_rootfs()?;
                let mut scripts = Layer::default();
                for script in ["start-ovn-central.sh", "start-ovs.sh", "ovn-healthcheck.sh"] {
                    scripts.copy(
                        &format!("/kube-ovn/{script}"),
                        &root.join("images/kube-ovn-ovn").join(script),
                        0o755,
                    )?;
                }
                (
                    vec![
                        layout.layer_from_tar(
                            &format!("mmdebstrap {SUITE} {}", OVN_PACKAGES.join(" ")),
                            &rootfs,
                        )?,
                        layout.layer("start scripts", &scripts)?,
                    ],
                    ConfigBuilder::default()
                        .cmd(strings(&["/kube-ovn/start-ovs.sh"]))
                        .env(strings(&[
                            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        ])),
                )
            }
            "e2e-pause" => {
                let mut base = Layer::default();
                base.copy("/bin/busybox", &static_busybox()?, 0o755)?
                    .symlink("/bin/sleep", "busybox");
                (
                    vec![layout.layer("busybox-static (Debian): sleep", &base)?],
                    ConfigBuilder::default()
                        .entrypoint(strings(&["/bin/sleep", "2147483647"]))
                        .env(strings(&["PATH=/bin"])),
                )
            }
            "e2e-workload" => {
                let mut base = Layer::default();
                base.copy("/bin/busybox", &static_busybox()?, 0o755)?;
                for applet in WORKLOAD_APPLETS {
                    base.symlink(&format!("/bin/{applet}"), "busybox");
                }
                base.dir("/tmp").dir("/etc");
                (
                    vec![layout.layer("busybox-static (Debian) with its applets", &base)?],
                    ConfigBuilder::default()
                        .entrypoint(strings(&["/bin/sleep"]))
                        .cmd(strings(&["2147483647"]))
                        .env(strings(&["PATH=/bin"])),
                )
            }
            other => bail!("unknown image {other}"),
        };
        layout.finish(
            &format!("{REGISTRY}/{image}"),
            &tag(),
            &layers,
            config.build()?,
        )?;
        layout.pack(&archive)?;
        std::fs::remove_dir_all(&layout_dir)
            .with_context(|| format!("removing {}", layout_dir.display()))?;
        let verified = crate::oci::verify(&archive)
            .with_context(|| format!("reading back {}", archive.display()))?;
        // What the image runs must be in it.
        let program = verified
            .config
            .entrypoint()
            .as_ref()
            .and_then(|e| e.first())
            .or_else(|| verified.config.cmd().as_ref().and_then(|c| c.first()))
            .map_or("", String::as_str)
            .trim_start_matches('/');
        if !verified.paths.iter().any(|p| p == program) {
            bail!(
                "{}: the image runs /{program}, which is not in its layers",
                archive.display()
            );
        }
        let size = std::fs::metadata(&archive)?.len();
        eprintln!(
            "images: {} -> {} ({:.1} MiB, {} layers, in {:.1} s)",
            verified.name,
            archive.display(),
            size as f64 / (1024.0 * 1024.0),
            layers.len(),
            started.elapsed().as_secs_f64()
        );
        archives.push(archive);
    }
    Ok(archives)
}

/// Whether `data` is a 64-bit ELF executable without a program interpreter (`PT_INTERP`), i.e.
/// one that runs on an image without a libc. `None` when it is not a 64-bit ELF file.
pub fn elf_is_static(data: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if data.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// Fails unless the file at `path` is a static executable (it goes into an image without libc).
fn require_static(path: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match elf_is_static(&data) {
        Some(true) => Ok(()),
        Some(false) => bail!(
            "{} is dynamically linked; the images have no libc",
            path.display()
        ),
        None => bail!("{} is not a 64-bit ELF executable", path.display()),
    }
}

/// Debian's static busybox (package `busybox-static`), unpacked from its .deb into
/// [`CACHE_DIR`] rather than installed: it conflicts with the dynamic `busybox` package that
/// the tests' DHCP client comes from. Fetched once with `apt-get download`.
pub fn static_busybox() -> anyhow::Result<PathBuf> {
    let cached = Path::new(CACHE_DIR).join("busybox-static/busybox");
    if cached.is_file() {
        return Ok(cached);
    }
    let work = Path::new(CACHE_DIR).join(format!("busybox-static.tmp-{}", std::process::id()));
    crate::k8s::remove_dir_if_present(&work)?;
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let download = || {
        cmd::run(
            Command::new("apt-get")
                .args(["download", "-q", "busybox-static"])
                .current_dir(&work),
        )
    };
    if download().is_err() {
        // Old package lists name a version the mirror no longer has: refresh them once.
        cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
        download().context("downloading busybox-static")?;
    }
    let deb = std::fs::read_dir(&work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    cmd::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(work.join("root")),
    )?;
    let busybox = work.join("root/bin/busybox");
    require_static(&busybox)?;
    std::fs::create_dir_all(cached.parent().unwrap_or(&work))?;
    std::fs::rename(&busybox, &cached)
        .with_context(|| format!("renaming {} to {}", busybox.display(), cached.display()))?;
    crate::k8s::remove_dir_if_present(&work)?;
    eprintln!("setup: Debian's static busybox in {}", cached.display());
    Ok(cached)
}

/// Release builds of the binaries the chosen images need, static; returns their dir.
fn build_binaries(root: &Path, images: &[&str]) -> anyhow::Result<PathBuf> {
    let mut packages = Vec::new();
    if images.contains(&"kube-ovn-controller") {
        packages.extend(["-p", "controller"]);
    }
    if images.contains(&"kube-ovn-cni") {
        packages.extend(["-p", "daemon", "-p", "cni"]);
    }
    let bins = target_dir(root).join(TARGET).join("release");
    if packages.is_empty() {
        return Ok(bins);
    }
    let started = Instant::now();
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                TARGET,
                "--bins",
            ])
            .args(&packages)
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                "-C target-feature=+crt-static",
            )
            // Only the workspace's crates change between runs; an incremental release build
            // redoes just what changed in them. Dependencies are never built incrementally;
            // our own crates get more codegen units (a little less inlining across them).
            .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true"),
    )
    .context("release build of the image binaries")?;
    eprintln!(
        "images: release build in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(bins)
}

/// The mmdebstrap command line of the OVN image's root file system (also its cache key).
fn mmdebstrap_args(output: &Path) -> Vec<String> {
    let mut args = vec![
        "--mode=root".to_owned(),
        "--variant=essential".to_owned(),
        format!("--include={}", OVN_PACKAGES.join(",")),
        "--dpkgopt=path-exclude=/usr/share/man/*".to_owned(),
        "--dpkgopt=path-exclude=/usr/share/doc/*".to_owned(),
        "--dpkgopt=path-exclude=/usr/share/locale/*".to_owned(),
        "--format=tar".to_owned(),
        SUITE.to_owned(),
        output.display().to_string(),
    ];
    args.extend(MIRRORS.iter().map(|m| (*m).to_owned()));
    args
}

/// The cached root file system tar, made by mmdebstrap when missing.
fn debian_rootfs() -> anyhow::Result<PathBuf> {
    let key_args = mmdebstrap_args(Path::new("OUT")).join("\n");
    let key = &crate::oci::sha256_hex(key_args.as_bytes())[..16];
    let cached = Path::new(CACHE_DIR).join(format!("rootfs-{SUITE}-{key}.tar"));
    if cached.is_file() {
        eprintln!(
            "images: Debian root file system cached at {}",
            cached.display()
        );
        return Ok(cached);
    }
    std::fs::create_dir_all(CACHE_DIR).with_context(|| format!("creating {CACHE_DIR}"))?;
    let tmp = cached.with_extension(format!("tmp-{}.tar", std::process::id()));
    let started = Instant::now();
    cmd::run(Command::new("mmdebstrap").args(mmdebstrap_args(&tmp))).context(
        "building the Debian root file system of kube-ovn-ovn (needs root and deb.debian.org)",
    )?;
    std::fs::rename(&tmp, &cached)
        .with_context(|| format!("renaming {} to {}", tmp.display(), cached.display()))?;
    eprintln!(
        "images: Debian root file system in {:.0} s, cached at {}",
        started.elapsed().as_secs_f64(),
        cached.display()
    );
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_match_the_charts_defaults() {
        let root = crate::workspace_root().unwrap_or_else(|e| panic!("{e}"));
        for chart in ["charts/kube-ovn-v2", "charts/kube-ovn"] {
            let values = std::fs::read_to_string(root.join(chart).join("values.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                values.contains(&format!("    address: {REGISTRY}\n")),
                "{chart}/values.yaml: the registry is not {REGISTRY}"
            );
            for image in IMAGES {
                assert!(
                    values.contains(image),
                    "{chart}/values.yaml does not name {image}"
                );
            }
            let chart_yaml = std::fs::read_to_string(root.join(chart).join("Chart.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                chart_yaml.contains(&format!("appVersion: \"{}\"", tag())),
                "{chart}/Chart.yaml: appVersion is not {}",
                tag()
            );
        }
    }

    #[test]
    fn the_scripts_the_images_and_charts_use_exist() {
        let root = crate::workspace_root().unwrap_or_else(|e| panic!("{e}"));
        let shared =
            std::fs::read_to_string(root.join("charts/kube-ovn-lib/templates/_kube-ovn.tpl"))
                .unwrap_or_else(|e| panic!("{e}"));
        for (dir, script) in [
            ("kube-ovn-ovn", "start-ovn-central.sh"),
            ("kube-ovn-ovn", "start-ovs.sh"),
            ("kube-ovn-ovn", "ovn-healthcheck.sh"),
            ("kube-ovn-cni", "install-cni.sh"),
        ] {
            assert!(
                root.join("images").join(dir).join(script).is_file(),
                "{script}"
            );
            assert!(
                shared.contains(&format!("/kube-ovn/{script}")),
                "charts do not run {script}"
            );
        }
    }

    #[test]
    fn the_dockerfile_ships_the_same_cni_binaries() {
        let root = crate::workspace_root().unwrap_or_else(|e| panic!("{e}"));
        let dockerfile = std::fs::read_to_string(root.join("images/kube-ovn-cni/Dockerfile"))
            .unwrap_or_else(|e| panic!("{e}"));
        for binary in CNI_IMAGE_BINARIES {
            assert!(
                dockerfile.contains(&format!("release/{binary} /kube-ovn/{binary}\n")),
                "images/kube-ovn-cni/Dockerfile does not copy {binary}"
            );
        }
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        // This test binary is an ordinary (dynamic) build; a minimal ELF without program
        // headers has no interpreter.
        let me = std::fs::read(std::env::current_exe().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(elf_is_static(&me), Some(false));
        let mut minimal = vec![0u8; 64];
        minimal[..5].copy_from_slice(b"\x7fELF\x02");
        assert_eq!(elf_is_static(&minimal), Some(true));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        assert_eq!(elf_is_static(&minimal[..10]), None);
    }

    #[test]
    fn the_rootfs_cache_key_follows_the_package_list() {
        let a = mmdebstrap_args(Path::new("/x.tar"));
        assert!(a.contains(
            &"--include=openvswitch-switch,ovn-central,ovn-host,kmod,iproute2,procps".to_owned()
        ));
        assert_eq!(a.last().map(String::as_str), MIRRORS.last().copied());
    }
}
