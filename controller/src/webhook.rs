//! The mutating admission webhook for pods (`POST /mutate-pods`, HTTPS).
//!
//! Multus reads a JSON networks element's `name` as the bare NAD name, so the manual's
//! `{"name": "default/public-network"}` fails at the runtime's ADD with `invalid resource name
//! "default/public-network": [may not contain '/']`, before any attachment is made. At pod
//! creation this webhook rewrites such elements to Multus' form (`"namespace": "default",
//! "name": "public-network"`, [`crds::networks::multus_form`]); the controller reads both forms
//! the same. Nothing else in a pod is changed, and a pod is never refused here: a bad
//! annotation is the controller's to report (an Event naming the element). The chart registers
//! it with `failurePolicy: Ignore`, so a controller that is down delays no pod creation beyond
//! the apiserver's connect attempt.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// The path the chart's MutatingWebhookConfiguration calls.
pub const PATH: &str = "/mutate-pods";

/// The pod annotation Multus reads.
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// Largest AdmissionReview body accepted (a pod is far below; the apiserver's own request
/// limit is 3 MiB).
const MAX_BODY: usize = 4 << 20;

/// Longest a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What can stop the webhook from starting.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The certificate or key could not be read.
    #[error("webhook certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("webhook TLS configuration: {0}")]
    Tls(String),
}

/// The TLS acceptor from `tls.crt` and `tls.key` in `dir` (a `kubernetes.io/tls` Secret's
/// keys, as the chart mounts it).
pub fn acceptor(dir: &Path) -> Result<TlsAcceptor, WebhookError> {
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    let cert_err = |path: &Path, reason: String| WebhookError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| cert_err(&cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(&cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err(
            &cert_path,
            "no certificate in the file".to_owned(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| cert_err(&key_path, e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| WebhookError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves [`PATH`] over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "webhook: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook: TLS handshake timed out");
                    return;
                }
            };
            let service =
                hyper::service::service_fn(
                    |req| async move { Ok::<_, Infallible>(respond(req).await) },
                );
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn respond(req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != PATH {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview\n");
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "webhook: reading the request body failed");
            return plain(StatusCode::BAD_REQUEST, "unreadable body\n");
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(review(&body))));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Answers one AdmissionReview (the request's JSON body) with the response's JSON.
pub fn review(body: &[u8]) -> Vec<u8> {
    let response = match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body)
        .map_err(|e| e.to_string())
        .and_then(|review| {
            let request: Result<AdmissionRequest<DynamicObject>, _> = review.try_into();
            request.map_err(|_| "no request in the review".to_owned())
        }) {
        Ok(request) => mutate(&request),
        Err(reason) => {
            tracing::warn!(%reason, "webhook: not an AdmissionReview");
            AdmissionResponse::invalid(reason)
        }
    };
    // Serializing these types cannot fail (no maps with non-string keys); an empty body makes
    // the apiserver apply the failure policy, which lets the pod through.
    serde_json::to_vec(&response.into_review()).unwrap_or_default()
}

/// The response to one pod admission: allowed, with the networks annotation in Multus' form
/// when it was not.
fn mutate(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    if !matches!(request.operation, Operation::Create) {
        return allowed;
    }
    let Some(pod) = &request.object else {
        return allowed;
    };
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NETWORKS))
    else {
        return allowed;
    };
    let Some(rewritten) = crds::networks::multus_form(value) else {
        return allowed;
    };
    let name = pod
        .metadata
        .name
        .as_deref()
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or("");
    let namespace = request.namespace.as_deref().unwrap_or("");
    let path = format!("/metadata/annotations/{}", NETWORKS.replace('/', "~1"));
    let patch = serde_json::json!([{"op": "replace", "path": path, "value": rewritten}]);
    match serde_json::from_value::<json_patch::Patch>(patch)
        .map_err(|e| e.to_string())
        .and_then(|patch| {
            AdmissionResponse::from(request)
                .with_patch(patch)
                .map_err(|e| e.to_string())
        }) {
        Ok(response) => {
            tracing::info!(pod = %format!("{namespace}/{name}"), networks = %rewritten, "networks annotation rewritten to Multus' form");
            response
        }
        Err(reason) => {
            tracing::warn!(pod = %format!("{namespace}/{name}"), %reason, "webhook: patch not built; pod admitted as it is");
            allowed
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn admission(operation: &str, annotations: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "frontend",
                "namespace": "default",
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "frontend", "namespace": "default", "annotations": annotations},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}
                },
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        }))
        .unwrap()
    }

    fn response(body: &[u8]) -> serde_json::Value {
        let review: serde_json::Value = serde_json::from_slice(&review(body)).unwrap();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
        assert_eq!(review["kind"], "AdmissionReview", "{review}");
        review["response"].clone()
    }

    /// The patch bytes: kube-rs writes them as a JSON list of numbers, which the apiserver's
    /// decoder takes for a byte slice as it takes base64.
    fn decoded_patch(response: &serde_json::Value) -> serde_json::Value {
        let raw: Vec<u8> = serde_json::from_value(response["patch"].clone()).unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    #[test]
    fn the_manuals_json_form_is_rewritten_for_multus() {
        let manual = "[\n  {\"name\": \"default/public-network\"},\n  {\"name\": \"default/internal-network\"}\n]\n";
        let r = response(&admission(
            "CREATE",
            serde_json::json!({ NETWORKS: manual, "other": "kept" }),
        ));
        assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(r["allowed"], true);
        assert_eq!(r["patchType"], "JSONPatch");
        let patch = decoded_patch(&r);
        assert_eq!(
            patch,
            serde_json::json!([{
                "op": "replace",
                "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1networks",
                "value": r#"[{"name":"public-network","namespace":"default"},{"name":"internal-network","namespace":"default"}]"#
            }])
        );
    }

    #[test]
    fn other_pods_and_operations_pass_untouched() {
        for (operation, annotations) in [
            ("CREATE", serde_json::json!({ NETWORKS: "default/a@net1" })),
            (
                "CREATE",
                serde_json::json!({ NETWORKS: r#"[{"name":"a","namespace":"default"}]"# }),
            ),
            ("CREATE", serde_json::json!({ "unrelated": "x" })),
            ("CREATE", serde_json::json!({ NETWORKS: "[broken" })),
            (
                "UPDATE",
                serde_json::json!({ NETWORKS: r#"[{"name":"default/a"}]"# }),
            ),
        ] {
            let r = response(&admission(operation, annotations.clone()));
            assert_eq!(r["allowed"], true, "{annotations}");
            assert!(r.get("patch").is_none(), "{operation} {annotations}: {r}");
        }
    }

    #[test]
    fn garbage_is_answered_not_panicked_on() {
        for body in [&b""[..], b"{}", b"not json", b"{\"request\": 7}"] {
            let review: serde_json::Value = serde_json::from_slice(&review(body)).unwrap();
            assert_eq!(review["response"]["allowed"], false, "{review}");
        }
    }

    #[test]
    fn a_missing_or_bad_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = acceptor(dir.path()).err().unwrap().to_string();
        assert!(err.contains("tls.crt"), "{err}");
        std::fs::write(dir.path().join("tls.crt"), "not pem").unwrap();
        std::fs::write(dir.path().join("tls.key"), "not pem").unwrap();
        let err = acceptor(dir.path()).err().unwrap().to_string();
        assert!(err.contains("tls.crt") || err.contains("tls.key"), "{err}");
    }
}
