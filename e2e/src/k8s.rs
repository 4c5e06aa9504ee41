//! A real Kubernetes control plane on loopback (level L2): Debian's `etcd`, and
//! `kube-apiserver`, `kube-controller-manager` and `kube-scheduler` built by `cargo xtask setup`
//! from the `k8s.io/kubernetes` Go module at [`KUBERNETES_VERSION`].
//!
//! Every [`ControlPlane`] has its own run dir (certificates, kubeconfig, etcd data, one log file
//! per program), its own free ports on 127.0.0.1, and stops everything in `Drop`: processes are
//! killed and reaped, then the run dir is removed. When the thread is panicking (a failed
//! test) the run dir is kept, minus the etcd data, and its path printed, so the logs can be read.
//!
//! Certificates come from `rcgen` in process (ECDSA P-256): a CA, the apiserver's serving
//! certificate for 127.0.0.1 and the `kubernetes` service names, an admin client certificate in
//! `system:masters`, and the service-account signing key. Readiness is the real signal: the
//! apiserver's `/readyz` returning `ok`, the controller-manager's and the scheduler's `/healthz`,
//! and the `default` ServiceAccount that the controller-manager creates (pods need it).
//!
//! No kubelet runs at this level, so [`ControlPlane::register_node`] creates a `Node` and a
//! background task keeps its `Ready` condition fresh, as a kubelet's status updates would.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::programs::{self, Program};

/// The Kubernetes release the binaries are built from. Keep in step with
/// `xtask/src/k8s.rs` (a test checks they agree).
pub const KUBERNETES_VERSION: &str = "v1.35.4";

/// Where `cargo xtask setup` puts the binaries (`<cache>/<version>/bin`).
pub const DEFAULT_BIN_DIR: &str = "/var/cache/kube-ovn-rs/k8s/v1.35.4/bin";

/// Environment variable that points at another directory holding the same binaries.
pub const BIN_DIR_ENV: &str = "KUBE_OVN_K8S_BIN_DIR";

/// How often a registered node's `Ready` condition is refreshed (a kubelet's default
/// `nodeStatusUpdateFrequency`); the controller-manager's grace period is 50 s.
pub const NODE_HEARTBEAT: Duration = Duration::from_secs(10);

/// How long start-up may take before it counts as failed (generous: CI machines are shared).
const START_TIMEOUT: Duration = Duration::from_secs(90);

const ETCD: Program = Program {
    name: "etcd",
    package: "etcd-server",
};

/// A control-plane step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes binary is not in the cache.
    #[error(
        "Kubernetes binary {} is missing or not from a complete build: run `cargo xtask setup`, \
         which builds the Kubernetes {KUBERNETES_VERSION} binaries into {} (or point ${BIN_DIR_ENV} \
         at a directory holding them)",
        path.display(), dir.display()
    )]
    MissingBinary {
        /// The file looked for.
        path: PathBuf,
        /// The directory searched.
        dir: PathBuf,
    },
    /// etcd (a Debian package) is missing.
    #[error(transparent)]
    MissingProgram(#[from] programs::MissingProgram),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Generating a key or certificate failed.
    #[error("generating {what}: {source}")]
    Certificate {
        /// Which key or certificate.
        what: &'static str,
        /// The error.
        source: rcgen::Error,
    },
    /// A program exited while the control plane was starting or running.
    #[error("{program} exited ({status}); last lines of {}:\n{tail}", log.display())]
    Exited {
        /// The program.
        program: &'static str,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of the log.
        tail: String,
    },
    /// A readiness signal did not come in time.
    #[error("timed out after {} s waiting for {what}; last answer: {last}", timeout.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        timeout: Duration,
        /// The last error or answer seen.
        last: String,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// The call.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// A Kubernetes client could not be built.
    #[error("{what}: {reason}")]
    Client {
        /// Which client (its kubeconfig or URL).
        what: String,
        /// Why.
        reason: String,
    },
    /// A command (kubectl) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        detail: String,
    },
}

