#!/usr/bin/env bash
# berth image render vs umoci unpack / umoci raw unpack of the same images, medians of RUNS
# runs; plus overlay renders (cold snapshots, warm snapshots, a second image sharing layers).
# Needs root (umoci unpack as root keeps owners; the overlay mount). Run from the repository
# root (`just bench` runs it from bench/run.sh).
set -euo pipefail
RUNS=${RUNS:-7}
berth=$PWD/target/release/berth
work=$PWD/target/bench/render
store=$work/store
mkdir -p "$work"

fixture() {
    # small: busybox (1 layer). large: busybox + /usr/lib/gcc (2 layers). multi: busybox,
    # /usr/lib/gcc, /usr/share/doc, /usr/include (4 layers; shares its first two with large).
    [ -f "$work/layout/index.json" ] && return
    rm -rf "$work/layout"
    cp /bin/busybox "$work/busybox"
    (cd "$work" && umoci init --layout layout \
        && umoci new --image layout:small && umoci insert --image layout:small busybox /bin/busybox \
        && umoci new --image layout:large && umoci insert --image layout:large busybox /bin/busybox \
        && umoci insert --image layout:large /usr/lib/gcc /usr/lib/gcc \
        && umoci new --image layout:multi && umoci insert --image layout:multi busybox /bin/busybox \
        && umoci insert --image layout:multi /usr/lib/gcc /usr/lib/gcc \
        && umoci insert --image layout:multi /usr/share/doc /usr/share/doc \
        && umoci insert --image layout:multi /usr/include /usr/include) >/dev/null
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
timed() {
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
ms() { python3 -c "print(f'{$1*1000:8.1f} ms')"; }

berth_flat() { rm -rf "$work/out"; "$berth" --root "$store" image render -q "oci-layout:$work/layout:$1" "$work/out"; }
umoci_unpack() { rm -rf "$work/bundle"; umoci unpack --image "$work/layout:$1" "$work/bundle"; }
umoci_raw() { rm -rf "$work/raw"; umoci raw unpack --image "$work/layout:$1" "$work/raw"; }
berth_overlay() { "$berth" --root "$store" image render -q --overlay "oci-layout:$work/layout:$1" "$work/ov-$1"; }
unmount_overlay() { umount "$work/ov-$1/rootfs" 2>/dev/null || true; rm -rf "$work/ov-$1"; }
overlay_cold() { rm -rf "$store/snapshots"; berth_overlay "$1"; }

fixture
rm -rf "$store"
for ref in small large multi; do "$berth" --root "$store" fetch -q "oci-layout:$work/layout:$ref" >/dev/null; done

echo "berth image render (flattened) vs umoci unpack / umoci raw unpack, median of $RUNS runs"
for ref in small large multi; do
    b=(); u=(); r=()
    for _ in $(seq "$RUNS"); do
        b+=("$(timed berth_flat "$ref")")
        u+=("$(timed umoci_unpack "$ref")")
        r+=("$(timed umoci_raw "$ref")")
    done
    mb=$(median "${b[@]}"); mu=$(median "${u[@]}"); mr=$(median "${r[@]}")
    size=$(du -sh "$work/out" | cut -f1)
    python3 -c "print(f'  {\"$ref\":6} ($size) berth {${mb}*1000:8.1f} ms   umoci unpack {${mu}*1000:8.1f} ms   umoci raw unpack {${mr}*1000:8.1f} ms   berth/unpack {${mb}/${mu}:.3f}  berth/raw {${mb}/${mr}:.3f}')"
done

echo "berth image render --overlay, median of $RUNS runs"
for ref in small multi; do
    c=(); w=()
    for _ in $(seq "$RUNS"); do
        c+=("$(timed overlay_cold "$ref")"); unmount_overlay "$ref"
        w+=("$(timed berth_overlay "$ref")"); unmount_overlay "$ref"
    done
    python3 -c "print(f'  {\"$ref\":6} cold snapshots $(ms "$(median "${c[@]}")")   warm snapshots $(ms "$(median "${w[@]}")")')"
done
s=()
for _ in $(seq "$RUNS"); do
    rm -rf "$store/snapshots"; berth_overlay large >/dev/null; unmount_overlay large
    s+=("$(timed berth_overlay multi)"); unmount_overlay multi
done
echo "  multi after large (2 of 4 layers already snapshotted): $(ms "$(median "${s[@]}")")"
rm -rf "$work/out" "$work/bundle" "$work/raw"
