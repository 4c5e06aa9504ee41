#!/bin/bash
# Readiness and liveness of the ovn-central and ovs-ovn containers: every daemon answers.
#   ovn-healthcheck.sh central | ovs
set -euo pipefail
case "${1:-}" in
central)
    ovsdb-client --timeout=3 list-dbs unix:/var/run/ovn/ovnnb_db.sock | grep -qx OVN_Northbound
    ovsdb-client --timeout=3 list-dbs unix:/var/run/ovn/ovnsb_db.sock | grep -qx OVN_Southbound
    ovn-appctl --timeout=3 -t /var/run/ovn/ovn-northd.$(cat /var/run/ovn/ovn-northd.pid).ctl status >/dev/null
    ;;
ovs)
    ovs-vsctl --timeout=3 --db=unix:/var/run/openvswitch/db.sock show >/dev/null
    ovs-appctl --timeout=3 -t /var/run/openvswitch/ovs-vswitchd.$(cat /var/run/openvswitch/ovs-vswitchd.pid).ctl version >/dev/null
    ovn-appctl --timeout=3 -t /var/run/ovn/ovn-controller.$(cat /var/run/ovn/ovn-controller.pid).ctl version >/dev/null
    ;;
*)
    echo "usage: $0 central|ovs" >&2
    exit 2
    ;;
esac
