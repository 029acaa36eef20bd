#!/usr/bin/env bash
# The sandbox, from an existing build (.ci/sandbox builds first; ctest runs it
# too): kubesim (a Kubernetes API server) + pve-sim (a three-node Proxmox VE)
# + nixmox-operator, with crds/ and deploy/examples/ applied by real kubectl.
# The example NixImage is built by the real nix (nix/examples/offline, a flake
# with no inputs) in a builder Job that kubesim runs as a local process.
# It waits until every example VM is Running with a primary IP, prints them,
# stops everything and exits 0; non-zero with the logs on failure or when the
# deadline passes.
#
# As root (with `ip netns`), the guests' addresses live in a network namespace
# with a listener on port 22, so the operator's reachability probes succeed
# for real without a packet leaving the machine; otherwise nothing is probed.
#   --build DIR    the build directory (default: build)
#   --keep         leave it all running and print how to use it
#   --timeout SEC  deadline for convergence (default 180)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$root/build
keep=0
timeout=180
while (($#)); do
  case "$1" in
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    --timeout) timeout=$2; shift ;;
    *) echo "sandbox: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

umask 077  # the token lands in files here
work=$(mktemp -d -t nixmox-sandbox.XXXXXX)
netns_script=$root/test/e2e/netns.sh
examples=$root/deploy/examples
ns=nixmox-sandbox
netns=""
pids=()
converged=0

say() { echo "sandbox: $*"; }

show_logs() {
  local f
  for f in operator.log pve-sim.log kubesim.log; do
    [ -s "$work/$f" ] && { echo "--- $f (tail) ---"; tail -n 40 "$work/$f"; }
  done
  [ -s "$work/kubeconfig" ] && k get proxmoxclusters,proxmoxvms -n "$ns" -o yaml 2>&1 | tail -n 120
}

cleanup() {
  local status=$?
  if [ "$converged" = 0 ]; then
    echo "sandbox: FAILED (exit $status); logs follow" >&2
    show_logs >&2 || true
  fi
  if [ "$keep" = 1 ] && [ "$converged" = 1 ]; then return; fi
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  [ -n "$netns" ] && bash "$netns_script" down "$netns"
  rm -rf "$work"
}
trap cleanup EXIT

uuid() { cat /proc/sys/kernel/random/uuid; }

