#!/usr/bin/env bash
# berth fetch vs skopeo copy of the same OCI layout, medians of RUNS runs each, berth image
# render vs umoci (bench/render.sh), the sandbox's start-up and per-fetch costs, and
# container launch: `berth run --rootfs` vs crun and runc running the bundle `berth
# bundle` wrote (RUN_RUNS runs each); `berth serve` vs docker-registry (bench/serve.sh);
# fetch with signature checks vs skopeo's signedBy (bench/signatures.sh).
# Run from the repository root (`just bench`).
set -euo pipefail
RUNS=${RUNS:-7}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench
mkdir -p "$work"

fixture() {
    # busybox (small) and busybox + /usr/lib/gcc as a second layer (large), built by umoci.
    [ -f "$work/layout/index.json" ] && return
    rm -rf "$work/layout"
    cp /bin/busybox "$work/busybox"
    (cd "$work" && umoci init --layout layout \
        && umoci new --image layout:small && umoci insert --image layout:small busybox /bin/busybox \
        && umoci new --image layout:large && umoci insert --image layout:large busybox /bin/busybox \
        && umoci insert --image layout:large /usr/lib/gcc /usr/lib/gcc) >/dev/null
}

# median SECONDS... -> seconds
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# timed CMD... -> wall seconds of one run
timed() {
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}

fetch_cold_store() {
    # A cold store with a warm compile cache: what a user has after the first fetch.
    rm -rf "$work/store/blobs" "$work/store/tmp" "$work/store"/berth.db*
    "$berth" --root "$work/store" fetch -q "oci-layout:$work/layout:$1"
}

skopeo_copy() {
    rm -rf "$work/skopeo-dst"
    skopeo copy -q "oci:$work/layout:$1" "oci:$work/skopeo-dst:$1"
}

fixture
echo "berth fetch vs skopeo copy (oci-layout -> store / layout), median of $RUNS runs"
"$berth" --root "$work/store" fetch -q "oci-layout:$work/layout:small" >/dev/null  # fill the compile cache
for ref in small large; do
    size=$(du -sh "$work/layout/blobs" | cut -f1)
    b=(); s=()
    for _ in $(seq "$RUNS"); do
        b+=("$(timed fetch_cold_store "$ref")")
        s+=("$(timed skopeo_copy "$ref")")
    done
    mb=$(median "${b[@]}"); ms=$(median "${s[@]}")
    python3 -c "print(f'  {\"$ref\":6} berth {${mb}*1000:8.1f} ms   skopeo {${ms}*1000:8.1f} ms   ratio berth/skopeo {${mb}/${ms}:.3f}')"
done
echo "  (layout blobs on disk: $size)"

echo
bench/render.sh
bench/erofs.sh
bench/appc.sh

echo
echo "sandbox costs (in-process, cargo bench)"
BERTH_BENCH_LAYOUT="$work/layout" BERTH_BENCH_REF=small cargo bench -q -p berth --bench sandbox 2>/dev/null | sed 's/^/  /'

echo
echo "policy costs (in-process, cargo bench)"
cargo bench -q -p berth --bench policy 2>/dev/null | sed 's/^/  /'
cargo build -q -p berth-tests --tests  # builds the SDK example handler component
BERTH_BENCH_DROPIN=$PWD/target/wasm-components/wasm32-wasip2/release/berth_example_http_tar.wasm \
    cargo bench -q -p berth --bench dropin 2>/dev/null | sed 's/^/  /'

echo
bench/registry.sh

echo
bench/serve.sh

echo
bench/signatures.sh
RUN_RUNS=${RUN_RUNS:-25}
if [ "$(id -u)" -ne 0 ]; then
    echo "container launch: skipped (needs root)"
    exit 0
fi
run_rootfs() {
    # busybox with /bin/true, and the mount points every runtime needs.
    local root=$work/run-rootfs
    [ -x "$root/bin/true" ] && return
    rm -rf "$root"; mkdir -p "$root"/{bin,proc,sys,dev,etc,tmp}
    cp /bin/busybox "$root/bin/busybox"
    for a in sh true; do ln -s busybox "$root/bin/$a"; done
    touch "$root"/etc/{hosts,hostname,resolv.conf}
}
# crun refuses a hybrid cgroup layout without a v1 hugetlb hierarchy.
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -e /sys/fs/cgroup/hugetlb/cgroup.procs ]; then
    grep -q ' /sys/fs/cgroup .* ro[, ]' /proc/self/mountinfo && mount -o remount,rw /sys/fs/cgroup
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb
fi
run_rootfs
rm -rf "$work/run-bundle"
"$berth" bundle --rootfs "$work/run-rootfs" "$work/run-bundle" -- /bin/true
state=$work/run-state

berth_run() { "$berth" run --rootfs "$work/run-rootfs" -- /bin/true; }
oci_run() { "$1" --root "$state-$1" run --bundle "$work/run-bundle" "bench-$$-$RANDOM$RANDOM"; }
echo "container launch of /bin/true in a busybox rootfs, median of $RUN_RUNS runs"
declare -A med
for who in berth crun runc; do
    command -v "$who" >/dev/null || [ "$who" = berth ] || { echo "  $who: not installed"; continue; }
    # One checked run first: \`timed\` hides failures, and a failing runtime is fast.
    if [ "$who" = berth ]; then berth_run; else oci_run "$who"; fi
    t=()
    for _ in $(seq "$RUN_RUNS"); do
        if [ "$who" = berth ]; then t+=("$(timed berth_run)"); else t+=("$(timed oci_run "$who")"); fi
    done
    med[$who]=$(median "${t[@]}")
    python3 -c "print(f'  {\"$who\":6} {${med[$who]}*1000:8.1f} ms')"
done
for peer in crun runc; do
    [ -n "${med[$peer]:-}" ] && python3 -c "print(f'  ratio berth/$peer {${med[berth]}/${med[$peer]}:.2f}')"
done

echo
bench/runtime.sh
