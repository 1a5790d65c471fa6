#!/usr/bin/env bash
# berth fetch vs skopeo copy of the same OCI layout, medians of RUNS runs each, berth image
# render vs umoci (bench/render.sh), plus the sandbox's start-up and per-fetch costs.
# Run from the repository root (`just bench`).
set -euo pipefail
RUNS=${RUNS:-7}
berth=$PWD/target/release/berth
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
