//! The Helm charts (`charts/kube-ovn-v2`, `charts/kube-ovn`) with the real helm that
//! `cargo xtask setup` builds: both resolve the library chart with their templates
//! (`charts/kube-ovn-lib`) from the repository as checked in, and package with it; lint, render
//! with the manual's values and with defaults, the same
//! objects from both charts for equivalent values, clear failures for values this
//! implementation refuses (primary mode first), our binaries accepting the flags the charts give
//! them, the rendered objects accepted by a real kube-apiserver (server-side dry run), the
//! README's `helm install` commands run as written against a real control plane, every pod's
//! least privilege as rendered, and each service account's RBAC checked both ways by
//! `kubectl auth can-i` against the chart applied to a real apiserver (docs/SECURITY.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed assertion is the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use e2e::helm::Helm;
use e2e::k8s::ControlPlane;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::Value;

const V2: &str = "charts/kube-ovn-v2";
const V1: &str = "charts/kube-ovn";
/// The library chart both take their templates from.
const LIB: &str = "charts/kube-ovn-lib";
/// The manual's values for each chart.
const SEED_V2: &[&str] = &[
    "--namespace",
    "kube-system",
    "--set",
    "cni.nonPrimaryCNI=true",
];
const SEED_V1: &[&str] = &[
    "--namespace",
    "kube-system",
    "--set",
    "cni_conf.NON_PRIMARY_CNI=true",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// helm with its state in a fresh temp dir (removed on drop).
fn helm() -> (tempfile::TempDir, Helm) {
    let dir = tempfile::tempdir().unwrap();
    let helm = Helm::locate(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, helm)
}

fn template(helm: &Helm, chart: &str, args: &[&str]) -> String {
    let mut all = vec!["template", "kube-ovn", chart];
    all.extend_from_slice(args);
    helm.run(&root(), &all, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every non-empty document of a multi-document YAML stream.
fn docs(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|d| <Value as k8s_openapi::serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn key(doc: &Value) -> String {
    format!(
        "{}/{}/{}",
        doc["kind"].as_str().unwrap(),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap()
    )
}

fn by_key(yaml: &str) -> BTreeMap<String, Value> {
    let all = docs(yaml);
    let map: BTreeMap<String, Value> = all.iter().map(|d| (key(d), d.clone())).collect();
    assert_eq!(map.len(), all.len(), "two objects share a kind and name");
    map
}

/// `doc` without what each render makes anew (the webhook's and OVN's certificates and CAs):
/// checked apart, by [`the_webhook_certificate_is_for_its_service_and_trusted_by_its_configuration`]
/// and [`ovn_tls_is_on_by_default_with_a_certificate_per_component`].
fn without_generated(doc: &Value) -> Value {
    let mut doc = doc.clone();
    match (doc["kind"].as_str(), doc["metadata"]["name"].as_str()) {
        (Some("Secret"), Some(OVN_CA_SECRET | "kube-ovn-webhook-tls")) => {
            doc["data"] = Value::Null;
        }
        (Some("Secret"), Some(name)) if OVN_TLS.iter().any(|(_, s)| *s == name) => {
            doc["data"] = Value::Null;
        }
        (Some("MutatingWebhookConfiguration"), _) => {
            if let Some(hooks) = doc["webhooks"].as_array_mut() {
                for hook in hooks {
                    hook["clientConfig"]["caBundle"] = Value::Null;
                }
            }
        }
        _ => {}
    }
    doc
}

/// The chart's OVN CA Secret (no pod mounts it).
const OVN_CA_SECRET: &str = "kube-ovn-ovn-ca";
/// Each workload that speaks to the OVN databases, its container and the Secret it mounts at
/// /var/run/tls.
const OVN_TLS: [(&str, &str); 3] = [
    ("Deployment/kube-system/ovn-central", "ovn-central-tls"),
    ("DaemonSet/kube-system/ovs-ovn", "ovs-ovn-tls"),
    (
        "Deployment/kube-system/kube-ovn-controller",
        "kube-ovn-controller-tls",
    ),
];

fn object<'a>(objects: &'a BTreeMap<String, Value>, key: &str) -> &'a Value {
    objects
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", objects.keys()))
}

fn container<'a>(workload: &'a Value, list: &str, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"][list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} {name} in {workload}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// `$(VAR)` references in args, expanded as kubelet does.
fn expand(args: &[String], env: &[(&str, &str)]) -> Vec<String> {
    args.iter()
        .map(|a| {
            let mut a = a.clone();
            for (k, v) in env {
                a = a.replace(&format!("$({k})"), v);
            }
            assert!(!a.contains("$("), "unexpanded variable in {a}");
            a
        })
        .collect()
}

/// The env var `name` of a container comes from the downward API field `field`.
fn env_from_field(c: &Value, name: &str, field: &str) -> bool {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == name && e["valueFrom"]["fieldRef"]["fieldPath"] == field)
}

fn host_path<'a>(workload: &'a Value, volume: &str) -> &'a str {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume)
        .and_then(|v| v["hostPath"]["path"].as_str())
        .unwrap_or_else(|| panic!("no hostPath volume {volume}"))
}

fn mount<'a>(c: &'a Value, volume: &str) -> &'a str {
    c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("no mount of {volume} in {c}"))
}

fn chart_yaml(chart: &str) -> Value {
    let text = std::fs::read_to_string(root().join(chart).join("Chart.yaml")).unwrap();
    yaml_serde::from_str(&text).unwrap()
}

