//! The command line of `kubectl-ko`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::tools::Tools;

/// Troubleshoot Kube-OVN attachments: OVN/OVS tools in the right pod, the chain of one pod's
/// attachments, and ovn-trace for an attachment.
#[derive(Debug, Parser)]
#[command(name = "kubectl-ko", version)]
pub struct Cli {
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace Kube-OVN is installed in.
    #[arg(
        long = "kube-ovn-namespace",
        global = true,
        default_value = "kube-system"
    )]
    pub kube_ovn_namespace: String,
    /// The kubectl program used for `kubectl exec`.
    #[arg(long, global = true, default_value = "kubectl")]
    pub kubectl: String,
    /// Run ovn-nbctl here against this OVN Northbound address instead of in the ovn-central pod.
    #[arg(long, global = true)]
    pub nb: Option<String>,
    /// Run ovn-sbctl and ovn-trace here against this OVN Southbound address.
    #[arg(long, global = true)]
    pub sb: Option<String>,
    /// Run ovs-vsctl / ovs-ofctl for NODE here against its Open vSwitch database
    /// (`NODE=unix:/run/openvswitch/db.sock`; ovs-ofctl finds `<bridge>.mgmt` beside it).
    /// Repeatable.
    #[arg(long = "ovs", global = true, value_name = "NODE=DB", value_parser = node_db)]
    pub ovs: Vec<(String, String)>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// ovn-nbctl against OVN Northbound (e.g. `kubectl ko nbctl show`).
    Nbctl {
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// ovn-sbctl against OVN Southbound (e.g. `kubectl ko sbctl show`).
    Sbctl {
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// ovs-vsctl on a node (e.g. `kubectl ko vsctl node-1 show`).
    Vsctl {
        /// The node.
        node: String,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// ovs-ofctl on a node (e.g. `kubectl ko ofctl node-1 dump-flows br-int`).
    Ofctl {
        /// The node.
        node: String,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Every kube-ovn attachment of a pod, link by link: NAD, provider, Subnet, allocation,
    /// IP CR, logical switch port, port binding, OVS interface. Exits 1 when a link is broken.
    Diagnose {
        /// The pod, `<namespace>/<name>` (or `<name>` in `default`).
        pod: ObjectRef,
    },
    /// ovn-trace a packet from a pod's attachment to an address.
    Trace {
        /// The pod, `<namespace>/<name>`.
        pod: ObjectRef,
        /// The attachment's NetworkAttachmentDefinition, `<namespace>/<name>`.
        #[arg(long)]
        network: ObjectRef,
        /// The destination address.
        target: IpAddr,
        /// The protocol.
        #[arg(value_enum, default_value_t = Protocol::Icmp)]
        protocol: Protocol,
        /// The destination port (tcp and udp).
        port: Option<u16>,
    },
}

/// The protocol of a traced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// An echo request.
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `<namespace>/<name>`, or `<name>` in `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl std::str::FromStr for ObjectRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (namespace, name) = s.split_once('/').unwrap_or(("default", s));
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!("{s:?} is not <namespace>/<name>"));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn node_db(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((node, db)) if !node.is_empty() && !db.is_empty() => {
            Ok((node.to_owned(), db.to_owned()))
        }
        _ => Err(format!(
            "{s:?} is not NODE=DB (e.g. node-1=unix:/run/openvswitch/db.sock)"
        )),
    }
}

impl Cli {
    /// Where the tools run, from the global flags.
    pub fn tools(&self) -> Tools {
        Tools {
            nb: self.nb.clone(),
            sb: self.sb.clone(),
            ovs: self.ovs.iter().cloned().collect::<BTreeMap<_, _>>(),
            kubectl: self.kubectl.clone(),
            kubeconfig: self.kubeconfig.clone(),
            namespace: self.kube_ovn_namespace.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-ko").chain(line.iter().copied()))
    }

    #[test]
    fn pass_through_keeps_the_tools_own_flags() {
        let cli = parse(&[
            "nbctl",
            "--format=json",
            "--columns=name",
            "list",
            "Logical_Switch",
        ])
        .unwrap();
        let Command::Nbctl { args } = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(
            args,
            ["--format=json", "--columns=name", "list", "Logical_Switch"]
        );

        let cli = parse(&[
            "--ovs",
            "node-1=unix:/r/db.sock",
            "ofctl",
            "node-1",
            "dump-flows",
            "br-int",
        ])
        .unwrap();
        assert_eq!(cli.tools().ovs["node-1"], "unix:/r/db.sock");
        let Command::Ofctl { node, args } = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!((node.as_str(), args.len()), ("node-1", 2));
    }

    #[test]
    fn global_addresses_go_before_or_after_the_subcommand() {
        let cli = parse(&["diagnose", "ns1/p1", "--nb", "unix:/nb", "--sb=unix:/sb"]).unwrap();
        assert_eq!(cli.nb.as_deref(), Some("unix:/nb"));
        assert_eq!(cli.sb.as_deref(), Some("unix:/sb"));
        let Command::Diagnose { pod } = cli.command else {
            panic!()
        };
        assert_eq!(pod.to_string(), "ns1/p1");
        assert_eq!(
            parse(&["diagnose", "p1"])
                .map(|c| format!("{:?}", c.command))
                .unwrap(),
            format!(
                "{:?}",
                Command::Diagnose {
                    pod: "default/p1".parse().unwrap()
                }
            )
        );
    }

    #[test]
    fn trace_takes_network_target_protocol_and_port() {
        let cli = parse(&[
            "trace",
            "default/p1",
            "--network",
            "default/net1",
            "10.0.0.3",
            "tcp",
            "80",
        ])
        .unwrap();
        let Command::Trace {
            pod,
            network,
            target,
            protocol,
            port,
        } = cli.command
        else {
            panic!()
        };
        assert_eq!((pod.name.as_str(), network.name.as_str()), ("p1", "net1"));
        assert_eq!(target.to_string(), "10.0.0.3");
        assert_eq!((protocol, port), (Protocol::Tcp, Some(80)));

        let cli = parse(&[
            "trace",
            "default/p1",
            "--network",
            "default/net1",
            "fd00::3",
        ])
        .unwrap();
        let Command::Trace { protocol, port, .. } = cli.command else {
            panic!()
        };
        assert_eq!((protocol, port), (Protocol::Icmp, None));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for line in [
            &["trace", "default/p1", "10.0.0.3"][..], // no --network
            &["trace", "default/p1", "--network", "n", "not-an-ip"],
            &["trace", "default/p1", "--network", "n", "10.0.0.3", "sctp"],
            &["diagnose", "a/b/c"],
            &["diagnose", "/p1"],
            &["--ovs", "node-1", "vsctl", "node-1", "show"],
            &["vsctl"],
        ] {
            assert!(parse(line).is_err(), "{line:?} was accepted");
        }
    }
}
