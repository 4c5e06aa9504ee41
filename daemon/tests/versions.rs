//! The CNI versions the controller accepts in a NAD are the ones the plugin speaks.

#[test]
fn the_controller_accepts_the_cni_versions_the_plugin_speaks() {
    assert_eq!(
        crds::naming::SUPPORTED_CNI_VERSIONS,
        cni::version::SUPPORTED_VERSIONS
    );
}
