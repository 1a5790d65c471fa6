#!/usr/bin/env bash
# berth-runtime vs crun and runc as OCI runtimes: `podman run --rm` through each (same
# podman, storage and image), and each runtime's own create + start + delete of one bundle
# (`runc spec`'s configuration around a busybox rootfs). Medians of RUNS runs, the
# runtimes interleaved, ratios from the same run. Needs root, podman, crun and runc.
# Run from the repository root (`just bench`, after `just build`).
set -euo pipefail
RUNS=${RUNS:-20}
runtime=${BERTH_RUNTIME:-$PWD/target/release/berth-runtime}
work=$PWD/target/bench/runtime
if [ "$(id -u)" -ne 0 ]; then echo "OCI runtimes: skipped (needs root)"; exit 0; fi
for tool in podman crun runc umoci; do
    command -v "$tool" >/dev/null || { echo "OCI runtimes: skipped ($tool is not installed; just setup)"; exit 0; }
done
mkdir -p "$work"

# crun refuses a hybrid cgroup layout without a v1 hugetlb hierarchy.
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -e /sys/fs/cgroup/hugetlb/cgroup.procs ]; then
    grep -q ' /sys/fs/cgroup .* ro[, ]' /proc/self/mountinfo && mount -o remount,rw /sys/fs/cgroup
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb
fi

# A busybox image (umoci) and rootfs.
if [ ! -f "$work/layout/index.json" ]; then
    rm -rf "$work/layout"
    cp /bin/busybox "$work/busybox"
    (cd "$work" && umoci init --layout layout && umoci new --image layout:bb \
        && umoci insert --image layout:bb busybox /bin/busybox) >/dev/null
fi
rootfs=$work/rootfs
if [ ! -x "$rootfs/bin/true" ]; then
    rm -rf "$rootfs"; mkdir -p "$rootfs"/{bin,proc,sys,dev,etc,tmp}
    cp /bin/busybox "$rootfs/bin/busybox"
    for a in sh true; do ln -s busybox "$rootfs/bin/$a"; done
fi

# Podman with its own storage and the settings this machine needs.
mkdir -p "$work/podman"
cat >"$work/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=10000:10000"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$work/podman/containers.conf
podman_args=$(printf '["podman", "--root", "%s", "--runroot", "%s", "--storage-driver", "overlay"]' \
    "$work/podman/root" "$work/podman/run")
podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay)
image=$("${podman[@]}" pull -q "oci:$work/layout:bb")

echo "podman run --rm --network none IMAGE /bin/busybox true, per runtime, median of $RUNS runs"
python3 bench/runtime.py "$RUNS" podman "$podman_args" "$image" "$runtime" "$(command -v crun)" "$(command -v runc)"

bundle=$work/bundle
rm -rf "$bundle" "$work/state"; mkdir -p "$bundle" "$work/state"
runc spec --bundle "$bundle"
python3 - "$bundle/config.json" "$rootfs" <<'EOF'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(path, "w"))
EOF
echo
echo "create + start + wait + delete of runc spec's bundle (/bin/true), median of $RUNS runs"
python3 bench/runtime.py "$RUNS" lifecycle "$bundle" "$work/state" "$runtime" "$(command -v crun)" "$(command -v runc)"
