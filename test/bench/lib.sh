# shellcheck shell=bash
# The world the benchmarks run in, sourced by run.sh: kubesim (TLS, token),
# pve-sim (three nodes over HTTPS, realistic task times divided by
# $time_scale, its per-storage lock, a request log) and nixmox-operator,
# with the CRDs, a token Secret and a ProxmoxCluster applied by real kubectl.
# Needs: root, build, work, ns, time_scale, creates_per_storage,
# inventory_period (set by run.sh).

# pve-sim's task times before scaling: a create is half a task before and
# half after its disk import, the import takes import_ms_per_gib per GiB of
# the image, a start one task, and the guest agent answers boot_ms after the
# start. These are the parameters the lower bound is computed from.
task_ms=1000
boot_ms=15000
import_ms_per_gib=3000
image_gib=1
nodes=(pve1 pve2 pve3)
# The operator's Proxmox request budget per cluster (ProxmoxCluster
# spec.maxRequestsPerSecond, default 10) and how often it looks at a running
# task (--task-poll, default 2s) and asks a booting guest's agent again
# (--agent-retry, default 5s) follow the time scale: pve-sim's tasks run
# time_scale times faster, so the operator may ask time_scale times as often,
# just as it would of a real cluster whose tasks take the unscaled times.
# (The guest-agent period stays at its default: it is a steady-state cost.)
client_qps_for_scale() { echo $((10 * time_scale > 1000 ? 1000 : 10 * time_scale)); }
task_poll_for_scale() { echo "$((2000 / time_scale))ms"; }
agent_retry_for_scale() { echo "$((5000 / time_scale))ms"; }
vm_storage=vmdata  # lvmthin on every node, big enough for 10,000 disks

pids=()
operator_pid=""

say() { echo "bench: $*" >&2; }
now() { date +%s.%N; }

# Waits until file $1 has a line matching $2 or process $3 dies; prints the line.
wait_for_line() {
  local line
  for _ in $(seq 1 600); do
    line=$(grep -m1 -e "$2" "$1" 2>/dev/null || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    kill -0 "$3" 2>/dev/null || { say "process $3 exited (see $1)"; return 1; }
    sleep 0.1
  done
  say "no '$2' in $1"
  return 1
}

k() { "$kubectl_bin" --kubeconfig "$work/kubeconfig" -n "$ns" "$@"; }
# Proxmox API as the operator's token (header file, never a command line).
pve() { curl -sS --fail-with-body --cacert "$work/pve.crt" -H "@$work/pve.header" "$@"; }
pve_api() { pve "$pve_url/api2/json$1" "${@:2}"; }
# The simulators' admin endpoints (no auth).
pve_admin() { curl -sS --fail-with-body --cacert "$work/pve.crt" "$pve_url/_sim/$1" "${@:2}"; }
kube_admin() { curl -sS --fail-with-body -k "$kube_url/_sim/$1" "${@:2}"; }

world_start() {
  local bin
  for bin in test/sim/kube/kubesim test/sim/pve/pve-sim operator/nixmox-operator \
    test/sandbox/nixmox-sandbox-cert test/bench/nixmox-bench; do
    [ -x "$build/$bin" ] || { say "$build/$bin is missing: build first"; return 1; }
  done
  kubectl_bin=$(bash "$root/.ci/tools" | sed -n 's/^KUBECTL=//p')

  local jobs=() kubesim_log=()
  ((run_jobs)) && jobs=(--run-jobs --work-dir "$work/jobs")
  # Kept logs show each Kubernetes request (method, path, status: no bodies).
  ((keep_logs)) && kubesim_log=(--log-level debug)
  "$build/test/sim/kube/kubesim" --listen 127.0.0.1:0 --tls --token "$(uuid)" "${jobs[@]}" "${kubesim_log[@]}" \
    --kubeconfig-out "$work/kubeconfig" >"$work/kubesim.out" 2>"$work/kubesim.log" &
  pids+=($!)
  kube_url=$(wait_for_line "$work/kubesim.out" "serving on" "${pids[-1]}" | awk '{print $NF}')
  "$kubectl_bin" --kubeconfig "$work/kubeconfig" apply -f "$root/crds/" >/dev/null
  "$kubectl_bin" --kubeconfig "$work/kubeconfig" wait --for=condition=Established --timeout=30s \
    crd/proxmoxclusters.nixmox.io crd/proxmoxvms.nixmox.io crd/niximages.nixmox.io >/dev/null
  "$kubectl_bin" --kubeconfig "$work/kubeconfig" create namespace "$ns" >/dev/null

  "$build/test/sandbox/nixmox-sandbox-cert" "$work/pve.crt" "$work/pve.key" 127.0.0.1
  local token_id="root@pam!bench" token_secret
  token_secret=$(uuid)
  printf 'Authorization: PVEAPIToken=%s=%s\n' "$token_id" "$token_secret" >"$work/pve.header"
  "$build/test/sim/pve/pve-sim" --listen 127.0.0.1:0 --nodes "$(IFS=,; echo "${nodes[*]}")" \
    --token "$token_id=$token_secret" --tls-cert "$work/pve.crt" --tls-key "$work/pve.key" \
    --task-ms "$task_ms" --boot-ms "$boot_ms" --import-ms-per-gib "$import_ms_per_gib" \
    --time-scale "$time_scale" --storage "$vm_storage:lvmthin:images;rootdir:30000" \
    --guest-ipv4-cidr 10.213.0.0/16 --guest-ipv6-cidr fd13::/64 \
    --request-log "$work/pve-requests.log" >"$work/pve-sim.out" 2>"$work/pve-sim.log" &
  pids+=($!)
  pve_url=$(wait_for_line "$work/pve-sim.out" "^https://" "${pids[-1]}")

  # The boot image every VM imports, on every node.
  qemu-img create -q -f qcow2 "$work/nixos.qcow2" "${image_gib}G"
  local node upid task
  for node in "${nodes[@]}"; do
    upid=$(pve -F content=import -F "filename=@$work/nixos.qcow2" \
      "$pve_url/api2/json/nodes/$node/storage/local/upload" | jq -r .data)
    task="/nodes/$node/tasks/$(jq -rn --arg u "$upid" '$u|@uri')/status"
    until [ "$(pve_api "$task" | jq -r .data.status)" = stopped ]; do sleep 0.05; done
    [ "$(pve_api "$task" | jq -r .data.exitstatus)" = OK ] || { say "upload to $node failed"; return 1; }
  done

  jq -n --arg id "$token_id" --arg secret "$token_secret" '{apiVersion: "v1", kind: "Secret",
    metadata: {name: "pve-token"}, stringData: {tokenID: $id, tokenSecret: $secret}}' |
    k apply -f - >/dev/null
  cluster_manifest | k apply -f - >/dev/null

  start_operator
  k wait --for=condition=Ready --timeout=60s proxmoxcluster/pve >/dev/null
  say "world ready: kubesim $kube_url, pve-sim $pve_url (time scale $time_scale), operator pid $operator_pid"
}

