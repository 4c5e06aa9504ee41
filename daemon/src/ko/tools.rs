//! The OVN and OVS command-line tools `kubectl ko` runs, and where it runs them.
//!
//! Each tool runs either here, against an address given on the command line (`--nb`, `--sb`,
//! `--ovs <node>=<db>`: what the local cluster's tests use, and what an operator with the
//! databases' addresses can use), or inside the pod that has it, by `kubectl exec` (what users
//! do): the OVN central pod (Deployment `ovn-central`, container `ovn-central`) for
//! `ovn-nbctl`, `ovn-sbctl` and `ovn-trace`, and the Open vSwitch pod of the node (DaemonSet
//! `ovs-ovn`, label `app=ovs`, container `openvswitch`) for `ovs-vsctl` and `ovs-ofctl`. The
//! `kube-ovn-cni` pod has none of these programs (its image holds our static binaries only), so
//! the node's tools come from the `ovs-ovn` pod, which shares the node's OVS sockets.
//!
//! Building a command is pure ([`Tools::invocation`]); running it is [`Invocation::output`] or
//! [`Invocation::status`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::KoError;

/// The Deployment that runs OVN central, as the charts name it.
pub const CENTRAL_DEPLOYMENT: &str = "ovn-central";
/// The OVN central container.
pub const CENTRAL_CONTAINER: &str = "ovn-central";
/// The Northbound socket in the OVN central pod (images/kube-ovn-ovn/start-ovn-central.sh).
pub const CENTRAL_NB_DB: &str = "unix:/var/run/ovn/ovnnb_db.sock";
/// The Southbound socket in the OVN central pod.
pub const CENTRAL_SB_DB: &str = "unix:/var/run/ovn/ovnsb_db.sock";
/// The label selector of the per-node Open vSwitch pods (DaemonSet `ovs-ovn`).
pub const OVS_POD_SELECTOR: &str = "app=ovs";
/// The Open vSwitch container of those pods.
pub const OVS_CONTAINER: &str = "openvswitch";

/// An OVN/OVS program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `ovn-nbctl` (OVN Northbound).
    Nbctl,
    /// `ovn-sbctl` (OVN Southbound).
    Sbctl,
    /// `ovn-trace` (reads the Southbound).
    Trace,
    /// `ovs-vsctl` (a node's Open vSwitch database).
    Vsctl,
    /// `ovs-ofctl` (a node's OpenFlow bridges).
    Ofctl,
}

impl Tool {
    /// The program's file name.
    pub fn program(self) -> &'static str {
        match self {
            Self::Nbctl => "ovn-nbctl",
            Self::Sbctl => "ovn-sbctl",
            Self::Trace => "ovn-trace",
            Self::Vsctl => "ovs-vsctl",
            Self::Ofctl => "ovs-ofctl",
        }
    }

    /// Whether the tool talks to a node's Open vSwitch (else to OVN central).
    pub fn is_per_node(self) -> bool {
        matches!(self, Self::Vsctl | Self::Ofctl)
    }
}

