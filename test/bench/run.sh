#!/usr/bin/env bash
# nixmox benchmarks: how fast and how lean nixmox is, measured as users feel
# it (test/bench/README.md). Starts kubesim, pve-sim (three nodes, realistic
# task times divided by --time-scale, its per-storage lock) and
# nixmox-operator from a build, runs the scenarios in that world, and for each
# writes OUT/<scenario>-n<N>.json and .png and prints a table. Scenarios given
# together (comma-separated) share one world and one fleet of VMs.
#
#   test/bench/run.sh SCENARIO[,SCENARIO...] [flags]
#     converge (1)  N ProxmoxVMs applied at once: time until all are Ready, and
#                   its ratio to the lower bound pve-sim and the cluster allow
#     steady   (2)  N converged VMs, nothing changes for 10 inventory periods:
#                   Proxmox requests per period by path, Kubernetes writes, CPU
#     drift    (3)  1% of the VMs stopped or renamed in Proxmox by hand: time
#                   until all are corrected
#     latency  (4)  with N VMs, one new ProxmoxVM, 100 times (each once the one
#                   before is Ready): time from the create's answer (the
#                   object is stored) to the operator's first Proxmox request
#                   for it
#     memory   (5)  the operator's peak RSS with N ProxmoxVMs (converged; with
#                   --paused: N Paused ProxmoxVMs that carry a converged VM's
#                   status, for N where converging would take hours)
#     rollout  (6)  N VMs on one NixImage (built by the real nixmox-builder and
#                   nix in kubesim's Jobs); the image changes: time until all
#                   run the new one, with maxUnavailable 10 (its own world; root
#                   and nix needed)
#     faults   (7)  converge with 5% Proxmox 5xx and dropped watches: no
#                   duplicate, nothing lost (its own world; N defaults to 100)
#   --n N                    VMs (default 1000, faults 100; --short: 50)
#   --short                  CI mode: N=50, faster simulated time, 10 latency
#                            samples; checks correctness, never speed
#   --build DIR              build directory (default: build)
#   --out DIR                where results go (default: out/bench)
#   --time-scale F           pve-sim --time-scale (default 10; --short 20)
#   --creates-per-storage C  ProxmoxCluster spec.maxCreatesPerStorage (default 2,
#                            the CRD's default; 6 when converging is only setup)
#   --inventory-period D     the operator's --inventory-period (default 10s; --short 2s)
#   --samples K              latency samples (default 100)
#   --latency-gap-ms MS      latency: wait after each sample is Ready (default 500);
#                            above 4000 every create meets cold connections (see README)
#   --timeout SEC            deadline for one converge (default 3600)
#   --operator-flag FLAG     passed to nixmox-operator (repeatable)
#   --keep-logs              copy the logs and pve-sim's request log to OUT/logs (kubesim
#                            then logs each request)
#   --paused                 memory: fill the caches with Paused ProxmoxVMs (see above)
# Exit status: 0 when every check held (goals on speed are reported, not
# enforced), 1 when one failed, 2 for bad arguments.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/test/bench"
# shellcheck source=test/bench/lib.sh
source "$here/lib.sh"

usage() { sed -n '2,47p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
IFS=, read -r -a scenarios <<<"$1"
shift
build=$root/build
out=$root/out/bench
n=""
short=0
time_scale=""
creates_per_storage=""
inventory_period=""
samples=""
latency_gap_ms=500
timeout=3600
keep_logs=0
paused=0
operator_flags=()
while (($#)); do
  case "$1" in
    --n) n=$2; shift ;;
    --short) short=1 ;;
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    --time-scale) time_scale=$2; shift ;;
    --creates-per-storage) creates_per_storage=$2; shift ;;
    --inventory-period) inventory_period=$2; shift ;;
    --samples) samples=$2; shift ;;
    --latency-gap-ms) latency_gap_ms=$2; shift ;;
    --timeout) timeout=$2; shift ;;
    --operator-flag) operator_flags+=("$2"); shift ;;
    --keep-logs) keep_logs=1 ;;
    --paused) paused=1 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for i in "${!scenarios[@]}"; do
  case "${scenarios[i]}" in
    1) scenarios[i]=converge ;; 2) scenarios[i]=steady ;; 3) scenarios[i]=drift ;;
    4) scenarios[i]=latency ;; 5) scenarios[i]=memory ;; 6) scenarios[i]=rollout ;;
    7) scenarios[i]=faults ;;
    converge|steady|drift|latency|memory|rollout|faults) ;;
    *) echo "bench: unknown scenario ${scenarios[i]}" >&2; exit 2 ;;
  esac