# Waits until file $1 has a line matching $2 (a process's readiness line) or
# process $3 dies; prints the line.
wait_for_line() {
  local line
  for _ in $(seq 1 300); do
    line=$(grep -m1 -e "$2" "$1" 2>/dev/null || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    kill -0 "$3" 2>/dev/null || { echo "sandbox: process $3 exited" >&2; return 1; }
    sleep 0.1
  done
  echo "sandbox: no '$2' in $1" >&2
  return 1
}

for bin in test/sim/kube/kubesim test/sim/pve/pve-sim operator/nixmox-operator \
  operator/nixmox-builder test/sandbox/nixmox-sandbox-cert; do
  [ -x "$build/$bin" ] || { echo "sandbox: $build/$bin is missing: build first" >&2; exit 1; }
done
kubectl_bin=$(bash "$root/.ci/tools" | sed -n 's/^KUBECTL=//p')
k() { "$kubectl_bin" --kubeconfig "$work/kubeconfig" "$@"; }

# ---- Kubernetes: kubesim, the CRDs, a namespace --------------------------
# --run-jobs: kubesim runs the NixImage builder Jobs as processes on this machine.
"$build/test/sim/kube/kubesim" --listen 127.0.0.1:0 --tls --token "$(uuid)" \
  --kubeconfig-out "$work/kubeconfig" --run-jobs --work-dir "$work/jobs" \
  >"$work/kubesim.out" 2>"$work/kubesim.log" &
pids+=($!)
kube_url=$(wait_for_line "$work/kubesim.out" "serving on" "${pids[-1]}" | awk '{print $NF}')
say "kubesim is serving at $kube_url"
k apply -f "$root/crds/" >/dev/null
k wait --for=condition=Established --timeout=30s \
  crd/proxmoxclusters.nixmox.io crd/proxmoxvms.nixmox.io crd/niximages.nixmox.io >/dev/null
k create namespace "$ns" >/dev/null

# ---- The guests' network --------------------------------------------------
if reason=$(bash "$netns_script" check 2>&1); then
  netns=nixmox-sandbox-$$
  ranges=$(bash "$netns_script" up "$netns")
  ipv4_cidr=$(sed -n 's/.*ipv4=\([^ ]*\).*/\1/p' <<<"$ranges")
  ipv6_cidr=$(sed -n 's/.*ipv6=\([^ ]*\).*/\1/p' <<<"$ranges")
  bash "$netns_script" listen "$netns" 22
  probe_networks="$ipv4_cidr,$ipv6_cidr"
  say "guest addresses come from $ipv4_cidr and $ipv6_cidr, routed into network namespace $netns (port 22 answers there)"
else
  ipv4_cidr=10.213.0.0/16
  ipv6_cidr=fd13::/64
  # Loopback only: no guest address qualifies, so no probe leaves the machine.
  probe_networks=127.0.0.1/32
  say "NOTE: reachability is not probed ($reason); primaryIP is the first address the guest agent reports"
fi

# ---- Proxmox: pve-sim over HTTPS, a boot image on every node --------------
"$build/test/sandbox/nixmox-sandbox-cert" "$work/pve.crt" "$work/pve.key" 127.0.0.1
token_id="root@pam!sandbox"
token_secret=$(uuid)
"$build/test/sim/pve/pve-sim" --listen 127.0.0.1:0 --nodes pve1,pve2,pve3 \
  --token "$token_id=$token_secret" --tls-cert "$work/pve.crt" --tls-key "$work/pve.key" \
  --task-ms 400 --boot-ms 3000 --time-scale 4 \
  --guest-ipv4-cidr "$ipv4_cidr" --guest-ipv6-cidr "$ipv6_cidr" \
  >"$work/pve-sim.out" 2>"$work/pve-sim.log" &
pids+=($!)
pve_url=$(wait_for_line "$work/pve-sim.out" "^https://" "${pids[-1]}")
say "pve-sim is serving at $pve_url"

# The token goes to curl in a header file, never on a command line.
printf 'Authorization: PVEAPIToken=%s=%s\n' "$token_id" "$token_secret" >"$work/pve.header"
pve() { curl -sS --fail-with-body --cacert "$work/pve.crt" -H "@$work/pve.header" "$@"; }

qemu-img create -q -f qcow2 "$work/nixos.qcow2" 2G
for node in pve1 pve2 pve3; do
  upid=$(pve -F content=import -F "filename=@$work/nixos.qcow2" \
    "$pve_url/api2/json/nodes/$node/storage/local/upload" | jq -r .data)
  task="$pve_url/api2/json/nodes/$node/tasks/$(jq -rn --arg u "$upid" '$u|@uri')/status"
  until [ "$(pve "$task" | jq -r .data.status)" = stopped ]; do sleep 0.1; done
  [ "$(pve "$task" | jq -r .data.exitstatus)" = OK ] || { echo "sandbox: upload to $node failed" >&2; exit 1; }
done
say "uploaded nixos.qcow2 to local:import/ on pve1, pve2 and pve3"

# ---- The examples, filled in for this sandbox -----------------------------
cat >"$work/fill.sed" <<SED
s|https://pve.example.org:8006|$pve_url|
s|nixmox@pve!operator|$token_id|
s|REPLACE-WITH-THE-TOKEN-SECRET|$token_secret|
SED
sed -f "$work/fill.sed" "$examples/credentials.yaml" | k apply -n "$ns" -f - >/dev/null
sed -f "$work/fill.sed" "$examples/cluster.yaml" |
  k patch --local -f - --type merge -o yaml \
    -p "$(jq -n --rawfile ca "$work/pve.crt" '{spec: {tls: {caBundle: $ca}}}')" |
  k apply -n "$ns" -f - >/dev/null
k apply -n "$ns" -f "$examples/vms.yaml"
# The NixImage builds nix/examples/offline, a flake with no inputs, with the
# real nix; its VM boots from the volume the builder uploads. Nix without a
# daemon writes /nix itself, which only root may.
if [ "$(id -u)" -eq 0 ] && command -v nix >/dev/null; then
  system="$(uname -m)-linux"
  sed -e "s|github:example/infra|path:$root/nix/examples/offline|" \
    -e "s|nixosConfigurations.web.config.system.build.image|packages.$system.qcow2|" \
    "$examples/image.yaml" | k apply -n "$ns" -f -
else
  say "not root or no nix: the NixImage example (deploy/examples/image.yaml) is left out"
fi
vm_count=$(k get proxmoxvms -n "$ns" -o name | wc -l)

# ---- The operator ---------------------------------------------------------
"$build/operator/nixmox-operator" --kubeconfig "$work/kubeconfig" --namespace "$ns" \
  --health-probe-bind-address 127.0.0.1:0 --metrics-bind-address 127.0.0.1:0 \
  --inventory-period 2s --agent-period 2s --probe-networks "$probe_networks" \
  --allow-local-flakes --builder-command "$build/operator/nixmox-builder" \
  --builder-nix-option sandbox=false --builder-nix-option substituters= \
  2>"$work/operator.log" >/dev/null &
pids+=($!)
operator_pid=${pids[-1]}
operator_url=$(wait_for_line "$work/operator.log" "health probes on" "$operator_pid" |
  grep -o 'http://[0-9.:]*')
say "nixmox-operator is running (pid $operator_pid, $operator_url/readyz, $operator_url/metrics)"

# ---- Converge -------------------------------------------------------------
declare -A added=()
deadline=$((SECONDS + timeout))
while :; do
  kill -0 "$operator_pid" 2>/dev/null || { echo "sandbox: nixmox-operator exited" >&2; exit 1; }
  vms=$(k get proxmoxvms -n "$ns" -o json)
  if [ -n "$netns" ]; then
    # The guests "boot": their addresses come up in the namespace.
    for a in $(jq -r '.items[].status.ipAddresses[]?.address' <<<"$vms"); do
      [ -n "${added[$a]:-}" ] && continue
      bash "$netns_script" add "$netns" "$a"
      added[$a]=1
    done
  fi
  # With the namespace, the primary IP must also have answered its probe.
  ready=$(jq --argjson probed "$([ -n "$netns" ] && echo true || echo false)" '[.items[] |
    select(.status.phase == "Running" and (.status.primaryIP // "") != "") |
    select((.status.primaryIP as $ip | any(.status.ipAddresses[]?; .address == $ip and .reachable)) or ($probed | not))
    ] | length' <<<"$vms")
  # One Proxmox VM per ProxmoxVM: no duplicate, no orphan.
  in_proxmox=$(pve "$pve_url/api2/json/cluster/resources?type=vm" | jq '.data | length')
  [ "$ready" = "$vm_count" ] && [ "$in_proxmox" = "$vm_count" ] && break
  if ((SECONDS >= deadline)); then
    echo "sandbox: after ${timeout}s, $ready of $vm_count VMs are Running with a primary IP" \
      "and Proxmox holds $in_proxmox VMs" >&2
    exit 1
  fi
  sleep 1
done

echo
k get proxmoxclusters,niximages,proxmoxvms -n "$ns" -o wide
echo
printf '%-10s %-40s %-6s %-8s %s\n' VM ADDRESS FAMILY SCOPE REACHABLE
jq -r '.items[] | .metadata.name as $n | .status.ipAddresses[]? |
  [$n, .address, .family, .scope, (.reachable | tostring)] | @tsv' <<<"$vms" |
  while IFS=$'\t' read -r name address family scope reachable; do
    printf '%-10s %-40s %-6s %-8s %s\n' "$name" "$address" "$family" "$scope" "$reachable"
  done
echo
converged=1
say "converged: $vm_count VMs Running with a primary IP"

if [ "$keep" = 1 ]; then
  cat <<TXT
sandbox: left running. Use it as you would a real cluster:
  export KUBECONFIG=$work/kubeconfig
  $kubectl_bin get proxmoxvms -n $ns -o wide
  $kubectl_bin patch proxmoxvm web -n $ns --type merge -p '{"spec":{"cpu":{"cores":4}}}'
Proxmox (pve-sim) is at $pve_url; the token header is in $work/pve.header:
  curl -s --cacert $work/pve.crt -H @$work/pve.header $pve_url/api2/json/cluster/resources | jq
The operator logs to $work/operator.log; metrics at $operator_url/metrics.
Stop it all with: kill ${pids[*]}${netns:+; bash $netns_script down $netns}; rm -rf $work
TXT
fi