/// Both charts render the templates of the library chart, found from the repository as checked
/// in: each chart's `charts/kube-ovn-lib` is a symlink to it, which helm follows when it loads a
/// chart and when it packages one, so the README's `helm install ./charts/<chart>` needs no
/// `helm dependency build`. Each chart keeps only its value mapping and two entry points.
#[test]
fn both_charts_take_their_templates_from_the_library_chart() {
    let (dir, helm) = helm();
    let lib = chart_yaml(LIB);
    assert_eq!(lib["type"], "library", "{LIB}/Chart.yaml");
    for (chart, seed) in [(V2, SEED_V2), (V1, SEED_V1)] {
        let meta = chart_yaml(chart);
        let deps = meta["dependencies"].as_array().unwrap();
        let [dep] = deps.as_slice() else {
            panic!("{chart}: one dependency expected, found {deps:?}");
        };
        assert_eq!(dep["name"], lib["name"], "{chart}");
        assert_eq!(dep["version"], lib["version"], "{chart}");
        assert_eq!(dep["repository"], "file://../kube-ovn-lib", "{chart}");

        let link = root().join(chart).join("charts/kube-ovn-lib");
        let kind = std::fs::symlink_metadata(&link).unwrap().file_type();
        assert!(kind.is_symlink(), "{} is not a symlink", link.display());
        assert_eq!(
            std::fs::canonicalize(&link).unwrap(),
            std::fs::canonicalize(root().join(LIB)).unwrap()
        );
        let deps = helm
            .run(&root(), &["dependency", "list", chart], None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            deps.lines()
                .any(|l| l.starts_with("kube-ovn-lib") && l.trim_end().ends_with("unpacked")),
            "{chart}: helm does not see the library chart:\n{deps}"
        );

        let own: BTreeSet<String> = std::fs::read_dir(root().join(chart).join("templates"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            own,
            BTreeSet::from(["NOTES.txt", "_config.tpl", "kube-ovn.yaml"].map(str::to_owned)),
            "{chart}/templates: shared templates belong in {LIB}"
        );

        // A packaged chart carries the library (as files, not a link) and renders the same.
        let out = dir.path().join("packages");
        helm.run(
            &root(),
            &["package", chart, "--destination", out.to_str().unwrap()],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let package = out.join(format!(
            "{}-{}.tgz",
            meta["name"].as_str().unwrap(),
            meta["version"].as_str().unwrap()
        ));
        let rendered = |from: &str| -> BTreeMap<String, Value> {
            by_key(&template(&helm, from, seed))
                .into_iter()
                .map(|(k, v)| (k, without_generated(&v)))
                .collect()
        };
        assert_eq!(
            rendered(package.to_str().unwrap()),
            rendered(chart),
            "{chart}: the packaged chart renders differently"
        );
    }
}

#[test]
fn helm_lint_passes_for_both_charts() {
    let (_dir, helm) = helm();
    for (chart, seed) in [(V2, SEED_V2), (V1, SEED_V1)] {
        for extra in [&[][..], seed] {
            let mut args = vec!["lint", "--strict", chart];
            args.extend_from_slice(extra);
            let out = helm
                .run(&root(), &args, None)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                out.contains("1 chart(s) linted, 0 chart(s) failed"),
                "{out}"
            );
        }
    }
}

#[test]
fn both_charts_render_the_same_objects_for_equivalent_values() {
    let (dir, helm) = helm();
    // Every setting of the two charts changed, once through each chart's own names.
    let custom_v2 = dir.path().join("v2.yaml");
    std::fs::write(
        &custom_v2,
        r#"
global:
  registry:
    address: registry.example.com/net/
    imagePullSecrets: [regcred]
  images:
    controller: {repository: ctl, tag: v9}
    cni: {repository: cni, tag: v9}
    ovn: {repository: ovn, tag: v9}
  imagePullPolicy: Always
masterNodesLabels:
  node-role.kubernetes.io/control-plane: null
  kube-ovn/role: master
logLevel: debug
networking: {tunnelType: vxlan, datapathType: netdev, mtu: 1300}
cni:
  nonPrimaryCNI: true
  binaryDirectory: /usr/libexec/cni
  socket: /var/run/kube-ovn/daemon.sock
controller:
  replicas: 3
  logFormat: json
  gcInterval: 30
  workers: 4
  metrics: {port: 20660}
  resources: {requests: {cpu: 1}}
agent:
  interface: eth1
  dpdkTunnelInterface: br-tun
  metrics: {port: 20665}
  resources: {requests: {cpu: 2}}
ovnCentral:
  resources: {requests: {cpu: 3}}
ovsOvn:
  resources: {requests: {cpu: 4}}
"#,
    )
    .unwrap();
    let custom_v1 = dir.path().join("v1.yaml");
    std::fs::write(
        &custom_v1,
        r#"
global:
  registry:
    address: registry.example.com/net/
    imagePullSecrets: [regcred]
  images:
    controller: {repository: ctl, tag: v9}
    cni: {repository: cni, tag: v9}
    ovn: {repository: ovn, tag: v9}
image: {pullPolicy: Always}
MASTER_NODES_LABEL: kube-ovn/role=master
LOG_LEVEL: debug
networking: {TUNNEL_TYPE: vxlan, DATAPATH_TYPE: netdev, MTU: 1300, IFACE: eth1, DPDK_TUNNEL_IFACE: br-tun}
cni_conf:
  NON_PRIMARY_CNI: true
  CNI_BIN_DIR: /usr/libexec/cni
  CNI_SOCKET: /var/run/kube-ovn/daemon.sock
  METRICS_PORT: 20665
replicaCount: 3
controller: {LOG_FORMAT: json, GC_INTERVAL: 30, WORKERS: 4, METRICS_PORT: 20660}
resources:
  kube-ovn-controller: {requests: {cpu: 1}}
  kube-ovn-cni: {requests: {cpu: 2}}
  ovn-central: {requests: {cpu: 3}}
  ovs-ovn: {requests: {cpu: 4}}
"#,
    )
    .unwrap();
    let (v2_file, v1_file) = (custom_v2.to_str().unwrap(), custom_v1.to_str().unwrap());
    let cases: [(&str, Vec<&str>, Vec<&str>); 3] = [
        ("defaults", vec![], vec![]),
        ("the manual's values", SEED_V2.to_vec(), SEED_V1.to_vec()),
        (
            "every value changed",
            vec!["-f", v2_file],
            vec!["-f", v1_file],
        ),
    ];
    for (case, v2_args, v1_args) in cases {
        let v2 = by_key(&template(&helm, V2, &v2_args));
        let v1 = by_key(&template(&helm, V1, &v1_args));
        assert_eq!(
            v2.keys().collect::<Vec<_>>(),
            v1.keys().collect::<Vec<_>>(),
            "{case}: the charts render different objects"
        );
        for (k, obj) in &v2 {
            assert_eq!(
                without_generated(obj),
                without_generated(&v1[k]),
                "{case}: {k} differs between {V2} and {V1}"
            );
        }
    }

    // The changed values really reach the objects (so the comparison above is not vacuous).
    let custom = by_key(&template(&helm, V2, &["-f", v2_file]));
    let cni = object(&custom, "DaemonSet/default/kube-ovn-cni");
    let server = container(cni, "containers", "cni-server");
    assert_eq!(
        server["image"], "registry.example.com/net/cni:v9",
        "{server}"
    );
    let args = strings(&server["args"]);
    for want in [
        "--bind-socket=/var/run/kube-ovn/daemon.sock",
        "--encap-type=vxlan",
        "--datapath-type=netdev",
        "--mtu=1300",
        "--metrics-addr=[$(HOST_IP)]:20665",
        "--iface=eth1",
        "--dpdk-tunnel-iface=br-tun",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    // With a tunnel NIC the endpoint is that NIC's address, not the node's.
    assert!(!env_from_field(server, "ENCAP_IP", "status.hostIP"));
    let mut with_node = expand(
        &args,
        &[
            ("OVN_SB_SERVICE_HOST", "10.96.0.21"),
            ("OVN_SB_SERVICE_PORT", "6642"),
            ("HOST_IP", "172.18.0.2"),
        ],
    );
    with_node.push("--node-name=node-1".to_owned());
    let opts = daemon::options::Options::try_parse_from(
        std::iter::once("kube-ovn-daemon".to_owned()).chain(with_node),
    )
    .unwrap();
    opts.validate().unwrap();
    assert_eq!(opts.tunnel_nic(), Some("eth1"));
    assert_eq!(host_path(cni, "cni-bin"), "/usr/libexec/cni");
    assert_eq!(host_path(cni, "host-socket-dir"), "/var/run/kube-ovn");
    let central = object(&custom, "Deployment/default/ovn-central");
    assert_eq!(
        central["spec"]["template"]["spec"]["nodeSelector"],
        serde_json::json!({"kubernetes.io/os": "linux", "kube-ovn/role": "master"})
    );
    let controller = object(&custom, "Deployment/default/kube-ovn-controller");
    assert_eq!(controller["spec"]["replicas"], 3);
    assert_eq!(
        controller["spec"]["template"]["spec"]["imagePullSecrets"],
        serde_json::json!([{"name": "regcred"}])
    );
}

#[test]
fn the_charts_run_our_binaries_with_flags_they_accept() {
    let (_dir, helm) = helm();
    let objects = by_key(&template(&helm, V2, SEED_V2));

    // The ovn-nb / ovn-sb Services exist: their env vars are what the args reference.
    for (svc, port) in [("ovn-nb", 6641), ("ovn-sb", 6642)] {
        let s = object(&objects, &format!("Service/kube-system/{svc}"));
        assert_eq!(s["spec"]["ports"][0]["port"], port);
        assert_eq!(s["spec"]["selector"]["app"], "ovn-central");
    }

    let deploy = object(&objects, "Deployment/kube-system/kube-ovn-controller");
    let c = container(deploy, "containers", "kube-ovn-controller");
    assert_eq!(c["command"][0], "/kube-ovn/kube-ovn-controller");
    assert!(env_from_field(c, "POD_NAME", "metadata.name"));
    assert!(env_from_field(c, "POD_NAMESPACE", "metadata.namespace"));
    // Its listeners on the pod's own address, whichever family kubelet gives.
    assert!(env_from_field(c, "POD_IP", "status.podIP"));
    for (pod_ip, metrics, webhook) in [
        ("10.244.1.7", "10.244.1.7:10660", "10.244.1.7:8443"),
        (
            "fd00:10:244::7",
            "[fd00:10:244::7]:10660",
            "[fd00:10:244::7]:8443",
        ),
    ] {
        let args = expand(
            &strings(&c["args"]),
            &[
                ("OVN_NB_SERVICE_HOST", "10.96.0.20"),
                ("OVN_NB_SERVICE_PORT", "6641"),
                ("POD_NAMESPACE", "kube-system"),
                ("POD_IP", pod_ip),
            ],
        );
        let opts = controller::options::Options::try_parse_from(
            std::iter::once("kube-ovn-controller".to_owned()).chain(args.clone()),
        )
        .unwrap_or_else(|e| panic!("kube-ovn-controller refuses the chart's args {args:?}: {e}"));
        for (flag, given, want) in [
            ("--metrics-addr", &opts.metrics_addr, metrics),
            ("--webhook-addr", &opts.webhook_addr, webhook),
        ] {
            assert_eq!(
                crds::admin::parse_addr(flag, given).unwrap(),
                Some(want.parse().unwrap()),
                "{flag}={given}"
            );
        }
    }
    // The TLS files as the pod sees them: the rendered Secret's keys, in a directory that
    // stands for /var/run/tls (validate reads them: the key must match the certificate).
    let tls_dir = tempfile::tempdir().unwrap();
    let secret = object(&objects, "Secret/kube-system/kube-ovn-controller-tls");
    for key in ["cacert", "cert", "key"] {
        let pem = openssl(
            &["base64", "-d", "-A"],
            secret["data"][key].as_str().unwrap().as_bytes(),
        );
        std::fs::write(tls_dir.path().join(key), pem).unwrap();
    }
    let args: Vec<String> = expand(
        &strings(&c["args"]),
        &[
            ("OVN_NB_SERVICE_HOST", "10.96.0.20"),
            ("OVN_NB_SERVICE_PORT", "6641"),
            ("POD_NAMESPACE", "kube-system"),
            ("POD_IP", "10.244.1.7"),
        ],
    )
    .into_iter()
    .map(|a| a.replace("/var/run/tls", tls_dir.path().to_str().unwrap()))
    .collect();
    let opts = controller::options::Options::try_parse_from(
        std::iter::once("kube-ovn-controller".to_owned()).chain(args.clone()),
    )
    .unwrap_or_else(|e| panic!("kube-ovn-controller refuses the chart's args {args:?}: {e}"));
    let tls = opts.validate().unwrap();
    assert!(tls.is_some_and(|t| !t.check_server_name));
    assert_eq!(mount(c, "ovn-tls"), "/var/run/tls");
    assert!(opts.non_primary_cni_mode && opts.leader_elect);
    assert_eq!(opts.leader_elect_namespace, "kube-system");
    assert_eq!(opts.metrics_addr, "[10.244.1.7]:10660");
    assert_eq!(
        ovn_api::rpc::parse_remotes(&opts.ovn_nb_addr).unwrap()[0].to_string(),
        "ssl:10.96.0.20:6641"
    );
    assert_eq!(c["ports"][0]["containerPort"], 10660);
    // VPC NAT gateway pods run the cni image (the agent is in its kube-ovn-daemon), as the
    // ServiceAccount the chart makes for them in kube-system.
    assert_eq!(
        opts.nat_gateway_image,
        format!(
            "docker.io/kube-ovn-rs/kube-ovn-cni:v{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    object(&objects, "ServiceAccount/kube-system/vpc-nat-gw");
    let binding = object(&objects, "ClusterRoleBinding//system:vpc-nat-gw");
    assert_eq!(binding["subjects"][0]["namespace"], "kube-system");

    // `helm uninstall`'s post-delete hook: the controller binary removes our finalizers, as an
    // account that may patch exactly the kinds that carry them, created for the hook only.
    let job = object(&objects, "Job/kube-system/kube-ovn-uninstall");
    let c = container(job, "containers", "remove-finalizers");
    let command = strings(&c["command"]);
    assert_eq!(command[0], "/kube-ovn/kube-ovn-controller");
    let opts = controller::options::Options::try_parse_from(command.iter().cloned())
        .unwrap_or_else(|e| panic!("kube-ovn-controller refuses the hook's {command:?}: {e}"));
    assert!(opts.remove_finalizers);
    assert_eq!(
        c["image"],
        deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "kube-ovn-uninstall"
    );
    let role = object(&objects, "ClusterRole//system:kube-ovn-uninstall");
    let mut plurals = strings(&role["rules"][0]["resources"]);
    plurals.sort();
    let mut ours: Vec<String> = controller::uninstall::KINDS
        .iter()
        .map(|(_, plural)| (*plural).to_owned())
        .collect();
    ours.sort();
    assert_eq!(plurals, ours);
    assert_eq!(
        strings(&role["rules"][0]["verbs"]),
        ["get", "list", "patch"]
    );
    let binding = object(&objects, "ClusterRoleBinding//system:kube-ovn-uninstall");
    assert_eq!(binding["subjects"][0]["name"], "kube-ovn-uninstall");
    for hook in [
        "Job/kube-system/kube-ovn-uninstall",
        "ServiceAccount/kube-system/kube-ovn-uninstall",
        "ClusterRole//system:kube-ovn-uninstall",
        "ClusterRoleBinding//system:kube-ovn-uninstall",
    ] {
        let annotations = &object(&objects, hook)["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/hook"], "post-delete", "{hook}");
    }

    // `helm upgrade`'s pre-upgrade hook: the new controller image applies its own CRDs (helm
    // never updates crds/), as an account that may patch exactly those, created for the hook.
    let job = object(&objects, "Job/kube-system/kube-ovn-crds");
    let c = container(job, "containers", "apply-crds");
    let command = strings(&c["command"]);
    let opts = controller::options::Options::try_parse_from(command.iter().cloned())
        .unwrap_or_else(|e| panic!("kube-ovn-controller refuses the hook's {command:?}: {e}"));
    assert!(opts.apply_crds && !opts.remove_finalizers);
    assert_eq!(
        c["image"],
        deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "kube-ovn-crds"
    );
    let role = object(&objects, "ClusterRole//system:kube-ovn-crds");
    let mut named = strings(&role["rules"][0]["resourceNames"]);
    named.sort();
    let mut ours: Vec<String> = crds::generate::crds()
        .iter()
        .map(kube::ResourceExt::name_any)
        .collect();
    ours.sort();
    assert_eq!(named, ours, "the hook's CRD names are the chart's CRDs");
    for hook in [
        "Job/kube-system/kube-ovn-crds",
        "ServiceAccount/kube-system/kube-ovn-crds",
        "ClusterRole//system:kube-ovn-crds",
        "ClusterRoleBinding//system:kube-ovn-crds",
    ] {
        let annotations = &object(&objects, hook)["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/hook"], "pre-upgrade", "{hook}");
    }

    // The daemon's socket is the NAD's server_socket in the manual.
    let nad = docs(crds::seed::NAD)
        .into_iter()
        .find(|d| d["kind"] == "NetworkAttachmentDefinition")
        .unwrap();
    let nad_config: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
    let ds = object(&objects, "DaemonSet/kube-system/kube-ovn-cni");
    let server = container(ds, "containers", "cni-server");
    assert_eq!(server["command"][0], "/kube-ovn/kube-ovn-daemon");
    assert!(env_from_field(server, "NODE_NAME", "spec.nodeName"));
    assert!(env_from_field(server, "ENCAP_IP", "status.hostIP"));
    // Metrics on the node's address (host network): never 0.0.0.0.
    assert!(env_from_field(server, "HOST_IP", "status.hostIP"));
    let mut args = expand(
        &strings(&server["args"]),
        &[
            ("OVN_SB_SERVICE_HOST", "10.96.0.21"),
            ("OVN_SB_SERVICE_PORT", "6642"),
            ("HOST_IP", "172.18.0.2"),
        ],
    );
    // What kubelet passes through NODE_NAME and ENCAP_IP, as flags (clap reads both the same).
    args.extend([
        "--node-name=node-1".to_owned(),
        "--encap-ip=172.18.0.2".to_owned(),
    ]);
    let opts = daemon::options::Options::try_parse_from(
        std::iter::once("kube-ovn-daemon".to_owned()).chain(args.clone()),
    )
    .unwrap_or_else(|e| panic!("kube-ovn-daemon refuses the chart's args {args:?}: {e}"));
    assert_eq!(
        opts.bind_socket,
        Path::new(nad_config["server_socket"].as_str().unwrap())
    );
    assert_eq!(
        crds::admin::parse_addr("--metrics-addr", &opts.metrics_addr).unwrap(),
        Some("172.18.0.2:10665".parse().unwrap())
    );
    assert_eq!(opts.ovs_db, "unix:/run/openvswitch/db.sock");
    opts.validate().unwrap();
    assert_eq!(
        ovn_api::rpc::parse_remotes(&opts.ovn_remote).unwrap()[0].to_string(),
        "ssl:10.96.0.21:6642"
    );
    // The socket dir and OVS's db.sock are the host's /run/openvswitch, which ovs-ovn shares.
    assert_eq!(mount(server, "host-run-ovs"), "/run/openvswitch");
    assert_eq!(host_path(ds, "host-run-ovs"), "/run/openvswitch");
    let ovs = object(&objects, "DaemonSet/kube-system/ovs-ovn");
    assert_eq!(host_path(ovs, "host-run-ovs"), "/run/openvswitch");
    // An upgrade rolls the CNI server (pods keep their interfaces meanwhile) but not the
    // datapath, which only the operator restarts, node by node.
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(ovs["spec"]["updateStrategy"]["type"], "OnDelete");
    // Pod netns created after the daemon started must show up inside it.
    assert_eq!(
        server["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "host-netns")
            .unwrap()["mountPropagation"],
        "HostToContainer"
    );

    // The plugin goes into the host's /opt/cni/bin, where Multus looks for `type: kube-ovn`.
    let install = container(ds, "initContainers", "install-cni");
    assert_eq!(
        strings(&install["command"]),
        ["/kube-ovn/install-cni.sh", "/opt/cni/bin"]
    );
    assert_eq!(mount(install, "cni-bin"), "/opt/cni/bin");
    assert_eq!(host_path(ds, "cni-bin"), "/opt/cni/bin");

    // Images as `cargo xtask images` names them: docker.io/kube-ovn-rs/<name>:v<version>.
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    for (workload, name, image) in [
        (
            "Deployment/kube-system/kube-ovn-controller",
            "kube-ovn-controller",
            "kube-ovn-controller",
        ),
        (
            "DaemonSet/kube-system/kube-ovn-cni",
            "cni-server",
            "kube-ovn-cni",
        ),
        (
            "DaemonSet/kube-system/ovs-ovn",
            "openvswitch",
            "kube-ovn-ovn",
        ),
        (
            "Deployment/kube-system/ovn-central",
            "ovn-central",
            "kube-ovn-ovn",
        ),
    ] {
        let c = container(object(&objects, workload), "containers", name);
        assert_eq!(
            c["image"],
            format!("docker.io/kube-ovn-rs/{image}:{version}"),
            "{workload}"
        );
    }
    // No CNI conflist anywhere: nothing mounts the host's /etc/cni/net.d.
    let all = template(&helm, V2, SEED_V2);
    assert!(
        !all.contains("/etc/cni/net.d"),
        "a chart object touches /etc/cni/net.d"
    );
}

#[test]
fn refused_values_fail_with_a_clear_message() {
    let (_dir, helm) = helm();
    let primary = "asks for primary CNI mode, which is not part of this Kube-OVN (Rust) \
                   implementation";
    let cases: &[(&str, &[&str], &str)] = &[
        (
            V2,
            &["--set", "cni.nonPrimaryCNI=false"],
            "cni.nonPrimaryCNI=false asks for primary",
        ),
        (V2, &["--set", "cni.nonPrimaryCNI=false"], primary),
        (
            V2,
            &["--set", "cni.nonPrimaryCNI=false"],
            "--set cni.nonPrimaryCNI=true",
        ),
        (
            V1,
            &["--set", "cni_conf.NON_PRIMARY_CNI=false"],
            "cni_conf.NON_PRIMARY_CNI=false asks",
        ),
        (V1, &["--set", "cni_conf.NON_PRIMARY_CNI=false"], primary),
        (V2, &["--set-string", "cni.nonPrimaryCNI=false"], primary),
        (
            V2,
            &["--set-string", "cni.nonPrimaryCNI=yes"],
            "cni.nonPrimaryCNI must be true or false",
        ),
        (
            V1,
            &["--set", "cni_conf.NON_PRIMARY_CNI=1"],
            "at '/cni_conf/NON_PRIMARY_CNI': got number, want boolean or string",
        ),
        (
            V2,
            &["--set", "networking.datapathType=dpdk"],
            "at '/networking/datapathType': value must be one of 'system', 'netdev'",
        ),
        (
            V1,
            &["--set", "networking.TUNNEL_TYPE=stt"],
            "at '/networking/TUNNEL_TYPE': value must be one of 'geneve', 'vxlan'",
        ),
        (
            V1,
            &["--set", "networking.MTU=20"],
            "at '/networking/MTU': minimum: got 20, want 68",
        ),
        (
            V2,
            &["--set", "networking.mtu=70000"],
            "at '/networking/mtu': maximum: got 70,000, want 65,535",
        ),
        (
            V2,
            &["--set", "cni.socket=kube-ovn.sock"],
            "cni.socket must be an absolute path",
        ),
        (
            V1,
            &["--set", "cni_conf.CNI_BIN_DIR=bin"],
            "cni_conf.CNI_BIN_DIR must be an absolute path",
        ),
        (
            V2,
            &["--set", "controller.replicas=0"],
            "at '/controller/replicas': minimum: got 0, want 1",
        ),
        (
            V1,
            &["--set", "controller.LOG_FORMAT=xml"],
            "at '/controller/LOG_FORMAT': value must be one of 'text', 'json'",
        ),
    ];
    for (chart, args, needle) in cases {
        let mut all = vec!["template", "kube-ovn", *chart];
        all.extend_from_slice(args);
        let out = helm.output(&root(), &all, None).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{chart} {args:?} rendered");
        assert!(
            stderr.contains(needle),
            "{chart} {args:?}: expected {needle:?} in:\n{stderr}"
        );
    }
}

/// helm's error output for `helm template` of `chart` with `args`, which must fail.
fn refusal(helm: &Helm, chart: &str, args: &[&str]) -> String {
    let mut all = vec!["template", "kube-ovn", chart];
    all.extend_from_slice(args);
    let out = helm.output(&root(), &all, None).unwrap();
    assert!(!out.status.success(), "{chart} {args:?} rendered");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Objects rendered by `chart` with `args`, without what each render makes anew.
fn rendered(helm: &Helm, chart: &str, args: &[&str]) -> BTreeMap<String, Value> {
    by_key(&template(helm, chart, args))
        .into_iter()
        .map(|(k, v)| (k, without_generated(&v)))
        .collect()
}

/// Each chart's `values.schema.json`: a wrong type, a number out of range, a value outside an
/// enum, an unknown key (at the top and inside one of our blocks) each fail before anything
/// renders, with helm's message naming the value's path.
#[test]
fn the_values_schema_refuses_wrong_types_ranges_enums_and_unknown_keys() {
    let (_dir, helm) = helm();
    let schema = "values don't meet the specifications of the schema(s)";
    let cases: &[(&str, &[&str], &str)] = &[
        // Wrong type.
        (
            V2,
            &["--set", "networking.mtu=abc"],
            "at '/networking/mtu': got string, want integer",
        ),
        (
            V1,
            &["--set", "cni_conf.METRICS_PORT=http"],
            "at '/cni_conf/METRICS_PORT': got string, want integer",
        ),
        (
            V2,
            &["--set", "agent.interface=1"],
            "at '/agent/interface': got number, want string",
        ),
        (
            V1,
            &["--set", "networking.ENABLE_SSL=yes"],
            "at '/networking/ENABLE_SSL': got string, want boolean",
        ),
        (
            V2,
            &["--set", "networking.sslSecret=My_Secret"],
            "at '/networking/sslSecret'",
        ),
        // Out of range.
        (
            V1,
            &["--set", "cni_conf.METRICS_PORT=70000"],
            "at '/cni_conf/METRICS_PORT': maximum: got 70,000, want 65,535",
        ),
        (
            V2,
            &["--set", "controller.gcInterval=0"],
            "at '/controller/gcInterval': minimum: got 0, want 1",
        ),
        (
            V1,
            &["--set", "replicaCount=0"],
            "at '/replicaCount': minimum: got 0, want 1",
        ),
        (
            V2,
            &["--set", "agent.metrics.port=0"],
            "at '/agent/metrics/port': minimum: got 0, want 1",
        ),
        // Outside an enum.
        (
            V2,
            &["--set", "global.imagePullPolicy=Sometimes"],
            "at '/global/imagePullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            V1,
            &["--set", "image.pullPolicy=always"],
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            V2,
            &["--set", "controller.logFormat=xml"],
            "at '/controller/logFormat': value must be one of 'text', 'json'",
        ),
        (
            V1,
            &["--set", "networking.NETWORK_TYPE=stt"],
            "at '/networking/NETWORK_TYPE': value must be one of 'geneve', 'vlan'",
        ),
        // Unknown keys: a misplaced one at the top, a typo inside one of our blocks.
        (
            V2,
            &["--set", "foo=1"],
            "at '': additional properties 'foo' not allowed",
        ),
        (
            V1,
            &["--set", "NON_PRIMARY_CNI=true"],
            "at '': additional properties 'NON_PRIMARY_CNI' not allowed",
        ),
        (
            V2,
            &["--set", "nonPrimaryCNI=true"],
            "at '': additional properties 'nonPrimaryCNI' not allowed",
        ),
        (
            V2,
            &["--set", "cni.nonPrimaryCni=true"],
            "at '/cni': additional properties 'nonPrimaryCni' not allowed",
        ),
        (
            V1,
            &["--set", "networking.NET_STACK=ipv4"],
            "at '/networking': additional properties 'NET_STACK' not allowed",
        ),
    ];
    for (chart, args, needle) in cases {
        let stderr = refusal(&helm, chart, args);
        assert!(
            stderr.contains(schema),
            "{chart} {args:?}: not the schema:\n{stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{chart} {args:?}: expected {needle:?} in:\n{stderr}"
        );
    }
    // A copied upstream values file: every key this chart does not know is named at once (in
    // no fixed order).
    let stderr = refusal(
        &helm,
        V1,
        &[
            "--set",
            "func.ENABLE_LB=true,namespace=kube-system,cni_conf.CNI_CONF_DIR=/etc/cni/net.d",
        ],
    );
    assert!(
        stderr.contains("at '/cni_conf': additional properties 'CNI_CONF_DIR' not allowed"),
        "{stderr}"
    );
    let top = stderr
        .lines()
        .find(|l| l.starts_with("- at '': additional properties"))
        .unwrap_or_else(|| panic!("no unknown top-level keys named in:\n{stderr}"));
    assert!(
        top.contains("'func'") && top.contains("'namespace'"),
        "{top}"
    );
    // helm lint reads the same schema.
    for (chart, seed) in [(V2, SEED_V2), (V1, SEED_V1)] {
        let mut args = vec!["lint", "--strict", chart, "--set", "foo=1"];
        args.extend_from_slice(seed);
        let out = helm.output(&root(), &args, None).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{chart}: lint passed with foo=1");
        assert!(
            stdout.contains("additional properties 'foo' not allowed"),
            "{chart}:\n{stdout}"
        );
    }
}

/// The upstream Kube-OVN keys a migrating user brings along either work with upstream's
/// meaning or fail naming this chart's key (the decisions: README.md, "Coming from upstream's
/// charts").
#[test]
fn upstream_keys_work_with_upstream_meaning_or_fail_naming_ours() {
    let (_dir, helm) = helm();
    // (chart, values, what the message must name: the upstream key, then ours).
    let refused: &[(&str, &[&str], &[&str])] = &[
        (
            V1,
            &["--set", r"MASTER_NODES=10.0.0.1\,10.0.0.2"],
            &["MASTER_NODES=10.0.0.1,10.0.0.2", "set MASTER_NODES_LABEL"],
        ),
        (
            V2,
            &["--set", "masterNodes={10.0.0.1}"],
            &["masterNodes=[10.0.0.1]", "set masterNodesLabels"],
        ),
        (
            V1,
            &["--set", "global.images.kubeovn.tag=v1.15.8"],
            &[
                "global.images.kubeovn is upstream",
                "global.images.controller, global.images.cni and global.images.ovn",
            ],
        ),
        (
            V2,
            &["--set", "global.images.kubeovn.repository=kube-ovn"],
            &[
                "global.images.kubeovn is upstream",
                "global.images.controller, global.images.cni and global.images.ovn",
            ],
        ),
        (
            V1,
            &["--set", "global.images.natgateway.tag=v1.15.8"],
            &["global.images.natgateway", "no NAT gateway image"],
        ),
        (
            V1,
            &["--set", "kube-ovn-pinger.requests.cpu=100m"],
            &["runs no kube-ovn-pinger", "resources.<component>"],
        ),
        (
            V1,
            &["--set", "kube-ovn-monitor.limits.cpu=200m"],
            &["runs no kube-ovn-monitor", "resources.<component>"],
        ),
        (
            V2,
            &["--set", "central.resources.requests.cpu=1"],
            &["central is upstream's name", "ovnCentral.resources"],
        ),
        (
            V2,
            &["--set", "image.pullPolicy=Always"],
            &["image.pullPolicy is upstream's", "global.imagePullPolicy"],
        ),
        (
            V1,
            &["--set", "networking.NETWORK_TYPE=vlan"],
            &["networking.NETWORK_TYPE=vlan", "networking.TUNNEL_TYPE"],
        ),
        (
            V2,
            &["--set", "networking.networkType=vlan"],
            &["networking.networkType=vlan", "networking.tunnelType"],
        ),
        (
            V1,
            &["--set", "HYBRID_DPDK=true"],
            &["HYBRID_DPDK=true", "networking.DATAPATH_TYPE=netdev"],
        ),
        (
            V2,
            &["--set", "ovsOvn.dpdkHybrid.enabled=true"],
            &[
                "ovsOvn.dpdkHybrid.enabled=true",
                "networking.datapathType=netdev",
            ],
        ),
    ];
    for (chart, args, needles) in refused {
        let stderr = refusal(&helm, chart, args);
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "{chart} {args:?}: expected {needle:?} in:\n{stderr}"
            );
        }
    }

    // Upstream's defaults of the same keys mean what this chart does anyway: same objects.
    let same_as_defaults: &[(&str, &[&str])] = &[
        (
            V1,
            &[
                "--set",
                "MASTER_NODES=,networking.NETWORK_TYPE=geneve",
                "--set",
                "HYBRID_DPDK=false,HUGEPAGE_SIZE_TYPE=hugepages-2Mi,HUGEPAGES=1Gi",
                "--set",
                "DPDK_IMAGE_TAG=v1.15.0-dpdk,DPDK_CPU=1000m,DPDK_MEMORY=2Gi",
            ],
        ),
        (
            V2,
            &[
                "--set",
                "masterNodes={},networking.networkType=geneve",
                "--set",
                "ovsOvn.dpdkHybrid.enabled=false,ovsOvn.dpdkHybrid.tag=v1.15.8",
            ],
        ),
    ];
    for (chart, args) in same_as_defaults {
        assert_eq!(
            rendered(&helm, chart, args),
            rendered(&helm, chart, &[]),
            "{chart} {args:?}"
        );
    }

    // v1's per-component resource blocks at the top level (upstream's place) work, merged over
    // this chart's defaults as helm merges a values file: the same as resources.<component>.
    let components = [
        (
            "kube-ovn-controller",
            "Deployment/default/kube-ovn-controller",
            "kube-ovn-controller",
        ),
        (
            "kube-ovn-cni",
            "DaemonSet/default/kube-ovn-cni",
            "cni-server",
        ),
        (
            "ovn-central",
            "Deployment/default/ovn-central",
            "ovn-central",
        ),
        ("ovs-ovn", "DaemonSet/default/ovs-ovn", "openvswitch"),
    ];
    for (component, workload, name) in components {
        let upstream = format!("{component}.requests.cpu=1500m");
        let ours = format!("resources.{component}.requests.cpu=1500m");
        let objects = rendered(&helm, V1, &["--set", &upstream]);
        assert_eq!(
            objects,
            rendered(&helm, V1, &["--set", &ours]),
            "{component}"
        );
        let resources = &container(object(&objects, workload), "containers", name)["resources"];
        assert_eq!(
            resources["requests"]["cpu"], "1500m",
            "{component}: {resources}"
        );
        assert!(
            resources["limits"]["memory"].is_string(),
            "{component}: our default limit is kept: {resources}"
        );
    }
    // Upstream's default MASTER_NODES_LABEL selects the node as upstream does.
    let objects = rendered(
        &helm,
        V1,
        &["--set", "MASTER_NODES_LABEL=kube-ovn/role=master"],
    );
    assert_eq!(
        object(&objects, "Deployment/default/ovn-central")["spec"]["template"]["spec"]["nodeSelector"]
            ["kube-ovn/role"],
        "master"
    );
}

/// Value sets in use elsewhere (the real-node tests, `cargo xtask e2e --kind`, the README's
/// real-node command, --set-string, a global of another chart in an umbrella release) pass
/// the schema; the library chart, which gets `global` and its own `kube-ovn-lib` values, too.
#[test]
fn the_value_sets_in_use_pass_the_schema() {
    let (_dir, helm) = helm();
    let cases: &[(&str, &[&str])] = &[
        (
            V1,
            &[
                "--set",
                "cni_conf.NON_PRIMARY_CNI=true",
                "--set",
                "networking.DATAPATH_TYPE=netdev",
                "--set",
                "networking.IFACE=eth1",
            ],
        ),
        (
            V2,
            &[
                "--set",
                "cni.nonPrimaryCNI=true",
                "--set",
                "networking.datapathType=netdev",
                "--set",
                "agent.interface=eth1",
            ],
        ),
        (V2, &["--set-string", "cni.nonPrimaryCNI=true"]),
        (V1, &["--set-string", "cni_conf.NON_PRIMARY_CNI=true"]),
        (V2, &["--set", "global.otherChart.enabled=true"]),
        (V1, &["--set", "global.otherChart.enabled=true"]),
        (
            V2,
            &[
                "--set",
                "masterNodesLabels.node-role\\.kubernetes\\.io/control-plane=null",
            ],
        ),
    ];
    for (chart, args) in cases {
        let objects = rendered(&helm, chart, args);
        assert!(
            objects.contains_key("DaemonSet/default/kube-ovn-cni"),
            "{chart} {args:?}"
        );
    }
    for chart in [V2, V1] {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(chart).join("values.schema.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(schema["additionalProperties"], false, "{chart}");
        // helm adds the library chart's values under its name: the schema must allow it.
        assert_eq!(
            schema["properties"]["kube-ovn-lib"]["type"], "object",
            "{chart}"
        );
        // Every default of values.yaml is a key the schema declares.
        let text = std::fs::read_to_string(root().join(chart).join("values.yaml")).unwrap();
        let values: Value = yaml_serde::from_str(&text).unwrap();
        for key in values.as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{chart}: values.yaml's {key} is not in values.schema.json"
            );
        }
    }
}

/// Installs the charts' CRDs for real and waits until every one is Established.
async fn install_chart_crds(plane: &ControlPlane) {
    let crds = root().join(V2).join("crds");
    plane
        .kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e}"));
    let api: Api<CustomResourceDefinition> = Api::all(plane.client());
    for entry in std::fs::read_dir(&crds).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let name = file.trim_end_matches(".yaml");
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 60 s"))
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_charts_pass_a_server_side_dry_run() {
    let (dir, helm) = helm();
    let plane = ControlPlane::start().await.unwrap();
    install_chart_crds(&plane).await;
    let cases: [(&str, &[&str]); 4] = [
        (V2, &["--namespace", "kube-system"]),
        (V2, SEED_V2),
        (V1, &["--namespace", "kube-system"]),
        (V1, SEED_V1),
    ];
    for (i, (chart, args)) in cases.into_iter().enumerate() {
        let rendered = template(&helm, chart, args);
        let count = docs(&rendered).len();
        let file = dir.path().join(format!("rendered-{i}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let out = plane
            .kubectl(&[
                "apply",
                "--dry-run=server",
                "--namespace=kube-system",
                "-f",
                file.to_str().unwrap(),
            ])
            .unwrap_or_else(|e| panic!("{chart} {args:?} refused by the apiserver: {e}"));
        let accepted = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted, count,
            "{chart} {args:?}: not every object accepted:\n{out}"
        );
        for want in [
            "deployment.apps/kube-ovn-controller created",
            "daemonset.apps/kube-ovn-cni created",
            "daemonset.apps/ovs-ovn created",
            "deployment.apps/ovn-central created",
            "clusterrole.rbac.authorization.k8s.io/system:kube-ovn-controller created",
        ] {
            assert!(out.contains(want), "{chart}: {want} missing:\n{out}");
        }
    }

    // The controller's and the uninstall hook's pods pass the apiserver's own "restricted"
    // Pod Security level (PodSecurity admission, enforced on kube-system here): non-root,
    // no capability, no escalation, RuntimeDefault seccomp, no host namespace or path.
    plane
        .kubectl(&[
            "label",
            "namespace",
            "kube-system",
            "pod-security.kubernetes.io/enforce=restricted",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    for sa in ["kube-ovn-controller", "kube-ovn-uninstall", "kube-ovn-crds"] {
        plane
            .kubectl(&["create", "serviceaccount", sa, "--namespace=kube-system"])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for (i, (chart, args)) in cases.into_iter().enumerate() {
        let objects = by_key(&template(&helm, chart, args));
        for workload in [
            "Deployment/kube-system/kube-ovn-controller",
            "Job/kube-system/kube-ovn-uninstall",
            "Job/kube-system/kube-ovn-crds",
        ] {
            let pod = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": format!("psa-{i}-{}", workload.rsplit('/').next().unwrap())},
                "spec": object(&objects, workload)["spec"]["template"]["spec"],
            });
            let file = dir.path().join(format!("psa-{i}.json"));
            std::fs::write(&file, pod.to_string()).unwrap();
            let out = plane
                .kubectl_command()
                .args([
                    "create",
                    "--dry-run=server",
                    "--namespace=kube-system",
                    "-f",
                ])
                .arg(&file)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.trim().is_empty(),
                "{chart} {args:?}: {workload} refused by the restricted level: {stderr}"
            );
        }
    }
}

/// The `helm install` commands of the README's install section (continuation lines joined).
fn readme_helm_installs() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut commands = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("helm install ") {
            continue;
        }
        let mut command = line.trim_end_matches('\\').to_owned();
        let mut last = line;
        while last.ends_with('\\') {
            last = lines.next().unwrap().trim();
            command.push(' ');
            command.push_str(last.trim_end_matches('\\'));
        }
        commands.push(command.split_whitespace().map(str::to_owned).collect());
    }
    commands
}