/// Result of control-plane steps.
pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// The Kubernetes binaries of one complete `cargo xtask setup` build.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Finds them in `$KUBE_OVN_K8S_BIN_DIR` if set, else in [`DEFAULT_BIN_DIR`].
    pub fn locate() -> Result<Self> {
        match std::env::var_os(BIN_DIR_ENV) {
            Some(dir) => Self::check(PathBuf::from(dir), false),
            None => Self::in_dir(Path::new(DEFAULT_BIN_DIR)),
        }
    }

    /// Uses the build in `dir`. A directory without `BUILD-INFO` (written last by setup) is an
    /// interrupted or outdated build and counts as missing.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        Self::check(dir.to_path_buf(), true)
    }

    fn check(dir: PathBuf, need_build_info: bool) -> Result<Self> {
        let required = [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]
        .into_iter()
        .chain(["kubectl"])
        .chain(need_build_info.then_some("BUILD-INFO"));
        for name in required {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(Error::MissingBinary { path, dir });
            }
        }
        Ok(Self { dir })
    }

    /// The path of one binary (`kube-apiserver`, `kubectl`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Ports handed out by this process, so parallel control planes never get the same one.
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free TCP port on 127.0.0.1 that this process has not handed out before.
fn free_port() -> Result<u16> {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("binding port 0"))?;
        let port = listener
            .local_addr()
            .map_err(io("reading a bound port"))?
            .port();
        if PORTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port)
        {
            return Ok(port);
        }
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Run dirs are `<base>/kube-ovn-e2e-k8s-<pid>-<n>`.
const RUN_DIR_PREFIX: &str = "kube-ovn-e2e-k8s-";

/// A fresh run dir: on tmpfs when there is one (etcd fsyncs every write; on tmpfs that is free),
/// else in the temp dir.
fn make_run_dir() -> Result<PathBuf> {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    sweep_stale_run_dirs(&base);
    let dir = base.join(format!(
        "{RUN_DIR_PREFIX}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Removes run dirs left by test processes that were killed before `Drop` could run (their
/// programs died with them, by the parent-death signal). A dir whose etcd data is gone was kept
/// on purpose (a failed test's logs) and stays.
fn sweep_stale_run_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if !Path::new(&format!("/proc/{pid}")).exists() && path.join("etcd").is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// One started program, its output going to a log file.
#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, program: &Path, args: &[String], run_dir: &Path) -> Result<Self> {
        let log = run_dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        // `setpriv --pdeathsig KILL` (util-linux, always installed) makes the kernel kill the
        // program if the test process dies without running `Drop` (SIGKILL, a CI timeout).
        let mut cmd = match programs::find_on_path("setpriv") {
            Some(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .current_dir(run_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting {}", program.display())))?;
        Ok(Self { name, child, log })
    }

    /// Fails with the log's tail when the program has exited.
    fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                program: self.name,
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail(&self.log, 25),
            }),
            Err(e) => Err(Error::Io {
                what: format!("checking {}", self.name),
                source: e,
            }),
        }
    }
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stops processes: SIGKILL, then reap. Their state is thrown away with the run dir, so a
/// graceful stop buys nothing, and kube-apiserver's graceful shutdown (draining its own
/// requests) took 3 s per control plane here.
fn stop_all(processes: &mut [Process]) {
    for p in processes.iter_mut().rev() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

/// The PEM files of a control plane's PKI, written into its run dir.
#[derive(Debug)]
struct Pki {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    service_account_key: PathBuf,
    service_account_pub: PathBuf,
}

fn cert_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Certificate { what, source }
}

impl Pki {
    fn generate(dir: &Path, address: Option<Ipv4Addr>) -> Result<Self> {
        let write = |name: &str, pem: String| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, pem).map_err(io(format!("writing {}", path.display())))?;
            Ok(path)
        };

        let ca_key = KeyPair::generate().map_err(cert_err("the CA key"))?;
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kube-ovn-e2e-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(cert_err("the CA certificate"))?;
        let ca_cert_path = write("ca.crt", ca_cert.pem())?;
        let ca_key_path = write("ca.key", ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);

        // The apiserver's serving certificate: every name a client may dial, in or out of the
        // cluster (10.96.0.1 is the `kubernetes` service in the default service range).
        let serving_key = KeyPair::generate().map_err(cert_err("the serving key"))?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
            "kubernetes.default.svc.cluster.local".to_owned(),
        ])
        .map_err(cert_err("the serving certificate's names"))?;
        serving
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        serving
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1))));
        if let Some(address) = address {
            serving
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(address)));
        }
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .map_err(cert_err("the serving certificate"))?;

        // The admin: a client certificate in `system:masters` (the RBAC superuser group).
        let admin_key = KeyPair::generate().map_err(cert_err("the admin key"))?;
        let mut admin = CertificateParams::default();
        admin
            .distinguished_name
            .push(DnType::CommonName, "kubernetes-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin
            .signed_by(&admin_key, &issuer)
            .map_err(cert_err("the admin certificate"))?;

        // Service-account tokens are signed with this key (ES256) and checked with it.
        let sa_key = KeyPair::generate().map_err(cert_err("the service-account key"))?;

        Ok(Self {
            ca_cert: ca_cert_path,
            ca_key: ca_key_path,
            serving_cert: write("apiserver.crt", serving_cert.pem())?,
            serving_key: write("apiserver.key", serving_key.serialize_pem())?,
            admin_cert: write("admin.crt", admin_cert.pem())?,
            admin_key: write("admin.key", admin_key.serialize_pem())?,
            service_account_key: write("sa.key", sa_key.serialize_pem())?,
            service_account_pub: write("sa.pub", sa_key.public_key_pem())?,
        })
    }
}

