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
# The run directory is the host's and outlives the container: a socket left by the previous
# container would pass for the new server's before it listens.
rm -f "$OVS_RUN"/ovsdb-server.pid "$OVS_RUN"/ovs-vswitchd.pid "$OVN_RUN"/ovn-controller.pid \
    "$OVS_RUN"/db.sock

# ENABLE_SSL=true: ovn-controller reaches SB (the ssl: ovn-remote) with this node's certificate
# (the ovs-ovn TLS Secret at /var/run/tls: key, cert, cacert).
ssl=()
if [ "${ENABLE_SSL:-false}" = true ]; then
    for f in key cert cacert; do
        if [ ! -r "/var/run/tls/$f" ]; then
            echo "start-ovs: ENABLE_SSL=true but /var/run/tls/$f is missing or unreadable (the TLS Secret's keys: cacert, cert, key)" >&2
            exit 1
        fi
    done
    ssl=(--private-key=/var/run/tls/key --certificate=/var/run/tls/cert --ca-cert=/var/run/tls/cacert)
fi

trap 'kill $(jobs -p) 2>/dev/null; wait' TERM INT

ovsdb-server "$DB" \
    --remote=punix:"$OVS_RUN/db.sock" --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
    --pidfile="$OVS_RUN/ovsdb-server.pid" --log-file=/var/log/openvswitch/ovsdb-server.log &
declare -A daemon=([$!]=ovsdb-server)
# ovs-vswitchd and ovn-controller need the database up: wait until it answers (bounded; a
# loaded node can take seconds).
ready=
for _ in $(seq 300); do
    if ovs-vsctl --db=unix:"$OVS_RUN/db.sock" --timeout=2 --no-wait init 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "start-ovs: ovsdb-server did not answer on $OVS_RUN/db.sock within 30 s" >&2
    exit 1
fi

ovs-vswitchd unix:"$OVS_RUN/db.sock" \
    --pidfile="$OVS_RUN/ovs-vswitchd.pid" --log-file=/var/log/openvswitch/ovs-vswitchd.log &
daemon[$!]=ovs-vswitchd
ovn-controller unix:"$OVS_RUN/db.sock" "${ssl[@]}" \
    --pidfile="$OVN_RUN/ovn-controller.pid" --log-file=/var/log/ovn/ovn-controller.log &
daemon[$!]=ovn-controller

echo "ovs-ovn: ovsdb-server, ovs-vswitchd (${OVS_DATAPATH_TYPE:-system} datapath) and ovn-controller started"
# Which daemon went, and how (above 128: killed by signal status-128, e.g. 137 = SIGKILL, the
# kernel's OOM killer), so a crash loop says why.
set +e
wait -n -p gone
status=$?
echo "ovs-ovn: ${daemon[$gone]:-a daemon} (pid $gone) exited with status $status; stopping the others" >&2
kill $(jobs -p) 2>/dev/null || true
exit 1