/// One command to run: program, arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Invocation {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// The command line, for messages.
    pub fn line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs it and returns its stdout; a failure carries its stderr.
    pub fn output(&self) -> Result<String, KoError> {
        let out = self
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|source| KoError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(KoError::Failed {
                command: self.line(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Runs it with this terminal (pass-through subcommands) and returns its exit status.
    pub fn status(&self) -> Result<ExitStatus, KoError> {
        self.command().status().map_err(|source| KoError::Spawn {
            program: self.program.clone(),
            source,
        })
    }
}

/// Where the tools run: the addresses given for local runs, and how to reach the pods.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// `--nb`: OVN Northbound address for a local `ovn-nbctl`.
    pub nb: Option<String>,
    /// `--sb`: OVN Southbound address for a local `ovn-sbctl` / `ovn-trace`.
    pub sb: Option<String>,
    /// `--ovs <node>=<db>`: a node's Open vSwitch database address for local `ovs-vsctl` and
    /// `ovs-ofctl`.
    pub ovs: BTreeMap<String, String>,
    /// The `kubectl` program for exec.
    pub kubectl: String,
    /// `--kubeconfig`, passed on to kubectl.
    pub kubeconfig: Option<PathBuf>,
    /// The namespace Kube-OVN runs in.
    pub namespace: String,
}

/// Where a tool's command goes: OVN central, or the Open vSwitch of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Run here against this database address.
    Local(String),
    /// `kubectl exec` into this pod (`deploy/<name>` or a pod name) and container.
    Pod {
        /// `deploy/ovn-central` or the node's OVS pod.
        pod: String,
        /// The container.
        container: String,
    },
}

impl Tools {
    /// Where `tool` runs: locally when its address was given, else the pod. For per-node
    /// tools without a local address, `ovs_pod` resolves the node's OVS pod (an API call).
    pub fn target(
        &self,
        tool: Tool,
        node: Option<&str>,
        ovs_pod: impl FnOnce(&str) -> Result<String, KoError>,
    ) -> Result<Target, KoError> {
        if tool.is_per_node() {
            let node = node.ok_or(KoError::Usage(format!(
                "{} needs a node name",
                tool.program()
            )))?;
            if let Some(db) = self.ovs.get(node) {
                return Ok(Target::Local(db.clone()));
            }
            return Ok(Target::Pod {
                pod: ovs_pod(node)?,
                container: OVS_CONTAINER.to_owned(),
            });
        }
        let local = match tool {
            Tool::Nbctl => &self.nb,
            _ => &self.sb,
        };
        Ok(match local {
            Some(db) => Target::Local(db.clone()),
            None => Target::Pod {
                pod: format!("deploy/{CENTRAL_DEPLOYMENT}"),
                container: CENTRAL_CONTAINER.to_owned(),
            },
        })
    }

    /// The command that runs `tool args` at `target`.
    pub fn invocation(&self, tool: Tool, target: &Target, args: &[String]) -> Invocation {
        match target {
            Target::Local(db) => {
                let mut env = Vec::new();
                let mut full = Vec::new();
                match tool {
                    // ovs-ofctl reaches a bridge by `<rundir>/<bridge>.mgmt`, beside the
                    // database's socket in a default layout.
                    Tool::Ofctl => {
                        if let Some(dir) = unix_socket_dir(db) {
                            env.push(("OVS_RUNDIR".to_owned(), dir.display().to_string()));
                        }
                    }
                    _ => full.push(format!("--db={db}")),
                }
                full.extend(args.iter().cloned());
                Invocation {
                    program: tool.program().to_owned(),
                    args: full,
                    env,
                }
            }
            Target::Pod { pod, container } => {
                let mut full = Vec::new();
                if let Some(k) = &self.kubeconfig {
                    full.push(format!("--kubeconfig={}", k.display()));
                }
                full.extend([
                    "-n".to_owned(),
                    self.namespace.clone(),
                    "exec".to_owned(),
                    pod.clone(),
                    "-c".to_owned(),
                    container.clone(),
                    "--".to_owned(),
                    tool.program().to_owned(),
                ]);
                // Said, not left to the tools' defaults: the sockets are where the image's
                // start script puts them.
                match tool {
                    Tool::Nbctl => full.push(format!("--db={CENTRAL_NB_DB}")),
                    Tool::Sbctl | Tool::Trace => full.push(format!("--db={CENTRAL_SB_DB}")),
                    Tool::Vsctl | Tool::Ofctl => {}
                }
                full.extend(args.iter().cloned());
                Invocation {
                    program: self.kubectl.clone(),
                    args: full,
                    env: Vec::new(),
                }
            }
        }
    }
}

/// The directory of a `unix:<path>` address.
fn unix_socket_dir(remote: &str) -> Option<&Path> {
    Path::new(remote.strip_prefix("unix:")?).parent()
}

/// Reads the JSON table that `--format=json` makes the ctl tools print (`{"headings": [...],
/// "data": [[...], ...]}`, each cell in OVSDB's JSON notation) into rows by column name, each
/// cell decoded with [`ovn_api::value::Datum::from_json`].
pub fn parse_table(output: &str) -> Result<Vec<BTreeMap<String, ovn_api::value::Datum>>, KoError> {
    let bad = |why: String| KoError::Output(why);
    let table: serde_json::Value =
        serde_json::from_str(output).map_err(|e| bad(format!("not JSON: {e}")))?;
    let headings: Vec<String> = table["headings"]
        .as_array()
        .ok_or_else(|| bad("no headings".into()))?
        .iter()
        .map(|h| h.as_str().unwrap_or_default().to_owned())
        .collect();
    let mut rows = Vec::new();
    for row in table["data"].as_array().into_iter().flatten() {
        let cells = row
            .as_array()
            .ok_or_else(|| bad("a row is not a list".into()))?;
        let mut out = BTreeMap::new();
        for (name, cell) in headings.iter().zip(cells) {
            let datum = ovn_api::value::Datum::from_json(cell)
                .map_err(|e| bad(format!("column {name}: {e}")))?;
            out.insert(name.clone(), datum);
        }
        rows.push(out);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    fn tools() -> Tools {
        Tools {
            kubectl: "kubectl".into(),
            namespace: "kube-system".into(),
            ..Tools::default()
        }
    }

    fn no_pod(node: &str) -> Result<String, KoError> {
        Err(KoError::Usage(format!("no lookup expected for {node}")))
    }

    #[test]
    fn central_tools_exec_into_the_ovn_central_deployment() {
        let t = Tools {
            kubeconfig: Some("/k/config".into()),
            ..tools()
        };
        let target = t.target(Tool::Nbctl, None, no_pod).unwrap();
        let inv = t.invocation(Tool::Nbctl, &target, &args(&["show"]));
        assert_eq!(inv.program, "kubectl");
        assert_eq!(
            inv.line(),
            "kubectl --kubeconfig=/k/config -n kube-system exec deploy/ovn-central -c ovn-central \
             -- ovn-nbctl --db=unix:/var/run/ovn/ovnnb_db.sock show"
        );
        let target = t.target(Tool::Trace, None, no_pod).unwrap();
        let inv = t.invocation(Tool::Trace, &target, &args(&["s1", "inport == \"p\""]));
        assert_eq!(
            inv.args[inv.args.len() - 4..],
            args(&[
                "ovn-trace",
                "--db=unix:/var/run/ovn/ovnsb_db.sock",
                "s1",
                "inport == \"p\""
            ])
        );
    }

    #[test]
    fn node_tools_exec_into_that_nodes_ovs_pod() {
        let t = tools();
        let target = t
            .target(Tool::Vsctl, Some("node-1"), |n| Ok(format!("ovs-ovn-{n}")))
            .unwrap();
        let inv = t.invocation(Tool::Vsctl, &target, &args(&["show"]));
        assert_eq!(
            inv.line(),
            "kubectl -n kube-system exec ovs-ovn-node-1 -c openvswitch -- ovs-vsctl show"
        );
        assert!(t.target(Tool::Ofctl, None, no_pod).is_err());
    }

    #[test]
    fn given_addresses_run_the_tools_here() {
        let t = Tools {
            nb: Some("tcp:10.0.0.1:6641".into()),
            sb: Some("unix:/run/ovn/sb.sock".into()),
            ovs: BTreeMap::from([("node-1".into(), "unix:/run/n1/db.sock".into())]),
            ..tools()
        };
        let nb = t.target(Tool::Nbctl, None, no_pod).unwrap();
        assert_eq!(
            t.invocation(Tool::Nbctl, &nb, &args(&["show"])).line(),
            "ovn-nbctl --db=tcp:10.0.0.1:6641 show"
        );
        let sb = t.target(Tool::Trace, None, no_pod).unwrap();
        assert_eq!(
            t.invocation(Tool::Trace, &sb, &args(&["s1"])).line(),
            "ovn-trace --db=unix:/run/ovn/sb.sock s1"
        );
        let n1 = t.target(Tool::Vsctl, Some("node-1"), no_pod).unwrap();
        assert_eq!(
            t.invocation(Tool::Vsctl, &n1, &args(&["show"])).line(),
            "ovs-vsctl --db=unix:/run/n1/db.sock show"
        );
        let of = t.invocation(Tool::Ofctl, &n1, &args(&["dump-flows", "br-int"]));
        assert_eq!(of.line(), "ovs-ofctl dump-flows br-int");
        assert_eq!(of.env, vec![("OVS_RUNDIR".into(), "/run/n1".into())]);
    }

    #[test]
    fn ctl_json_tables_decode_by_heading() {
        let out = r#"{"data":[[["uuid","5a2c4b1e-0000-4000-8000-000000000001"],"p1",["set",[]],["map",[["ovn-installed","true"]]]]],"headings":["_uuid","name","chassis","external_ids"]}"#;
        let rows = parse_table(out).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"].as_set()[0].as_str(), Some("p1"));
        assert!(rows[0]["chassis"].is_empty());
        assert_eq!(
            rows[0]["external_ids"]
                .map_get("ovn-installed")
                .and_then(|a| a.as_str()),
            Some("true")
        );
        assert!(parse_table("not json").is_err());
    }
}