/// Writes an admin kubeconfig (JSON, which is YAML) that references the PKI files.
fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-ovn-e2e", "cluster": {
            "server": server,
            "certificate-authority": pki.ca_cert,
        }}],
        "users": [{"name": "admin", "user": {
            "client-certificate": pki.admin_cert,
            "client-key": pki.admin_key,
        }}],
        "contexts": [{"name": "kube-ovn-e2e", "context": {
            "cluster": "kube-ovn-e2e",
            "user": "admin",
        }}],
        "current-context": "kube-ovn-e2e",
    });
    std::fs::write(path, config.to_string()).map_err(io(format!("writing {}", path.display())))
}

async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let err = |reason: String| Error::Client {
        what: format!("loading kubeconfig {}", path.display()),
        reason,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// A client for a component's own HTTPS port (self-signed, so unverified; only `/healthz`).
fn health_client(port: u16) -> Result<kube::Client> {
    let url = format!("https://127.0.0.1:{port}")
        .parse::<http::Uri>()
        .map_err(|e| Error::Client {
            what: format!("health URL for port {port}"),
            reason: e.to_string(),
        })?;
    let mut config = kube::Config::new(url);
    config.accept_invalid_certs = true;
    kube::Client::try_from(config).map_err(kube_err(format!("client for 127.0.0.1:{port}")))
}

/// `GET path` through `client`, with a bounded time for the request itself.
async fn get_text(client: &kube::Client, path: &str) -> std::result::Result<String, String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.request_text(request)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("GET {path}: no answer within 5 s")),
    }
}

/// Options of [`ControlPlane::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve the apiserver on this address instead of 127.0.0.1 (also in its certificate, the
    /// kubeconfig and the `kubernetes` Service's endpoint), with `kubectl exec`/`logs` to
    /// kubelets by InternalIP: for real nodes in network namespaces (`e2e::real`), which reach
    /// the host only through the harness bridge.
    pub address: Option<Ipv4Addr>,
}

