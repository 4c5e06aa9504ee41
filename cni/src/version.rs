//! CNI spec versions this plugin speaks, and the VERSION verb's result.

use serde::Serialize;

/// Every CNI spec version the plugin accepts and can shape a result for.
/// The controller refuses NADs naming another version (`crds::naming::SUPPORTED_CNI_VERSIONS`,
/// kept equal to this list by a daemon test).
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest supported version, used when a request names none.
pub const LATEST: &str = "1.1.0";

/// Whether `version` is one of [`SUPPORTED_VERSIONS`].
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The result of the VERSION verb.
#[derive(Debug, Serialize)]
pub struct VersionResult {
    /// The version the result itself is written in.
    #[serde(rename = "cniVersion")]
    pub cni_version: &'static str,
    /// All versions the plugin supports.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: &'static [&'static str],
}

/// The VERSION result: always in the newest version, listing all supported ones.
pub fn version_result() -> VersionResult {
    VersionResult {
        cni_version: LATEST,
        supported_versions: &SUPPORTED_VERSIONS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_result_lists_every_supported_version() {
        let json = serde_json::to_value(version_result()).unwrap();
        assert_eq!(json["cniVersion"], "1.1.0");
        assert_eq!(json["supportedVersions"].as_array().unwrap().len(), 5);
        assert!(is_supported("0.3.1"));
        assert!(!is_supported("0.2.0"));
    }
}