#[test]
fn the_readme_shows_the_manuals_install_commands() {
    let commands = readme_helm_installs();
    let seed = [
        "helm install kube-ovn ./charts/kube-ovn-v2 --namespace kube-system --set cni.nonPrimaryCNI=true",
        "helm install kube-ovn ./charts/kube-ovn --namespace kube-system --set cni_conf.NON_PRIMARY_CNI=true",
    ];
    let found: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
    assert_eq!(found, seed, "README.md's helm install commands");
}

/// Runs one of the README's `helm install` commands, exactly, against a fresh control plane,
/// then checks what it created and that it uninstalls.
async fn helm_install_as_written(chart: &str) {
    let command = readme_helm_installs()
        .into_iter()
        .find(|c| c[3] == format!("./{chart}"))
        .unwrap_or_else(|| panic!("README.md has no helm install of ./{chart}"));
    let (dir, helm) = helm();
    let plane = ControlPlane::start().await.unwrap();
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    // The same command with an unknown key fails the install, naming the key, creating nothing.
    let mut unknown = args.clone();
    unknown.extend(["--set", "nonPrimaryCni=true"]);
    let refused = helm
        .output(&root(), &unknown, Some(plane.kubeconfig()))
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{unknown:?} installed");
    assert!(
        stderr.contains("at '': additional properties 'nonPrimaryCni' not allowed"),
        "{stderr}"
    );
    let releases = helm
        .run(
            &root(),
            &["list", "--all", "--namespace", "kube-system", "--short"],
            Some(plane.kubeconfig()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        releases.trim().is_empty(),
        "a release after the refusal: {releases}"
    );
    let out = helm
        .run(&root(), &args, Some(plane.kubeconfig()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(
        out.contains("server_socket"),
        "NOTES should show a NAD:\n{out}"
    );

    // The CRDs from the chart's crds/ dir are served.
    let crds: Api<CustomResourceDefinition> = Api::all(plane.client());
    for name in ["subnets.kubeovn.io", "vpcs.kubeovn.io", "ips.kubeovn.io"] {
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established"))
        .unwrap();
    }
    let deployments: Api<Deployment> = Api::namespaced(plane.client(), "kube-system");
    let controller = deployments.get("kube-ovn-controller").await.unwrap();
    let args = controller.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&"--non-primary-cni-mode=true".to_owned()),
        "{args:?}"
    );
    // What each binary does with the API is allowed to its service account (the NAD CRD is
    // Multus', installed here as Multus would).
    let nad_crd = <crds::NetworkAttachmentDefinition as kube::CustomResourceExt>::crd();
    crds.create(&Default::default(), &nad_crd).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            crds.clone(),
            "network-attachment-definitions.k8s.cni.cncf.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    // (`x/status` is the subresource; rbac_of_chart_* asks every question both ways.)
    let can = |sa: &str, verb: &str, resource: &str, ns: Option<&'static str>| {
        let scope = ns.map_or(Scope::Cluster, Scope::In);
        assert!(
            can_i(&plane, "kube-system", sa, scope, verb, resource),
            "{sa} may not {verb} {resource} ({scope:?})"
        );
    };
    for (verb, resource) in [
        ("watch", "pods"),
        ("patch", "pods"),
        ("create", "events.events.k8s.io"),
        ("create", "ips.kubeovn.io"),
        ("patch", "ips.kubeovn.io"),
        ("delete", "ips.kubeovn.io"),
        ("patch", "subnets.kubeovn.io/status"),
        ("patch", "vpcs.kubeovn.io/status"),
        ("patch", "subnets.kubeovn.io"),
        ("watch", "network-attachment-definitions.k8s.cni.cncf.io"),
        ("get", "statefulsets.apps"),
        ("patch", "iptables-eips.kubeovn.io"),
        ("patch", "iptables-dnat-rules.kubeovn.io/status"),
    ] {
        can("kube-ovn-controller", verb, resource, None);
    }
    // The NAT gateways' StatefulSets: kube-system's only (rbac_of_chart_* checks the rest).
    for verb in ["create", "patch", "delete", "watch"] {
        can(
            "kube-ovn-controller",
            verb,
            "statefulsets.apps",
            Some("kube-system"),
        );
    }
    // The NAT gateway agent: reads its gateway's objects, writes their status, nothing more.
    // (`kubectl auth can-i` answers on stdout, "no" with exit status 1; `x/status` is a
    // subresource here, not an object named "status".)
    let agent_may_in = |namespace: &str, verb: &str, resource: &str| {
        let mut cmd = plane.kubectl_command();
        cmd.args(["auth", "can-i", verb, "-n", namespace])
            .arg("--as=system:serviceaccount:kube-system:vpc-nat-gw");
        match resource.split_once('/') {
            Some((r, sub)) => cmd.args([r.to_owned(), format!("--subresource={sub}")]),
            None => cmd.arg(resource),
        };
        let out = cmd.output().unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            answer == "yes" || answer == "no",
            "{verb} {resource}: {out:?}"
        );
        answer == "yes"
    };
    let agent_may = |verb: &str, resource: &str| agent_may_in("default", verb, resource);
    // Its own pod, watched by name: pods of kube-system only (a Role there).
    for verb in ["list", "watch"] {
        assert!(
            agent_may_in("kube-system", verb, "pods"),
            "vpc-nat-gw may not {verb} pods in kube-system"
        );
        assert!(
            !agent_may(verb, "pods"),
            "vpc-nat-gw may {verb} pods outside kube-system"
        );
    }
    for (verb, resource) in [
        ("watch", "vpc-nat-gateways.kubeovn.io"),
        ("watch", "iptables-eips.kubeovn.io"),
        ("watch", "iptables-fip-rules.kubeovn.io"),
        ("watch", "iptables-snat-rules.kubeovn.io"),
        ("watch", "iptables-dnat-rules.kubeovn.io"),
        ("list", "subnets.kubeovn.io"),
        ("watch", "qos-policies.kubeovn.io"),
        ("patch", "iptables-eips.kubeovn.io/status"),
        ("patch", "iptables-fip-rules.kubeovn.io/status"),
        ("patch", "iptables-snat-rules.kubeovn.io/status"),
        ("patch", "iptables-dnat-rules.kubeovn.io/status"),
    ] {
        assert!(
            agent_may(verb, resource),
            "vpc-nat-gw may not {verb} {resource}"
        );
    }
    for (verb, resource) in [
        ("patch", "iptables-eips.kubeovn.io"),
        ("patch", "vpc-nat-gateways.kubeovn.io/status"),
        ("patch", "pods"),
        ("create", "statefulsets.apps"),
        ("list", "secrets"),
    ] {
        assert!(
            !agent_may(verb, resource),
            "vpc-nat-gw may {verb} {resource}"
        );
    }
    can(
        "kube-ovn-controller",
        "update",
        "leases.coordination.k8s.io",
        Some("kube-system"),
    );
    for (verb, resource) in [("watch", "pods"), ("get", "subnets.kubeovn.io")] {
        can("kube-ovn-cni", verb, resource, None);
    }
    deployments.get("ovn-central").await.unwrap();
    let daemonsets: Api<DaemonSet> = Api::namespaced(plane.client(), "kube-system");
    for name in ["kube-ovn-cni", "ovs-ovn"] {
        daemonsets.get(name).await.unwrap();
    }
    // The manual's Vpc and Subnet are accepted once the chart's CRDs are in.
    let file = dir.path().join("vpc-subnet.yaml");
    std::fs::write(&file, crds::seed::VPC_AND_SUBNET).unwrap();
    let out = plane
        .kubectl(&["apply", "-f", file.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("subnet.kubeovn.io/subnet-secondary created"),
        "{out}"
    );

    let out = helm
        .run(
            &root(),
            &[
                "uninstall",
                "kube-ovn",
                "--namespace",
                "kube-system",
                "--wait",
                // No node here can run the post-delete hook's Job; the real-node test runs it.
                "--no-hooks",
            ],
            Some(plane.kubeconfig()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("uninstalled"), "{out}");
    assert!(
        deployments
            .get_opt("kube-ovn-controller")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manuals_helm_install_of_chart_v2_works_as_written() {
    helm_install_as_written(V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manuals_helm_install_of_chart_v1_works_as_written() {
    helm_install_as_written(V1).await;
}

/// `openssl <args>` with `input` on stdin; its stdout.
fn openssl(args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (Debian package openssl)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_webhook_certificate_is_for_its_service_and_trusted_by_its_configuration() {
    let (dir, helm) = helm();
    for (chart, args) in [(V2, SEED_V2.to_vec()), (V1, SEED_V1.to_vec())] {
        let mut all = vec!["--namespace", "kube-system"];
        all.extend(args);
        let objects = by_key(&template(&helm, chart, &all));
        let secret = object(&objects, "Secret/kube-system/kube-ovn-webhook-tls");
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let pem = |key: &str| {
            openssl(
                &["base64", "-d", "-A"],
                secret["data"][key].as_str().unwrap().as_bytes(),
            )
        };
        let (ca, cert, key) = (pem("ca.crt"), pem("tls.crt"), pem("tls.key"));
        assert!(key.contains("PRIVATE KEY"), "{chart}");
        let hooks = object(&objects, "MutatingWebhookConfiguration//kube-ovn-webhook");
        let hook = &hooks["webhooks"][0];
        assert_eq!(
            hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
            "{chart}: the apiserver trusts the CA that signed the certificate"
        );
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, &ca).unwrap();
        let verified = openssl(
            &["verify", "-CAfile", ca_file.to_str().unwrap()],
            cert.as_bytes(),
        );
        assert!(verified.contains("OK"), "{chart}: {verified}");
        let names = openssl(
            &["x509", "-noout", "-ext", "subjectAltName"],
            cert.as_bytes(),
        );
        assert!(
            names.contains("DNS:kube-ovn-webhook.kube-system.svc"),
            "{chart}: {names}"
        );
        // The configuration calls the Service, the Service reaches the controller's port.
        let service = &hook["clientConfig"]["service"];
        assert_eq!(service["name"], "kube-ovn-webhook");
        assert_eq!(service["namespace"], "kube-system");
        assert_eq!(service["path"], controller::webhook::PATH);
        assert_eq!(
            hook["failurePolicy"], "Ignore",
            "{chart}: never blocks a pod"
        );
        let svc = object(&objects, "Service/kube-system/kube-ovn-webhook");
        assert_eq!(svc["spec"]["selector"]["app"], "kube-ovn-controller");
        let deployment = object(&objects, "Deployment/kube-system/kube-ovn-controller");
        let c = container(deployment, "containers", "kube-ovn-controller");
        let args = strings(&c["args"]);
        assert!(
            args.contains(&"--webhook-addr=[$(POD_IP)]:8443".to_owned()),
            "{args:?}"
        );
        assert!(
            c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "webhook" && p["containerPort"] == 8443),
            "{c}"
        );
        assert_eq!(mount(c, "webhook-tls"), "/etc/kube-ovn/webhook");
    }
}

/// OVN's TLS (networking.enableSsl / ENABLE_SSL, on by default): one CA per install, one
/// certificate per component signed by it, each mounted by its own workload only, key
/// matching certificate; false renders plain TCP and no Secret; sslSecret / SSL_SECRET names
/// the user's Secret, which every component mounts, and the chart makes none.
#[test]
fn ovn_tls_is_on_by_default_with_a_certificate_per_component() {
    let (dir, helm) = helm();
    let pod = |w: &Value| w["spec"]["template"]["spec"].clone();
    let tls_volume = |w: &Value| {
        pod(w)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "ovn-tls")
            .cloned()
    };
    let containers = [
        ("Deployment/kube-system/ovn-central", "ovn-central"),
        ("DaemonSet/kube-system/ovs-ovn", "openvswitch"),
        (
            "Deployment/kube-system/kube-ovn-controller",
            "kube-ovn-controller",
        ),
    ];
    let decode = |secret: &Value, key: &str| {
        openssl(
            &["base64", "-d", "-A"],
            secret["data"][key].as_str().unwrap().as_bytes(),
        )
    };
    for (chart, args) in [(V2, SEED_V2.to_vec()), (V1, SEED_V1.to_vec())] {
        let mut all = vec!["--namespace", "kube-system"];
        all.extend(args.iter().copied());
        let objects = by_key(&template(&helm, chart, &all));
        let ca_secret = object(&objects, &format!("Secret/kube-system/{OVN_CA_SECRET}"));
        let ca = decode(ca_secret, "cacert");
        assert!(
            decode(ca_secret, "cakey").contains("PRIVATE KEY"),
            "{chart}"
        );
        let ca_file = dir.path().join("ovn-ca.pem");
        std::fs::write(&ca_file, &ca).unwrap();
        let mut certs = Vec::new();
        for ((workload, secret_name), (_, container_name)) in OVN_TLS.iter().zip(containers) {
            let w = object(&objects, workload);
            let volume = tls_volume(w).unwrap_or_else(|| panic!("{chart} {workload}"));
            assert_eq!(volume["secret"]["secretName"], *secret_name, "{chart}");
            assert_eq!(volume["secret"]["defaultMode"], 0o400, "{chart} {workload}");
            let c = container(w, "containers", container_name);
            assert_eq!(mount(c, "ovn-tls"), "/var/run/tls", "{chart} {workload}");
            let secret = object(&objects, &format!("Secret/kube-system/{secret_name}"));
            assert_eq!(decode(secret, "cacert"), ca, "{chart} {secret_name}");
            let cert = decode(secret, "cert");
            let verified = openssl(
                &["verify", "-CAfile", ca_file.to_str().unwrap()],
                cert.as_bytes(),
            );
            assert!(verified.contains("OK"), "{chart} {secret_name}: {verified}");
            let subject = openssl(&["x509", "-noout", "-subject"], cert.as_bytes());
            let component = secret_name.trim_end_matches("-tls");
            assert!(
                subject.contains(&format!("CN = {component}")),
                "{chart}: {subject}"
            );
            let public = openssl(&["x509", "-noout", "-pubkey"], cert.as_bytes());
            let of_key = openssl(&["pkey", "-pubout"], decode(secret, "key").as_bytes());
            assert_eq!(public, of_key, "{chart} {secret_name}: key and certificate");
            certs.push(cert);
            // The non-root pods read their key (mode 0400) through their group.
            if !workload.starts_with("DaemonSet") {
                assert_eq!(pod(w)["securityContext"]["fsGroup"], 65534, "{chart}");
            }
            if container_name != "kube-ovn-controller" {
                assert!(
                    c["env"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["name"] == "ENABLE_SSL" && e["value"] == "true"),
                    "{chart} {workload}"
                );
            }
        }
        certs.sort();
        certs.dedup();
        assert_eq!(certs.len(), 3, "{chart}: one certificate per component");
    }

    // Off: plain TCP, no OVN Secret, nothing mounted.
    for (chart, off) in [
        (V2, "networking.enableSsl=false"),
        (V1, "networking.ENABLE_SSL=false"),
    ] {
        let objects = by_key(&template(
            &helm,
            chart,
            &["--namespace", "kube-system", "--set", off],
        ));
        assert!(
            !objects.contains_key(&format!("Secret/kube-system/{OVN_CA_SECRET}")),
            "{chart}"
        );
        for ((workload, secret_name), (_, container_name)) in OVN_TLS.iter().zip(containers) {
            assert!(
                !objects.contains_key(&format!("Secret/kube-system/{secret_name}")),
                "{chart}"
            );
            let w = object(&objects, workload);
            assert!(tls_volume(w).is_none(), "{chart} {workload}");
            let c = container(w, "containers", container_name);
            let text = serde_json::to_string(c).unwrap();
            assert!(
                !text.contains("ssl:") && !text.contains("/var/run/tls"),
                "{chart} {workload}: {text}"
            );
        }
        let controller = container(
            object(&objects, "Deployment/kube-system/kube-ovn-controller"),
            "containers",
            "kube-ovn-controller",
        );
        assert!(strings(&controller["args"]).contains(
            &"--ovn-nb-addr=tcp:[$(OVN_NB_SERVICE_HOST)]:$(OVN_NB_SERVICE_PORT)".to_owned()
        ));
        let cni = container(
            object(&objects, "DaemonSet/kube-system/kube-ovn-cni"),
            "containers",
            "cni-server",
        );
        assert!(strings(&cni["args"]).contains(
            &"--ovn-remote=tcp:[$(OVN_SB_SERVICE_HOST)]:$(OVN_SB_SERVICE_PORT)".to_owned()
        ));
    }

    // The user's Secret: every component mounts it; the chart makes none of its own.
    for (chart, mine) in [
        (V2, "networking.sslSecret=kube-ovn-tls"),
        (V1, "networking.SSL_SECRET=kube-ovn-tls"),
    ] {
        let objects = by_key(&template(
            &helm,
            chart,
            &["--namespace", "kube-system", "--set", mine],
        ));
        assert!(
            !objects.contains_key(&format!("Secret/kube-system/{OVN_CA_SECRET}")),
            "{chart}"
        );
        for (workload, secret_name) in OVN_TLS {
            assert!(
                !objects.contains_key(&format!("Secret/kube-system/{secret_name}")),
                "{chart}"
            );
            let volume = tls_volume(object(&objects, workload)).unwrap();
            assert_eq!(volume["secret"]["secretName"], "kube-ovn-tls", "{chart}");
        }
    }
}

/// Both charts render the MultiNetworkPolicy CRD (the generated file, kept by helm on
/// uninstall) unless `multiNetworkPolicy.installCRD=false`; the controller may read policies
/// and nothing more.
#[test]
fn the_multi_network_policy_crd_is_installed_unless_the_value_says_no() {
    let (_dir, helm) = helm();
    let crd_key = "CustomResourceDefinition//multi-networkpolicies.k8s.cni.cncf.io";
    let generated = crds::generate::optional_crds().remove(0);
    for chart in ["charts/kube-ovn-v2", "charts/kube-ovn"] {
        let objects = rendered(&helm, chart, &[]);
        let crd = object(&objects, crd_key);
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{chart}"
        );
        assert_eq!(
            crd["spec"]["names"]["kind"], "MultiNetworkPolicy",
            "{chart}"
        );
        assert_eq!(
            crd["spec"]["versions"][0]["name"].as_str(),
            generated.spec.versions.first().map(|v| v.name.as_str()),
            "{chart}"
        );
        let role = object(&objects, "ClusterRole//system:kube-ovn-controller");
        let rule = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| strings(&r["resources"]).contains(&"multi-networkpolicies".to_owned()))
            .unwrap_or_else(|| panic!("{chart}: no rule for multi-networkpolicies"));
        assert_eq!(strings(&rule["verbs"]), ["get", "list", "watch"], "{chart}");
        let without = rendered(
            &helm,
            chart,
            &["--set", "multiNetworkPolicy.installCRD=false"],
        );
        assert!(
            !without.contains_key(crd_key),
            "{chart}: CRD rendered with installCRD=false"
        );
        assert_eq!(
            without.len() + 1,
            objects.len(),
            "{chart}: only the CRD goes"
        );
    }
}

/// Where a `kubectl auth can-i` question is asked.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// Every namespace at once (`--all-namespaces`): a ClusterRole's grant.
    Cluster,
    /// One namespace.
    In(&'static str),
}

/// `kubectl auth can-i <verb> <resource> --as=system:serviceaccount:<ns>:<sa>`, where a
/// `resource` of `kind/sub` asks about the subresource `sub`. Returns the answer; anything
/// but `yes` or `no` fails the test.
fn can_i(
    plane: &ControlPlane,
    ns: &str,
    sa: &str,
    scope: Scope,
    verb: &str,
    resource: &str,
) -> bool {
    let mut cmd = plane.kubectl_command();
    cmd.args(["auth", "can-i", verb])
        .arg(format!("--as=system:serviceaccount:{ns}:{sa}"));
    match resource.split_once('/') {
        Some((r, sub)) => cmd.args([r.to_owned(), format!("--subresource={sub}")]),
        None => cmd.arg(resource),
    };
    match scope {
        Scope::Cluster => cmd.arg("--all-namespaces"),
        Scope::In(namespace) => cmd.args(["--namespace", namespace]),
    };
    let out = cmd.output().unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // Exit status 1 with "no" is kubectl's way of saying no; a warning (an unknown resource
    // type, a typo here) is a failure of the test, not an answer.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        (answer == "yes" || answer == "no") && stderr.trim().is_empty(),
        "can-i {verb} {resource} as {sa}: {out:?}"
    );
    answer == "yes"
}

