//! Test support (feature `testing`): real `ovsdb-server` processes in temp dirs, and
//! [`FixtureReplica`]: in-memory replicas built from rows for tests that need no server.
//!
//! Every server gets its own temp dir, unix socket, control socket and (for clusters) TCP ports
//! on 127.0.0.1, so tests run in parallel; processes are killed in `Drop`. A missing program is
//! an error that names the Debian package to install: tests fail, they are never skipped.
//!
//! ```no_run
//! # async fn demo() -> ovn_api::Result<()> {
//! use ovn_api::testing::{OvsdbServer, SchemaKind};
//! let server = OvsdbServer::start(SchemaKind::Northbound)?;
//! let nb = ovn_api::Client::connect(ovn_api::ClientConfig::new(server.remote(), "OVN_Northbound")).await?;
//! # Ok(()) }
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rpc::TlsConfig;

mod fixture;
pub use fixture::FixtureReplica;

/// Which schema a test server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// `OVN_Northbound` from `ovn-central`.
    Northbound,
    /// `OVN_Southbound` from `ovn-central`.
    Southbound,
    /// `Open_vSwitch` from `openvswitch-switch`.
    OpenVswitch,
}

impl SchemaKind {
    /// Path of the installed `.ovsschema` file.
    pub fn path(self) -> &'static str {
        match self {
            SchemaKind::Northbound => "/usr/share/ovn/ovn-nb.ovsschema",
            SchemaKind::Southbound => "/usr/share/ovn/ovn-sb.ovsschema",
            SchemaKind::OpenVswitch => "/usr/share/openvswitch/vswitch.ovsschema",
        }
    }

    /// The database name.
    pub fn database(self) -> &'static str {
        match self {
            SchemaKind::Northbound => "OVN_Northbound",
            SchemaKind::Southbound => "OVN_Southbound",
            SchemaKind::OpenVswitch => "Open_vSwitch",
        }
    }

    fn package(self) -> &'static str {
        match self {
            SchemaKind::Northbound | SchemaKind::Southbound => "ovn-central",
            SchemaKind::OpenVswitch => "openvswitch-switch",
        }
    }

    /// Checks the schema file is installed.
    pub fn require(self) -> Result<&'static str> {
        let p = self.path();
        if Path::new(p).exists() {
            Ok(p)
        } else {
            Err(Error::Testing(format!(
                "{p} is missing: install the Debian package {} (apt-get install -y {})",
                self.package(),
                self.package()
            )))
        }
    }
}

/// Finds a program on `PATH` (and in `/usr/sbin`), or says which Debian package provides it.
pub fn require_program(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Testing(format!(
        "{name} not found: install the Debian package {package} (apt-get install -y {package})"
    )))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| Error::Testing(format!("running {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Testing(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tempdir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| Error::Testing(format!("creating a temp dir: {e}")))
}

/// A free TCP port on 127.0.0.1 (the OS picks it; it is released just before use).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Testing(format!("binding a port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Testing(e.to_string()))
}

