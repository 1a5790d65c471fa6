#!/usr/bin/env bash
# Registry fetch: berth fetch vs `skopeo copy docker://… oci:` vs `podman pull`, the same
# images from the same local CNCF distribution registry, cold store each run (berth keeps
# its warm compile cache, as a user has after the first fetch). Medians of RUNS runs:
# wall time, peak RSS, MB/s of compressed bytes. Run from the repository root.
set -euo pipefail
RUNS=${RUNS:-5}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/registry
measure="python3 $PWD/bench/measure.py $RUNS"
mkdir -p "$work"

large_layout() {
    # busybox + the host's /usr/lib/x86_64-linux-gnu (≈ 650 MB of real binaries) + 64 MiB random.
    [ -f "$work/layout/index.json" ] && return
    rm -rf "$work/layout"
    cp /bin/busybox "$work/busybox"
    head -c $((64 << 20)) /dev/urandom >"$work/random.bin"
    local libs=/usr/lib/x86_64-linux-gnu
    [ -d "$libs" ] || libs=/usr/lib
    (cd "$work" && umoci init --layout layout && umoci new --image layout:large \
        && umoci insert --image layout:large busybox /bin/busybox \
        && umoci insert --image layout:large "$libs" /usr/lib/payload \
        && umoci insert --image layout:large random.bin /data/random.bin) >/dev/null
}

start_registry() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    addr=127.0.0.1:$port
    rm -rf "$work/registry"; mkdir -p "$work/registry"
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$work/registry/data" "$addr" >"$work/registry/config.yml"
    docker-registry serve "$work/registry/config.yml" >/dev/null 2>&1 &
    registry_pid=$!
    trap 'kill $registry_pid 2>/dev/null || true' EXIT
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.1; done
    echo "registry did not start" >&2; exit 1
}

# Podman with its own storage and the settings this machine needs.
podman_setup() {
    mkdir -p "$work/podman"
    cat >"$work/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=10000:10000"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$work/podman/containers.conf
    podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay)
}

large_layout
start_registry
# skopeo 1.9 reuses blobs it remembers pushing (its blob-info cache) even when asked for
# another compression: forget them, push zstd first, and check what the registry holds.
rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb ~/.local/share/containers/cache/blob-info-cache-v1.boltdb
skopeo copy -q --dest-tls-verify=false --dest-compress-format zstd "oci:$work/layout:large" "docker://$addr/large-zstd:v1"
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:large" "docker://$addr/large-gzip:v1"
zstd_layers=$(skopeo inspect --raw --tls-verify=false "docker://$addr/large-zstd:v1" | python3 -c \
    'import json,sys; print(sum(l["mediaType"].endswith("+zstd") for l in json.load(sys.stdin)["layers"]))')
command -v podman >/dev/null && podman_setup

"$berth" --root "$work/store" fetch -q "oci://$addr/large-gzip:v1" >/dev/null  # warm the compile cache
echo "registry fetch of a large image, median of $RUNS runs, cold store each time"
[ "$zstd_layers" -gt 0 ] || echo "  (skopeo reused gzip layers for the zstd push: zstd row is gzip)"
for variant in gzip zstd; do
    ref="$addr/large-$variant:v1"
    bytes=$(skopeo inspect --raw --tls-verify=false "docker://$ref" | python3 -c \
        'import json,sys; m=json.load(sys.stdin); print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))')
    reset_berth="rm -rf '$work/store/blobs' '$work/store/tmp' '$work/store'/berth.db*; sync"
    b=$($measure "$reset_berth" "$berth" --root "$work/store" fetch -q "oci://$ref")
    s=$($measure "rm -rf '$work/skopeo-dst'; sync" skopeo copy -q --src-tls-verify=false \
        "docker://$ref" "oci:$work/skopeo-dst:large")
    p='{}'
    if [ -n "${podman+x}" ]; then
        p=$($measure "${podman[*]} rmi -a -f; sync" "${podman[@]}" pull -q --tls-verify=false "$ref")
    fi
    python3 - "$variant" "$bytes" "$b" "$s" "$p" <<'EOF'
import json, sys
variant, size = sys.argv[1], int(sys.argv[2])
rows = [("berth fetch", json.loads(sys.argv[3])), ("skopeo copy", json.loads(sys.argv[4])),
        ("podman pull", json.loads(sys.argv[5]))]
base = rows[1][1]["wall_s"]
print(f"  {variant}: {size / 2**20:.0f} MiB compressed")
for name, r in rows:
    if not r:
        print(f"    {name:12} (podman not installed)")
        continue
    print(f"    {name:12} {r['wall_s']:7.2f} s  {size / 2**20 / r['wall_s']:7.1f} MiB/s  "
          f"peak RSS {r['rss_mib']:6.1f} MiB  ratio to skopeo {r['wall_s'] / base:.2f}")
EOF
done
echo "  (limits here: sha256 ≈ 1300 MB/s with SHA-NI; podman pull also unpacks layers into its storage)"
