//! The OVN central script of the `kube-ovn-ovn` image (`images/kube-ovn-ovn/start-ovn-central.sh`)
//! run as the pods run it, on this machine (issue 16 item 1): three members on three loopback
//! addresses make NB and SB RAFT clusters and one active ovn-northd; the NB leader's member is
//! stopped while writes go on, and started again it rejoins with every write; a member whose
//! files are lost joins afresh and the cluster keeps three servers; a standalone
//! central's database becomes a one-member cluster's without losing a row; a pod whose address
//! is not a member refuses to start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ovn_api::tables::nb;
use ovn_api::testing::{TestPki, free_port};
use ovn_api::txn::Txn;
use ovn_api::{Client, ClientConfig};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/kube-ovn-ovn/start-ovn-central.sh")
}

/// Client, RAFT ports, shared by the members (each listens on its own address).
#[derive(Clone, Copy)]
struct Ports {
    nb: u16,
    sb: u16,
    nb_raft: u16,
    sb_raft: u16,
}

impl Ports {
    fn free() -> Self {
        Ports {
            nb: free_port().unwrap(),
            sb: free_port().unwrap(),
            nb_raft: free_port().unwrap(),
            sb_raft: free_port().unwrap(),
        }
    }
}

/// One central "pod": the script with its own directories (the host paths of one node).
struct Member {
    ip: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The server certificate's files as the chart's Secret holds them (`key`, `cert`,
    /// `cacert`), for ENABLE_SSL=true.
    tls: Option<PathBuf>,
}

impl Member {
    fn new(ip: &str) -> Self {
        Member {
            ip: ip.to_owned(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls: None,
        }
    }

    fn with_tls(ip: &str, pki: &TestPki) -> Self {
        let mut m = Self::new(ip);
        let dir = m.dir.path().join("tls");
        std::fs::create_dir(&dir).unwrap();
        for (from, to) in [
            (&pki.server_key, "key"),
            (&pki.server_cert, "cert"),
            (&pki.ca_cert, "cacert"),
        ] {
            std::fs::copy(from, dir.join(to)).unwrap();
        }
        m.tls = Some(dir);
        m
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn db(&self, file: &str) -> PathBuf {
        self.dir.path().join("db").join(file)
    }

    fn command(&self, node_ips: &str, ports: Ports) -> Command {
        let mut c = Command::new("bash");
        c.arg(script())
            .env("OVN_CENTRAL_DB_DIR", self.dir.path().join("db"))
            .env("OVN_CENTRAL_RUN_DIR", self.run_dir())
            .env("OVN_CENTRAL_LOG_DIR", self.dir.path().join("log"))
            .env("OVN_CENTRAL_NB_PORT", ports.nb.to_string())
            .env("OVN_CENTRAL_SB_PORT", ports.sb.to_string())
            .env("OVN_CENTRAL_NB_RAFT_PORT", ports.nb_raft.to_string())
            .env("OVN_CENTRAL_SB_RAFT_PORT", ports.sb_raft.to_string())
            .env("NODE_IPS", node_ips)
            .env("POD_IP", &self.ip)
            .stdin(Stdio::null());
        match &self.tls {
            Some(dir) => c.env("ENABLE_SSL", "true").env("OVN_CENTRAL_TLS_DIR", dir),
            None => c.env("ENABLE_SSL", "false"),
        };
        c
    }

    fn start(&mut self, node_ips: &str, ports: Ports) {
        let log = std::fs::File::create(self.dir.path().join("script.log")).unwrap();
        let child = self
            .command(node_ips, ports)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGTERM, as kubelet stops the container: the script stops its daemons and exits.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "{} did not stop", self.ip);
                std::thread::sleep(Duration::from_millis(50));
            }
            // The daemons are gone once their pidfiles' processes are.
            for pid in ["ovnnb_db.pid", "ovnsb_db.pid", "ovn-northd.pid"] {
                if let Ok(p) = std::fs::read_to_string(self.run_dir().join(pid)) {
                    let path = format!("/proc/{}", p.trim());
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while Path::new(&path).exists() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    }

    fn log(&self) -> String {
        let mut text =
            std::fs::read_to_string(self.dir.path().join("script.log")).unwrap_or_default();
        for f in [
            "ovsdb-server-nb.log",
            "ovsdb-server-sb.log",
            "ovn-northd.log",
        ] {
            let p = self.dir.path().join("log").join(f);
            let t = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(15).collect();
            text.push_str(&format!(
                "\n--- {f} (last lines, newest first)\n{}",
                tail.join("\n")
            ));
        }
        text
    }

    fn appctl(&self, target: &str, args: &[&str]) -> Option<String> {
        let out = Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.run_dir().join(target))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn cluster_status(&self, db: &str) -> Option<String> {
        let (ctl, name) = match db {
            "nb" => ("ovnnb_db.ctl", "OVN_Northbound"),
            _ => ("ovnsb_db.ctl", "OVN_Southbound"),
        };
        self.appctl(ctl, &["cluster/status", name])
    }

    fn northd_status(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.run_dir().join("ovn-northd.pid")).ok()?;
        self.appctl(&format!("ovn-northd.{}.ctl", pid.trim()), &["status"])
    }

    /// `ovn-nbctl ls-list` on this member's own socket (a follower answers too).
    fn switches(&self) -> String {
        let out = Command::new("ovn-nbctl")
            .arg(format!(
                "--db=unix:{}",
                self.run_dir().join("ovnnb_db.sock").display()
            ))
            .args(["--no-leader-only", "--timeout=5", "ls-list"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for(what: &str, timeout: Duration, members: &[&Member], mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        if Instant::now() > deadline {
            let logs: Vec<String> = members
                .iter()
                .map(|m| format!("=== {}\n{}", m.ip, m.log()))
                .collect();
            panic!("{what}: not within {timeout:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `count` loopback addresses from 127.<n>.<n>.<first> (n from the process: another run at
/// once picks others; each test of this binary has its own `first`).
fn addresses(count: u8, first: u8) -> Vec<String> {
    let n = 20 + (std::process::id() % 200);
    (first..first + count)
        .map(|i| format!("127.{n}.{n}.{i}"))
        .collect()
}

async fn add_switch(remotes: &str, pki: Option<&TestPki>, name: &str) {
    let mut cfg = ClientConfig::new(remotes, "OVN_Northbound");
    // The charts' check: the chain, not the name (the members' certificate is one).
    cfg.tls = pki.map(|p| ovn_api::TlsConfig {
        check_server_name: false,
        ..p.client_config()
    });
    let c = Client::connect(cfg).await.unwrap();
    let mut tx = Txn::new();
    tx.insert(&nb::LogicalSwitch {
        name: name.into(),
        ..Default::default()
    });
    tokio::time::timeout(Duration::from_secs(30), c.commit(tx))
        .await
        .unwrap_or_else(|_| panic!("writing {name}: no answer in 30 s"))
        .unwrap();
}

fn is_member(m: &Member) -> bool {
    ["nb", "sb"].iter().all(|db| {
        m.cluster_status(db)
            .is_some_and(|s| s.contains("Status: cluster member"))
    })
}

fn nb_leader(members: &[Member]) -> Option<usize> {
    members.iter().position(|m| {
        m.child.is_some()
            && m.cluster_status("nb")
                .is_some_and(|s| s.contains("Role: leader"))
    })
}

fn active_northds(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.child.is_some())
        .filter(|m| {
            m.northd_status()
                .is_some_and(|s| s.contains("Status: active"))
        })
        .map(|m| m.ip.clone())
        .collect()
}

/// The datapath northd made in SB for logical switch `name`, read from any member.
fn in_sb(remotes: &str, pki: Option<&TestPki>, name: &str) -> bool {
    let mut c = Command::new("ovn-sbctl");
    if let Some(p) = pki {
        c.arg(format!("--private-key={}", p.client_key.display()))
            .arg(format!("--certificate={}", p.client_cert.display()))
            .arg(format!("--ca-cert={}", p.ca_cert.display()));
    }
    c.arg(format!("--db={remotes}"))
        .args([
            "--no-leader-only",
            "--timeout=5",
            "--bare",
            "--columns=external_ids",
        ])
        .args(["list", "Datapath_Binding"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("name={name}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_keep_every_write_when_the_nb_leader_goes_and_comes_back() {
    three_members(false).await;
}

/// The same over TLS, as the charts run it by default: clients and the members among
/// themselves (RAFT on `ssl:`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_over_tls_keep_every_write_when_the_nb_leader_goes_and_comes_back() {
    three_members(true).await;
}

async fn three_members(tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pki = tls.then(|| TestPki::generate_for(dir.path(), "").unwrap());
    let pki = pki.as_ref();
    let proto = if tls { "ssl" } else { "tcp" };
    let ips = addresses(3, if tls { 11 } else { 1 });
    let node_ips = ips.join(",");
    let ports = Ports::free();
    let mut members: Vec<Member> = ips
        .iter()
        .map(|ip| match pki {
            Some(p) => Member::with_tls(ip, p),
            None => Member::new(ip),
        })
        .collect();
    // As pods start: all at once, in no order.
    for m in members.iter_mut().rev() {
        m.start(&node_ips, ports);
    }
    let all: Vec<&Member> = members.iter().collect();
    wait_for(
        "three RAFT members of NB and SB",
        Duration::from_secs(60),
        &all,
        || members.iter().all(is_member),
    );
    let nb_remotes: String = ips
        .iter()
        .map(|ip| format!("{proto}:{ip}:{}", ports.nb))
        .collect::<Vec<_>>()
        .join(",");
    let sb_remotes: String = ips
        .iter()
        .map(|ip| format!("{proto}:{ip}:{}", ports.sb))
        .collect::<Vec<_>>()
        .join(",");
    add_switch(&nb_remotes, pki, "before-failover").await;
    wait_for(
        "northd translating before-failover into SB",
        Duration::from_secs(30),
        &all,
        || in_sb(&sb_remotes, pki, "before-failover"),
    );
    wait_for(
        "exactly one active ovn-northd",
        Duration::from_secs(30),
        &all,
        || active_northds(&members).len() == 1,
    );
    // The same answer through ovn_api::unixctl (what a sidecar without ovs-appctl uses).
    let mut active = 0;
    for m in &members {
        let pid = std::fs::read_to_string(m.run_dir().join("ovn-northd.pid")).unwrap();
        let ctl = m.run_dir().join(format!("ovn-northd.{}.ctl", pid.trim()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match ovn_api::unixctl::call(&ctl, "status", &[], Duration::from_secs(5)).await {
                Ok(s) => break s,
                // Its control socket may come a moment after its pidfile.
                Err(e) if Instant::now() < deadline && matches!(e, ovn_api::Error::Io { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{}: {e}", ctl.display()),
            }
        };
        assert!(status.starts_with("Status: "), "{status}");
        active += usize::from(status.contains("Status: active"));
    }
    assert_eq!(active, 1);

    // The NB leader's member goes (its pod deleted); writes go on through the others.
    let leader = nb_leader(&members).expect("an NB leader");
    members[leader].stop();
    let stopped = std::time::Instant::now();
    add_switch(&nb_remotes, pki, "during-failover").await;
    eprintln!(
        "NB leader {} stopped: next write committed after {:?}",
        members[leader].ip,
        stopped.elapsed()
    );
    let all: Vec<&Member> = members.iter().collect();
    wait_for(
        "northd on the remaining members",
        Duration::from_secs(60),
        &all,
        || in_sb(&sb_remotes, pki, "during-failover") && active_northds(&members).len() == 1,
    );

    // It comes back with its files, rejoins, and has both writes.
    members[leader].start(&node_ips, ports);
    let all: Vec<&Member> = members.iter().collect();
    wait_for(
        "the old leader rejoining with every write",
        Duration::from_secs(60),
        &all,
        || {
            is_member(&members[leader]) && {
                let s = members[leader].switches();
                s.contains("before-failover") && s.contains("during-failover")
            }
        },
    );
    let active = active_northds(&members);
    assert_eq!(active.len(), 1, "{active:?}");

    // A follower's node replaced: its files are gone, it joins afresh with both writes and
    // takes its address's old server ID out, so NB and SB keep three servers (not four, which
    // would need three for a quorum).
    let leader = nb_leader(&members).expect("an NB leader");
    let replaced = (0..members.len()).find(|&i| i != leader).unwrap();
    members[replaced].stop();
    for file in ["ovnnb_db.db", "ovnsb_db.db"] {
        std::fs::remove_file(members[replaced].db(file)).unwrap();
    }
    members[replaced].start(&node_ips, ports);
    let all: Vec<&Member> = members.iter().collect();
    wait_for(
        "the replaced member joining afresh with every write",
        Duration::from_secs(60),
        &all,
        || {
            is_member(&members[replaced]) && {
                let s = members[replaced].switches();
                s.contains("before-failover") && s.contains("during-failover")
            }
        },
    );
    wait_for(
        "three servers in NB and SB on every member",
        Duration::from_secs(30),
        &all,
        || {
            members.iter().all(|m| {
                ["nb", "sb"]
                    .iter()
                    .all(|db| m.cluster_status(db).is_some_and(|s| servers(&s) == 3))
            })
        },
    );
}

/// How many servers a `cluster/status` lists.
fn servers(status: &str) -> usize {
    status
        .lines()
        .skip_while(|l| !l.starts_with("Servers:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .count()
}

#[test]
fn a_standalone_central_becomes_a_one_member_cluster_with_its_data() {
    let ip = addresses(1, 21).remove(0);
    let ports = Ports::free();
    let mut m = Member::new(&ip);
    m.start("", ports);
    let all = [&m];
    wait_for(
        "the standalone central",
        Duration::from_secs(30),
        &all,
        || m.appctl("ovnnb_db.ctl", &["version"]).is_some(),
    );
    let out = Command::new("ovn-nbctl")
        .arg(format!(
            "--db=unix:{}",
            m.run_dir().join("ovnnb_db.sock").display()
        ))
        .args(["ls-add", "from-standalone"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    m.stop();
    let standalone = Command::new("ovsdb-tool")
        .arg("db-is-standalone")
        .arg(m.db("ovnnb_db.db"))
        .status()
        .unwrap();
    assert!(standalone.success());

    m.start(&ip, ports);
    let all = [&m];
    wait_for(
        "a one-member cluster",
        Duration::from_secs(30),
        &all,
        || is_member(&m),
    );
    assert!(m.switches().contains("from-standalone"), "{}", m.log());
    let clustered = Command::new("ovsdb-tool")
        .arg("db-is-clustered")
        .arg(m.db("ovnnb_db.db"))
        .status()
        .unwrap();
    assert!(clustered.success());
    // The standalone file is kept beside it.
    let kept = std::fs::read_dir(m.dir.path().join("db"))
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("ovnnb_db.db.standalone-")
        });
    assert!(kept, "{}", m.log());
    // Back to NODE_IPS empty: refused, not silently a second, standalone database.
    m.stop();
    let out = m.command("", ports).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RAFT member's database"),
        "{out:?}"
    );
}

/// What kubelet puts in a pod's environment for a Service named `ovn-nb` is not a port: the
/// script says so instead of listening on a garbled remote (what a first version did).
#[test]
fn a_port_that_is_not_a_number_is_refused() {
    let ip = addresses(1, 41).remove(0);
    let m = Member::new(&ip);
    let out = m
        .command("", Ports::free())
        .env("OVN_CENTRAL_NB_PORT", "tcp://10.96.0.20:6641")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tcp://10.96.0.20:6641\" is not a number"),
        "{err}"
    );
}

#[test]
fn a_pod_whose_address_is_not_a_member_refuses_to_start() {
    let ips = addresses(2, 31);
    let m = Member::new(&ips[1]);
    let out = m.command(&ips[0], Ports::free()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("POD_IP={}", ips[1])) && err.contains("not one of NODE_IPS"),
        "{err}"
    );
    assert!(!m.db("ovnnb_db.db").exists());
}