/// Every kind the controller reconciles (`controller/src/run.rs`): it reads each one.
const OUR_KINDS: [&str; 11] = [
    "vpcs.kubeovn.io",
    "subnets.kubeovn.io",
    "ips.kubeovn.io",
    "ippools.kubeovn.io",
    "vpc-nat-gateways.kubeovn.io",
    "iptables-eips.kubeovn.io",
    "iptables-fip-rules.kubeovn.io",
    "iptables-snat-rules.kubeovn.io",
    "iptables-dnat-rules.kubeovn.io",
    "security-groups.kubeovn.io",
    "qos-policies.kubeovn.io",
];

/// `kubectl auth can-i <verb> <resource>/<name>` as service account `sa` of kube-system
/// (cluster-scoped resources), for rights limited by `resourceNames`.
fn can_i_named(plane: &ControlPlane, sa: &str, verb: &str, resource: &str, name: &str) -> bool {
    let out = plane
        .kubectl_command()
        .args(["auth", "can-i", verb, &format!("{resource}/{name}")])
        .arg(format!("--as=system:serviceaccount:kube-system:{sa}"))
        .arg("--all-namespaces")
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        (answer == "yes" || answer == "no") && stderr.trim().is_empty(),
        "can-i {verb} {resource}/{name} as {sa}: {out:?}"
    );
    answer == "yes"
}

