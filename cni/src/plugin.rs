//! One invocation of the plugin: environment + stdin in, result JSON or CNI error out.

use std::time::Duration;

use crate::api::{self, proto, proto::AttachmentRequest};
use crate::client;
use crate::env::{CniEnv, Command};
use crate::error::{CniError, code};
use crate::netconf::NetConf;
use crate::result;
use crate::version;

/// Longest the plugin waits for the daemon on ADD: the daemon itself bounds its waits for the
/// controller's annotations and for ovn-controller well below this.
pub const ADD_TIMEOUT: Duration = Duration::from_secs(150);

/// Longest the plugin waits on DEL, CHECK, STATUS and GC.
pub const OTHER_TIMEOUT: Duration = Duration::from_secs(60);

/// Most bytes read from stdin: a network configuration is a few KiB.
pub const MAX_STDIN: usize = 1 << 20;

/// Runs one CNI verb. `Ok(Some(json))` is printed on stdout; `Ok(None)` prints nothing.
pub async fn run(
    lookup: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<Option<String>, CniError> {
    if lookup("CNI_COMMAND").as_deref() == Some("VERSION") {
        return to_json(&version::version_result()).map(Some);
    }
    if stdin.len() > MAX_STDIN {
        return Err(CniError::new(
            version::LATEST,
            code::DECODE_FAILURE,
            format!("network configuration on stdin is larger than {MAX_STDIN} bytes"),
        ));
    }
    let conf = NetConf::parse(stdin)?;
    let env = CniEnv::from_lookup(&lookup, &conf.cni_version)?;
    let v = conf.cni_version.as_str();
    let what = format!(
        "{} {}/{} {} (container {})",
        env.command.as_str(),
        env.pod_namespace,
        env.pod_name,
        env.ifname,
        env.container_id
    );
    let timeout = if env.command == Command::Add {
        ADD_TIMEOUT
    } else {
        OTHER_TIMEOUT
    };
    let call = async {
        let mut daemon = client::connect(&conf.server_socket, v)
            .await
            .map_err(|mut e| {
                if env.command == Command::Status {
                    e.code = code::PLUGIN_NOT_AVAILABLE;
                }
                e
            })?;
        let status = |s: tonic::Status| api::status_to_cni(&s, v, &what);
        match env.command {
            Command::Add => {
                let resp = daemon
                    .add(request(&env, &conf))
                    .await
                    .map_err(status)?
                    .into_inner();
                let out = result::render(v, &resp, &env.ifname, &env.netns, conf.ipam_only);
                to_json(&out).map(Some)
            }
            Command::Del => {
                daemon.del(request(&env, &conf)).await.map_err(status)?;
                Ok(None)
            }
            Command::Check => {
                if conf.prev_result.is_none() {
                    return Err(CniError::new(
                        v,
                        code::INVALID_CONFIG,
                        format!("{what}: CHECK needs prevResult in the configuration"),
                    ));
                }
                daemon.check(request(&env, &conf)).await.map_err(status)?;
                Ok(None)
            }
            Command::Status => {
                daemon.status(proto::StatusRequest {}).await.map_err(|s| {
                    let mut e = status(s);
                    if e.code == code::TRY_AGAIN_LATER {
                        e.code = code::PLUGIN_NOT_AVAILABLE;
                    }
                    e
                })?;
                Ok(None)
            }
            Command::Gc => {
                let valid = conf
                    .valid_attachments
                    .iter()
                    .map(|a| proto::ValidAttachment {
                        container_id: a.container_id.clone(),
                        ifname: a.ifname.clone(),
                    })
                    .collect();
                daemon
                    .gc(proto::GcRequest {
                        valid,
                        provider: conf.provider.clone(),
                    })
                    .await
                    .map_err(status)?;
                Ok(None)
            }
            Command::Version => to_json(&version::version_result()).map(Some),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(CniError::new(
                v,
                code::TRY_AGAIN_LATER,
                format!(
                    "{what}: kube-ovn-daemon did not answer within {}s; see kubectl logs -n \
                 kube-system daemonset/kube-ovn-cni",
                    timeout.as_secs()
                ),
            ))
        })
}

fn request(env: &CniEnv, conf: &NetConf) -> AttachmentRequest {
    AttachmentRequest {
        container_id: env.container_id.clone(),
        netns: env.netns.clone(),
        ifname: env.ifname.clone(),
        pod_name: env.pod_name.clone(),
        pod_namespace: env.pod_namespace.clone(),
        pod_uid: env.pod_uid.clone(),
        provider: conf.provider.clone(),
        cni_version: conf.cni_version.clone(),
        ips: conf.ips.clone(),
        mac: conf.mac.clone(),
        bandwidth: conf.bandwidth.map(|b| proto::Bandwidth {
            ingress_rate: b.ingress_rate,
            ingress_burst: b.ingress_burst,
            egress_rate: b.egress_rate,
            egress_burst: b.egress_burst,
        }),
        prev_result_json: conf
            .prev_result
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        ipam_only: conf.ipam_only,
        mtu: conf.mtu,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CniError> {
    serde_json::to_string(value)
        .map_err(|e| CniError::new(version::LATEST, code::IO_FAILURE, e.to_string()))
}
