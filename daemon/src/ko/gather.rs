//! Reading what one pod's attachments are made of: the pod, its NADs, the Subnets, the `IP`
//! CRs from the API; the logical switch port, port binding and OVS interface by the ctl tools
//! ([`super::tools`], `--format=json`). The pod's annotations are read with the contract's own
//! codecs ([`crds::parse_networks_annotation`], [`crds::nad::resolve_element`],
//! [`crds::Allocation::from_annotations`]); names come from [`crds::naming`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::nad::{NadClass, ResolvedAttachment, resolve_element};
use crds::naming::{NETWORKS_ANNOTATION, ip_cr_name, lsp_name, router_port};
use crds::{Allocation, IP, NetworkAttachmentDefinition, Subnet, parse_networks_annotation};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use ovn_api::value::{Atom, Datum};

use super::KoError;
use super::chain::{
    AttachmentFacts, BindingFacts, InterfaceFacts, IpFacts, Lookup, LspFacts, SubnetFacts,
};
use super::cli::{ObjectRef, Protocol};
use super::tools::{OVS_POD_SELECTOR, Tool, Tools, parse_table};
use super::trace::{NextHop, Source, microflow, next_hop, parse_port_addresses};

/// Reads objects through the API and the tools.
pub struct Gatherer {
    client: kube::Client,
    tools: Tools,
}

impl std::fmt::Debug for Gatherer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatherer")
            .field("tools", &self.tools)
            .finish_non_exhaustive()
    }
}

type Row = BTreeMap<String, Datum>;