/// What each service account must be able to do: one row per call the binary makes (the
/// files named are where), in the scope it makes it.
fn rbac_must() -> Vec<(&'static str, Scope, &'static str, &'static str)> {
    use Scope::{Cluster, In};
    let mut must = Vec::new();
    let ctl = "kube-ovn-controller";
    // pod.rs (annotations patch), run.rs (pod watcher), gc.rs and ip.rs (get by name).
    for verb in ["get", "list", "watch", "patch"] {
        must.push((ctl, Cluster, verb, "pods"));
    }
    // multi_network_policy.rs: the namespace watcher of namespaceSelectors.
    for verb in ["list", "watch"] {
        must.push((ctl, Cluster, verb, "namespaces"));
    }
    // context.rs: kube::runtime::events::Recorder (events.k8s.io/v1, created, then patched
    // as a series), in the involved object's namespace ("default" for cluster-scoped ones).
    for verb in ["create", "patch"] {
        must.push((ctl, Cluster, verb, "events.events.k8s.io"));
    }
    for kind in OUR_KINDS {
        for verb in ["get", "list", "watch"] {
            must.push((ctl, Cluster, verb, kind));
        }
    }
    // Finalizers (reconciler.rs, ip.rs), the EIP's spec.v4ip (nat_rules.rs), the IP records
    // (ip.rs: create, server-side apply, delete; gc.rs).
    for kind in [
        "vpcs.kubeovn.io",
        "subnets.kubeovn.io",
        "ips.kubeovn.io",
        "ippools.kubeovn.io",
        "vpc-nat-gateways.kubeovn.io",
        "iptables-eips.kubeovn.io",
        "security-groups.kubeovn.io",
    ] {
        must.push((ctl, Cluster, "patch", kind));
    }
    must.push((ctl, Cluster, "create", "ips.kubeovn.io"));
    must.push((ctl, Cluster, "delete", "ips.kubeovn.io"));
    // status.rs (server-side apply of status), nat_rules.rs (the rules' conditions).
    for status in [
        "vpcs.kubeovn.io/status",
        "subnets.kubeovn.io/status",
        "ippools.kubeovn.io/status",
        "vpc-nat-gateways.kubeovn.io/status",
        "iptables-eips.kubeovn.io/status",
        "iptables-fip-rules.kubeovn.io/status",
        "iptables-snat-rules.kubeovn.io/status",
        "iptables-dnat-rules.kubeovn.io/status",
        "security-groups.kubeovn.io/status",
    ] {
        must.push((ctl, Cluster, "patch", status));
    }
    for kind in [
        "network-attachment-definitions.k8s.cni.cncf.io",
        "multi-networkpolicies.k8s.cni.cncf.io",
    ] {
        for verb in ["get", "list", "watch"] {
            must.push((ctl, Cluster, verb, kind));
        }
    }
    // gc.rs: does the pod's StatefulSet still want it (any namespace, by name).
    must.push((ctl, Cluster, "get", "statefulsets.apps"));
    // nat_gateway.rs: its gateways' StatefulSets, in their namespace only.
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        must.push((
            ctl,
            In(controller::nat_gateway::NAMESPACE),
            verb,
            "statefulsets.apps",
        ));
    }
    // leader.rs: get_opt, create, replace of its Lease.
    for verb in ["get", "create", "update"] {
        must.push((ctl, In("kube-system"), verb, "leases.coordination.k8s.io"));
    }

    let cni = "kube-ovn-cni";
    // pods.rs: await_condition (a watch by name: list + watch), get_metadata_opt; the
    // Subnet's MTU by get_opt.
    for verb in ["get", "list", "watch"] {
        must.push((cni, Cluster, verb, "pods"));
    }
    must.push((cni, Cluster, "get", "subnets.kubeovn.io"));
    // uninstall.rs: its own DaemonSet at SIGTERM.
    must.push((cni, In("kube-system"), "get", "daemonsets.apps"));

    let agent = "vpc-nat-gw";
    // natgw/inputs.rs: its own pod (kube-system) and gateway by name, the rest whole.
    for verb in ["list", "watch"] {
        must.push((agent, In("kube-system"), verb, "pods"));
        for kind in [
            "vpc-nat-gateways.kubeovn.io",
            "subnets.kubeovn.io",
            "iptables-eips.kubeovn.io",
            "iptables-fip-rules.kubeovn.io",
            "iptables-snat-rules.kubeovn.io",
            "iptables-dnat-rules.kubeovn.io",
            "qos-policies.kubeovn.io",
        ] {
            must.push((agent, Cluster, verb, kind));
        }
    }
    // natgw/status.rs: server-side apply of the rules' status.
    for status in [
        "iptables-eips.kubeovn.io/status",
        "iptables-fip-rules.kubeovn.io/status",
        "iptables-snat-rules.kubeovn.io/status",
        "iptables-dnat-rules.kubeovn.io/status",
    ] {
        must.push((agent, Cluster, "patch", status));
    }

    // crd_upgrade.rs (the pre-upgrade hook): server-side apply of a CRD that may not exist yet
    // (create); get, await_condition (list + watch by name) and apply (patch) of ours are
    // checked by name in `rbac_both_ways`.
    must.push((
        "kube-ovn-crds",
        Cluster,
        "create",
        "customresourcedefinitions.apiextensions.k8s.io",
    ));

    // uninstall.rs (the post-delete hook): list every kind that carries our finalizers, get
    // and patch each object.
    for (_, plural) in controller::uninstall::KINDS {
        let resource: &'static str = Box::leak(format!("{plural}.kubeovn.io").into_boxed_str());
        for verb in ["get", "list", "patch"] {
            must.push(("kube-ovn-uninstall", Cluster, verb, resource));
        }
    }
    must
}