cluster_manifest() {
  jq -n --arg url "$pve_url" --rawfile ca "$work/pve.crt" --arg storage "$vm_storage" \
    --argjson creates "$creates_per_storage" --argjson qps "$client_qps" '{
    apiVersion: "nixmox.io/v1alpha1", kind: "ProxmoxCluster", metadata: {name: "pve"},
    spec: {endpoint: $url, credentialsRef: {name: "pve-token"}, tls: {caBundle: $ca},
    defaultStorage: $storage, imageStorage: "local", maxCreatesPerStorage: $creates,
    maxRequestsPerSecond: $qps}}'
}

start_operator() {
  "$build/operator/nixmox-operator" --kubeconfig "$work/kubeconfig" --namespace "$ns" \
    --health-probe-bind-address 127.0.0.1:0 --metrics-bind-address 127.0.0.1:0 \
    --inventory-period "$inventory_period" --probe-networks 127.0.0.1/32 \
    --task-poll "$(task_poll_for_scale)" --agent-retry "$(agent_retry_for_scale)" \
    "${operator_flags[@]}" 2>>"$work/operator.log" >/dev/null &
  operator_pid=$!
  pids+=("$operator_pid")
  metrics_url=$(wait_for_line "$work/operator.log" "metrics on" "$operator_pid" |
    grep -o 'http://[0-9.:]*/metrics')
  # Resident memory every second, for the plots (kB).
  (while kill -0 "$operator_pid" 2>/dev/null; do
    echo "$(now) $(awk '/^VmRSS/ {print $2}' "/proc/$operator_pid/status" 2>/dev/null)"
    sleep 1
  done) >>"$work/rss.tsv" 2>/dev/null &
  pids+=($!)
}

world_stop() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  pids=()
}

world_logs() {
  local f
  for f in operator.log pve-sim.log kubesim.log; do
    [ -s "$work/$f" ] && { echo "--- $f (tail) ---"; tail -n 30 "$work/$f"; }
  done
}

uuid() { cat /proc/sys/kernel/random/uuid; }

# ---- What the operator uses ------------------------------------------------

operator_hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$operator_pid/status"; }
operator_rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$operator_pid/status"; }
# User + system CPU seconds so far.
operator_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$operator_pid/stat"
}

# ---- The VMs ----------------------------------------------------------------

# A ProxmoxVM (without a name): from the uploaded qcow2, or from the
# NixImage $vm_image when that is set.
vm_template() {
  jq -n --arg image "${vm_image:-}" '{apiVersion: "nixmox.io/v1alpha1", kind: "ProxmoxVM",
    metadata: {}, spec: ({clusterRef: {name: "pve"}, cpu: {cores: 1}, memoryMiB: 256} +
      if $image == "" then {sourceVolume: "local:import/nixos.qcow2"}
      else {imageRef: {name: $image}} end)}'
}

