#!/bin/bash
# Open vSwitch and ovn-controller for the ovs-ovn DaemonSet (every node, host network).
# The database lives on the host (/etc/origin/openvswitch, mounted at /etc/openvswitch) so
# ports survive a restart; sockets are in the host's /run/openvswitch, where kube-ovn-daemon
# (kube-ovn-cni) finds db.sock. kube-ovn-daemon writes the Open_vSwitch external_ids that
# ovn-controller reads (system-id, ovn-remote, ovn-encap-type, ovn-encap-ip): ovn-controller
# waits for them. Every daemon is a child of this script, which exits when one exits.
set -euo pipefail

DB=/etc/openvswitch/conf.db
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
OVS_RUN=/var/run/openvswitch
OVN_RUN=/var/run/ovn
mkdir -p /etc/openvswitch "$OVS_RUN" "$OVN_RUN" /var/log/openvswitch /var/log/ovn

if [ "${OVS_DATAPATH_TYPE:-system}" = system ]; then
    # The kernel datapath; the host's modules are mounted at /lib/modules.
    if ! modprobe openvswitch; then
        echo "start-ovs: cannot load the openvswitch kernel module; use networking.datapathType=netdev or load it on the host" >&2
        exit 1
    fi
fi

if [ ! -f "$DB" ]; then
    ovsdb-tool create "$DB" "$SCHEMA"
elif [ "$(ovsdb-tool needs-conversion "$DB" "$SCHEMA")" = yes ]; then
    ovsdb-tool convert "$DB" "$SCHEMA"
fi
rm -f "$OVS_RUN"/ovsdb-server.pid "$OVS_RUN"/ovs-vswitchd.pid "$OVN_RUN"/ovn-controller.pid

trap 'kill $(jobs -p) 2>/dev/null; wait' TERM INT

ovsdb-server "$DB" \
    --remote=punix:"$OVS_RUN/db.sock" --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
    --pidfile="$OVS_RUN/ovsdb-server.pid" --log-file=/var/log/openvswitch/ovsdb-server.log &
# ovs-vswitchd and ovn-controller need the database up: wait for its socket (bounded).
for _ in $(seq 100); do
    [ -S "$OVS_RUN/db.sock" ] && break
    sleep 0.1
done
ovs-vsctl --db=unix:"$OVS_RUN/db.sock" --no-wait init

ovs-vswitchd unix:"$OVS_RUN/db.sock" \
    --pidfile="$OVS_RUN/ovs-vswitchd.pid" --log-file=/var/log/openvswitch/ovs-vswitchd.log &
ovn-controller unix:"$OVS_RUN/db.sock" \
    --pidfile="$OVN_RUN/ovn-controller.pid" --log-file=/var/log/ovn/ovn-controller.log &

echo "ovs-ovn: ovsdb-server, ovs-vswitchd (${OVS_DATAPATH_TYPE:-system} datapath) and ovn-controller started"
wait -n
echo "ovs-ovn: a daemon exited; stopping the others" >&2
kill $(jobs -p) 2>/dev/null || true
exit 1