/// What no service account of ours may do, and what each must not do beyond its calls: the
/// rights an attacker wants from a network plugin's token (Secrets, exec, nodes, RBAC,
/// impersonation, workloads) and every write the trimmed rules dropped.
fn rbac_must_not() -> Vec<(&'static str, Scope, &'static str, &'static str)> {
    use Scope::{Cluster, In};
    const ALL: [&str; 6] = [
        "kube-ovn-controller",
        "kube-ovn-cni",
        "kube-ovn-ovn",
        "vpc-nat-gw",
        "kube-ovn-uninstall",
        "kube-ovn-crds",
    ];
    let mut not = Vec::new();
    for sa in ALL {
        for (scope, verb, resource) in [
            (Cluster, "get", "secrets"),
            (Cluster, "list", "secrets"),
            (In("kube-system"), "get", "secrets"),
            (In("kube-system"), "watch", "secrets"),
            (In("kube-system"), "get", "configmaps"),
            (Cluster, "create", "pods/exec"),
            (Cluster, "create", "pods/attach"),
            (Cluster, "create", "pods/portforward"),
            (Cluster, "create", "pods/eviction"),
            (Cluster, "create", "pods"),
            (Cluster, "delete", "pods"),
            (Cluster, "update", "pods"),
            (Cluster, "get", "nodes"),
            (Cluster, "list", "nodes"),
            (Cluster, "patch", "nodes"),
            (Cluster, "delete", "nodes"),
            (Cluster, "get", "nodes/proxy"),
            (Cluster, "create", "namespaces"),
            (Cluster, "delete", "namespaces"),
            (Cluster, "create", "serviceaccounts/token"),
            (Cluster, "impersonate", "serviceaccounts"),
            (Cluster, "create", "clusterroles.rbac.authorization.k8s.io"),
            (Cluster, "bind", "clusterroles.rbac.authorization.k8s.io"),
            (
                Cluster,
                "escalate",
                "clusterroles.rbac.authorization.k8s.io",
            ),
            (Cluster, "create", "rolebindings.rbac.authorization.k8s.io"),
            (In("kube-system"), "create", "daemonsets.apps"),
            (In("kube-system"), "patch", "daemonsets.apps"),
            (In("kube-system"), "create", "deployments.apps"),
            (Cluster, "create", "statefulsets.apps"),
            (In("default"), "patch", "statefulsets.apps"),
            (In("default"), "delete", "statefulsets.apps"),
            (Cluster, "list", "statefulsets.apps"),
            (
                Cluster,
                "create",
                "customresourcedefinitions.apiextensions.k8s.io",
            ),
            (
                Cluster,
                "patch",
                "mutatingwebhookconfigurations.admissionregistration.k8s.io",
            ),
            (
                Cluster,
                "create",
                "network-attachment-definitions.k8s.cni.cncf.io",
            ),
            (
                Cluster,
                "patch",
                "network-attachment-definitions.k8s.cni.cncf.io",
            ),
            (Cluster, "delete", "multi-networkpolicies.k8s.cni.cncf.io"),
            (Cluster, "create", "events"),
            (In("default"), "update", "leases.coordination.k8s.io"),
            (In("kube-system"), "delete", "leases.coordination.k8s.io"),
            (Cluster, "update", "subnets.kubeovn.io"),
            (Cluster, "update", "vpcs.kubeovn.io"),
            (Cluster, "update", "ips.kubeovn.io"),
            (Cluster, "create", "subnets.kubeovn.io"),
            (Cluster, "delete", "subnets.kubeovn.io"),
            (Cluster, "create", "vpcs.kubeovn.io"),
            (Cluster, "delete", "vpcs.kubeovn.io"),
            (Cluster, "delete", "security-groups.kubeovn.io"),
            (Cluster, "deletecollection", "ips.kubeovn.io"),
            (Cluster, "patch", "qos-policies.kubeovn.io"),
            (Cluster, "patch", "iptables-fip-rules.kubeovn.io"),
            (Cluster, "get", "subnets.kubeovn.io/status"),
            (Cluster, "update", "subnets.kubeovn.io/status"),
            (Cluster, "patch", "ips.kubeovn.io/status"),
            (Cluster, "patch", "qos-policies.kubeovn.io/status"),
        ] {
            // The CRD hook's one unnamed right (create cannot be limited to names).
            if sa == "kube-ovn-crds"
                && (verb, resource) == ("create", "customresourcedefinitions.apiextensions.k8s.io")
            {
                continue;
            }
            not.push((sa, scope, verb, resource));
        }
    }
    // The CRD hook: no other CRD, no delete, none of the objects.
    for (scope, verb, resource) in [
        (
            Cluster,
            "list",
            "customresourcedefinitions.apiextensions.k8s.io",
        ),
        (
            Cluster,
            "patch",
            "customresourcedefinitions.apiextensions.k8s.io",
        ),
        (
            Cluster,
            "delete",
            "customresourcedefinitions.apiextensions.k8s.io",
        ),
        (Cluster, "get", "subnets.kubeovn.io"),
        (Cluster, "patch", "subnets.kubeovn.io"),
    ] {
        not.push(("kube-ovn-crds", scope, verb, resource));
    }
    // Beyond its calls, per account: the node daemon writes nothing in the API.
    for (scope, verb, resource) in [
        (Cluster, "patch", "pods"),
        (Cluster, "list", "subnets.kubeovn.io"),
        (Cluster, "get", "ips.kubeovn.io"),
        (In("default"), "get", "daemonsets.apps"),
        (Cluster, "create", "events.events.k8s.io"),
    ] {
        not.push(("kube-ovn-cni", scope, verb, resource));
    }
    // The NAT gateway agent: its own namespace's pods, read only; status, never spec.
    for (scope, verb, resource) in [
        (In("default"), "list", "pods"),
        (In("kube-system"), "get", "pods"),
        (In("kube-system"), "patch", "pods"),
        (Cluster, "patch", "iptables-eips.kubeovn.io"),
        (Cluster, "patch", "vpc-nat-gateways.kubeovn.io/status"),
        (Cluster, "get", "vpcs.kubeovn.io"),
        (Cluster, "create", "events.events.k8s.io"),
    ] {
        not.push(("vpc-nat-gw", scope, verb, resource));
    }
    // OVN central and ovs-ovn never call the API (and mount no token).
    for (scope, verb, resource) in [
        (Cluster, "get", "pods"),
        (Cluster, "list", "subnets.kubeovn.io"),
        (Cluster, "create", "events.events.k8s.io"),
    ] {
        not.push(("kube-ovn-ovn", scope, verb, resource));
    }
    // The uninstall hook removes finalizers, nothing else.
    for (scope, verb, resource) in [
        (Cluster, "delete", "ips.kubeovn.io"),
        (Cluster, "get", "pods"),
        (Cluster, "patch", "pods"),
    ] {
        not.push(("kube-ovn-uninstall", scope, verb, resource));
    }
    not
}

