#!/bin/bash
# OVN central for the ovn-central pods: the NB and SB databases (files on the host under
# /etc/origin/ovn, mounted at /etc/ovn) and ovn-northd between them. NB listens on 6641 and SB
# on 6642 (host network; the ovn-nb / ovn-sb Services point here): with ENABLE_SSL=true over TLS
# only (pssl:, the certificate, key and CA of /var/run/tls, files cert, key and cacert; a client
# must present a certificate of that CA), else plain TCP.
#
# Two modes:
# - NODE_IPS empty: one standalone NB and one standalone SB (one central pod), ovn-northd on
#   their unix sockets.
# - NODE_IPS=ip1,ip2,... (upstream's variable: the members' addresses, this pod's POD_IP among
#   them): NB and SB are RAFT clusters of those members, over 6643 (NB) and 6644 (SB) with the
#   same TLS as the clients. A member whose database file is missing creates the cluster if it
#   is the first of NODE_IPS and no other member answers, and joins it otherwise; a member with
#   its file (a restarted pod) rejoins with it. A standalone file left by the one-member mode is
#   the new cluster's contents on the first member (no data lost) and is set aside on the
#   others. ovn-northd runs on every member against all of them: the one holding NB's lock is
#   active, the others stand by. A member that joins afresh (its node's files lost) removes the
#   server ID its address had before, so that the cluster keeps its size and quorum.
#
# Every daemon runs as a child of this script: when one exits, the script exits and kubelet
# restarts the container, so a half-running central never looks healthy.
#
# The paths and ports can be moved (OVN_CENTRAL_DB_DIR, _RUN_DIR, _LOG_DIR, _TLS_DIR, _NB_PORT,
# _SB_PORT, _NB_RAFT_PORT, _SB_RAFT_PORT) so that tests can run several members on one machine;
# the chart uses the defaults. (Not OVN_NB_PORT: kubelet sets that to the ovn-nb Service's
# tcp://IP:port in every pod with service links.)
set -euo pipefail

DB_DIR=${OVN_CENTRAL_DB_DIR:-/etc/ovn}
RUN_DIR=${OVN_CENTRAL_RUN_DIR:-/var/run/ovn}
LOG_DIR=${OVN_CENTRAL_LOG_DIR:-/var/log/ovn}
TLS_DIR=${OVN_CENTRAL_TLS_DIR:-/var/run/tls}
NB_PORT=${OVN_CENTRAL_NB_PORT:-6641}
SB_PORT=${OVN_CENTRAL_SB_PORT:-6642}
NB_RAFT_PORT=${OVN_CENTRAL_NB_RAFT_PORT:-6643}
SB_RAFT_PORT=${OVN_CENTRAL_SB_RAFT_PORT:-6644}
for port in "$NB_PORT" "$SB_PORT" "$NB_RAFT_PORT" "$SB_RAFT_PORT"; do
    case $port in
    '' | *[!0-9]*)
        echo "ovn-central: port \"$port\" is not a number (OVN_CENTRAL_*_PORT)" >&2
        exit 1
        ;;
    esac
done
NB_SCHEMA=/usr/share/ovn/ovn-nb.ovsschema
SB_SCHEMA=/usr/share/ovn/ovn-sb.ovsschema
mkdir -p "$DB_DIR" "$RUN_DIR" "$LOG_DIR"
# ovn-northd's control socket (ovn-northd.<pid>.ctl, where the probes look) goes here too.
export OVN_RUNDIR=$RUN_DIR

proto=tcp
ssl=()
if [ "${ENABLE_SSL:-false}" = true ]; then
    for f in key cert cacert; do
        if [ ! -r "$TLS_DIR/$f" ]; then
            echo "ovn-central: ENABLE_SSL=true but $TLS_DIR/$f is missing or unreadable (the TLS Secret's keys: cacert, cert, key)" >&2
            exit 1
        fi
    done
    proto=ssl
    ssl=(--private-key="$TLS_DIR/key" --certificate="$TLS_DIR/cert" --ca-cert="$TLS_DIR/cacert")
fi

# An address as OVSDB remotes write it: IPv6 in brackets.
host() {
    case $1 in
    *:*) echo "[$1]" ;;
    *) echo "$1" ;;
    esac
}