done
if [[ " ${scenarios[*]} " == *" faults "* || " ${scenarios[*]} " == *" rollout "* ]] &&
  ((${#scenarios[@]} > 1)); then
  echo "bench: faults and rollout run in a world of their own; give them alone" >&2
  exit 2
fi
# Absolute: the builder Jobs run in directories of their own.
[ -d "$build" ] || { echo "bench: no build directory $build" >&2; exit 2; }
build=$(cd "$build" && pwd)
run_jobs=0
vm_image=""
if [ "${scenarios[0]}" = rollout ]; then
  # kubesim runs the builder Jobs as local processes: the real nixmox-builder,
  # real nix, offline (the example flake needs no network and no sandbox).
  run_jobs=1
  [ -x "$build/operator/nixmox-builder" ] ||
    { echo "bench: $build/operator/nixmox-builder is missing: build it" >&2; exit 1; }
  operator_flags+=(--builder-command "$build/operator/nixmox-builder" --allow-local-flakes
    --builder-nix-option sandbox=false --builder-nix-option substituters=)
fi
measured_converge=0
[[ " ${scenarios[*]} " == *" converge "* || " ${scenarios[*]} " == *" faults "* ]] &&
  measured_converge=1
if ((short)); then
  n=${n:-50}
  time_scale=${time_scale:-20}
  inventory_period=${inventory_period:-2s}
  samples=${samples:-10}
  # Setup only: converging fast matters more than the figure.
  creates_per_storage=${creates_per_storage:-6}
fi
if [ "${scenarios[0]}" = faults ]; then n=${n:-100}; fi
n=${n:-1000}
time_scale=${time_scale:-10}
client_qps=$(client_qps_for_scale)
inventory_period=${inventory_period:-10s}
samples=${samples:-100}
if ((measured_converge)); then creates_per_storage=${creates_per_storage:-2}; fi
creates_per_storage=${creates_per_storage:-6}
period_s=$(awk -v p="$inventory_period" 'BEGIN {
  if (p ~ /ms$/) print substr(p, 1, length(p) - 2) / 1000;
  else if (p ~ /m$/) print substr(p, 1, length(p) - 1) * 60;
  else { sub(/s$/, "", p); print p + 0 } }')

ns=bench
umask 077  # the token lands in files here
work=$(mktemp -d -t nixmox-bench.XXXXXX)
mkdir -p "$out"
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
# The checkout the run started from ("-dirty": with uncommitted changes).
commit_at_start=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
failed=0
fleet=0  # VMs named vm-NNNNN known to be Ready; -1 when making them failed

fail() {
  say "CHECK FAILED: $*"
  failed=1
}

cleanup() {
  local status=$?
  if ((failed)) || [ "$status" -ne 0 ]; then world_logs >&2 || true; fi
  if ((failed || keep_logs)) || [ "$status" -ne 0 ]; then
    mkdir -p "$out/logs"
    cp "$work"/*.log "$out/logs/" 2>/dev/null || true
    say "logs copied to $out/logs"
  fi
  world_stop
  rm -rf "$work"
}
trap cleanup EXIT

# Seconds of pve-sim's (scaled) task times, for the lower bound.
scaled_s() { awk -v ms="$1" -v f="$time_scale" 'BEGIN {printf "%.6f", int(ms / f) / 1000}'; }

# ---- 1: converge -------------------------------------------------------------

# The lower bound on converging k VMs: every VM needs a create (half a task,
# then its disk import under its node's storage lock, then half a task), a
# start (one task) and a boot until the guest agent answers. Imports on one
# node's storage run one at a time; the operator runs at most C creates on a
# storage at once (on each node's own copy of a local storage like vmdata).
# The last VM is Ready no sooner than the later of the two create schedules,
# plus its start and boot. Prints "k seconds" for k = 1..N (the ideal curve).
lower_bound_curve() {
  awk -v n="$1" -v nodes="${#nodes[@]}" -v c="$((creates_per_storage * ${#nodes[@]}))" \
    -v t="$(scaled_s "$task_ms")" -v i="$(scaled_s "$import_ms_per_gib")" \
    -v b="$(scaled_s "$boot_ms")" -v g="$image_gib" '
    function ceil(x) { return x == int(x) ? x : int(x) + 1 }
    BEGIN {
      a = t / 2 + g * i; d = a + t / 2
      for (k = 1; k <= n; k++) {
        lock = ceil(k / nodes) * a + t / 2; slot = ceil(k / c) * d
        creates = lock > slot ? lock : slot
        printf "%d %.4f\n", k, creates + t + b
      }
    }'
}

lower_bound_json() {
  awk -v n="$1" -v nodes="${#nodes[@]}" -v c="$((creates_per_storage * ${#nodes[@]}))" \
    -v t="$(scaled_s "$task_ms")" -v i="$(scaled_s "$import_ms_per_gib")" \
    -v b="$(scaled_s "$boot_ms")" -v g="$image_gib" '
    function ceil(x) { return x == int(x) ? x : int(x) + 1 }
    BEGIN {
      a = t / 2 + g * i; d = a + t / 2
      lock = ceil(n / nodes) * a + t / 2; slot = ceil(n / c) * d
      if (lock > slot) { binding = "node storage lock"; creates = lock }
      else { binding = "creates per storage"; creates = slot }
      printf "{\"import_s\": %.4f, \"create_s\": %.4f, \"start_s\": %.4f, \"boot_s\": %.4f,", a, d, t, b
      printf " \"node_lock_bound_s\": %.4f, \"slot_bound_s\": %.4f,", lock, slot
      printf " \"binding\": \"%s\", \"seconds\": %.4f}\n", binding, creates + t + b
    }'
}

# Ready count over time from the driver's JSON, as "seconds count" lines.
ready_curve() { echo "0 0"; jq -r '.ready | to_entries[] | "\(.value.t) \(.key + 1)"' "$1"; }

scenario_converge() {
  local name=converge-n$n result lb check rss_peak
  say "converge: creating $n ProxmoxVMs (at most $creates_per_storage creates per storage)"
  local cpu0 requests0
  cpu0=$(operator_cpu_s)
  requests0=$(pve_admin requests)
  converge_vms "$n" vm- "$work/converge.json" || fail "not every VM became Ready"
  fleet=$n
  check=$(world_check)
  lb=$(lower_bound_json "$n")
  rss_peak=$(operator_hwm_kb)
  jq -n --slurpfile run "$work/converge.json" --argjson lb "$lb" --argjson check "$check" \
    --argjson requests0 "$requests0" --argjson requests1 "$(pve_admin requests)" \
    --argjson qps "$client_qps" --argjson hwm "$rss_peak" \
    --argjson cpu "$(awk -v a="$cpu0" -v b="$(operator_cpu_s)" 'BEGIN {print b - a}')" \
    --argjson n "$n" '
    ($run[0]) as $r | (if $r.all_ready then ($r.ready | map(.t) | max) else null end) as $t |
    ($requests1 | with_entries(.value -= ($requests0[.key] // 0)) | with_entries(select(.value > 0))) as $requests |
    {scenario: "converge", n: $n, all_ready: $r.all_ready, apply_seconds: $r.apply_seconds,
     ready_count: ($r.ready | length), last_ready_seconds: ($r.ready | map(.t) | max),
     converge_seconds: $t, lower_bound: $lb,
     ratio: (if $t then $t / $lb.seconds else null end),
     goal: {ratio_at_most: 1.2, applies_at_n: 1000,
            met: (if $t then ($t / $lb.seconds) <= 1.2 else false end)},
     check: $check, operator: {peak_rss_mb: ($hwm / 1024), cpu_seconds: $cpu},
     proxmox_requests: $requests, proxmox_requests_per_vm: (($requests | add) / $n),
     client_qps_floor: {qps: $qps, seconds: (($requests | add) / $qps)},
     watch_restarts: $r.watch_restarts,
     ready_over_time: ($r.ready | map(.t))}' | write_result "$name"
  result="$out/$name.json"
  check_counts "$result" "$n"

  ready_curve "$work/converge.json" >"$work/ready.dat"
  { echo "0 0"; lower_bound_curve "$n" | awk '{print $2, $1}'; } >"$work/bound.dat"
  plot "$out/$name.png" -e "set title 'converge: $n ProxmoxVMs applied at once (time scale $time_scale, $creates_per_storage creates per storage)';
    set xlabel 'seconds since the first create'; set ylabel 'VMs Ready'; set key left top; set grid;
    plot '$work/ready.dat' using 1:2 with steps lw 2 title 'measured',
         '$work/bound.dat' using 1:2 with steps lw 1 dt 2 title 'lower bound'"
  jq -r '"converge  N=\(.n)  time scale \(.params.time_scale)  creates/storage \(.params.creates_per_storage)",
    "  creates sent in          \(.apply_seconds * 100 | round / 100) s",
    (if .all_ready then "  all Ready after          \(.converge_seconds * 10 | round / 10) s"
     else "  NOT all Ready: \(.ready_count) of \(.n) when the deadline passed (last at \(.last_ready_seconds // 0 | . * 10 | round / 10) s)" end),
    "  lower bound              \(.lower_bound.seconds * 10 | round / 10) s (\(.lower_bound.binding) binds)",
    "  Proxmox requests         \(.proxmox_requests | add) (\(.proxmox_requests_per_vm * 10 | round / 10) per VM): \(.client_qps_floor.seconds * 10 | round / 10) s at the client'"'"'s \(.client_qps_floor.qps) requests/s",
    "  ratio                    \(.ratio // "-" | if type == "number" then (. * 100 | round / 100) else . end)   goal <= 1.2 at N=1000: \(if .goal.met then "met" else "missed" end)",
    "  VMs / duplicated / lost / orphans   \(.check.proxmox_vms) / \(.check.duplicated) / \(.check.lost) / \(.check.orphans)",
    "  operator peak RSS \(.operator.peak_rss_mb * 10 | round / 10) MB, CPU \(.operator.cpu_seconds * 10 | round / 10) s"' "$result"
}

# Fails the run unless the world is whole: $2 ProxmoxVMs or more, every one
# Ready with exactly one VM at its VMID, no orphan VM.
check_counts() {
  local c
  c=$(jq -c .check "$1")
  jq -e --argjson n "$2" '.proxmoxvms >= $n and .ready == .proxmoxvms' <<<"$c" >/dev/null ||
    fail "not all ProxmoxVMs Ready: $c"
  jq -e '.proxmox_vms == .proxmoxvms and .duplicated == 0 and .lost == 0 and .orphans == 0 and
    .vmid_mismatch == 0' <<<"$c" >/dev/null || fail "Kubernetes and Proxmox disagree: $c"
}

# Scenarios 2 to 5 need N converged VMs: made here unless converge ran first,
# as fast as the operator takes them (a window of twice the creates per
# storage waiting to be provisioned), not all at once.
ensure_fleet() {
  ((fleet >= n)) && return 0
  ((fleet < 0)) && return 1  # setup failed already
  local window=$((2 * creates_per_storage))
  say "setup: converging $n VMs, at most $window waiting at a time (not measured)"
  converge_vms "$n" vm- "$work/setup.json" --window "$window" ||
    { fail "setup: not every VM became Ready"; fleet=-1; return 1; }
  fleet=$n
  say "setup: $n VMs Ready after $(jq '.ready | map(.t) | max | . * 10 | round / 10' "$work/setup.json") s"
}

# ---- 2: steady state -------------------------------------------------------------

scenario_steady() {
  ensure_fleet || return 0
  local name=steady-n$n periods=10 i
  say "steady: settling for 2 inventory periods, then measuring $periods periods of $inventory_period"
  sleep "$(awk -v p="$period_s" 'BEGIN {print 2 * p}')"
  echo "[]" >"$work/periods.json"
  local pve0 kube0 cpu0 t0 tstart pve1 kube1 cpu1 t1
  pve0=$(pve_admin requests)
  kube0=$(kube_admin requests)
  cpu0=$(operator_cpu_s)
  tstart=$(now)
  t0=$tstart
  for ((i = 1; i <= periods; i++)); do
    sleep "$(awk -v s="$tstart" -v i="$i" -v p="$period_s" -v now="$(now)" \
      'BEGIN {d = s + i * p - now; print (d > 0 ? d : 0)}')"
    pve1=$(pve_admin requests)
    kube1=$(kube_admin requests)
    cpu1=$(operator_cpu_s)
    t1=$(now)
    jq --argjson a "$pve0" --argjson b "$pve1" --argjson ka "$kube0" --argjson kb "$kube1" \
      --argjson cpu "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')" \
      --argjson secs "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" '
      def delta($x; $y): $y | with_entries(.value -= ($x[.key] // 0)) | with_entries(select(.value > 0));
      . + [{seconds: $secs, proxmox: delta($a; $b), kubernetes: delta($ka; $kb),
            kubernetes_writes: ([delta($ka; $kb) | to_entries[] | select(.key | test("^(POST|PUT|PATCH|DELETE) ")) | .value] | add // 0),
            operator_cpu_seconds: $cpu}]' "$work/periods.json" >"$work/periods.tmp"
    mv "$work/periods.tmp" "$work/periods.json"
    pve0=$pve1 kube0=$kube1 cpu0=$cpu1 t0=$t1
  done
  jq -n --slurpfile p "$work/periods.json" --argjson n "$n" --argjson periods "$periods" \
    --arg period "$inventory_period" --argjson hwm "$(operator_hwm_kb)" '
    ($p[0]) as $ps |
    ($ps | map(.proxmox["GET /cluster/resources"] // 0)) as $lists |
    {scenario: "steady", n: $n, period: $period, periods: $ps,
     list_calls_per_period: $lists,
     proxmox_requests_per_period: ($ps | map(.proxmox | add // 0)),
     proxmox_requests_by_path: ([$ps[].proxmox | to_entries[]] | group_by(.key) |
        map({key: .[0].key, value: ((map(.value) | add) / $periods)}) | from_entries),
     kubernetes_writes: ($ps | map(.kubernetes_writes) | add),
     kubernetes_requests: ([$ps[].kubernetes | to_entries[]] | group_by(.key) |
        map({key: .[0].key, value: (map(.value) | add)}) | from_entries),
     operator_cpu_seconds_per_period: (($ps | map(.operator_cpu_seconds) | add) / $periods),
     operator: {peak_rss_mb: ($hwm / 1024)},
     goal: {list_calls_per_period: 1, kubernetes_writes: 0,
            met: (($lists | add) >= $periods - 1 and ($lists | add) <= $periods + 1 and
                  ($lists | max) <= 2 and ($ps | map(.kubernetes_writes) | add) == 0)}}' |
    write_result "$name"
  local result="$out/$name.json"
  jq -e '.goal.met' "$result" >/dev/null ||
    fail "steady state: list calls per period $(jq -c .list_calls_per_period "$result"), Kubernetes writes $(jq .kubernetes_writes "$result")"

  jq -r '.periods | to_entries[] | [.key + 1, (.value.proxmox["GET /cluster/resources"] // 0),
    ([.value.proxmox | to_entries[] | select(.key | test("/agent/")) | .value] | add // 0),
    ((.value.proxmox | add // 0) - (.value.proxmox["GET /cluster/resources"] // 0) -
      ([.value.proxmox | to_entries[] | select(.key | test("/agent/")) | .value] | add // 0)),
    .value.kubernetes_writes] | @tsv' "$result" >"$work/steady.dat"
  plot "$out/$name.png" -e "set title 'steady state: $n VMs, inventory period $inventory_period';
    set xlabel 'period'; set ylabel 'requests per period'; set key left top; set grid;
    set style data histogram; set style histogram rowstacked; set style fill solid 0.7; set boxwidth 0.7;
    set yrange [0:*];
    plot '$work/steady.dat' using 2:xtic(1) title 'Proxmox /cluster/resources',
         '' using 3 title 'Proxmox guest agent', '' using 4 title 'Proxmox other',
         '' using 5 title 'Kubernetes writes'"
  jq -r '"steady  N=\(.n)  inventory period \(.period)  (\(.periods | length) periods)",
    "  /cluster/resources per period   \(.list_calls_per_period | map(tostring) | join(" "))   goal: 1",
    "  Proxmox requests per period     \(.proxmox_requests_per_period | map(tostring) | join(" "))",
    "  by path (mean per period)",
    (.proxmox_requests_by_path | to_entries[] | "    \(.value * 10 | round / 10)\t\(.key)"),
    "  Kubernetes writes               \(.kubernetes_writes)   goal: 0",
    "  operator CPU per period         \(.operator_cpu_seconds_per_period * 1000 | round / 1000) s",
    "  goal \(if .goal.met then "met" else "missed" end)"' "$result"
}

# ---- 3: drift ------------------------------------------------------------------------

scenario_drift() {
  ensure_fleet || return 0
  local name=drift-n$n m
  m=$(((n + 99) / 100))
  say "drift: stopping or renaming $m VMs in Proxmox by hand"
  sleep "$period_s"
  # Every (N/m)-th VM of the fleet, by name: its VMID and node.
  pve_api "/cluster/resources?type=vm" | jq -c --argjson m "$m" --argjson n "$n" '
    .data | map(select(.name | startswith("vm-"))) | sort_by(.name) |
    [to_entries[] | select(.key % (($n / $m) | floor) == 0) | .value] | .[:$m] |
    to_entries | map({vmid: .value.vmid, node: .value.node, name: .value.name,
                      how: (if .key % 2 == 0 then "stopped" else "renamed" end)})' >"$work/drift.json"
  local t0 vmid node how
  t0=$(now)
  while read -r vmid node how; do
    if [ "$how" = stopped ]; then
      pve_api "/nodes/$node/qemu/$vmid/status/stop" -X POST >/dev/null
    else
      pve_api "/nodes/$node/qemu/$vmid/config" -X PUT -d "name=drifted-$vmid" >/dev/null
    fi
  done < <(jq -r '.[] | "\(.vmid) \(.node) \(.how)"' "$work/drift.json")
  local injected
  injected=$(now)
  # Corrected: running again under its own name. Polled four times a second.
  declare -A fixed=()
  local deadline=$((SECONDS + timeout)) status vm_name want
  while ((${#fixed[@]} < m)) && ((SECONDS < deadline)); do
    while read -r vmid node want; do
      [ -n "${fixed[$vmid]:-}" ] && continue
      status=$(pve_api "/nodes/$node/qemu/$vmid/status/current" | jq -r '.data | "\(.status) \(.name)"')
      read -r status vm_name <<<"$status"
      if [ "$status" = running ] && [ "$vm_name" = "$want" ]; then fixed[$vmid]=$(now); fi
    done < <(jq -r '.[] | "\(.vmid) \(.node) \(.name)"' "$work/drift.json")
    sleep 0.25
  done
  ((${#fixed[@]} == m)) || fail "drift: only ${#fixed[@]} of $m VMs corrected"
  local times
  times=$(for v in "${!fixed[@]}"; do echo "$v ${fixed[$v]}"; done |
    jq -R -s --argjson t0 "$t0" 'split("\n") | map(select(length > 0) | split(" ") |
      {vmid: (.[0] | tonumber), seconds: ((.[1] | tonumber) - $t0)})')
  jq -n --slurpfile d "$work/drift.json" --argjson times "$times" --argjson n "$n" \
    --argjson inject "$(awk -v a="$t0" -v b="$injected" 'BEGIN {print b - a}')" \
    --arg period "$inventory_period" '
    ($d[0] | map({key: (.vmid | tostring), value: .}) | from_entries) as $vms |
    ($times | map(. + {how: $vms[.vmid | tostring].how}) | sort_by(.seconds)) as $t |
    {scenario: "drift", n: $n, drifted: ($d[0] | length), inventory_period: $period,
     injection_seconds: $inject, corrections: $t,
     all_corrected_seconds: ($t | map(.seconds) | max),
     by_kind: ($t | group_by(.how) | map({key: .[0].how, value: {count: length,
        max_seconds: (map(.seconds) | max), mean_seconds: ((map(.seconds) | add) / length)}}) | from_entries)}' |
    write_result "$name"
  local result="$out/$name.json"
  { echo "0 0"; jq -r '.corrections | to_entries[] | "\(.value.seconds) \(.key + 1)"' "$result"; } \
    >"$work/drift.dat"
  plot "$out/$name.png" -e "set title 'drift: $m of $n VMs stopped or renamed in Proxmox (inventory period $inventory_period)';
    set xlabel 'seconds since the first change'; set ylabel 'VMs corrected'; set key left top; set grid;
    set yrange [0:*];
    plot '$work/drift.dat' using 1:2 with steps lw 2 title 'corrected'"
  jq -r '"drift  N=\(.n)  \(.drifted) VMs changed in Proxmox  inventory period \(.inventory_period)",
    "  all corrected after   \(.all_corrected_seconds * 10 | round / 10) s",
    (.by_kind | to_entries[] | "  \(.key): \(.value.count), mean \(.value.mean_seconds * 10 | round / 10) s, max \(.value.max_seconds * 10 | round / 10) s")' "$result"
}

# ---- 4: latency ------------------------------------------------------------------------

scenario_latency() {
  ensure_fleet || return 0
  local name=latency-n$n
  ((latency_gap_ms == 500)) || name+=-gap${latency_gap_ms}ms
  say "latency: $samples new ProxmoxVMs, one at a time, beside $n, $latency_gap_ms ms apart"
  vm_template >"$work/vm.json"
  "$build/test/bench/nixmox-bench" latency --kubeconfig "$work/kubeconfig" --namespace "$ns" \
    --template "$work/vm.json" --count "$samples" --request-log "$work/pve-requests.log" \
    --gap-ms "$latency_gap_ms" --out "$work/latency.json" || fail "latency: a sample had no Proxmox request"
  jq --argjson n "$n" --argjson gap "$latency_gap_ms" '
    (.samples | map(.seconds) | sort) as $s | ($s | length) as $k |
    def q($p): if $k == 0 then null else $s[([($p * $k | ceil) - 1, 0] | max)] end;
    {scenario: "latency", n: $n, samples: $k, gap_ms: $gap, missing: .missing,
     p50_ms: (q(0.5) * 1000), p90_ms: (q(0.9) * 1000), p99_ms: (q(0.99) * 1000),
     max_ms: ($s[-1] * 1000), min_ms: ($s[0] * 1000),
     create_call_p50_ms: (.samples | map(.create_call_seconds) | sort |
                          if length == 0 then null else .[(length / 2 | floor)] * 1000 end),
     goal: {p99_ms_at_most: 50, met: (q(0.99) * 1000 <= 50)},
     seconds: .samples}' "$work/latency.json" | write_result "$name"
  local result="$out/$name.json"
  { echo "0 0"; jq -r '.seconds | map(.seconds * 1000) | sort | to_entries[] | "\(.value) \(.key + 1)"' \
    "$result"; } >"$work/latency.dat"
  plot "$out/$name.png" -e "set title 'create -> first Proxmox request for the VM, beside $n VMs ($samples samples, $latency_gap_ms ms after the last Ready)';
    set xlabel 'milliseconds'; set ylabel 'samples (cumulative)'; set key left top; set grid;
    set xrange [0:*]; set yrange [0:*];
    set arrow from 50, graph 0 to 50, graph 1 nohead dt 2; set label 'goal: p99 <= 50 ms' at 52, graph 0.1;
    plot '$work/latency.dat' using 1:2 with steps lw 2 title 'measured'"
  jq -r '"latency  N=\(.n)  \(.samples) samples, \(.gap_ms) ms after each is Ready",
    "  p50 \(.p50_ms | round) ms   p90 \(.p90_ms | round) ms   p99 \(.p99_ms | round) ms   max \(.max_ms | round) ms",
    "  (the create call itself: p50 \(.create_call_p50_ms // 0 | round) ms, not counted)",
    "  goal p99 <= 50 ms: \(if .goal.met then "met" else "missed" end)"' "$result"
}

# ---- 5: memory --------------------------------------------------------------------------

scenario_memory() {
  local name=memory-n$n source
  if ((paused)); then
    name=memory-paused-n$n
    fill_paused || return 0
    source=$work/fill.json
  else
    ensure_fleet || return 0
    source=$work/setup.json
    [ -s "$source" ] || source=$work/converge.json
  fi
  say "memory: two inventory periods with $n ProxmoxVMs in the caches"
  sleep "$(awk -v p="$period_s" 'BEGIN {print 2 * p}')"
  jq -n --argjson n "$n" --argjson hwm "$(operator_hwm_kb)" --argjson rss "$(operator_rss_kb)" \
    --argjson paused "$paused" '
    {scenario: "memory", n: $n, fleet: (if $paused == 1 then "paused" else "converged" end),
     peak_rss_mb: ($hwm / 1024), rss_now_mb: ($rss / 1024),
     goal: {peak_rss_mb_at_most: 64, applies_at_n: 10000, met: ($hwm / 1024 <= 64)}}' |
    write_result "$name"
  local result="$out/$name.json" start
  start=$(jq .start "$source")
  awk -v s="$start" 'NF == 2 && $1 >= s {printf "%.1f %.1f\n", $1 - s, $2 / 1024}' "$work/rss.tsv" \
    >"$work/rss.dat"
  local what="converge" ready_axis="" second=""
  if ((paused)); then
    what="are created (Paused, with status)"
  else
    ready_curve "$source" >"$work/ready.dat"
    ready_axis="set y2label 'VMs Ready'; set ytics nomirror; set y2tics; set y2range [0:*];"
    second=", '$work/ready.dat' using 1:2 axes x1y2 with steps title 'VMs Ready'"
  fi
  plot "$out/$name.png" -e "set title 'operator memory while $n ProxmoxVMs $what, and afterwards';
    set xlabel 'seconds since the first create'; set ylabel 'RSS (MB)'; $ready_axis
    set key left top; set grid; set yrange [0:*];
    plot '$work/rss.dat' using 1:2 with lines lw 2 title 'operator RSS'$second"
  jq -r '"memory  N=\(.n)  (\(.fleet) ProxmoxVMs)",
    "  peak RSS \(.peak_rss_mb * 10 | round / 10) MB   RSS now \(.rss_now_mb * 10 | round / 10) MB",
    "  goal <= 64 MB at N=10000: \(if .goal.met then "met" else "missed" end)"' "$result"
}

# N ProxmoxVMs that the operator leaves alone (nixmox.io/reconcile: Paused),
# each with the status a converged VM has: what the caches hold for a fleet
# of N, without the hours converging N would take.
fill_paused() {
  say "memory: one VM converges to give the others a real status"
  converge_vms 1 ref- "$work/ref.json" || { fail "memory: the reference VM did not converge"; return 1; }
  k get proxmoxvm ref-00000 -o json | jq '.status | .vmid = 100000' >"$work/status.json"
  vm_template | jq '.metadata.annotations["nixmox.io/reconcile"] = "Paused"' >"$work/paused.json"
  say "memory: creating $n Paused ProxmoxVMs with that status"
  "$build/test/bench/nixmox-bench" fill --kubeconfig "$work/kubeconfig" --namespace "$ns" \
    --template "$work/paused.json" --status "$work/status.json" --count "$n" --prefix vm- \
    --out "$work/fill.json" || { fail "memory: creating the ProxmoxVMs failed"; return 1; }
}

# ---- 6: rollout -------------------------------------------------------------------

# The example flake's disks: 64 MiB, then 96 MiB (a different store path).
image_manifest() {
  jq -n --arg flake "path:$root/nix/examples/offline" --arg attr "$1" '{
    apiVersion: "nixmox.io/v1alpha1", kind: "NixImage", metadata: {name: "app"},
    spec: {flake: $flake, attribute: $attr, format: "qcow2", clusterRef: {name: "pve"},
           generations: 2, rollout: {maxUnavailable: 10}}}'
}

# Waits until NixImage app is Ready with a store path other than $1; prints it.
wait_image() {
  local deadline=$((SECONDS + 600)) image
  while ((SECONDS < deadline)); do
    image=$(k get niximage app -o json)
    if jq -e --arg old "$1" '.status.phase == "Ready" and (.status.storePath // "") != "" and
      .status.storePath != $old' <<<"$image" >/dev/null; then
      jq -r .status.storePath <<<"$image"
      return 0
    fi
    sleep 0.5
  done
  say "NixImage app is not Ready: $(jq -c .status <<<"$image")"
  return 1
}

scenario_rollout() {
  local name=rollout-n$n system old new t0 t_built built_at
  system="$(uname -m)-linux"
  say "rollout: building NixImage app (packages.$system.qcow2) with nixmox-builder"
  t0=$(now)
  image_manifest "packages.$system.qcow2" | k apply -f - >/dev/null
  old=$(wait_image "") || { fail "rollout: the first image was not built"; return 0; }
  say "rollout: first image built in $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s: $old"
  vm_image=app
  ensure_fleet || return 0

  "$build/test/bench/nixmox-bench" rollout --kubeconfig "$work/kubeconfig" --namespace "$ns" \
    --count "$n" --prefix vm- --old-store-path "$old" --timeout-s "$timeout" \
    --out "$work/rollout.json" &
  local driver=$!
  sleep 2  # the driver lists and watches first
  say "rollout: the image changes (packages.$system.qcow2-v2); at most 10 VMs unavailable"
  t0=$(now)
  k patch niximage app --type merge \
    -p "{\"spec\": {\"attribute\": \"packages.$system.qcow2-v2\"}}" >/dev/null
  new=$(wait_image "$old") || { fail "rollout: the new image was not built"; }
  t_built=$(now)
  wait "$driver" || fail "rollout: not every VM runs the new image"
  local check
  check=$(world_check)
  jq -n --slurpfile r "$work/rollout.json" --argjson check "$check" --argjson n "$n" \
    --argjson t0 "$t0" --argjson built "$t_built" --arg old "$old" --arg new "$new" \
    --argjson bound "$(rollout_bound_json "$n")" --argjson requests "$(pve_admin requests)" '
    ($r[0]) as $d | ($d.start - $t0) as $shift |
    ($d.updated_at | map(.t + $shift) | max) as $done |
    {scenario: "rollout", n: $n, max_unavailable: 10, old_store_path: $old, new_store_path: $new,
     build_seconds: ($built - $t0), all_updated: $d.all_updated, updated: $d.updated,
     rollout_seconds: (if $d.all_updated then $done else null end),
     after_build_seconds: (if $d.all_updated then $done - ($built - $t0) else null end),
     most_unavailable: $d.most_unavailable, lower_bound: $bound,
     ratio: (if $d.all_updated then ($done - ($built - $t0)) / $bound.seconds else null end),
     check: $check, proxmox_requests: $requests,
     series: ($d.series | map([.[0] + $shift, .[1], .[2]]))}' | write_result "$name"
  local result="$out/$name.json"
  jq -e '.most_unavailable <= .max_unavailable' "$result" >/dev/null ||
    fail "rollout: $(jq .most_unavailable "$result") VMs were unavailable at once (at most 10 allowed)"
  check_counts "$result" "$n"
  jq -r '.series[] | @tsv' "$result" >"$work/rollout.dat"
  built_at=$(jq .build_seconds "$result")
  plot "$out/$name.png" -e "set title 'rollout: $n VMs move to a new NixImage, maxUnavailable 10';
    set xlabel 'seconds since the NixImage changed'; set ylabel 'VMs'; set key right center; set grid;
    set xrange [0:*]; set yrange [0:*]; set arrow from $built_at, graph 0 to $built_at, graph 1 nohead dt 2;
    set label 'new image built' at $built_at, graph 0.5 offset 1,0;
    plot '$work/rollout.dat' using 1:2 with steps lw 2 title 'on the new image and Ready',
         '' using 1:3 with steps lw 1 title 'unavailable (stopped, recreated or booting)'"
  jq -r '"rollout  N=\(.n)  maxUnavailable \(.max_unavailable)",
    "  new image built after        \(.build_seconds * 10 | round / 10) s",
    (if .all_updated then "  all on the new image after   \(.rollout_seconds * 10 | round / 10) s (\(.after_build_seconds * 10 | round / 10) s after the build)"
     else "  NOT all on the new image: \(.updated) of \(.n) when the deadline passed" end),
    "  lower bound after the build  \(.lower_bound.seconds * 10 | round / 10) s   ratio \(.ratio // "-" | if type == "number" then (. * 100 | round / 100) else . end)",
    "  most unavailable at once     \(.most_unavailable)   (at most \(.max_unavailable))",
    "  VMs / duplicated / lost / orphans   \(.check.proxmox_vms) / \(.check.duplicated) / \(.check.lost) / \(.check.orphans)"' "$result"
}

# A VM moves to the new image with a stop (half a task), a destroy (a task),
# a create importing the 96 MiB image (as in converge) and a start, then
# boots; at most U (maxUnavailable) move at once, at most C creates run on a
# storage, and imports queue on each node's storage lock.
rollout_bound_json() {
  awk -v n="$1" -v u=10 -v nodes="${#nodes[@]}" -v c="$((creates_per_storage * ${#nodes[@]}))" \
    -v t="$(scaled_s "$task_ms")" -v i="$(scaled_s "$import_ms_per_gib")" \
    -v b="$(scaled_s "$boot_ms")" -v g=0.09375 '
    function ceil(x) { return x == int(x) ? x : int(x) + 1 }
    BEGIN {
      a = t / 2 + g * i; d = a + t / 2; per_vm = t / 2 + t + d + t + b
      waves = ceil(n / u) * per_vm; slots = ceil(n / c) * d + t / 2 + t + t + b
      lock = ceil(n / nodes) * a + t / 2 + t / 2 + t + t + b
      s = waves; binding = "maxUnavailable"
      if (slots > s) { s = slots; binding = "creates per storage" }
      if (lock > s) { s = lock; binding = "node storage lock" }
      printf "{\"per_vm_s\": %.4f, \"waves_s\": %.4f, \"slot_bound_s\": %.4f,", per_vm, waves, slots
      printf " \"node_lock_bound_s\": %.4f, \"binding\": \"%s\", \"seconds\": %.4f}\n", lock, binding, s
    }'
}

# ---- 7: faults ------------------------------------------------------------------------

scenario_faults() {
  local name=faults-n$n drop_every=5 drops=0
  ((short)) && drop_every=3
  say "faults: 5% of Proxmox requests fail (3% 500 before acting, 1% 596 after acting, 1% dropped), watches dropped every ${drop_every}s"
  pve_admin faults -X PUT -d '{"error_rate": 0.03, "timeout_rate": 0.01, "drop_rate": 0.01}' >/dev/null
  local log_from
  log_from=$(wc -l <"$work/pve-requests.log")
  (while sleep "$drop_every"; do
    kube_admin drop-watches -X POST | jq -r .dropped
  done) >"$work/drops.txt" 2>/dev/null &
  local dropper=$!
  converge_vms "$n" vm- "$work/converge.json" || fail "faults: not every VM became Ready"
  kill "$dropper" 2>/dev/null || true
  wait "$dropper" 2>/dev/null || true
  pve_admin faults -X PUT -d '{"error_rate": 0, "timeout_rate": 0, "drop_rate": 0}' >/dev/null
  # A last inventory period for stragglers (a duplicate would show by then).
  sleep "$period_s"
  local check
  check=$(world_check)
  jq -n --slurpfile run "$work/converge.json" --argjson check "$check" --argjson n "$n" \
    --argjson injected "$(tail -n +"$((log_from + 1))" "$work/pve-requests.log" | awk -F'\t' '
      {f[$7]++} END {printf "{\"error\": %d, \"timeout\": %d, \"drop\": %d, \"requests\": %d}",
        f["error"], f["timeout"], f["drop"], NR}')" \
    --argjson drops "$(awk '{s += $1; c++} END {printf "{\"drop_calls\": %d, \"streams_ended\": %d}", c, s}' "$work/drops.txt")" '
    ($run[0]) as $r |
    {scenario: "faults", n: $n, all_ready: $r.all_ready,
     converge_seconds: ($r.ready | map(.t) | max), proxmox_faults: $injected, watch_drops: $drops,
     driver_watch_restarts: $r.watch_restarts, check: $check,
     goal: {met: ($r.all_ready and $check.duplicated == 0 and $check.lost == 0 and
                  $check.orphans == 0 and $check.proxmox_vms == $n)},
     ready_over_time: ($r.ready | map(.t))}' | write_result "$name"
  local result="$out/$name.json"
  check_counts "$result" "$n"
  ready_curve "$work/converge.json" >"$work/ready.dat"
  plot "$out/$name.png" -e "set title 'faults: $n ProxmoxVMs, 5% Proxmox 5xx, watches dropped every ${drop_every}s';
    set xlabel 'seconds since the first create'; set ylabel 'VMs Ready'; set key left top; set grid;
    plot '$work/ready.dat' using 1:2 with steps lw 2 title 'measured'"
  jq -r '"faults  N=\(.n)",
    "  Proxmox faults injected       \(.proxmox_faults.error) 500 before acting, \(.proxmox_faults.timeout + .proxmox_faults.drop) 596 after acting, of \(.proxmox_faults.requests) requests",
    "  watch streams ended           \(.watch_drops.streams_ended) (\(.watch_drops.drop_calls) drops)",
    "  all Ready after               \(.converge_seconds // "-" | if type == "number" then (. * 10 | round / 10 | tostring) + " s" else . end)",
    "  VMs / duplicated / lost / orphans   \(.check.proxmox_vms) / \(.check.duplicated) / \(.check.lost) / \(.check.orphans)",
    "  goal (converges, nothing duplicated, nothing lost): \(if .goal.met then "met" else "missed" end)"' "$result"
}

# ---- Main ---------------------------------------------------------------------------------

say "scenarios ${scenarios[*]}, N=$n, time scale $time_scale, load $load_at_start"
world_start
for s in "${scenarios[@]}"; do
  "scenario_$s"
  echo
done
if ((failed)); then
  say "FAILED: see the checks above"
  exit 1
fi
say "all checks held; results in $out"
