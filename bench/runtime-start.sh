#!/usr/bin/env bash
# bench/runtime-start.sh: container start+stop cost of berth-runtime vs runc
# vs crun, side by side. See bench/README.md.
#
# Each iteration runs `RUNTIME --root R run --bundle B <fresh id>` of a
# busybox bundle whose process is `true`, then `RUNTIME delete --force <id>`
# (a no-op when `run` already deleted it, as all three do; kept so every
# runtime pays the same). All runtimes run in ONE hyperfine invocation.
#
# Environment: RUNS (default 100), WARMUP (default 10), RSS_RUNS (default 20),
# SECCOMP=podman (run with podman's default seccomp profile),
# BERTH (default target/release/berth-runtime, built here), RUNC, CRUN,
# OUT (hyperfine JSON export, default /tmp/berth-bench-runtime-start.json).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-100}
WARMUP=${WARMUP:-10}
RSS_RUNS=${RSS_RUNS:-20}
RUNC=${RUNC:-$(command -v runc || true)}
CRUN=${CRUN:-$(command -v crun || true)}
OUT=${OUT:-/tmp/berth-bench-runtime-start.json}

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v jq >/dev/null || need+=(jq)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${BERTH:-}" ]; then
  BERTH=$here/target/release/berth-runtime
  say "building $BERTH (cargo build --release -p berth-runtime)"
  (cd "$here" && cargo build -q --release -p berth-runtime) || say "release build failed"
fi

tmp=$(mktemp -d /tmp/berth-bench.XXXXXX)
mounted_hugetlb=0 made_hugetlb_dir=0
cleanup() {
  if [ "$mounted_hugetlb" = 1 ]; then
    if umount /sys/fs/cgroup/hugetlb; then
      say "unmounted the hugetlb v1 hierarchy this script mounted"
      [ "$made_hugetlb_dir" = 0 ] || rmdir /sys/fs/cgroup/hugetlb || true
    else
      say "could not unmount /sys/fs/cgroup/hugetlb; left mounted"
    fi
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# crun (1.8) refuses a hybrid layout where a controller (here hugetlb, unused
# by any v1 mount) sits on the cgroup2 mount. Mounting hugetlb as its own v1
# hierarchy moves it off cgroup2, for the duration of the benchmark.
hugetlb_v1() {
  grep -q '^hugetlb[[:space:]]0[[:space:]]' /proc/cgroups || return 0
  [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] || return 0  # pure v2 host: nothing to do
  say "mounting hugetlb as a cgroup v1 hierarchy on /sys/fs/cgroup/hugetlb (for crun); undone at exit"
  [ -d /sys/fs/cgroup/hugetlb ] || { mkdir /sys/fs/cgroup/hugetlb; made_hugetlb_dir=1; }
  if ! mountpoint -q /sys/fs/cgroup/hugetlb; then
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && mounted_hugetlb=1
  fi
}

bundle=$tmp/bundle
SPEC_RUNTIME=${RUNC:-} "$here/scripts/make-busybox-bundle" "$bundle" true 2>/dev/null
# SECCOMP=podman: add podman's default seccomp profile (what podman, Docker
# and Kubernetes pass to a runtime), converted to the OCI form for x86-64.
profile="none"
if [ "${SECCOMP:-}" = podman ]; then
  src=/usr/share/containers/seccomp.json
  [ -r "$src" ] || die "SECCOMP=podman needs $src (apt-get install podman)"
  jq --slurpfile p "$src" '.linux.seccomp = {
      defaultAction: $p[0].defaultAction,
      defaultErrnoRet: ($p[0].defaultErrnoRet // 1),
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      syscalls: [$p[0].syscalls[]
        | select(((.includes.caps // []) | length) == 0
                 and ((.includes.arches // ["amd64"]) | index("amd64")))
        | {names, action}
          + (if .args then {args} else {} end)
          + (if .errnoRet then {errnoRet} else {} end)]}' \
    "$bundle/config.json" >"$bundle/config.json.new"
  mv "$bundle/config.json.new" "$bundle/config.json"
  profile="podman's default"
fi

# wrapper NAME BINARY: a script that runs one container with a fresh id ($$
# of the wrapper) and deletes it; prints the wrapper's path.
wrapper() {
  local w=$tmp/run-$1
  mkdir -p "$tmp/root-$1"
  cat >"$w" <<SH
#!/bin/sh
$2 --root $tmp/root-$1 run --bundle $bundle $1-\$\$ >/dev/null || exit 1
exec $2 --root $tmp/root-$1 delete --force $1-\$\$ 2>/dev/null || true
SH
  chmod +x "$w"
  echo "$w"
}

hugetlb_v1
names=() cmds=() bins=()
for pair in "berth-runtime=$BERTH" "runc=$RUNC" "crun=$CRUN"; do
  name=${pair%%=*} bin=${pair#*=}
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then say "skipping $name: not installed"; continue; fi
  w=$(wrapper "$name" "$bin")
  if ! err=$("$w" 2>&1); then
    say "skipping $name: a trial run failed: $(echo "$err" | tail -n 1)"
    continue
  fi
  names+=("$name") cmds+=("$w") bins+=("$bin")
done
[ ${#names[@]} -gt 0 ] || die "no runtime could run the bundle"

mkdir -p "$(dirname "$OUT")"
args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$OUT" "${args[@]}" >&2

# Peak RSS (KiB) of the runtime and the processes it waits for (ru_maxrss).
rss() { # rss NAME BINARY -> "median max"
  local i vals=()
  for i in $(seq "$RSS_RUNS"); do
    vals+=("$(/usr/bin/time -f %M "$2" --root "$tmp/root-$1" run --bundle "$bundle" \
      "$1-rss-$i" 2>&1 >/dev/null | tail -n 1)")
  done
  printf '%s\n' "${vals[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)], v[NR]}'
}

rss_json=$tmp/rss.json
echo '{}' >"$rss_json"
for i in "${!names[@]}"; do
  read -r med max < <(rss "${names[$i]}" "${bins[$i]}")
  jq --arg n "${names[$i]}" --argjson med "$med" --argjson max "$max" \
    '. + {($n): {median: $med, max: $max}}' "$rss_json" >"$rss_json.new"
  mv "$rss_json.new" "$rss_json"
done

echo
echo "container run+delete of 'true' (busybox bundle, seccomp: $profile), $RUNS runs, $(nproc) CPUs, $(uname -r)"
jq -r --slurpfile rss "$rss_json" '
  def ms: . * 1000 | . * 100 | round / 100;
  def ratio($a; $b): if $b == null or $b == 0 then "-" else ($a / $b * 100 | round / 100 | tostring) + "x" end;
  [.results[] | {name: .command, wall: .median, cpu: (.user + .system)}] as $r
  | ($r | map({(.name): .}) | add) as $by
  | ["runtime", "wall median ms", "vs crun", "vs runc", "cpu user+sys ms", "vs crun", "vs runc",
     "peak RSS KiB med/max", "vs crun"],
    ($r[] | [.name, (.wall | ms), ratio(.wall; $by.crun.wall), ratio(.wall; $by.runc.wall),
             (.cpu | ms), ratio(.cpu; $by.crun.cpu), ratio(.cpu; $by.runc.cpu),
             "\($rss[0][.name].median)/\($rss[0][.name].max)",
             ratio($rss[0][.name].median; $rss[0].crun.median)])
  | @tsv' "$OUT" | column -t -s "$(printf '\t')"
echo
echo "cpu = mean user+sys per run (hyperfine); RSS = ru_maxrss of 'run' incl. its waited-for children, over $RSS_RUNS runs"
echo "raw: $OUT"