/// A running control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.
pub struct ControlPlane {
    // Heartbeats stop before the processes; the processes before the run dir goes.
    heartbeats: Vec<tokio::task::JoinHandle<()>>,
    processes: Vec<Process>,
    run_dir: PathBuf,
    client: kube::Client,
    kubeconfig: PathBuf,
    server: String,
    kubectl: PathBuf,
    startup: Duration,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("run_dir", &self.run_dir)
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts the control plane and returns once it is ready: `/readyz` ok, the
    /// controller-manager and scheduler healthy, and the `default` ServiceAccount created.
    /// Needs a Tokio runtime (node heartbeats run as tasks on it).
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// [`ControlPlane::start`] with [`Options`].
    pub async fn start_with(options: Options) -> Result<Self> {
        // Ports are picked free but handed over by number, so another process on the machine
        // can take one in between; that shows as a bind failure at start, and a fresh set of
        // ports fixes it.
        let mut attempt = 1;
        loop {
            match Self::start_once(&options).await {
                Err(Error::Exited { ref tail, .. })
                    if attempt < 3 && tail.contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: &Options) -> Result<Self> {
        let started = Instant::now();
        let binaries = Binaries::locate()?;
        let etcd = programs::find_on_path(ETCD.name).ok_or(programs::MissingProgram {
            name: ETCD.name,
            package: ETCD.package,
        })?;
        let run_dir = make_run_dir()?;
        // From here on, `Drop` cleans up whatever was started if a step fails.
        let pki = match Pki::generate(&run_dir, options.address) {
            Ok(pki) => pki,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run_dir);
                return Err(e);
            }
        };
        let ports = Ports::pick()?;
        let address = options.address.unwrap_or(Ipv4Addr::LOCALHOST);
        let server = format!("https://{address}:{}", ports.apiserver);
        let kubeconfig = run_dir.join("admin.kubeconfig");
        let client = match write_kubeconfig(&kubeconfig, &server, &pki) {
            Ok(()) => client_from_kubeconfig(&kubeconfig).await,
            Err(e) => Err(e),
        };
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run_dir);
                return Err(e);
            }
        };
        let mut plane = Self {
            heartbeats: Vec::new(),
            processes: Vec::new(),
            run_dir,
            client,
            kubeconfig,
            server,
            kubectl: binaries.path("kubectl"),
            startup: Duration::ZERO,
        };
        plane
            .launch(&binaries, &etcd, &pki, &ports, options)
            .await?;
        plane.startup = started.elapsed();
        Ok(plane)
    }

    async fn launch(
        &mut self,
        binaries: &Binaries,
        etcd: &Path,
        pki: &Pki,
        ports: &Ports,
        options: &Options,
    ) -> Result<()> {
        let dir = self.run_dir.clone();
        let s = |p: &Path| p.display().to_string();
        let etcd_client = format!("http://127.0.0.1:{}", ports.etcd_client);
        let etcd_peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
        let args = [
            "--name=e2e".to_owned(),
            format!("--data-dir={}", s(&dir.join("etcd"))),
            format!("--listen-client-urls={etcd_client}"),
            format!("--advertise-client-urls={etcd_client}"),
            format!("--listen-peer-urls={etcd_peer}"),
            format!("--initial-advertise-peer-urls={etcd_peer}"),
            format!("--initial-cluster=e2e={etcd_peer}"),
            "--logger=zap".to_owned(),
        ];
        self.processes
            .push(Process::spawn("etcd", etcd, &args, &dir)?);

        let kubeconfig = s(&self.kubeconfig);
        let mut args = vec![
            format!("--etcd-servers={etcd_client}"),
            format!("--secure-port={}", ports.apiserver),
            format!("--tls-cert-file={}", s(&pki.serving_cert)),
            format!("--tls-private-key-file={}", s(&pki.serving_key)),
            format!("--client-ca-file={}", s(&pki.ca_cert)),
            format!("--service-account-key-file={}", s(&pki.service_account_pub)),
            format!(
                "--service-account-signing-key-file={}",
                s(&pki.service_account_key)
            ),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            "--service-cluster-ip-range=10.96.0.0/12".to_owned(),
            "--authorization-mode=Node,RBAC".to_owned(),
            "--allow-privileged=true".to_owned(),
            // Endpoints may not hold a loopback address, so the `kubernetes` service gets none
            // (nothing runs in-cluster here) instead of a reconcile error every few seconds.
            format!("--cert-dir={}", s(&dir.join("apiserver-certs"))),
            "--profiling=false".to_owned(),
            // Admission webhooks (the chart registers one) are called at their endpoints, as
            // the aggregator's APIServices are: a Service's cluster IP routes nowhere in the
            // host namespace, where no kube-proxy runs, and would leave the machine.
            "--enable-aggregator-routing=true".to_owned(),
        ];
        match options.address {
            None => args.extend([
                "--bind-address=127.0.0.1".to_owned(),
                "--advertise-address=127.0.0.1".to_owned(),
                "--endpoint-reconciler-type=none".to_owned(),
            ]),
            // Real nodes: the `kubernetes` Service's endpoint is this address (the default
            // lease reconciler writes it), and `kubectl exec`/`logs` reach kubelets by their
            // InternalIP with the admin certificate (the kubelets trust our CA).
            Some(address) => args.extend([
                format!("--bind-address={address}"),
                format!("--advertise-address={address}"),
                "--kubelet-preferred-address-types=InternalIP".to_owned(),
                format!("--kubelet-client-certificate={}", s(&pki.admin_cert)),
                format!("--kubelet-client-key={}", s(&pki.admin_key)),
            ]),
        }
        self.processes.push(Process::spawn(
            "kube-apiserver",
            &binaries.path("kube-apiserver"),
            &args,
            &dir,
        )?);
        let client = self.client.clone();
        self.wait_for("kube-apiserver /readyz = ok", || {
            let client = client.clone();
            async move {
                match get_text(&client, "/readyz").await {
                    Ok(body) if body.trim() == "ok" => Ok(()),
                    Ok(body) => Err(body),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;

        let args = [
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.controller_manager),
            format!("--cert-dir={}", s(&dir.join("controller-manager-certs"))),
            "--leader-elect=false".to_owned(),
            format!(
                "--service-account-private-key-file={}",
                s(&pki.service_account_key)
            ),
            format!("--root-ca-file={}", s(&pki.ca_cert)),
            format!("--cluster-signing-cert-file={}", s(&pki.ca_cert)),
            format!("--cluster-signing-key-file={}", s(&pki.ca_key)),
            "--profiling=false".to_owned(),
        ];
        self.processes.push(Process::spawn(
            "kube-controller-manager",
            &binaries.path("kube-controller-manager"),
            &args,
            &dir,
        )?);
        let args = [
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.scheduler),
            format!("--cert-dir={}", s(&dir.join("scheduler-certs"))),
            "--leader-elect=false".to_owned(),
            "--profiling=false".to_owned(),
        ];
        self.processes.push(Process::spawn(
            "kube-scheduler",
            &binaries.path("kube-scheduler"),
            &args,
            &dir,
        )?);

        for (what, port) in [
            (
                "kube-controller-manager /healthz = ok",
                ports.controller_manager,
            ),
            ("kube-scheduler /healthz = ok", ports.scheduler),
        ] {
            let health = health_client(port)?;
            self.wait_for(what, || {
                let health = health.clone();
                async move {
                    match get_text(&health, "/healthz").await {
                        Ok(body) if body.trim() == "ok" => Ok(()),
                        Ok(body) => Err(body),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        }
        // The controller-manager's ServiceAccount controller creates it; pods need it.
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), "default");
        let created = kube::runtime::wait::await_condition(
            accounts,
            "default",
            |account: Option<&ServiceAccount>| account.is_some(),
        );
        match tokio::time::timeout(START_TIMEOUT, created).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Client {
                what: "watching ServiceAccount default/default".to_owned(),
                reason: e.to_string(),
            }),
            Err(_) => {
                self.check_running()?;
                Err(Error::Timeout {
                    what: "the default ServiceAccount in namespace default".to_owned(),
                    timeout: START_TIMEOUT,
                    last: "not created".to_owned(),
                })
            }
        }
    }

    /// Repeats `probe` until it succeeds, failing early when a process exits and after
    /// [`START_TIMEOUT`]. The pause between probes is short: the probe's own answer is the signal.
    async fn wait_for<F, Fut>(&mut self, what: &str, mut probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), String>>,
    {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_running()?;
            match probe().await {
                Ok(()) => return Ok(()),
                Err(last) if Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        what: what.to_owned(),
                        timeout: START_TIMEOUT,
                        last,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A client with admin rights.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig (for `kubectl --kubeconfig` and for our binaries).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL (`https://127.0.0.1:<port>`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// This instance's run dir (PKI, kubeconfig, logs); removed on drop.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// How long [`ControlPlane::start`] took until everything was ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Process ids of the running programs (etcd, apiserver, controller-manager, scheduler).
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|p| p.child.id()).collect()
    }

    /// Fails when one of the programs has exited, with the end of its log.
    pub fn check_running(&mut self) -> Result<()> {
        self.processes
            .iter_mut()
            .try_for_each(Process::check_running)
    }

    /// A `kubectl` command against this control plane, to spawn (e.g. `logs -f`).
    pub fn kubectl_command(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the `kubectl` built by setup against this control plane; returns its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(Stdio::null());
        let line = format!("kubectl {}", args.join(" "));
        let out = cmd.output().map_err(io(format!("starting {line}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command: line,
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    }

    /// Registers a `Node` for a harness node and keeps its `Ready` condition fresh every
    /// [`NODE_HEARTBEAT`] until the control plane is dropped (no kubelet runs at this level).
    pub async fn register_node(&mut self, name: &str, internal_ip: IpAddr) -> Result<()> {
        self.register_node_every(name, internal_ip, NODE_HEARTBEAT)
            .await
    }

    async fn register_node_every(
        &mut self,
        name: &str,
        internal_ip: IpAddr,
        heartbeat: Duration,
    ) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let labels = [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", go_arch()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        nodes
            .create(&PostParams::default(), &node)
            .await
            .map_err(kube_err(format!("creating Node {name}")))?;
        let since = Time(Timestamp::now());
        let status = node_status(name, internal_ip, &since);
        patch_node_status(&nodes, name, &status).await?;
        let name = name.to_owned();
        self.heartbeats.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(heartbeat);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                // A missed beat is retried at the next tick, as a kubelet does.
                let status = node_status(&name, internal_ip, &since);
                let _ = patch_node_status(&nodes, &name, &status).await;
            }
        }));
        Ok(())
    }
}

/// Kubernetes' name of this machine's architecture (Go's `GOARCH`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The status a healthy kubelet would report: Ready since `since`, a heartbeat now, addresses,
/// and room for pods.
fn node_status(name: &str, internal_ip: IpAddr, since: &Time) -> serde_json::Value {
    let now = Time(Timestamp::now());
    let resources = serde_json::json!({"cpu": "8", "memory": "16Gi", "pods": "110"});
    serde_json::json!({
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kube-ovn e2e harness keeps this node Ready (no kubelet at this level)",
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
            }],
            "addresses": [
                {"type": "InternalIP", "address": internal_ip.to_string()},
                {"type": "Hostname", "address": name},
            ],
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "kubeletVersion": KUBERNETES_VERSION,
                "operatingSystem": "linux",
                "architecture": go_arch(),
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "osImage": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kubeProxyVersion": "",
            },
        }
    })
}

