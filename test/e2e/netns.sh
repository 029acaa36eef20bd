#!/usr/bin/env bash
# A network namespace that stands in for the guests' network, so that the
# operator's reachability probes meet real TCP listeners without a single
# packet leaving the machine. Used by the e2e tests and by the sandbox.
#
#   netns.sh check              exit 0 when this machine can do it (root, ip netns, veth)
#   netns.sh up NAME            create namespace NAME with a veth pair into it, claim a
#                               guest range nobody routes yet (10.X.0.0/16 and
#                               fd13:0:0:X::/64) and route it into NAME; prints
#                               "ipv4=CIDR ipv6=CIDR"
#   netns.sh add NAME ADDR...   give NAME these guest addresses (IPv4 or IPv6)
#   netns.sh listen NAME PORT   a TCP listener on PORT (every address) inside NAME,
#                               in the background
#   netns.sh down NAME          stop NAME's listeners, delete NAME and its veth pair
#                               (the routes go with it); safe to repeat
#
# Only the claimed ranges are routed into the namespace; the host end of the
# pair holds the first address of each (10.X.0.1, fd13:0:0:X::2), which pve-sim
# never hands to a guest.
set -euo pipefail

usage() { sed -n '2,17p' "$0" >&2; exit 2; }

# Interface names are at most 15 characters: derive short ones from NAME.
host_if() { echo "nxe$(printf '%s' "$1" | cksum | awk '{print $1 % 1000000}')h"; }
guest_if() { echo "nxe$(printf '%s' "$1" | cksum | awk '{print $1 % 1000000}')g"; }

check() {
  [ "$(id -u)" -eq 0 ] || { echo "netns: needs root (uid is $(id -u))" >&2; return 1; }
  command -v ip >/dev/null || { echo "netns: the ip command (iproute2) is missing" >&2; return 1; }
  command -v python3 >/dev/null || { echo "netns: python3 is missing (runs the listener)" >&2; return 1; }
  local probe="nixmox-check-$$"
  if ! ip netns add "$probe" 2>/dev/null; then
    echo "netns: ip netns add is not permitted here" >&2
    return 1
  fi
  local ok=0
  ip link add "nxc$$h" type veth peer name "nxc$$g" netns "$probe" 2>/dev/null || ok=1
  ip link del "nxc$$h" 2>/dev/null || true
  ip netns del "$probe"
  [ "$ok" = 0 ] || { echo "netns: cannot create veth pairs here" >&2; return 1; }
}

# True when nothing but the default route covers the range (so claiming it
# hides no network this machine uses).
unrouted4() { ! ip -4 route show | awk '$1 != "default"' | grep -q "^10\.$1\."; }
unrouted6() { ! ip -6 route show | grep -q "^fd13:0:0:$1::"; }

up() {
  local ns=$1 h g
  h=$(host_if "$ns")
  g=$(guest_if "$ns")
  ip netns add "$ns"
  ip link add "$h" type veth peer name "$g" netns "$ns"
  # No duplicate address detection: addresses are usable the moment they are added.
  sysctl -q -w "net.ipv6.conf.$h.accept_dad=0"
  ip netns exec "$ns" sysctl -q -w "net.ipv6.conf.$g.accept_dad=0"
  ip link set "$h" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$g" up
  local x
  for x in $(seq 200 254); do
    unrouted4 "$x" && unrouted6 "$x" || continue
    # `route add` fails when a concurrent run claimed the range first: try the next.
    ip -4 addr add "10.$x.0.1/32" dev "$h"
    if ! ip -4 route add "10.$x.0.0/16" dev "$h" src "10.$x.0.1" 2>/dev/null; then
      ip -4 addr del "10.$x.0.1/32" dev "$h"
      continue
    fi
    ip -6 addr add "fd13:0:0:$x::2/128" dev "$h" nodad
    ip -6 route add "fd13:0:0:$x::/64" dev "$h" src "fd13:0:0:$x::2"
    ip -n "$ns" -4 route add "10.$x.0.1/32" dev "$g"
    ip -n "$ns" -6 route add "fd13:0:0:$x::2/128" dev "$g"
    echo "ipv4=10.$x.0.0/16 ipv6=fd13:0:0:$x::/64"
    return 0
  done
  echo "netns: no free 10.X.0.0/16 range (X in 200..254)" >&2
  down "$ns"
  return 1
}

add() {
  local ns=$1 g a
  shift
  g=$(guest_if "$ns")
  for a in "$@"; do
    case "$a" in
      *:*) ip -n "$ns" -6 addr replace "$a/128" dev "$g" nodad ;;
      *) ip -n "$ns" -4 addr replace "$a/32" dev "$g" ;;
    esac
  done
}

listen() {
  local ns=$1 port=$2
  # One dual-stack socket: accepts and closes every connection, forever.
  ip netns exec "$ns" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
' "$port" </dev/null >/dev/null 2>&1 &
  # Ready once the port shows in the namespace's socket table.
  local i
  for i in $(seq 1 100); do
    ip netns exec "$ns" ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  echo "netns: the listener on port $port did not come up" >&2
  return 1
}

down() {
  local ns=$1 pid
  if ip netns list | awk '{print $1}' | grep -qxF "$ns"; then
    # Only processes inside this namespace: the listeners `listen` started.
    for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
  fi
  ip link del "$(host_if "$ns")" 2>/dev/null || true
}

case "${1:-}" in
  check) check ;;
  up) [ $# -eq 2 ] || usage; up "$2" ;;
  add) [ $# -ge 3 ] || usage; add "${@:2}" ;;
  listen) [ $# -eq 3 ] || usage; listen "$2" "$3" ;;
  down) [ $# -eq 2 ] || usage; down "$2" ;;
  *) usage ;;
esac
