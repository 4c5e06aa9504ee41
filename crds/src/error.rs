//! The one error type of this crate.
//!
//! Every message names what was wrong (the field, annotation or object) and the offending value,
//! so the controller can put it verbatim into a status condition or an Event and a person can act
//! on it.

/// Everything that can be wrong with the API objects and annotations this crate understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field holds a value that is not allowed.
    #[error("{field} {value:?}: {reason}")]
    InvalidField {
        /// JSON path of the field, e.g. `spec.gateway`.
        field: String,
        /// The offending value as written.
        value: String,
        /// Why it is not allowed.
        reason: String,
    },

    /// A required field is missing or empty.
    #[error("{field} is required{hint}")]
    MissingField {
        /// JSON path of the field.
        field: String,
        /// Extra guidance, starting with a separator (may be empty).
        hint: String,
    },

    /// An object failed validation; wraps the first problem found.
    #[error("{kind} {name}: {error}")]
    InvalidObject {
        /// Kind of the object, e.g. `Subnet`.
        kind: &'static str,
        /// Name of the object (`ns/name` for namespaced kinds).
        name: String,
        /// What is wrong with it.
        error: Box<Error>,
    },

    /// The `k8s.v1.cni.cncf.io/networks` annotation is empty.
    #[error("annotation k8s.v1.cni.cncf.io/networks is empty")]
    NetworksEmpty,

    /// The `k8s.v1.cni.cncf.io/networks` annotation looks like JSON but is not a valid list of
    /// network selection elements.
    #[error("annotation k8s.v1.cni.cncf.io/networks is not a valid JSON list of networks: {0}")]
    NetworksJson(String),

    /// One element of the `k8s.v1.cni.cncf.io/networks` annotation is malformed.
    #[error("annotation k8s.v1.cni.cncf.io/networks, element {index} ({element:?}): {reason}")]
    NetworkElement {
        /// 0-based position of the element.
        index: usize,
        /// The element as written (for the comma form) or its `name` (for the JSON form).
        element: String,
        /// What is wrong.
        reason: String,
    },

    /// Two elements of the `k8s.v1.cni.cncf.io/networks` annotation would get the same
    /// interface name inside the pod.
    #[error(
        "annotation k8s.v1.cni.cncf.io/networks: interface name {interface:?} is used by \
         element {first} and element {second}"
    )]
    DuplicateInterface {
        /// The interface name both would get.
        interface: String,
        /// 0-based position of the first element.
        first: usize,
        /// 0-based position of the second element.
        second: usize,
    },

    /// A pod asks for a NetworkAttachmentDefinition that does not exist.
    #[error("NetworkAttachmentDefinition {namespace}/{name} not found")]
    UnknownNad {
        /// Namespace that was searched.
        namespace: String,
        /// Name that was asked for.
        name: String,
    },

    /// A NetworkAttachmentDefinition's `spec.config` cannot be used.
    #[error("NetworkAttachmentDefinition {namespace}/{name}: {reason}")]
    NadConfig {
        /// Namespace of the NAD.
        namespace: String,
        /// Name of the NAD.
        name: String,
        /// What is wrong with its config.
        reason: String,
    },

    /// The controller has not finished an attachment: `<provider>.kubernetes.io/allocated` is
    /// not `"true"`.
    #[error("annotation {key} is not \"true\" yet")]
    NotAllocated {
        /// The full `allocated` key.
        key: String,
    },

    /// An annotation the controller writes is absent although the attachment is allocated.
    #[error("annotation {key} is missing although {allocated} is \"true\"")]
    MissingAnnotation {
        /// The missing key.
        key: String,
        /// The `allocated` key.
        allocated: String,
    },

    /// A pod annotation holds a value that is not allowed.
    #[error("annotation {key}={value:?}: {reason}")]
    InvalidAnnotation {
        /// The full key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// A generated CustomResourceDefinition could not be rendered.
    #[error("rendering CustomResourceDefinition {name} as YAML: {reason}")]
    Render {
        /// CRD name.
        name: String,
        /// Serializer message.
        reason: String,
    },
}

impl Error {
    /// An [`Error::InvalidField`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidField {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::MissingField`] without a hint.
    pub fn missing(field: impl Into<String>) -> Self {
        Self::MissingField {
            field: field.into(),
            hint: String::new(),
        }
    }

    /// Wraps `self` as the problem of object `kind` `name`.
    pub fn in_object(self, kind: &'static str, name: impl Into<String>) -> Self {
        Self::InvalidObject {
            kind,
            name: name.into(),
            error: Box::new(self),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
