#!/usr/bin/env bash
# The floor for `cargo xtask bench cni`: the same pod plumbing as kube-ovn-daemon's ADD, done the
# fastest way the standard tools allow, then the same wait for ovn-controller.
#
#   floor.sh NODE_NETNS OVS_DB MANIFEST
#
# MANIFEST has one pod per line: `pod netns host_ifname mac ip/prefix lsp container_id`.
# For each pod, in order: one `ip link add` makes the veth with its pod end already in the pod's
# namespace under its final name, MAC and MTU; ethtool turns tx checksum offload off (userspace
# datapath); one `ip -batch` adds the address and brings the pod end up; the host end goes up;
# `ovs-vsctl --no-wait add-port` adds the OVS port with the contract's external_ids (one
# transaction, not waiting for ovs-vswitchd, as the daemon does not); `ovs-vsctl wait-until`
# waits for ovn-controller's external_ids:ovn-installed=true.
#
# Prints one line per pod: `pod t_start_us t_plumbed_us t_installed_us` ($EPOCHREALTIME, so no
# process is spent on timestamps). Exits non-zero on the first failure.
set -euo pipefail

node=$1 db=$2 manifest=$3
mtu=1400


while read -r pod netns host mac addr lsp cid; do
    [ -n "$pod" ] || continue
    t0=${EPOCHREALTIME/./}
    ip -n "$node" link add "$host" mtu "$mtu" type veth \
        peer name net1 address "$mac" mtu "$mtu" netns "$netns"
    nsenter --net="/var/run/netns/$netns" ethtool -K net1 tx off >/dev/null
    printf 'addr add %s dev net1\nlink set net1 up\n' "$addr" | ip -n "$netns" -batch -
    ip -n "$node" link set "$host" up
    ovs-vsctl --db="$db" --no-wait add-port br-int "$host" -- set interface "$host" \
        "external_ids:iface-id=$lsp" "external_ids:pod_name=$pod" \
        "external_ids:pod_namespace=default" "external_ids:pod_netns=/var/run/netns/$netns" \
        "external_ids:ip=${addr%/*}" "external_ids:container_id=$cid" \
        "external_ids:ifname=net1" "external_ids:vendor=kube-ovn"
    t1=${EPOCHREALTIME/./}
    ovs-vsctl --db="$db" --timeout=30 wait-until interface "$host" \
        external_ids:ovn-installed=true
    t2=${EPOCHREALTIME/./}
    echo "$pod $t0 $t1 $t2"
done < "$manifest"
