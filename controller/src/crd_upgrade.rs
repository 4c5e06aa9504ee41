//! `kube-ovn-controller --apply-crds`: what the chart's pre-upgrade hook runs.
//!
//! Helm installs the files of a chart's `crds/` folder on `helm install` only and never touches
//! them again, so a `helm upgrade` would run the new controller against the old CRDs (a new
//! field pruned by the API server, a new kind missing). The hook applies this binary's own
//! CRDs (the ones the chart ships, generated from the same Rust types: [`crds::generate::crds`])
//! by server-side apply before the new workloads roll, and waits until each is established.
//! It only creates or updates: a CRD is never deleted here (that would delete its objects).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};

/// Field manager of the applied CRDs.
pub const MANAGER: &str = "kube-ovn-crds";

/// How long each CRD may take to become established.
const ESTABLISHED: Duration = Duration::from_secs(60);

/// What [`apply_crds`] did, per CRD name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// CRDs that did not exist.
    pub created: Vec<String>,
    /// CRDs whose stored object changed.
    pub updated: Vec<String>,
    /// CRDs already as this release defines them.
    pub unchanged: Vec<String>,
}

/// Why the CRDs could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The API refused or failed a request.
    #[error("{step} CRD {name}: {source}")]
    Api {
        /// What was being done.
        step: &'static str,
        /// The CRD.
        name: String,
        /// The error.
        source: kube::Error,
    },
    /// The CRD was applied but did not become established in time.
    #[error("CRD {name} not established after {ESTABLISHED:?}{reason}")]
    NotEstablished {
        /// The CRD.
        name: String,
        /// The API server's reason, when it gave one.
        reason: String,
    },
}

/// Applies every CRD of this release (force: the fields helm created at install move to
/// [`MANAGER`]) and waits until each is established.
pub async fn apply_crds(client: &Client) -> Result<Report, CrdError> {
    apply(client, crds::generate::crds()).await
}

/// [`apply_crds`] for a given list (tests give older or partial lists).
pub async fn apply(
    client: &Client,
    wanted: Vec<CustomResourceDefinition>,
) -> Result<Report, CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    let mut report = Report::default();
    for crd in wanted {
        let name = crd.name_any();
        let before = api
            .get_opt(&name)
            .await
            .map_err(|source| CrdError::Api {
                step: "reading",
                name: name.clone(),
                source,
            })?
            .and_then(|c| c.resource_version());
        let after = api
            .patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| CrdError::Api {
                step: "applying",
                name: name.clone(),
                source,
            })?;
        match tokio::time::timeout(
            ESTABLISHED,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(CrdError::NotEstablished {
                    name,
                    reason: format!(": {e}"),
                });
            }
            // The reason as the API server gives it now (the apply's answer predates it).
            Err(_) => {
                let now = api.get_opt(&name).await.ok().flatten();
                return Err(CrdError::NotEstablished {
                    reason: now.as_ref().map(not_established_reason).unwrap_or_default(),
                    name,
                });
            }
        }
        match before {
            None => report.created.push(name),
            Some(v) if Some(&v) == after.resource_version().as_ref() => {
                report.unchanged.push(name);
            }
            Some(_) => report.updated.push(name),
        }
    }
    Ok(report)
}

/// The message of a condition that keeps `crd` from being established (`NamesAccepted`
/// false: a name another CRD holds), for the error.
fn not_established_reason(crd: &CustomResourceDefinition) -> String {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.status == "False")
        .map(|c| format!(": {} {}", c.type_, c.message.clone().unwrap_or_default()))
        .unwrap_or_default()
}