/// The chart rendered with the manual's values (hooks included) applied for real to a fresh
/// kube-apiserver, then every service account asked, both ways: what its binary calls is
/// allowed; what it must not do is refused.
async fn rbac_both_ways(chart: &str, args: &[&str]) {
    let (dir, helm) = helm();
    let plane = ControlPlane::start().await.unwrap();
    install_chart_crds(&plane).await;
    let nad_crd = <crds::NetworkAttachmentDefinition as kube::CustomResourceExt>::crd();
    let crds: Api<CustomResourceDefinition> = Api::all(plane.client());
    crds.create(&Default::default(), &nad_crd).await.unwrap();
    let rendered = template(&helm, chart, args);
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    plane
        .kubectl(&[
            "apply",
            "--server-side",
            "--namespace=kube-system",
            "-f",
            file.to_str().unwrap(),
        ])
        .unwrap_or_else(|e| panic!("{chart}: {e}"));
    for name in [
        "network-attachment-definitions.k8s.cni.cncf.io",
        "multi-networkpolicies.k8s.cni.cncf.io",
    ] {
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established"))
        .unwrap();
    }
    let started = std::time::Instant::now();
    let mut refused = Vec::new();
    let must = rbac_must();
    for (sa, scope, verb, resource) in &must {
        if !can_i(&plane, "kube-system", sa, *scope, verb, resource) {
            refused.push(format!("{sa} {verb} {resource} ({scope:?})"));
        }
    }
    let mut allowed = Vec::new();
    let must_not = rbac_must_not();
    for (sa, scope, verb, resource) in &must_not {
        if can_i(&plane, "kube-system", sa, *scope, verb, resource) {
            allowed.push(format!("{sa} {verb} {resource} ({scope:?})"));
        }
    }
    // The CRD hook, by name: each of ours may be read, watched and applied, never deleted;
    // another CRD may not be touched.
    for crd in crds::generate::crds() {
        let name = kube::ResourceExt::name_any(&crd);
        for verb in ["get", "list", "watch", "patch"] {
            if !can_i_named(
                &plane,
                "kube-ovn-crds",
                verb,
                "customresourcedefinitions",
                &name,
            ) {
                refused.push(format!("kube-ovn-crds {verb} CRD {name}"));
            }
        }
        if can_i_named(
            &plane,
            "kube-ovn-crds",
            "delete",
            "customresourcedefinitions",
            &name,
        ) {
            allowed.push(format!("kube-ovn-crds delete CRD {name}"));
        }
    }
    for other in [
        "network-attachment-definitions.k8s.cni.cncf.io",
        "multi-networkpolicies.k8s.cni.cncf.io",
    ] {
        if can_i_named(
            &plane,
            "kube-ovn-crds",
            "patch",
            "customresourcedefinitions",
            other,
        ) {
            allowed.push(format!("kube-ovn-crds patch CRD {other}"));
        }
    }
    // And the hook's command itself, as that account (a token of its own, nothing else):
    // the named rights are enough for apply, get and the wait for Established.
    let token = plane
        .kubectl(&[
            "create",
            "token",
            "kube-ovn-crds",
            "--namespace=kube-system",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = dir.path().join("kube-ovn-crds.kubeconfig");
    std::fs::copy(plane.kubeconfig(), &kubeconfig).unwrap();
    let as_hook = |args: &[&str]| {
        let out = plane
            .kubectl_command()
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    as_hook(&[
        "config",
        "set-credentials",
        "hook",
        &format!("--token={}", token.trim()),
    ]);
    as_hook(&["config", "set-context", "--current", "--user=hook"]);
    let out = std::process::Command::new(e2e::cluster::binary("kube-ovn-controller").unwrap())
        .arg("--apply-crds")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{chart}: --apply-crds as kube-ovn-crds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{chart}: {} must + {} must-not questions in {:?}",
        must.len(),
        must_not.len(),
        started.elapsed()
    );
    assert!(
        refused.is_empty() && allowed.is_empty(),
        "{chart}: needed but refused: {refused:#?}\nallowed but must not be: {allowed:#?}"
    );
    // The accounts that never call the API do not even mount a token.
    let objects = by_key(&rendered);
    for workload in [
        "Deployment/kube-system/ovn-central",
        "DaemonSet/kube-system/ovs-ovn",
    ] {
        let spec = &object(&objects, workload)["spec"]["template"]["spec"];
        assert_eq!(spec["serviceAccountName"], "kube-ovn-ovn", "{workload}");
        assert_eq!(spec["automountServiceAccountToken"], false, "{workload}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_of_chart_v2_is_what_each_binary_calls_checked_both_ways_by_can_i() {
    rbac_both_ways(V2, SEED_V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_of_chart_v1_is_what_each_binary_calls_checked_both_ways_by_can_i() {
    rbac_both_ways(V1, SEED_V1).await;
}

/// Every pod template of a rendered chart: (workload key, pod spec).
fn pod_specs(objects: &BTreeMap<String, Value>) -> Vec<(String, Value)> {
    objects
        .iter()
        .filter(|(_, o)| o["spec"]["template"]["spec"].is_object())
        .map(|(k, o)| (k.clone(), o["spec"]["template"]["spec"].clone()))
        .collect()
}

fn capabilities_added(c: &Value) -> Vec<String> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Least privilege as rendered, for both charts and every datapath mode: every pod has a
/// securityContext with the runtime's seccomp profile; every container drops all
/// capabilities and cannot escalate, adding back only what its programs were measured to
/// need (docs/SECURITY.md); the controller, its uninstall hook and OVN central run as nobody;
/// no container is privileged, the daemon of the userspace datapath with a tunnel NIC included
/// (it sets the NIC's arp_ignore over rtnetlink, `daemon::devconf`).
#[test]
fn every_pod_runs_with_the_least_privilege_it_needs() {
    let (_dir, helm) = helm();
    // (chart, values, datapath netdev?, tunnel NIC?)
    let cases: [(&str, Vec<&str>, bool, bool); 6] = [
        (V2, SEED_V2.to_vec(), false, false),
        (V1, SEED_V1.to_vec(), false, false),
        (
            V2,
            [SEED_V2, &["--set", "networking.datapathType=netdev"]].concat(),
            true,
            false,
        ),
        (
            V1,
            [SEED_V1, &["--set", "networking.DATAPATH_TYPE=netdev"]].concat(),
            true,
            false,
        ),
        (
            V2,
            [
                SEED_V2,
                &[
                    "--set",
                    "networking.datapathType=netdev",
                    "--set",
                    "agent.interface=eth1",
                ],
            ]
            .concat(),
            true,
            true,
        ),
        (
            V1,
            [
                SEED_V1,
                &[
                    "--set",
                    "networking.DATAPATH_TYPE=netdev",
                    "--set",
                    "networking.IFACE=eth1",
                ],
            ]
            .concat(),
            true,
            true,
        ),
    ];
    for (chart, values, netdev, nic) in cases {
        let what = format!("{chart} {values:?}");
        let objects = by_key(&template(&helm, chart, &values));
        let pods = pod_specs(&objects);
        assert_eq!(pods.len(), 6, "{what}: {:?}", objects.keys());
        for (workload, spec) in &pods {
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{what}: {workload}"
            );
            // The host's process table: only the daemon, which may be handed a
            // /proc/<pid>/ns/net path (ovs-ovn ran without it on real nodes).
            assert_eq!(
                spec["hostPID"] == true,
                workload == "DaemonSet/kube-system/kube-ovn-cni",
                "{what}: {workload} hostPID"
            );
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_array().into_iter().flatten() {
                    let name = c["name"].as_str().unwrap();
                    let sc = &c["securityContext"];
                    assert!(
                        sc.is_object(),
                        "{what}: {workload} {name} has no securityContext"
                    );
                    assert!(
                        sc["privileged"].is_null(),
                        "{what}: {workload} {name} is privileged"
                    );
                    assert_eq!(
                        sc["allowPrivilegeEscalation"], false,
                        "{what}: {workload} {name}"
                    );
                    // Everything they write is on a volume (real nodes ran them so).
                    assert_eq!(
                        sc["readOnlyRootFilesystem"], true,
                        "{what}: {workload} {name}"
                    );
                    assert_eq!(
                        strings(&sc["capabilities"]["drop"]),
                        ["ALL"],
                        "{what}: {workload} {name}"
                    );
                }
            }
        }
        // Non-root, no capability: the controller and its uninstall hook, which the
        // apiserver's "restricted" Pod Security level admits
        // (rendered_charts_pass_a_server_side_dry_run), and OVN central.
        for (workload, name) in [
            (
                "Deployment/kube-system/kube-ovn-controller",
                "kube-ovn-controller",
            ),
            ("Job/kube-system/kube-ovn-uninstall", "remove-finalizers"),
            ("Job/kube-system/kube-ovn-crds", "apply-crds"),
            ("Deployment/kube-system/ovn-central", "ovn-central"),
        ] {
            let w = object(&objects, workload);
            let pod = &w["spec"]["template"]["spec"]["securityContext"];
            assert_eq!(pod["runAsNonRoot"], true, "{what}: {workload}");
            assert_eq!(pod["runAsUser"], 65534, "{what}: {workload}");
            let c = container(w, "containers", name);
            assert!(
                c["securityContext"]["runAsUser"].is_null(),
                "{what}: {workload}"
            );
            assert!(capabilities_added(c).is_empty(), "{what}: {workload}");
        }
        // Central's one root step: giving its host paths to its user (CHOWN only).
        let central = object(&objects, "Deployment/kube-system/ovn-central");
        let init = container(central, "initContainers", "hostpath-init");
        assert_eq!(init["securityContext"]["runAsUser"], 0, "{what}");
        assert_eq!(capabilities_added(init), ["CHOWN"], "{what}");
        // Its run dir is the pod's own: nothing on the host shares its sockets.
        assert!(
            central["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == "run-ovn" && v["emptyDir"].is_object()),
            "{what}"
        );
        // Open vSwitch: network administration and raw sockets; the kernel module only for
        // the kernel datapath.
        let ovs_ds = object(&objects, "DaemonSet/kube-system/ovs-ovn");
        let ovs = container(ovs_ds, "containers", "openvswitch");
        let mut want = vec!["NET_ADMIN", "NET_RAW"];
        if !netdev {
            want.push("SYS_MODULE");
        }
        assert_eq!(capabilities_added(ovs), want, "{what}");
        // The userspace datapath's tap devices: the host's /dev/net/tun, and only then.
        let tun = ovs_ds["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "host-dev-tun");
        assert_eq!(tun.is_some(), netdev, "{what}");
        // The host's kernel modules, for modprobe: the kernel datapath only.
        let modules = ovs_ds["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "host-modules");
        assert_eq!(modules, !netdev, "{what}");
        if let Some(tun) = tun {
            assert_eq!(tun["hostPath"]["path"], "/dev/net/tun", "{what}");
            assert_eq!(tun["hostPath"]["type"], "CharDevice", "{what}");
            assert_eq!(mount(ovs, "host-dev-tun"), "/dev/net/tun", "{what}");
        }
        // The daemon: netlink (the tunnel NIC's arp_ignore included), raw sockets, setns; the
        // tunnel NIC's flag is passed in that mode only.
        let ds = object(&objects, "DaemonSet/kube-system/kube-ovn-cni");
        let server = container(ds, "containers", "cni-server");
        assert_eq!(
            capabilities_added(server),
            ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"],
            "{what}"
        );
        assert_eq!(
            strings(&server["args"]).iter().any(|a| a == "--iface=eth1"),
            nic,
            "{what}"
        );
        let install = container(ds, "initContainers", "install-cni");
        assert!(capabilities_added(install).is_empty(), "{what}");
    }
}
