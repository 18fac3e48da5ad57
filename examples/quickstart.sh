#!/usr/bin/env bash
# The README's session, run in a network namespace of its own: the host's links, routes and
# firewall are never touched, and everything made here is removed on exit (even on failure).
#
#   sudo examples/quickstart.sh                 # with the installed `dnsd`
#   sudo DNSD="python3 -m dnsd" examples/quickstart.sh   # from a checkout
#
# Needs root, iproute2, nftables, dig (dnsutils), ping; the docker CLI part runs when `docker`
# is installed (no Docker engine needed).
set -euo pipefail

read -r -a DNSD <<< "${DNSD:-dnsd}"
P="qs$$-"                         # sandbox names: unique, so runs never collide
HOST_NS="${P}host"
WORK=$(mktemp -d)
SOCK="$WORK/dnsd.sock"
DAEMON=""

step() { printf '\n$ %s\n' "$*"; }
expect() {  # expect WHAT GOT WANT
    if [ "$2" != "$3" ]; then echo "quickstart: $1: got '$2', want '$3'" >&2; exit 1; fi
}

cleanup() {
    set +e
    if [ -n "$DAEMON" ]; then
        "${DNSD[@]}" sandbox rm "${P}web" "${P}cli" >/dev/null 2>&1
        kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    fi
    for ns in $(ip netns list | awk '{print $1}' | grep "^${P}"); do ip netns delete "$ns"; done
    rm -rf /etc/netns/"${P}"* "$WORK"
}
trap cleanup EXIT

# A "host" of our own: the daemon sees only this namespace's links (bridges, veths, nft).
ip netns add "$HOST_NS"
ip -n "$HOST_NS" link set lo up
echo "nameserver 192.0.2.53" > "$WORK/resolv.conf"   # no upstream needed: local names only

step "dnsd serve &"
nsenter --net="/run/netns/$HOST_NS" "${DNSD[@]}" serve --state-dir "$WORK/state" \
    --api-socket "$SOCK" --host-resolv-conf "$WORK/resolv.conf" --log-level warning &
DAEMON=$!
export DNSD_SOCKET="$SOCK"
for _ in $(seq 100); do
    "${DNSD[@]}" status >/dev/null 2>&1 && break
    kill -0 "$DAEMON" || { echo "quickstart: the daemon did not start" >&2; exit 1; }
    sleep 0.1
done

step "dnsd network create --subnet 10.10.0.0/24 app"
"${DNSD[@]}" network create --subnet 10.10.0.0/24 app
step "dnsd sandbox create --network app --alias api ${P}web"
"${DNSD[@]}" sandbox create --network app --alias api "${P}web"
step "dnsd sandbox create --network app ${P}cli"
"${DNSD[@]}" sandbox create --network app "${P}cli"

step "ip netns exec ${P}cli dig +short ${P}web"
got=$(ip netns exec "${P}cli" dig +short +tries=2 +time=2 "${P}web")
echo "$got"; expect "dig ${P}web" "$got" "10.10.0.2"
step "ip netns exec ${P}cli ping -c1 api"
ip netns exec "${P}cli" ping -c1 -W2 api
step "dnsd sandbox exec ${P}cli -- getent hosts ${P}web"
got=$("${DNSD[@]}" sandbox exec "${P}cli" -- getent hosts "${P}web")
echo "$got"; expect "getent hosts" "$(echo "$got" | awk '{print $1}')" "10.10.0.2"
step "dnsd network ls"
"${DNSD[@]}" network ls
step "dnsd sandbox ls"
"${DNSD[@]}" sandbox ls

if command -v docker >/dev/null; then
    export DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$WORK/docker"
    step "docker network create --subnet 10.20.0.0/24 backend"
    docker network create --subnet 10.20.0.0/24 backend
    step "docker network connect --alias db backend ${P}web"
    docker network connect --alias db backend "${P}web"
    step "ip netns exec ${P}web dig +short db"
    got=$(ip netns exec "${P}web" dig +short +tries=2 +time=2 db)
    echo "$got"; expect "dig db" "$got" "10.20.0.2"
    step "docker network inspect app --format '{{json .Containers}}'"
    docker network inspect app --format '{{json .Containers}}'
    step "docker network disconnect backend ${P}web"
    docker network disconnect backend "${P}web"
    step "docker network rm backend"
    docker network rm backend
else
    echo "(docker CLI not installed: skipping the docker part)"
fi

step "dnsd status"
"${DNSD[@]}" status
step "dnsd sandbox rm ${P}web ${P}cli"
"${DNSD[@]}" sandbox rm "${P}web" "${P}cli"
step "dnsd network rm app"
"${DNSD[@]}" network rm app
echo; echo "quickstart: OK"
