//! Errors of the reconcilers.

/// A reconcile failed; the controller requeues with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An OVN NB write or read failed.
    #[error(transparent)]
    Nb(#[from] crate::nb::NbError),
    /// A finalizer step failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The object is invalid (reported as a condition and an Event; not retried until it changes).
    #[error("{0}")]
    Invalid(String),
    /// Something this object needs is not there yet (retried).
    #[error("waiting: {0}")]
    NotReady(String),
}
