#!/usr/bin/env bash
# A three-host dnsd lab in network namespaces: an underlay bridge, one etcd, hosts A, B, C with
# their own daemons sharing it, an overlay network, `web` on A and `cli` on B, and
# `ping web` from B across the VXLAN overlay. Everything is torn down at the end (or on error).
#
#   sudo examples/multihost/lab.sh            # from the repository root; needs etcd-server
set -euo pipefail
cd "$(dirname "$0")/../.."
P="ml$$"                       # unique names for this run
UL="${P}ul"; TMP="$(mktemp -d)"; PIDS=()
ul() { nsenter --net="/run/netns/$UL" "$@"; }
dnsd() { local h=$1; shift; python3 -m dnsd "$@" --api-socket "$TMP/$h/api.sock"; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P" || true); do ip netns delete "$ns"; done
  rm -rf "$TMP" /etc/netns/"$P"*
}
trap cleanup EXIT

ip netns add "$UL"
ul ip link set lo up
ul ip link add ul0 type bridge && ul ip addr add 10.231.0.1/24 dev ul0 && ul ip link set ul0 up
ul etcd --data-dir "$TMP/etcd" --listen-client-urls http://10.231.0.1:2379 \
  --advertise-client-urls http://10.231.0.1:2379 --listen-peer-urls http://10.231.0.1:2380 \
  >"$TMP/etcd.log" 2>&1 &
PIDS+=($!)
until ul etcdctl --endpoints 10.231.0.1:2379 endpoint health >/dev/null 2>&1; do sleep 0.2; done

i=11
for h in a b c; do
  ns="$P$h"; mkdir -p "$TMP/$h"
  ip netns add "$ns"; ip -n "$ns" link set lo up
  ul ip link add "${P}$h" type veth peer eth1 netns "$ns"
  ul ip link set "${P}$h" master ul0 up
  ip -n "$ns" addr add "10.231.0.$i/24" dev eth1; ip -n "$ns" link set eth1 up
  echo "nameserver 10.231.0.1" >"$TMP/$h/resolv.conf"
  nsenter --net="/run/netns/$ns" python3 -m dnsd serve --state-dir "$TMP/$h/state" \
    --api-socket "$TMP/$h/api.sock" --host-resolv-conf "$TMP/$h/resolv.conf" \
    --no-default-network --store "etcd://10.231.0.1:2379/lab" --host-id "$h" \
    --advertise-addr "10.231.0.$i" >"$TMP/$h/dnsd.log" 2>&1 &
  PIDS+=($!)
  i=$((i + 1))
done
for h in a b c; do
  until dnsd "$h" network ls >/dev/null 2>&1; do sleep 0.1; done
done

dnsd a network create --driver overlay --subnet 10.50.0.0/24 ov >/dev/null
echo "--- host C lists the overlay created on A:"; dnsd c network ls
dnsd a sandbox create --network ov --alias web "${P}web" >/dev/null
dnsd b sandbox create --network ov --alias cli "${P}cli" >/dev/null
echo "--- from cli on B: ping web (on A) over VXLAN:"
ip netns exec "${P}cli" ping -c2 -W2 web
echo "--- lab works; tearing down"