fn text(row: &Row, column: &str) -> String {
    row.get(column)
        .and_then(|d| d.as_set().first())
        .and_then(Atom::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn texts(row: &Row, column: &str) -> Vec<String> {
    row.get(column)
        .map(|d| {
            d.as_set()
                .iter()
                .filter_map(Atom::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn uuid_of(row: &Row, column: &str) -> Option<String> {
    row.get(column)?
        .as_set()
        .first()?
        .as_uuid()
        .map(|u| u.to_string())
}

impl Gatherer {
    /// A gatherer over `client` and `tools`.
    pub fn new(client: kube::Client, tools: Tools) -> Self {
        Self { client, tools }
    }

    /// The Open vSwitch pod on `node` (for `kubectl exec`).
    pub async fn ovs_pod_name(&self, node: &str) -> Result<String, KoError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.tools.namespace);
        let pods = api
            .list(
                &ListParams::default()
                    .labels(OVS_POD_SELECTOR)
                    .fields(&format!("spec.nodeName={node}")),
            )
            .await?;
        pods.items
            .iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .or(pods.items.first())
            .map(ResourceExt::name_any)
            .ok_or_else(|| {
                KoError::Usage(format!(
                    "no Open vSwitch pod ({OVS_POD_SELECTOR}) on node {node} in namespace {} \
                     (or give --ovs {node}=<db>)",
                    self.tools.namespace
                ))
            })
    }

    /// Runs `tool args` where it belongs; returns its stdout.
    pub async fn run(
        &self,
        tool: Tool,
        node: Option<&str>,
        args: &[String],
    ) -> Result<String, KoError> {
        let pod = match node {
            Some(n) if tool.is_per_node() && !self.tools.ovs.contains_key(n) => {
                Some(self.ovs_pod_name(n).await?)
            }
            _ => None,
        };
        let target = self.tools.target(tool, node, |n| {
            pod.ok_or_else(|| KoError::Usage(format!("no Open vSwitch pod on {n}")))
        })?;
        let invocation = self.tools.invocation(tool, &target, args);
        tokio::task::spawn_blocking(move || invocation.output())
            .await
            .map_err(|e| KoError::Output(e.to_string()))?
    }

    /// `tool --format=json --columns=<columns> <command...>`, as rows.
    async fn rows(
        &self,
        tool: Tool,
        node: Option<&str>,
        columns: &str,
        command: &[&str],
    ) -> Result<Vec<Row>, KoError> {
        let mut args = vec!["--format=json".to_owned(), format!("--columns={columns}")];
        args.extend(command.iter().map(|s| (*s).to_owned()));
        parse_table(&self.run(tool, node, &args).await?)
    }

    /// The pod.
    pub async fn pod(&self, pod: &ObjectRef) -> Result<Pod, KoError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        Ok(api.get(&pod.name).await?)
    }

    /// The pod's kube-ovn attachments, resolved against their NADs; an element whose NAD is
    /// missing or broken comes back as `Err((element position, nad, why))`.
    async fn attachments(
        &self,
        pod: &Pod,
    ) -> Result<Vec<Result<ResolvedAttachment, (String, String, String)>>, KoError> {
        let namespace = pod.namespace().unwrap_or_default();
        let Some(raw) = pod.annotations().get(NETWORKS_ANNOTATION) else {
            return Ok(Vec::new());
        };
        let elements = parse_networks_annotation(raw, &namespace)
            .map_err(|e| KoError::Usage(format!("the pod's {NETWORKS_ANNOTATION}: {e}")))?;
        let mut nads = Vec::new();
        for e in &elements {
            let api: Api<NetworkAttachmentDefinition> =
                Api::namespaced(self.client.clone(), &e.namespace);
            if let Some(nad) = api.get_opt(&e.name).await? {
                nads.push(nad);
            }
        }
        let mut out = Vec::new();
        for (position, e) in elements.iter().enumerate() {
            match resolve_element(&elements, position, &nads) {
                Ok(Some(a)) => out.push(Ok(a)),
                Ok(None) => {}
                Err(why) => out.push(Err((
                    e.interface_name(position),
                    e.nad_key(),
                    why.to_string(),
                ))),
            }
        }
        Ok(out)
    }

    /// Everything about each kube-ovn attachment of `pod`.
    pub async fn diagnose(&self, pod: &Pod) -> Result<Vec<AttachmentFacts>, KoError> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let subnets: Vec<Subnet> = Api::<Subnet>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let mut out = Vec::new();
        for attachment in self.attachments(pod).await? {
            let a = match attachment {
                Ok(a) => a,
                Err((interface, nad, why)) => {
                    out.push(AttachmentFacts {
                        interface,
                        nad,
                        class: Err(why),
                        provider: None,
                        subnets: Vec::new(),
                        allocation: Err("no NAD".into()),
                        port_name: None,
                        ip: skipped("no NAD"),
                        lsp: skipped("no NAD"),
                        binding: skipped("no NAD"),
                        node: node.clone(),
                        interface_row: skipped("no NAD"),
                    });
                    continue;
                }
            };
            let port = lsp_name(&name, &namespace, &a.provider);
            let bound: Vec<SubnetFacts> = subnets
                .iter()
                .filter(|s| s.spec.provider.as_deref() == Some(a.nad_provider.as_str()))
                .map(|s| SubnetFacts {
                    name: s.name_any(),
                    cidr: s
                        .spec
                        .cidr_block
                        .clone()
                        .or_else(|| s.spec.cidr.clone())
                        .unwrap_or_default(),
                    vpc: s.spec.vpc.clone(),
                })
                .collect();
            let allocation = Allocation::from_annotations(pod.annotations(), &a.provider)
                .map_err(|e| e.to_string());
            let ip = self.ip(&ip_cr_name(&name, &namespace, &a.provider)).await;
            let ipam_only = matches!(a.class, NadClass::IpamOnly { .. });
            let (lsp, binding, interface_row) = if ipam_only {
                let why = "IPAM only: no OVN port";
                (skipped(why), skipped(why), skipped(why))
            } else {
                let iface = match &node {
                    Some(n) => self.interface(n, &port).await,
                    None => Lookup::Skipped("the pod is not scheduled".into()),
                };
                (self.lsp(&port).await, self.binding(&port).await, iface)
            };
            out.push(AttachmentFacts {
                interface: a.interface.clone(),
                nad: format!("{}/{}", a.element.namespace, a.element.name),
                class: Ok(a.class.clone()),
                provider: Some(a.provider.clone()),
                subnets: bound,
                allocation,
                port_name: Some(port),
                ip,
                lsp,
                binding,
                node: node.clone(),
                interface_row,
            });
        }
        Ok(out)
    }

    async fn ip(&self, name: &str) -> Lookup<IpFacts> {
        match Api::<IP>::all(self.client.clone()).get_opt(name).await {
            Ok(Some(ip)) => Lookup::Found(IpFacts {
                subnet: ip.spec.subnet.clone(),
                ip_address: ip.spec.ip_address.clone(),
                mac_address: ip.spec.mac_address.clone(),
            }),
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Failed(e.to_string()),
        }
    }

    /// The logical switch port `port` in Northbound.
    pub async fn lsp(&self, port: &str) -> Lookup<LspFacts> {
        let found = async {
            let rows = self
                .rows(
                    Tool::Nbctl,
                    None,
                    "_uuid,addresses,up",
                    &["find", "logical_switch_port", &format!("name={port}")],
                )
                .await?;
            let Some(row) = rows.first() else {
                return Ok(None);
            };
            let uuid = uuid_of(row, "_uuid").unwrap_or_default();
            let switches = self
                .rows(
                    Tool::Nbctl,
                    None,
                    "name",
                    &["find", "logical_switch", &format!("ports{{>=}}{uuid}")],
                )
                .await?
                .iter()
                .map(|r| text(r, "name"))
                .collect();
            let up = row
                .get("up")
                .and_then(|d| d.as_set().first().cloned())
                .map(|a| a == Atom::Boolean(true));
            Ok::<_, KoError>(Some(LspFacts {
                switches,
                addresses: texts(row, "addresses"),
                up,
            }))
        };
        lookup(found.await)
    }

    /// The Southbound port binding of `port`, with its chassis' name.
    pub async fn binding(&self, port: &str) -> Lookup<BindingFacts> {
        let found = async {
            let rows = self
                .rows(
                    Tool::Sbctl,
                    None,
                    "chassis",
                    &["find", "port_binding", &format!("logical_port={port}")],
                )
                .await?;
            let Some(row) = rows.first() else {
                return Ok(None);
            };
            let chassis = match uuid_of(row, "chassis") {
                Some(uuid) => self
                    .rows(Tool::Sbctl, None, "name", &["list", "chassis", &uuid])
                    .await?
                    .first()
                    .map(|r| text(r, "name")),
                None => None,
            };
            Ok::<_, KoError>(Some(BindingFacts { chassis }))
        };
        lookup(found.await)
    }

    /// The OVS interface of `port` on `node`.
    pub async fn interface(&self, node: &str, port: &str) -> Lookup<InterfaceFacts> {
        let found = async {
            let rows = self
                .rows(
                    Tool::Vsctl,
                    Some(node),
                    "name,external_ids",
                    &[
                        "find",
                        "interface",
                        &format!("external_ids:iface-id={port}"),
                    ],
                )
                .await?;
            Ok::<_, KoError>(rows.first().map(|row| {
                InterfaceFacts {
                    name: text(row, "name"),
                    ovn_installed: row
                        .get("external_ids")
                        .and_then(|d| d.map_get("ovn-installed"))
                        .and_then(Atom::as_str)
                        == Some("true"),
                }
            }))
        };
        lookup(found.await)
    }

    /// The `ovn-trace` arguments (datapath and microflow) for a packet from `pod`'s attachment
    /// on `network` to `target`.
    pub async fn trace_args(
        &self,
        pod: &ObjectRef,
        network: &ObjectRef,
        target: IpAddr,
        protocol: Protocol,
        port: Option<u16>,
    ) -> Result<Vec<String>, KoError> {
        let p = self.pod(pod).await?;
        let attachment = self
            .attachments(&p)
            .await?
            .into_iter()
            .filter_map(Result::ok)
            .find(|a| a.element.namespace == network.namespace && a.element.name == network.name)
            .ok_or_else(|| {
                KoError::Usage(format!(
                    "pod {pod} has no kube-ovn attachment on network {network}"
                ))
            })?;
        if matches!(attachment.class, NadClass::IpamOnly { .. }) {
            return Err(KoError::Usage(format!(
                "network {network} uses kube-ovn for IPAM only: its interface has no OVN port"
            )));
        }
        let allocation = Allocation::from_annotations(p.annotations(), &attachment.provider)
            .map_err(|e| KoError::Usage(format!("pod {pod}: {e}")))?;
        let inport = lsp_name(&pod.name, &pod.namespace, &attachment.provider);
        let rows = self
            .rows(
                Tool::Nbctl,
                None,
                "addresses",
                &["find", "logical_switch_port", &format!("name={inport}")],
            )
            .await?;
        let (mac, ips) = rows
            .first()
            .and_then(|r| {
                texts(r, "addresses")
                    .iter()
                    .find_map(|a| parse_port_addresses(a))
            })
            .ok_or_else(|| {
                KoError::Usage(format!(
                    "logical switch port {inport} is not in OVN Northbound (run `kubectl ko \
                     diagnose {pod}`)"
                ))
            })?;
        let switch = allocation.logical_switch.clone();
        let dst_mac = match next_hop(&allocation.cidrs, target) {
            NextHop::SameSubnet => self.mac_on_switch(&switch, target).await?,
            NextHop::Router => {
                let vpc = allocation.logical_router.clone().ok_or_else(|| {
                    KoError::Usage(format!(
                        "{target} is outside {switch} and the subnet has no VPC router"
                    ))
                })?;
                let lrp = router_port(&vpc, &switch);
                let rows = self
                    .rows(
                        Tool::Nbctl,
                        None,
                        "mac",
                        &["find", "logical_router_port", &format!("name={lrp}")],
                    )
                    .await?;
                rows.first()
                    .map(|r| text(r, "mac"))
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        KoError::Usage(format!("router port {lrp} is not in OVN Northbound"))
                    })?
            }
        };
        let source = Source {
            port: &inport,
            mac: &mac,
            ips: &ips,
        };
        let flow = microflow(&source, &dst_mac, target, protocol, port)?;
        Ok(vec![switch, flow])
    }

    /// The MAC of the port on `switch` that has `ip`.
    pub async fn mac_on_switch(&self, switch: &str, ip: IpAddr) -> Result<String, KoError> {
        let ports: Vec<String> = self
            .rows(
                Tool::Nbctl,
                None,
                "ports",
                &["find", "logical_switch", &format!("name={switch}")],
            )
            .await?
            .first()
            .and_then(|r| r.get("ports"))
            .map(|d| {
                d.as_set()
                    .iter()
                    .filter_map(Atom::as_uuid)
                    .map(|u| u.to_string())
                    .collect()
            })
            .unwrap_or_default();
        for uuid in ports {
            let rows = self
                .rows(
                    Tool::Nbctl,
                    None,
                    "addresses",
                    &["list", "logical_switch_port", &uuid],
                )
                .await?;
            let found = rows.first().and_then(|r| {
                texts(r, "addresses")
                    .iter()
                    .filter_map(|a| parse_port_addresses(a))
                    .find(|(_, ips)| ips.contains(&ip))
            });
            if let Some((mac, _)) = found {
                return Ok(mac);
            }
        }
        Err(KoError::Usage(format!(
            "no port on switch {switch} has address {ip}"
        )))
    }
}

fn skipped<T>(why: &str) -> Lookup<T> {
    Lookup::Skipped(why.to_owned())
}

fn lookup<T>(found: Result<Option<T>, KoError>) -> Lookup<T> {
    match found {
        Ok(Some(t)) => Lookup::Found(t),
        Ok(None) => Lookup::Missing,
        Err(e) => Lookup::Failed(e.to_string()),
    }
}
