//! CNI error results: the JSON object a plugin prints on failure (CNI spec, "Error").

use serde::Serialize;

/// Well-known CNI error codes (CNI spec 1.1, "Well-known Error Codes").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin is not available.
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// STATUS: limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
}

/// A CNI error result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    /// The CNI version the caller asked for (echoed in the result).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// A well-known code from [`code`], or a plugin-specific one (100 and above).
    pub code: u32,
    /// A short message a person can act on.
    pub msg: String,
    /// Longer context; omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with the given code and message, for the given CNI version.
    pub fn new(cni_version: impl Into<String>, code: u32, msg: impl Into<String>) -> Self {
        Self {
            cni_version: cni_version.into(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The error as the JSON document the plugin prints on stdout.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            // Serialising a struct of strings and an integer cannot fail; keep a valid fallback.
            format!(r#"{{"code":{},"msg":"unserialisable error"}}"#, self.code)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_spec_field_names_and_omits_empty_details() {
        let e = CniError::new("1.0.0", code::INVALID_CONFIG, "provider missing");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion": "1.0.0", "code": 7, "msg": "provider missing"})
        );
    }
}
