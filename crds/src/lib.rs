//! The Kubernetes API of Kube-OVN: `kubeovn.io/v1` custom resources, the Multus / NPWG types
//! (`NetworkAttachmentDefinition`, network selection elements, `network-status`), and the
//! annotation-key and naming contracts every component shares.
