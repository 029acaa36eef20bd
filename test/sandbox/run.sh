#!/usr/bin/env bash
# Runs the sandbox world from an existing build (what .ci/sandbox does after
# installing and building; ctest runs it too).
#   --build DIR  the build directory   --keep  leave it running   --count N
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build
keep=0
count=3
while (($#)); do
  case "$1" in
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    --count) count=$2; shift ;;
    *) echo "sandbox: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d -t nixmox-sandbox.XXXXXX)
# A throwaway token for a throwaway simulator on loopback.
secret=$(cat /proc/sys/kernel/random/uuid)
export NIXMOX_PVE_TOKEN="root@pam!sandbox=$secret"
sim_pid=""
cleanup() {
  if [ "$keep" = 0 ] && [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

"$build/test/sim/pve/pve-sim" --listen 127.0.0.1:0 --nodes pve1,pve2,pve3 \
  --token "$NIXMOX_PVE_TOKEN" --task-ms 400 --boot-ms 3000 --time-scale 4 \
  --state-file "$work/pve-sim.state.json" >"$work/pve-sim.out" 2>"$work/pve-sim.log" &
sim_pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(head -n1 "$work/pve-sim.out" 2>/dev/null || true)
  [ -n "$url" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$work/pve-sim.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "sandbox: pve-sim did not start" >&2; exit 1; }
echo "sandbox: pve-sim is listening at $url (log: $work/pve-sim.log)"

qemu-img create -q -f qcow2 "$work/walkthrough.qcow2" 2G
extra=()
[ "$keep" = 1 ] && extra+=(--keep)
"$build/test/sandbox/nixmox-pve-walkthrough" --url "$url" --image "$work/walkthrough.qcow2" \
  --count "$count" "${extra[@]}"

if [ "$keep" = 1 ]; then
  cat <<TXT
sandbox: left running (pid $sim_pid). Explore it as you would Proxmox VE:
  curl -s -H 'Authorization: PVEAPIToken=$NIXMOX_PVE_TOKEN' $url/api2/json/cluster/resources | jq
Stop it with: kill $sim_pid
TXT
fi
echo "sandbox: converged"