members=()
if [ -n "${NODE_IPS:-}" ]; then
    IFS=, read -r -a listed <<<"$NODE_IPS"
    for ip in "${listed[@]}"; do
        ip=${ip// /}
        [ -n "$ip" ] && members+=("$ip")
    done
    self=${POD_IP:-}
    found=
    for ip in "${members[@]}"; do
        [ "$ip" = "$self" ] && found=1
    done
    if [ -z "$found" ]; then
        echo "ovn-central: this pod's address POD_IP=${self:-<unset>} is not one of NODE_IPS=$NODE_IPS (the central members' addresses): it would run a member nobody else knows" >&2
        exit 1
    fi
fi

# `proto:host:port` of every member, comma-separated.
remotes() {
    local port=$1 out=() ip
    for ip in "${members[@]}"; do
        out+=("$proto:$(host "$ip"):$port")
    done
    (IFS=,; echo "${out[*]}")
}

# Standalone: creates the database file, or converts it to the image's schema after an upgrade.
prepare_standalone() {
    local db=$1 schema=$2
    if [ ! -f "$db" ]; then
        ovsdb-tool create "$db" "$schema"
    elif ovsdb-tool db-is-clustered "$db" 2>/dev/null; then
        echo "ovn-central: $db is a RAFT member's database but NODE_IPS is empty; refusing to run it standalone (set NODE_IPS to the members, or convert it with ovsdb-tool cluster-to-standalone)" >&2
        exit 1
    elif [ "$(ovsdb-tool needs-conversion "$db" "$schema")" = yes ]; then
        ovsdb-tool convert "$db" "$schema"
    fi
}

# Whether another member is in a running cluster of database $2 (client port $1): its
# _Server.Database row says connected. A member that is itself still joining says false, so
# members starting together never all join a cluster nobody created.
other_member_answers() {
    local port=$1 name=$2 ip
    local query='["_Server",{"op":"select","table":"Database","where":[["name","==","'$name'"]],"columns":["connected"]}]'
    for ip in "${members[@]}"; do
        [ "$ip" = "$self" ] && continue
        if ovsdb-client --timeout=3 "${ssl[@]}" transact "$proto:$(host "$ip"):$port" "$query" 2>/dev/null |
            grep -q '"connected":true'; then
            return 0
        fi
    done
    return 1
}

# Databases this member joined afresh (its file was gone: a new node, or a replaced one).
fresh=()

# Clustered: the member's database file, created, joined or (from standalone) converted.
prepare_clustered() {
    local db=$1 schema=$2 name=$3 port=$4 raft_port=$5
    local local_addr="$proto:$(host "$self"):$raft_port" others=() ip
    for ip in "${members[@]}"; do
        [ "$ip" = "$self" ] || others+=("$proto:$(host "$ip"):$raft_port")
    done
    if [ -f "$db" ] && ovsdb-tool db-is-clustered "$db" 2>/dev/null; then
        echo "ovn-central: $name: rejoining with $db ($(ovsdb-tool db-local-address "$db"))"
        return
    fi
    local standalone=
    if [ -f "$db" ]; then
        standalone="$db.standalone-$(date +%Y%m%d%H%M%S)"
        mv "$db" "$standalone"
    fi
    if [ "$self" = "${members[0]}" ] && ! other_member_answers "$port" "$name"; then
        if [ -n "$standalone" ]; then
            [ "$(ovsdb-tool needs-conversion "$standalone" "$schema")" = yes ] &&
                ovsdb-tool convert "$standalone" "$schema"
            echo "ovn-central: $name: creating the cluster at $local_addr from the standalone database (kept as $standalone)"
            ovsdb-tool create-cluster "$db" "$standalone" "$local_addr"
        else
            echo "ovn-central: $name: creating the cluster at $local_addr"
            ovsdb-tool create-cluster "$db" "$schema" "$local_addr"
        fi
    elif [ "${#others[@]}" -eq 0 ]; then
        echo "ovn-central: $name: NODE_IPS names only this member and its database is gone" >&2
        exit 1
    else
        [ -n "$standalone" ] &&
            echo "ovn-central: $name: set aside the standalone database as $standalone; the cluster's contents win"
        echo "ovn-central: $name: joining the cluster at ${others[*]} as $local_addr"
        ovsdb-tool join-cluster "$db" "$name" "$local_addr" "${others[@]}"
        fresh+=("$name")
    fi
}

# A member that joined afresh takes the server IDs its address had before (a node whose files
# were lost) out of the cluster: they would count toward the quorum forever. Waits (bounded)
# until the join is done.
kick_stale() {
    local ctl=$1 name=$2 deadline=$((SECONDS + 120)) status addr sid rest
    until status=$(ovs-appctl -t "$ctl" cluster/status "$name" 2>/dev/null) &&
        grep -q '^Status: cluster member' <<<"$status"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "ovn-central: $name: not a cluster member after 120 s; earlier server IDs of this address not looked for" >&2
            return 0
        fi
        sleep 0.5
    done
    addr=$(sed -n 's/^Address: //p' <<<"$status")
    # "Servers:" lines: "    <sid> (<sid> at <address>) ...", this server's marked (self).
    while read -r sid rest; do
        case $rest in
        *"(self)"*) ;;
        *" at $addr)"*)
            ovs-appctl -t "$ctl" cluster/kick "$name" "$sid" >/dev/null &&
                echo "ovn-central: $name: removed server $sid, this address's earlier member"
            ;;
        esac
    done < <(sed -n '/^Servers:/,$p' <<<"$status" | tail -n +2)
}

