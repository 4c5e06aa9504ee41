#!/bin/bash
# Readiness and liveness of the ovn-central and ovs-ovn containers: every daemon answers.
#   ovn-healthcheck.sh central | ovs
# The first probe runs as the container starts: the daemons get a few seconds (within the
# probe's timeout) to answer, so a normal start is not reported as a failed probe (a Warning
# event on the pod).
set -uo pipefail

central() {
    ovsdb-client --timeout=3 list-dbs unix:/var/run/ovn/ovnnb_db.sock | grep -qx OVN_Northbound &&
    ovsdb-client --timeout=3 list-dbs unix:/var/run/ovn/ovnsb_db.sock | grep -qx OVN_Southbound &&
    ovn-appctl --timeout=3 -t /var/run/ovn/ovn-northd."$(cat /var/run/ovn/ovn-northd.pid 2>/dev/null)".ctl status >/dev/null
}

ovs() {
    ovs-vsctl --timeout=3 --db=unix:/var/run/openvswitch/db.sock show >/dev/null &&
    ovs-appctl --timeout=3 -t /var/run/openvswitch/ovs-vswitchd."$(cat /var/run/openvswitch/ovs-vswitchd.pid 2>/dev/null)".ctl version >/dev/null &&
    ovn-appctl --timeout=3 -t /var/run/ovn/ovn-controller."$(cat /var/run/ovn/ovn-controller.pid 2>/dev/null)".ctl version >/dev/null
}

case "${1:-}" in
central | ovs) check=$1 ;;
*)
    echo "usage: $0 central|ovs" >&2
    exit 2
    ;;
esac
deadline=$((SECONDS + ${HEALTHCHECK_WAIT:-8}))
until "$check" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        # Once more with the errors shown: they are the probe's message.
        "$check"
        exit 1
    fi
    sleep 0.2
done
