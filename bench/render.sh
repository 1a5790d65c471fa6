#!/usr/bin/env bash
# berth image render vs umoci unpack / umoci raw unpack of the same images, medians of RUNS
# runs (HUGE_RUNS for the ~1 GB image); plus overlay renders (cold snapshots, warm snapshots,
# a second image sharing layers) and berth image export vs skopeo copy to an OCI layout.
# Needs root (umoci unpack as root keeps owners; the overlay mount). Run from the repository
# root (`just bench` runs it from bench/run.sh).
set -euo pipefail
RUNS=${RUNS:-7}
HUGE_RUNS=${HUGE_RUNS:-3}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/render
store=$work/store
mkdir -p "$work"

fixture() {
    # small: busybox (1 layer). large: busybox + /usr/lib/gcc (2 layers). multi: busybox,
    # /usr/lib/gcc, /usr/share/doc, /usr/include (4 layers; shares its first two with large).
    # huge: busybox, /usr/lib/x86_64-linux-gnu, /usr/include, /usr/share/doc, /usr/lib/python3.11
    # (5 layers, ~970 MB and ~18k entries: the size and file count of a large Debian image).
    [ -f "$work/layout/index.json" ] && grep -q '"huge"' "$work/layout/index.json" && return
    rm -rf "$work/layout"
    cp /bin/busybox "$work/busybox"
    (cd "$work" && umoci init --layout layout \
        && umoci new --image layout:small && umoci insert --image layout:small busybox /bin/busybox \
        && umoci new --image layout:large && umoci insert --image layout:large busybox /bin/busybox \
        && umoci insert --image layout:large /usr/lib/gcc /usr/lib/gcc \
        && umoci new --image layout:multi && umoci insert --image layout:multi busybox /bin/busybox \
        && umoci insert --image layout:multi /usr/lib/gcc /usr/lib/gcc \
        && umoci insert --image layout:multi /usr/share/doc /usr/share/doc \
        && umoci insert --image layout:multi /usr/include /usr/include \
        && umoci new --image layout:huge && umoci insert --image layout:huge busybox /bin/busybox \
        && umoci insert --image layout:huge /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu \
        && umoci insert --image layout:huge /usr/include /usr/include \
        && umoci insert --image layout:huge /usr/share/doc /usr/share/doc \
        && umoci insert --image layout:huge /usr/lib/python3.11 /usr/lib/python3.11) >/dev/null
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
timed() {
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
ms() { python3 -c "print(f'{$1*1000:8.1f} ms')"; }

# EROFS layer mounts stay up between renders (shared): detach them before removing snapshots.
unmount_layers() { for m in "$store"/mounts/*; do umount -l "$m" 2>/dev/null || true; done; }
fresh() { rm -rf "$work/out" "$work/bundle" "$work/raw"; sync; }
berth_flat() { "$berth" --root "$store" image render -q "oci-layout:$work/layout:$1" "$work/out"; }
berth_flat_norecord() { "$berth" --root "$store" image render -q --no-record "oci-layout:$work/layout:$1" "$work/out"; }
umoci_unpack() { umoci unpack --image "$work/layout:$1" "$work/bundle"; }
umoci_raw() { umoci raw unpack --image "$work/layout:$1" "$work/raw"; }
berth_overlay() { "$berth" --root "$store" image render -q --overlay "oci-layout:$work/layout:$1" "$work/ov-$1"; }
unmount_overlay() { umount "$work/ov-$1/rootfs" 2>/dev/null || true; rm -rf "$work/ov-$1"; }
overlay_cold() { unmount_layers; rm -rf "$store/snapshots" "$store/mounts"; berth_overlay "$1"; }

fixture
unmount_layers
rm -rf "$store"
for ref in small large multi huge; do "$berth" --root "$store" fetch -q "oci-layout:$work/layout:$ref" >/dev/null; done

echo "berth image render (flattened; recorded, and --no-record) vs umoci unpack / umoci raw unpack, medians"
for ref in small large multi huge; do
    runs=$RUNS; [ "$ref" = huge ] && runs=$HUGE_RUNS
    b=(); n=(); u=(); r=()
    for _ in $(seq "$runs"); do
        # Removing the previous tree (thousands of files) is not part of a render: done
        # untimed, then written back, before each timed command.
        fresh; b+=("$(timed berth_flat "$ref")")
        fresh; n+=("$(timed berth_flat_norecord "$ref")")
        fresh; u+=("$(timed umoci_unpack "$ref")")
        fresh; r+=("$(timed umoci_raw "$ref")")
    done
    mb=$(median "${b[@]}"); mn=$(median "${n[@]}"); mu=$(median "${u[@]}"); mr=$(median "${r[@]}")
    size=$(du -sh "$work/raw" | cut -f1)
    python3 -c "print(f'  {\"$ref\":6} ($size, $runs runs) berth {${mb}*1000:8.1f} ms  --no-record {${mn}*1000:8.1f} ms  umoci unpack {${mu}*1000:8.1f} ms  umoci raw unpack {${mr}*1000:8.1f} ms  berth/unpack {${mb}/${mu}:.3f}  berth/raw {${mb}/${mr}:.3f}')"
done
rm -rf "$work/out" "$work/bundle" "$work/raw"

berth_export() { rm -rf "$work/exported"; "$berth" --root "$store" image export -q "oci-layout:$work/layout:$1" "$work/exported" --tag "$1"; }
skopeo_export() { rm -rf "$work/skopeo-out"; skopeo copy -q "oci:$work/layout:$1" "oci:$work/skopeo-out:$1"; }
echo "berth image export (store -> OCI layout) vs skopeo copy (layout -> layout), median of $RUNS runs"
for ref in large huge; do
    b=(); k=()
    for _ in $(seq "$RUNS"); do b+=("$(timed berth_export "$ref")"); k+=("$(timed skopeo_export "$ref")"); done
    mb=$(median "${b[@]}"); mk=$(median "${k[@]}")
    python3 -c "print(f'  {\"$ref\":6} berth {${mb}*1000:8.1f} ms   skopeo {${mk}*1000:8.1f} ms   berth/skopeo {${mb}/${mk}:.3f}')"
done
rm -rf "$work/exported" "$work/skopeo-out"

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
    unmount_layers; rm -rf "$store/snapshots" "$store/mounts"; berth_overlay large >/dev/null; unmount_overlay large
    s+=("$(timed berth_overlay multi)"); unmount_overlay multi
done
echo "  multi after large (2 of 4 layers already snapshotted): $(ms "$(median "${s[@]}")")"
rm -rf "$work/out" "$work/bundle" "$work/raw"
unmount_layers