# Creates $1 ProxmoxVMs named $2NNNNN and waits until all are Ready; the
# driver's JSON goes to $3; further arguments go to the driver (--window W).
# Returns the driver's status.
converge_vms() {
  vm_template >"$work/vm.json"
  "$build/test/bench/nixmox-bench" converge --kubeconfig "$work/kubeconfig" --namespace "$ns" \
    --template "$work/vm.json" --count "$1" --prefix "$2" --timeout-s "$timeout" --out "$3" \
    "${@:4}"
}

# One JSON object on stdout: what Kubernetes and Proxmox hold, and whether it
# agrees: every ProxmoxVM has exactly one VM carrying its UID tag, at the
# VMID in its status; no VM carries a tag of no ProxmoxVM (or none at all).
world_check() {
  k get proxmoxvms -o json >"$work/check-kube.json"
  pve_api "/cluster/resources?type=vm" >"$work/check-pve.json"
  jq -n --slurpfile kube "$work/check-kube.json" --slurpfile pve "$work/check-pve.json" '
    ($kube[0].items) as $objs |
    ($pve[0].data | map({vmid, uids: ((.tags // "") | split(";") | map(select(startswith("nixmox-uid-"))))})) as $vms |
    (reduce ($vms[] | .vmid as $v | .uids[] | {u: ., v: $v}) as $x ({}; .[$x.u] += [$x.v])) as $carriers |
    ($objs | map({uid: ("nixmox-uid-" + .metadata.uid), vmid: .status.vmid,
                  ready: any(.status.conditions[]?; .type == "Ready" and .status == "True")})) as $want |
    ($want | map(. + {carriers: ($carriers[.uid] // [])})) as $found |
    (reduce $want[] as $w ({}; .[$w.uid] = true)) as $known |
    {proxmoxvms: ($objs | length),
     ready: ($want | map(select(.ready)) | length),
     proxmox_vms: ($vms | length),
     duplicated: ($found | map(select(.carriers | length > 1)) | length),
     lost: ($found | map(select(.carriers | length == 0)) | length),
     vmid_mismatch: ($found | map(select((.carriers | length == 1) and .carriers[0] != .vmid)) | length),
     orphans: ($vms | map(select((.uids | length == 0) or any(.uids[]; $known[.] | not))) | length)}'
}

# ---- Output -------------------------------------------------------------------

machine_json() {
  jq -n --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
    --argjson cores "$(nproc)" \
    --argjson ram_gib "$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)" \
    --arg load_start "$load_at_start" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg build_type "$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")" \
    --arg commit "$commit_at_start" \
    --arg built "$(date -u -r "$build/operator/nixmox-operator" +%Y-%m-%dT%H:%M:%SZ)" \
    '{cpu: $cpu, cores: $cores, ram_gib: $ram_gib, load_at_start: $load_start,
      load_at_end: $load_end, build_type: $build_type, commit: $commit,
      operator_binary_built: $built}'
}

params_json() {
  jq -n --argjson task_ms "$task_ms" --argjson boot_ms "$boot_ms" \
    --argjson import_ms_per_gib "$import_ms_per_gib" --argjson image_gib "$image_gib" \
    --argjson time_scale "$time_scale" --argjson nodes "${#nodes[@]}" \
    --argjson creates_per_storage "$creates_per_storage" \
    --argjson qps "$client_qps" --arg task_poll "$(task_poll_for_scale)" \
    --arg agent_retry "$(agent_retry_for_scale)" \
    --arg inventory_period "$inventory_period" --arg operator_flags "${operator_flags[*]}" \
    '{task_ms: $task_ms, boot_ms: $boot_ms, import_ms_per_gib: $import_ms_per_gib,
      image_gib: $image_gib, time_scale: $time_scale, nodes: $nodes,
      creates_per_storage: $creates_per_storage, requests_per_second: $qps,
      task_poll: $task_poll, agent_retry: $agent_retry, inventory_period: $inventory_period,
      operator_flags: $operator_flags}'
}

# Writes $2 (a JSON document on stdin, merged with machine and parameters)
# as $out/$1.json.
write_result() {
  jq --argjson machine "$(machine_json)" --argjson params "$(params_json)" \
    --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    '. + {machine: $machine, params: $params, finished_at: $at}' >"$out/$1.json"
  say "wrote $out/$1.json"
}

# gnuplot, or a note when it is missing (the JSON and the table still come).
plot() {
  if ! command -v gnuplot >/dev/null; then
    say "gnuplot is missing (apt-get install gnuplot-nox): no $1"
    return 0
  fi
  gnuplot -e "set terminal pngcairo size 900,540 font ',10'; set output '$1'" "${@:2}"
  say "wrote $1"
}
