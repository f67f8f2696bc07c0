#!/usr/bin/env bash
# bench/pull.sh: pull + unpack of a multi-layer image (~150 MB unpacked, 4
# gzip layers built from /usr/lib) from a registry on 127.0.0.1, side by
# side in ONE hyperfine run:
#
#   berth            berth --root FRESH pull -q IMAGE
#   podman           podman --root FRESH ... pull IMAGE (overlay storage)
#   skopeo+umoci     skopeo copy docker://IMAGE oci:FRESH && umoci unpack
#   gzip|tar         gzip -dc LAYER | tar -x, layer after layer (the
#                    practical single-core limit; no network, no digests)
#   gzip|tar (par)   the same, all layers at once
#
# Every timed run gets a fresh, empty directory; the previous one is
# deleted in hyperfine's --prepare step, outside the timed part (this disk
# deletes slowly). Prints mean times, ratios to berth and throughput in MB
# of unpacked tar per second. Environment: RUNS (default 5), SIZE_MB
# (default 150), LAYERS (default 4), BERTH (default target/release/berth,
# built here), BERTH_ALT (a second berth binary to compare, e.g. another
# build profile; optional), OUT (hyperfine JSON, default
# /tmp/berth-bench-pull.json).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-150}
LAYERS=${LAYERS:-4}
OUT=${OUT:-/tmp/berth-bench-pull.json}

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

need=()
for tool in hyperfine jq skopeo umoci podman; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${BERTH:-}" ]; then
  BERTH=$here/target/release/berth
  say "building $BERTH (cargo build --release -p berth)"
  (cd "$here" && cargo build -q --release -p berth)
fi

W=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
REG_PID=
# Mounts a tool may leave under $W (podman's overlay driver), deepest first.
unmount_all() { findmnt -rno TARGET | grep "^$W/" | sort -r | xargs -r umount -l 2>/dev/null || true; }
cleanup() {
  unmount_all
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# --- the registry -----------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$PORT
YML
/usr/bin/docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
IMAGE=127.0.0.1:$PORT/bench/usrlib:1

# --- the image: LAYERS gzip layers of files from /usr/lib ---------------------
say "building a ${SIZE_MB} MB image in $LAYERS layers from /usr/lib"
mkdir -p "$W/layout/blobs/sha256" "$W/layers"
find /usr/lib -xdev -type f -size -20M -printf '%s %p\n' 2>/dev/null | sort -k2 |
  awk -v total=$((SIZE_MB * 1000000)) -v n="$LAYERS" -v dir="$W/layers" '
    { if (sum >= total) next; i = int(sum * n / total); print substr($0, index($0, " ") + 1) > (dir "/list" i); sum += $1 }'
diff_ids=(); layer_descs=()
for i in $(seq 0 $((LAYERS - 1))); do
  tar -C / -cf "$W/layers/$i.tar" --no-recursion -T <(sed 's|^/||' "$W/layers/list$i")
  diff_ids+=("sha256:$(sha256sum "$W/layers/$i.tar" | cut -d' ' -f1)")
  gzip -6 -c "$W/layers/$i.tar" > "$W/layers/$i.tar.gz"
  hex=$(sha256sum "$W/layers/$i.tar.gz" | cut -d' ' -f1)
  cp "$W/layers/$i.tar.gz" "$W/layout/blobs/sha256/$hex"
  layer_descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$hex\",\"size\":$(stat -c %s "$W/layers/$i.tar.gz")}")