if [ "${#members[@]}" -eq 0 ]; then
    prepare_standalone "$DB_DIR/ovnnb_db.db" "$NB_SCHEMA"
    prepare_standalone "$DB_DIR/ovnsb_db.db" "$SB_SCHEMA"
    listen_nb=p$proto:$NB_PORT
    listen_sb=p$proto:$SB_PORT
    northd_nb=unix:"$RUN_DIR/ovnnb_db.sock"
    northd_sb=unix:"$RUN_DIR/ovnsb_db.sock"
else
    prepare_clustered "$DB_DIR/ovnnb_db.db" "$NB_SCHEMA" OVN_Northbound "$NB_PORT" "$NB_RAFT_PORT"
    prepare_clustered "$DB_DIR/ovnsb_db.db" "$SB_SCHEMA" OVN_Southbound "$SB_PORT" "$SB_RAFT_PORT"
    # On this member's address only: the others reach it there, and nothing else listens.
    listen_nb=p$proto:$NB_PORT:$(host "$self")
    listen_sb=p$proto:$SB_PORT:$(host "$self")
    northd_nb=$(remotes "$NB_PORT")
    northd_sb=$(remotes "$SB_PORT")
fi

# A pod restarted on the same node finds the previous pidfiles on the host path.
rm -f "$RUN_DIR"/ovnnb_db.pid "$RUN_DIR"/ovnsb_db.pid "$RUN_DIR"/ovn-northd.pid

trap 'kill $(jobs -p) 2>/dev/null; wait' TERM INT

ovsdb-server "$DB_DIR/ovnnb_db.db" \
    --remote=punix:"$RUN_DIR/ovnnb_db.sock" --remote="$listen_nb" "${ssl[@]}" \
    --remote=db:OVN_Northbound,NB_Global,connections \
    --pidfile="$RUN_DIR/ovnnb_db.pid" --unixctl="$RUN_DIR/ovnnb_db.ctl" \
    --log-file="$LOG_DIR/ovsdb-server-nb.log" &
declare -A daemon=([$!]=ovsdb-server-nb)
ovsdb-server "$DB_DIR/ovnsb_db.db" \
    --remote=punix:"$RUN_DIR/ovnsb_db.sock" --remote="$listen_sb" "${ssl[@]}" \
    --remote=db:OVN_Southbound,SB_Global,connections \
    --pidfile="$RUN_DIR/ovnsb_db.pid" --unixctl="$RUN_DIR/ovnsb_db.ctl" \
    --log-file="$LOG_DIR/ovsdb-server-sb.log" &
daemon[$!]=ovsdb-server-sb
ovn-northd \
    --ovnnb-db="$northd_nb" --ovnsb-db="$northd_sb" "${ssl[@]}" \
    --pidfile="$RUN_DIR/ovn-northd.pid" \
    --log-file="$LOG_DIR/ovn-northd.log" &
daemon[$!]=ovn-northd

for name in "${fresh[@]}"; do
    case $name in
    OVN_Northbound) kick_stale "$RUN_DIR/ovnnb_db.ctl" "$name" ;;
    OVN_Southbound) kick_stale "$RUN_DIR/ovnsb_db.ctl" "$name" ;;
    esac
done

if [ "${#members[@]}" -eq 0 ]; then
    echo "ovn-central: NB on $listen_nb, SB on $listen_sb, ovn-northd started"
else
    echo "ovn-central: RAFT member $self of ${members[*]}: NB on $listen_nb, SB on $listen_sb, ovn-northd started"
fi
# Which daemon went, and how (above 128: killed by signal status-128).
set +e
wait -n -p gone
status=$?
echo "ovn-central: ${daemon[$gone]:-a daemon} (pid $gone) exited with status $status; stopping the others" >&2
kill $(jobs -p) 2>/dev/null || true
exit 1
