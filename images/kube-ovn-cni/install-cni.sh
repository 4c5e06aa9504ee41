#!/bin/sh
# Init container of kube-ovn-cni: installs the `kube-ovn` CNI plugin into the host's CNI bin
# dir (mounted at $1), where Multus finds `"type": "kube-ovn"`. Copied under a temporary name
# and renamed, so a pod being set up meanwhile never runs a half-written binary. No conflist
# is written: Multus reads NetworkAttachmentDefinitions.
set -eu
dest="${1:?usage: install-cni.sh CNI_BIN_DIR}"
tmp="$dest/.kube-ovn.$$"
cp /kube-ovn/kube-ovn "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$dest/kube-ovn"
echo "installed the kube-ovn CNI plugin into $dest"
