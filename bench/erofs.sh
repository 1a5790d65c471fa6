#!/usr/bin/env bash
# Snapshot forms: fetch + overlay render of a many-file image into a cold store with EROFS
# layer images vs directory snapshots vs `umoci unpack` (and `podman pull` when podman is
# installed), then `berth run IMAGE -- /bin/true` on each form (warm snapshots) vs crun
# running the same rootfs. Medians of RUNS runs. Needs root (EROFS and overlay mounts).
# Run from the repository root (`just bench` runs it); BERTH overrides the binary.
set -euo pipefail
RUNS=${RUNS:-5}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/erofs
store=$work/store
mkdir -p "$work"
if [ "$(id -u)" -ne 0 ]; then echo "snapshot forms: skipped (needs root)"; exit 0; fi

fixture() {
    # files: busybox, /usr/include and /usr/share/doc in three layers (~14k entries).
    [ -f "$work/layout/index.json" ] && return
    rm -rf "$work/layout"
    cp /bin/busybox "$work/busybox"
    (cd "$work" && umoci init --layout layout && umoci new --image layout:files \
        && umoci insert --image layout:files busybox /bin/busybox \
        && umoci insert --image layout:files /usr/include /usr/include \
        && umoci insert --image layout:files /usr/share/doc /usr/share/doc) >/dev/null
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
timed() {
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
ms() { python3 -c "print(f'{$1*1000:8.1f} ms')"; }

point="oci-layout:$work/layout:files"
# Each measured step has an untimed preparation (removing 14k files costs seconds too).
unmount_all() { for m in "$store"/mounts/* "$work"/ov/rootfs; do umount -l "$m" 2>/dev/null || true; done; }
# A cold store keeps its compiled-handler cache, as bench/run.sh does: what a user has after
# the first fetch of any image (a cold compile is measured by the sandbox bench).
cold_store() { unmount_all; find "$store" -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} + 2>/dev/null || true; rm -rf "$work/ov"; }
cold_snapshots() { unmount_all; rm -rf "$store/snapshots" "$store/mounts" "$work/ov"; }
fetch_render() {
    BERTH_SNAPSHOTTER=$1 "$berth" --root "$store" fetch -q "$point"
    BERTH_SNAPSHOTTER=$1 "$berth" --root "$store" image render -q --overlay "$point" "$work/ov"
}
render_only() { BERTH_SNAPSHOTTER=$1 "$berth" --root "$store" image render -q --overlay "$point" "$work/ov"; }
# The same, until what it wrote is on disk: directory snapshots leave 14k inodes to writeback,
# a layer image is fsynced before it is renamed into place.
render_synced() { render_only "$1"; sync; }
umoci_unpack() { umoci unpack --image "$work/layout:files" "$work/bundle"; }
# podman with its own storage (overlay driver) and the settings this machine needs.
podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay)
if command -v podman >/dev/null; then
    mkdir -p "$work/podman"
    printf '[containers]\ndefault_ulimits = ["nofile=10000:10000"]\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
        >"$work/podman/containers.conf"
    export CONTAINERS_CONF=$work/podman/containers.conf
fi
podman_pull() { "${podman[@]}" pull -q "oci:$work/layout:files"; }
prepare() {
    case $1 in
        fetch_render) cold_store ;;
        render_only | render_synced) cold_store; "$berth" --root "$store" fetch -q "$point" >/dev/null; sync ;;
        umoci_unpack) rm -rf "$work/bundle" ;;
        podman_pull) "${podman[@]}" rmi -af >/dev/null 2>&1 || true; sync ;;
    esac
}

fixture
rm -rf "$work/bundle"; umoci_unpack
echo "snapshot forms: image 'files' ($(du -sh "$work/layout/blobs" | cut -f1) of blobs, $(find "$work/bundle/rootfs" | wc -l) paths), median of $RUNS runs"
for form in erofs dir; do prepare fetch_render; fetch_render $form >/dev/null; done  # checked: `timed` hides failures
declare -A med
for what in "fetch_render erofs" "fetch_render dir" "render_only erofs" "render_only dir" "render_synced erofs" \
    "render_synced dir" umoci_unpack podman_pull; do
    if [ "$what" = podman_pull ] && ! command -v podman >/dev/null; then echo "  podman pull: not installed"; continue; fi
    t=()
    for _ in $(seq "$RUNS"); do
        prepare "${what%% *}"
        t+=("$(timed $what)")
    done
    med[$what]=$(median "${t[@]}")
    printf '  %-20s %s\n' "$what" "$(ms "${med[$what]}")"
done
python3 -c "print(f'  fetch+render erofs/dir {${med[fetch_render erofs]}/${med[fetch_render dir]}:.3f}   render erofs/dir {${med[render_only erofs]}/${med[render_only dir]}:.3f} (synced {${med[render_synced erofs]}/${med[render_synced dir]}:.3f})   render erofs/umoci unpack {${med[render_only erofs]}/${med[umoci_unpack]}:.3f}')"
[ -n "${med[podman_pull]:-}" ] && python3 -c "print(f'  fetch+render erofs/podman pull {${med[fetch_render erofs]}/${med[podman_pull]}:.3f}')"

echo "berth run IMAGE -- /bin/busybox true (warm snapshots) vs crun on a bundle of the image, median of $RUNS runs"
cold_store
BERTH_SNAPSHOTTER=erofs "$berth" --root "$store" fetch -q "$point"
rm -rf "$work/bundle-crun"
"$berth" --root "$store" bundle "$point" "$work/bundle-crun" -- /bin/busybox true
for form in erofs dir; do
    BERTH_SNAPSHOTTER=$form "$berth" --root "$store" run "$point" -- /bin/busybox true
    t=()
    for _ in $(seq "$RUNS"); do t+=("$(timed env BERTH_SNAPSHOTTER=$form "$berth" --root "$store" run "$point" -- /bin/busybox true)"); done
    printf '  berth run (%-5s)    %s\n' "$form" "$(ms "$(median "${t[@]}")")"
done
if command -v crun >/dev/null; then
    crun_run() { crun --root "$work/crun-state" run --bundle "$work/bundle-crun" "bench-$$-$RANDOM$RANDOM"; }
    if crun_run >/dev/null 2>&1; then
        t=()
        for _ in $(seq "$RUNS"); do t+=("$(timed crun_run)"); done
        printf '  crun                 %s\n' "$(ms "$(median "${t[@]}")")"
    else
        echo "  crun: failed here (bench/run.sh sets up the cgroup layout crun needs)"
    fi
fi
cold_store
rm -rf "$work/bundle" "$work/bundle-crun"
