#!/bin/bash
# OVN central for the ovn-central Deployment: the NB and SB databases (standalone ovsdb-servers,
# files on the host under /etc/origin/ovn, mounted at /etc/ovn) and ovn-northd between them.
# NB listens on 6641 and SB on 6642 (host network; the ovn-nb / ovn-sb Services point here):
# with ENABLE_SSL=true over TLS only (pssl:, the certificate, key and CA of /var/run/tls, files
# cert, key and cacert; a client must present a certificate of that CA), else plain TCP.
# Every daemon runs as a child of this script: when one exits, the script exits and kubelet
# restarts the container, so a half-running central never looks healthy.
set -euo pipefail

DB_DIR=/etc/ovn
RUN_DIR=/var/run/ovn
LOG_DIR=/var/log/ovn
mkdir -p "$DB_DIR" "$RUN_DIR" "$LOG_DIR"

# Creates the database file, or converts it to the image's schema after an upgrade.
prepare_db() {
    local db=$1 schema=$2
    if [ ! -f "$db" ]; then
        ovsdb-tool create "$db" "$schema"
    elif [ "$(ovsdb-tool needs-conversion "$db" "$schema")" = yes ]; then
        ovsdb-tool convert "$db" "$schema"
    fi
}
prepare_db "$DB_DIR/ovnnb_db.db" /usr/share/ovn/ovn-nb.ovsschema
prepare_db "$DB_DIR/ovnsb_db.db" /usr/share/ovn/ovn-sb.ovsschema

# A pod restarted on the same node finds the previous pidfiles on the host path.
rm -f "$RUN_DIR"/ovnnb_db.pid "$RUN_DIR"/ovnsb_db.pid "$RUN_DIR"/ovn-northd.pid

listen=ptcp
ssl=()
if [ "${ENABLE_SSL:-false}" = true ]; then
    for f in key cert cacert; do
        if [ ! -r "/var/run/tls/$f" ]; then
            echo "ovn-central: ENABLE_SSL=true but /var/run/tls/$f is missing or unreadable (the TLS Secret's keys: cacert, cert, key)" >&2
            exit 1
        fi
    done
    listen=pssl
    ssl=(--private-key=/var/run/tls/key --certificate=/var/run/tls/cert --ca-cert=/var/run/tls/cacert)
fi

trap 'kill $(jobs -p) 2>/dev/null; wait' TERM INT

ovsdb-server "$DB_DIR/ovnnb_db.db" \
    --remote=punix:"$RUN_DIR/ovnnb_db.sock" --remote=$listen:6641 "${ssl[@]}" \
    --remote=db:OVN_Northbound,NB_Global,connections \
    --pidfile="$RUN_DIR/ovnnb_db.pid" --unixctl="$RUN_DIR/ovnnb_db.ctl" \
    --log-file="$LOG_DIR/ovsdb-server-nb.log" &
declare -A daemon=([$!]=ovsdb-server-nb)
ovsdb-server "$DB_DIR/ovnsb_db.db" \
    --remote=punix:"$RUN_DIR/ovnsb_db.sock" --remote=$listen:6642 "${ssl[@]}" \
    --remote=db:OVN_Southbound,SB_Global,connections \
    --pidfile="$RUN_DIR/ovnsb_db.pid" --unixctl="$RUN_DIR/ovnsb_db.ctl" \
    --log-file="$LOG_DIR/ovsdb-server-sb.log" &
daemon[$!]=ovsdb-server-sb
ovn-northd \
    --ovnnb-db=unix:"$RUN_DIR/ovnnb_db.sock" --ovnsb-db=unix:"$RUN_DIR/ovnsb_db.sock" \
    --pidfile="$RUN_DIR/ovn-northd.pid" --log-file="$LOG_DIR/ovn-northd.log" &
daemon[$!]=ovn-northd

echo "ovn-central: NB on $listen:6641, SB on $listen:6642, ovn-northd started"
# Which daemon went, and how (above 128: killed by signal status-128).
set +e
wait -n -p gone
status=$?
echo "ovn-central: ${daemon[$gone]:-a daemon} (pid $gone) exited with status $status; stopping the others" >&2
kill $(jobs -p) 2>/dev/null || true
exit 1