/// Waits for a server to accept connections on its unix socket.
fn wait_ready(sock: &Path, child: &mut Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::os::unix::net::UnixStream::connect(sock).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(Error::Testing(format!(
                "ovsdb-server exited ({status}) before listening:\n{log}"
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Testing(format!(
                "ovsdb-server did not listen on {} within 20 s",
                sock.display()
            )));
        }
        // Polling a readiness condition with a deadline; not a correctness sleep.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_server(
    dir: &Path,
    db: &Path,
    sock: &Path,
    ctl: &Path,
    log: &Path,
    tcp_port: Option<u16>,
    extra: &[String],
) -> Result<Child> {
    let server = require_program("ovsdb-server", "openvswitch-common")?;
    let mut cmd = Command::new(server);
    cmd.arg(db)
        .arg(format!("--remote=punix:{}", sock.display()))
        .arg(format!("--unixctl={}", ctl.display()))
        .arg(format!("--log-file={}", log.display()))
        .arg("--no-chdir")
        .arg("-vfile:info")
        .arg("-vconsole:off")
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir)
        .env("OVS_DBDIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .args(extra);
    if let Some(p) = tcp_port {
        cmd.arg(format!("--remote=ptcp:{p}:127.0.0.1"));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Testing(format!("starting ovsdb-server: {e}")))?;
    if let Err(e) = wait_ready(sock, &mut child, log) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

/// A standalone `ovsdb-server` on a temp unix socket.
#[derive(Debug)]
pub struct OvsdbServer {
    database: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    tcp_port: Option<u16>,
    ssl: Option<(u16, TestPki)>,
    /// The schema the database was made from ([`OvsdbServer::restart_empty`]).
    schema: PathBuf,
}

impl OvsdbServer {
    /// Creates a fresh database with the installed schema and starts a server on it.
    pub fn start(kind: SchemaKind) -> Result<Self> {
        Self::start_inner(kind, None)
    }

    /// Like [`OvsdbServer::start`], also listening on a free TCP port of 127.0.0.1.
    pub fn start_with_tcp(kind: SchemaKind) -> Result<Self> {
        Self::start_inner(kind, Some(free_port()?))
    }

    fn start_inner(kind: SchemaKind, tcp_port: Option<u16>) -> Result<Self> {
        let schema = kind.require()?;
        Self::start_from_file(Path::new(schema), tcp_port)
    }

    /// Starts a server on a fresh database made from any schema file (e.g. a doctored copy).
    pub fn start_from_file(schema: &Path, tcp_port: Option<u16>) -> Result<Self> {
        let tool = require_program("ovsdb-tool", "openvswitch-common")?;
        let dir = tempdir("ovsdb-")?;
        let database = run(Command::new(&tool).arg("schema-name").arg(schema))?
            .trim()
            .to_owned();
        run(Command::new(tool)
            .arg("create")
            .arg(dir.path().join("conf.db"))
            .arg(schema))?;
        let mut s = OvsdbServer {
            database,
            dir,
            child: None,
            tcp_port,
            ssl: None,
            schema: schema.to_path_buf(),
        };
        s.restart()?;
        Ok(s)
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `unix:<socket>`.
    pub fn remote(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    /// `tcp:127.0.0.1:<port>`, if started with TCP.
    pub fn tcp_remote(&self) -> Option<String> {
        self.tcp_port.map(|p| format!("tcp:127.0.0.1:{p}"))
    }

    /// The unix socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    /// The temp dir holding the database, socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL (the database file stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same database and socket (kills it first if running).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let d = self.dir.path();
        let child = spawn_server(
            d,
            &d.join("conf.db"),
            &d.join("db.sock"),
            &d.join("ctl"),
            &d.join("ovsdb-server.log"),
            self.tcp_port,
            &self.ssl_args(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the server, replaces its database with an empty one of the same schema, and starts
    /// it again on the same socket: a server that came back having lost every row.
    pub fn restart_empty(&mut self) -> Result<()> {
        self.kill();
        let tool = require_program("ovsdb-tool", "openvswitch-common")?;
        let db = self.dir.path().join("conf.db");
        std::fs::remove_file(&db)
            .map_err(|e| Error::Testing(format!("removing {}: {e}", db.display())))?;
        run(Command::new(&tool).arg("create").arg(&db).arg(&self.schema))?;
        self.restart()
    }

    /// Like [`OvsdbServer::start`], also listening with TLS (`pssl:`) on a free port of
    /// 127.0.0.1, with a fresh test PKI (see [`TestPki`]).
    pub fn start_with_ssl(kind: SchemaKind) -> Result<Self> {
        Self::start_with_ssl_names(kind, TestPki::LOCAL_NAMES)
    }

    /// Like [`OvsdbServer::start_with_ssl`], the server's certificate naming `server_names`
    /// (an OpenSSL subjectAltName value, e.g. `DNS:ovn-central`; empty: none, only a common
    /// name, as `ovs-pki` makes them).
    pub fn start_with_ssl_names(kind: SchemaKind, server_names: &str) -> Result<Self> {
        let schema = kind.require()?;
        let tool = require_program("ovsdb-tool", "openvswitch-common")?;
        let dir = tempdir("ovsdb-")?;
        let pki = TestPki::generate_for(&dir.path().join("pki"), server_names)?;
        run(Command::new(tool)
            .arg("create")
            .arg(dir.path().join("conf.db"))
            .arg(schema))?;
        let mut s = OvsdbServer {
            database: kind.database().to_owned(),
            dir,
            child: None,
            tcp_port: None,
            ssl: Some((free_port()?, pki)),
            schema: PathBuf::from(schema),
        };
        s.restart()?;
        Ok(s)
    }

    fn ssl_args(&self) -> Vec<String> {
        match &self.ssl {
            None => Vec::new(),
            Some((port, pki)) => vec![
                format!("--private-key={}", pki.server_key.display()),
                format!("--certificate={}", pki.server_cert.display()),
                format!("--ca-cert={}", pki.ca_cert.display()),
                format!("--remote=pssl:{port}:127.0.0.1"),
            ],
        }
    }

    /// `ssl:127.0.0.1:<port>`, if started with TLS.
    pub fn ssl_remote(&self) -> Option<String> {
        self.ssl.as_ref().map(|(p, _)| format!("ssl:127.0.0.1:{p}"))
    }

    /// The test PKI, if started with TLS.
    pub fn pki(&self) -> Option<&TestPki> {
        self.ssl.as_ref().map(|(_, pki)| pki)
    }

    /// Runs `ovsdb-client` with the given args against this server (the remote is appended
    /// after the command name, so pass e.g. `["-f", "json", "dump"]` as `args` plus a db).
    pub fn client(&self, args: &[&str]) -> Result<String> {
        let c = require_program("ovsdb-client", "openvswitch-common")?;
        run(Command::new(c).args(args))
    }

    /// Runs `ovn-nbctl --db=<this server>` with args.
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        let c = require_program("ovn-nbctl", "ovn-common")?;
        run(Command::new(c)
            .arg(format!("--db={}", self.remote()))
            .arg("--no-leader-only")
            .args(args))
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
struct Member {
    db: PathBuf,
    sock: PathBuf,
    ctl: PathBuf,
    log: PathBuf,
    client_port: u16,
    child: Option<Child>,
}

/// A RAFT cluster of `ovsdb-server`s on 127.0.0.1 (ports picked per test).
#[derive(Debug)]
pub struct OvsdbCluster {
    kind: SchemaKind,
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

impl OvsdbCluster {
    /// Creates and starts an `n`-member cluster (`ovsdb-tool create-cluster` + `join-cluster`).
    pub fn start(kind: SchemaKind, n: usize) -> Result<Self> {
        let schema = kind.require()?;
        let tool = require_program("ovsdb-tool", "openvswitch-common")?;
        require_program("ovs-appctl", "openvswitch-common")?;
        let dir = tempdir("ovsdb-raft-")?;
        let mut members = Vec::new();
        let mut raft = Vec::new();
        for i in 0..n {
            raft.push(format!("tcp:127.0.0.1:{}", free_port()?));
            let d = dir.path();
            members.push(Member {
                db: d.join(format!("db{i}.db")),
                sock: d.join(format!("db{i}.sock")),
                ctl: d.join(format!("db{i}.ctl")),
                log: d.join(format!("db{i}.log")),
                client_port: free_port()?,
                child: None,
            });
        }
        for (i, m) in members.iter().enumerate() {
            if i == 0 {
                run(Command::new(&tool)
                    .arg("create-cluster")
                    .arg(&m.db)
                    .arg(schema)
                    .arg(&raft[0]))?;
            } else {
                run(Command::new(&tool)
                    .arg("join-cluster")
                    .arg(&m.db)
                    .arg(kind.database())
                    .arg(&raft[i])
                    .arg(&raft[0]))?;
            }
        }
        let mut c = OvsdbCluster { kind, dir, members };
        for i in 0..n {
            c.restart(i)?;
        }
        c.wait_for_members(Duration::from_secs(60))?;
        Ok(c)
    }

    /// Waits until every running member says `Status: cluster member`: a member that
    /// `join-cluster` made is only joining until the leader has added it, and a leader that
    /// leaves or dies before that leaves the joiners without a cluster (no leader, ever).
    pub fn wait_for_members(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let joining: Vec<usize> = (0..self.members.len())
                .filter(|&i| {
                    self.is_running(i)
                        && !self
                            .status(i)
                            .is_ok_and(|s| s.contains("Status: cluster member"))
                })
                .collect();
            if joining.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let status: Vec<String> = joining
                    .iter()
                    .map(|&i| format!("member {i}: {:?}", self.status(i)))
                    .collect();
                return Err(Error::Testing(format!(
                    "not every member joined the cluster within {timeout:?}: {}",
                    status.join("; ")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The database name.
    pub fn database(&self) -> &'static str {
        self.kind.database()
    }

    /// All members as a comma-separated `tcp:` list.
    pub fn remotes(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("tcp:127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One member's `tcp:` remote.
    pub fn remote(&self, i: usize) -> String {
        self.members
            .get(i)
            .map(|m| format!("tcp:127.0.0.1:{}", m.client_port))
            .unwrap_or_default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True for a cluster without members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(m) = self.members.get_mut(i)
            && let Some(mut c) = m.child.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts member `i` from its database file.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        let d = self.dir.path().to_owned();
        let m = self
            .members
            .get_mut(i)
            .ok_or_else(|| Error::Testing(format!("no member {i}")))?;
        m.child = Some(spawn_server(
            &d,
            &m.db,
            &m.sock,
            &m.ctl,
            &m.log,
            Some(m.client_port),
            &[],
        )?);
        Ok(())
    }

    /// `ovs-appctl cluster/status` of member `i`.
    pub fn status(&self, i: usize) -> Result<String> {
        self.appctl(i, &["cluster/status", self.kind.database()])
    }

    /// Runs `ovs-appctl -t <member i's control socket> args...`.
    pub fn appctl(&self, i: usize, args: &[&str]) -> Result<String> {
        let m = self
            .members
            .get(i)
            .ok_or_else(|| Error::Testing(format!("no member {i}")))?;
        let appctl = require_program("ovs-appctl", "openvswitch-common")?;
        run(Command::new(appctl).arg("-t").arg(&m.ctl).args(args))
    }

    /// True while member `i` runs (started and not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.members.get(i).is_some_and(|m| m.child.is_some())
    }

    /// The index of the running member that says it is the leader now, if any (one look: an
    /// async caller polls this without blocking its runtime for an election).
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.is_running(i) && self.status(i).is_ok_and(|s| s.contains("Role: leader"))
        })
    }

    /// The index of the current leader, waiting up to `timeout` for one to be elected.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return Ok(i);
            }
            if Instant::now() > deadline {
                return Err(Error::Testing(format!("no RAFT leader within {timeout:?}")));
            }
            // Polling `cluster/status` with a deadline (ovsdb-server has no election event).
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OvsdbCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// PEM files of a throw-away PKI made with the `openssl` CLI: a CA, a server certificate (for
/// 127.0.0.1/localhost unless told otherwise) and a client certificate, all signed by the CA (EC P-256, 2 days).
#[derive(Debug, Clone)]
pub struct TestPki {
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// Server certificate.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

impl TestPki {
    /// The server certificate's names by default: 127.0.0.1 and localhost.
    pub const LOCAL_NAMES: &str = "IP:127.0.0.1,DNS:localhost";

    /// Generates the PKI into `dir` (created if needed).
    pub fn generate(dir: &Path) -> Result<Self> {
        Self::generate_for(dir, Self::LOCAL_NAMES)
    }

    /// Generates the PKI into `dir`, the server certificate naming `server_names` (see
    /// [`OvsdbServer::start_with_ssl_names`]).
    pub fn generate_for(dir: &Path, server_names: &str) -> Result<Self> {
        let openssl = require_program("openssl", "openssl")?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Testing(format!("creating {}: {e}", dir.display())))?;
        let p = |n: &str| dir.join(n);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(Command::new(&openssl)
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem"))
            .args(["-days", "2", "-subj", "/CN=ovn-api-test-ca"]))?;
        let san = if server_names.is_empty() {
            String::new()
        } else {
            format!("subjectAltName={server_names}\n")
        };
        for (name, ext) in [
            (
                "server",
                // Client use too: RAFT members connect to each other with their server's
                // certificate (OpenSSL checks the purpose of a client's certificate).
                format!("{san}basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"),
            ),
            (
                "client",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n".to_owned(),
            ),
        ] {
            let ext_file = p(&format!("{name}.ext"));
            std::fs::write(&ext_file, ext)
                .map_err(|e| Error::Testing(format!("writing {}: {e}", ext_file.display())))?;
            run(Command::new(&openssl)
                .arg("req")
                .args(ec)
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.csr")))
                .args(["-subj", &format!("/CN={name}")]))?;
            run(Command::new(&openssl)
                .args(["x509", "-req", "-in"])
                .arg(p(&format!("{name}.csr")))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-CAcreateserial")
                .arg("-out")
                .arg(p(&format!("{name}.pem")))
                .args(["-days", "2", "-extfile"])
                .arg(&ext_file))?;
        }
        Ok(TestPki {
            ca_cert: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
        })
    }

    /// The client side as a [`TlsConfig`].
    pub fn client_config(&self) -> TlsConfig {
        TlsConfig {
            ca_cert: self.ca_cert.clone(),
            cert: self.client_cert.clone(),
            key: self.client_key.clone(),
            check_server_name: true,
        }
    }
}

/// Rows of one table by UUID, each column by name: what [`dump_rows`] and [`replica_rows`]
/// return, so a test can compare the replica with the server.
pub type Rows = std::collections::BTreeMap<
    crate::value::Uuid,
    std::collections::BTreeMap<String, crate::value::Datum>,
>;

/// One table as `ovsdb-client dump` prints it from `remote` (an implementation independent of
/// ours), parsed with `schema`.
pub fn dump_rows(
    remote: &str,
    database: &str,
    schema: &crate::schema::TableSchema,
) -> Result<Rows> {
    use crate::value::{Atom, Datum, Uuid};
    use serde_json::Value as Json;
    let c = require_program("ovsdb-client", "openvswitch-common")?;
    let text = run(Command::new(c).args(["-f", "json", "dump", remote, database, &schema.name]))?;
    let bad = |what: &str| Error::Testing(format!("ovsdb-client dump of {}: {what}", schema.name));
    let j: Json = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let headings: Vec<&str> = j["headings"]
        .as_array()
        .ok_or_else(|| bad("no headings"))?
        .iter()
        .filter_map(Json::as_str)
        .collect();
    let mut rows = Rows::new();
    for r in j["data"].as_array().ok_or_else(|| bad("no data"))? {
        let mut uuid = Uuid::NIL;
        let mut cols = std::collections::BTreeMap::new();
        for (h, v) in headings.iter().zip(r.as_array().ok_or_else(|| bad("row"))?) {
            if *h == "_uuid" {
                uuid = Atom::from_json(v)?.as_uuid().ok_or_else(|| bad("_uuid"))?;
            } else if *h != "_version" {
                let ty = &schema.column(h).ok_or_else(|| bad(h))?.ty;
                cols.insert((*h).to_owned(), Datum::from_json_typed(v, ty)?);
            }
        }
        rows.insert(uuid, cols);
    }
    Ok(rows)
}

/// One table of a replica, in the shape of [`dump_rows`] (empty when not monitored).
pub fn replica_rows(replica: &crate::replica::Replica, table: &str) -> Rows {
    replica
        .table(table)
        .map(|t| {
            t.rows()
                .map(|row| {
                    let cols = row
                        .columns()
                        .map(|(k, v)| (k.to_owned(), v.clone()))
                        .collect();
                    (row.uuid, cols)
                })
                .collect()
        })
        .unwrap_or_default()
}