done
TAR_BYTES=$(cat "$W"/layers/*.tar | wc -c)
GZ_BYTES=$(cat "$W"/layers/*.tar.gz | wc -c)
rm -f "$W"/layers/*.tar
printf '%s\n' "${diff_ids[@]}" | jq -R . | jq -sc '{architecture:"amd64",os:"linux",created:"2024-01-01T00:00:00Z",config:{},rootfs:{type:"layers",diff_ids:.}}' > "$W/config.json"
chex=$(sha256sum "$W/config.json" | cut -d' ' -f1); cp "$W/config.json" "$W/layout/blobs/sha256/$chex"
layers_json=$(IFS=,; echo "[${layer_descs[*]}]")
echo "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$chex\",\"size\":$(stat -c %s "$W/config.json")},\"layers\":$layers_json}" > "$W/manifest.json"
mhex=$(sha256sum "$W/manifest.json" | cut -d' ' -f1); cp "$W/manifest.json" "$W/layout/blobs/sha256/$mhex"
echo '{"imageLayoutVersion":"1.0.0"}' > "$W/layout/oci-layout"
echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mhex\",\"size\":$(stat -c %s "$W/manifest.json"),\"annotations\":{\"org.opencontainers.image.ref.name\":\"1\"}}]}" > "$W/layout/index.json"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:1" "docker://$IMAGE"
say "image: $((TAR_BYTES / 1000000)) MB of tar, $((GZ_BYTES / 1000000)) MB gzip, $LAYERS layers"

# --- the runs -----------------------------------------------------------------
fresh() { echo "findmnt -rno TARGET | grep '^$W/run-$1' | sort -r | xargs -r umount -l; rm -rf $W/run-$1 && mkdir -p $W/run-$1"; }
PODMAN="podman --root $W/run-podman/root --runroot $W/run-podman/run --cgroup-manager cgroupfs --events-backend file --storage-driver overlay"
$PODMAN pull -q --tls-verify=false "$IMAGE" >/dev/null 2>&1 || PODMAN=${PODMAN/--storage-driver overlay/--storage-driver vfs}
unmount_all; rm -rf "$W/run-podman"
seq_extract="for i in \$(seq 0 $((LAYERS - 1))); do mkdir -p $W/run-gz/\$i && gzip -dc $W/layers/\$i.tar.gz | tar -x -C $W/run-gz/\$i; done"
par_extract="for i in \$(seq 0 $((LAYERS - 1))); do mkdir -p $W/run-gzp/\$i && (gzip -dc $W/layers/\$i.tar.gz | tar -x -C $W/run-gzp/\$i) & done; wait"

alt=()
if [ -n "${BERTH_ALT:-}" ]; then
  alt=(-n berth-alt --prepare "$(fresh alt)" "$BERTH_ALT --root $W/run-alt pull -q $IMAGE")
fi
hyperfine --runs "$RUNS" --warmup 1 --export-json "$OUT" \
  -n berth --prepare "$(fresh berth)" "$BERTH --root $W/run-berth pull -q $IMAGE" \
  "${alt[@]}" \
  -n podman --prepare "$(fresh podman)" "$PODMAN pull -q --tls-verify=false $IMAGE" \
  -n skopeo+umoci --prepare "$(fresh skopeo)" "skopeo copy -q --src-tls-verify=false docker://$IMAGE oci:$W/run-skopeo/layout:1 && umoci unpack --image $W/run-skopeo/layout:1 $W/run-skopeo/bundle >/dev/null" \
  -n "gzip|tar" --prepare "$(fresh gz)" "$seq_extract" \
  -n "gzip|tar (par)" --prepare "$(fresh gzp)" "$par_extract" >&2

# Unmount anything podman left, then remove the run dirs (untimed).
$PODMAN rmi -a -f >/dev/null 2>&1 || true

echo
echo "pull+unpack of $((TAR_BYTES / 1000000)) MB ($LAYERS gzip layers, $((GZ_BYTES / 1000000)) MB compressed), $RUNS runs each"
jq -r --argjson bytes "$TAR_BYTES" '
  (.results[] | select(.command == "berth") | .mean) as $b
  | ["tool", "mean s", "stddev", "vs berth", "MB/s"],
    (.results[] | [.command, (.mean * 1000 | round / 1000), (.stddev * 1000 | round / 1000),
      ((.mean / $b * 100 | round) / 100 | tostring + "x"), ($bytes / .mean / 1e6 | round)])
  | @tsv' "$OUT" | column -t -s $'\t'