async fn patch_node_status(
    nodes: &Api<Node>,
    name: &str,
    status: &serde_json::Value,
) -> Result<()> {
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map_err(kube_err(format!("updating the status of Node {name}")))?;
    Ok(())
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for beat in &self.heartbeats {
            beat.abort();
        }
        stop_all(&mut self.processes);
        if std::thread::panicking() {
            // Keep the logs of a failed test; the etcd data is the only bulky part.
            let _ = std::fs::remove_dir_all(self.run_dir.join("etcd"));
            eprintln!(
                "control plane logs kept in {} (remove it when done)",
                self.run_dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// The ports of one control plane.
#[derive(Debug)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
}

impl Ports {
    fn pick() -> Result<Self> {
        Ok(Self {
            etcd_client: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            controller_manager: free_port()?,
            scheduler: free_port()?,
        })
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test with its message.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn version_and_cache_dir_match_xtask() {
        let xtask = include_str!("../../xtask/src/k8s.rs");
        assert!(
            xtask.contains(&format!(
                "pub const KUBERNETES_VERSION: &str = \"{KUBERNETES_VERSION}\";"
            )),
            "xtask/src/k8s.rs pins another Kubernetes version than {KUBERNETES_VERSION}"
        );
        assert!(xtask.contains("pub const CACHE_DIR: &str = \"/var/cache/kube-ovn-rs/k8s\";"));
        assert_eq!(
            DEFAULT_BIN_DIR,
            format!("/var/cache/kube-ovn-rs/k8s/{KUBERNETES_VERSION}/bin")
        );
    }

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn missing_binaries_name_the_setup_command() {
        let err = Error::MissingBinary {
            path: PathBuf::from("/nowhere/kube-apiserver"),
            dir: PathBuf::from("/nowhere"),
        }
        .to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains(KUBERNETES_VERSION), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_heartbeat_advances() {
        let mut plane = ControlPlane::start().await.unwrap();
        let ip = IpAddr::V4(Ipv4Addr::new(172, 31, 0, 9));
        plane
            .register_node_every("beat", ip, Duration::from_millis(1100))
            .await
            .unwrap();
        let nodes: Api<Node> = Api::all(plane.client());
        let heartbeat = |node: &Node| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_heartbeat_time.clone())
                .unwrap()
                .0
        };
        let first = heartbeat(&nodes.get("beat").await.unwrap());
        let advanced =
            kube::runtime::wait::await_condition(nodes, "beat", |node: Option<&Node>| {
                node.is_some_and(|node| heartbeat(node) > first)
            });
        tokio::time::timeout(Duration::from_secs(20), advanced)
            .await
            .expect("the heartbeat did not advance within 20 s")
            .unwrap();
    }
}
