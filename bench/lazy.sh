#!/usr/bin/env bash
# Partial pulls of eStargz images: the kit-sized image (~20k files of real text and
# binaries from /usr, a few hundred MB) and a second image sharing 90% of its files,
# converted by stargz-snapshotter's ctr-remote, served by a local CNCF docker-registry
# behind a proxy limited to MBIT megabit/s (bench/throttle.py). Cold store each run.
# Rows: berth fetch (whole layers), berth fetch --partial, `berth run` to the first exec,
# `berth run --lazy` to the first exec (and until the image is stored), podman pull; then the second image with the first one stored: bytes downloaded and
# time. Medians of RUNS runs. Run from the repository root, as root (containerd).
set -euo pipefail
RUNS=${RUNS:-3}
MBIT=${MBIT:-200}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/lazy
measure="python3 $PWD/bench/measure.py $RUNS"
mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The kit: busybox as the entrypoint, and whole trees of /usr until ~20k files.
kit_rootfs() {
    [ -f "$work/kit/.done" ] && return
    rm -rf "$work/kit" "$work/kit2"
    mkdir -p "$work/kit/bin" "$work/kit/usr/share" "$work/kit/usr/lib"
    cp /bin/busybox "$work/kit/bin/busybox"
    cp -a /usr/include "$work/kit/usr/include"
    for d in /usr/lib/python3 /usr/lib/python3.11; do [ -d "$d" ] && cp -a "$d" "$work/kit/usr/lib/"; done
    for d in doc perl zoneinfo i18n; do [ -d "/usr/share/$d" ] && cp -a "/usr/share/$d" "$work/kit/usr/share/"; done
    # The second image: every tenth regular file changed.
    cp -a "$work/kit" "$work/kit2"
    (cd "$work/kit2" && find . -type f ! -path ./bin/busybox | sort | awk 'NR % 10 == 3' |
        while IFS= read -r f; do echo "changed for the second image" >>"$f"; done)
    touch "$work/kit/.done"
}

start_registry() {
    local port; port=$(free_port)
    addr=127.0.0.1:$port
    rm -rf "$work/registry"; mkdir -p "$work/registry"
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$work/registry/data" "$addr" >"$work/registry/config.yml"
    docker-registry serve "$work/registry/config.yml" >/dev/null 2>&1 & pids+=($!)
    until curl -sf "http://$addr/v2/" >/dev/null; do sleep 0.1; done
}

start_containerd() {
    local d=$work/containerd
    rm -rf "$d"; mkdir -p "$d"
    printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s/sock"\n' \
        "$d" "$d" "$d" >"$d/config.toml"
    containerd --config "$d/config.toml" >"$d/log" 2>&1 & pids+=($!)
    until ctr -a "$d/sock" version >/dev/null 2>&1; do sleep 0.1; done
    ctr_remote() { ctr-remote -a "$work/containerd/sock" -n bench "$@" >/dev/null; }
}

start_proxy() {
    local port; port=$(free_port)
    proxied=127.0.0.1:$port
    python3 "$PWD/bench/throttle.py" "$port" "$addr" "$MBIT" >"$work/proxy.log" & pids+=($!)
    until grep -q ready "$work/proxy.log"; do sleep 0.1; done
}

# Podman with its own storage and the settings this machine needs.
podman_setup() {
    mkdir -p "$work/podman"
    printf '[containers]\ndefault_ulimits = ["nofile=10000:10000"]\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
        >"$work/podman/containers.conf"
    export CONTAINERS_CONF=$work/podman/containers.conf
    podman=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay)
}

kit_rootfs
start_registry
start_containerd
for name in kit kit2; do
    rm -rf "$work/layout-$name"
    umoci init --layout "$work/layout-$name" >/dev/null
    umoci new --image "$work/layout-$name:v1" >/dev/null
    umoci insert --image "$work/layout-$name:v1" "$work/$name" / >/dev/null
    umoci config --image "$work/layout-$name:v1" --config.entrypoint /bin/busybox >/dev/null
    skopeo copy -q --dest-tls-verify=false "oci:$work/layout-$name:v1" "docker://$addr/$name:plain"
    ctr_remote images pull --plain-http "$addr/$name:plain"
    ctr_remote images convert --estargz --oci "$addr/$name:plain" "$addr/$name:esgz"
    ctr_remote images push --plain-http "$addr/$name:esgz"
done
# The second image as zstd:chunked too: its files come from the eStargz first one.
ctr_remote images convert --zstdchunked --oci "$addr/kit2:plain" "$addr/kit2:zstd"
ctr_remote images push --plain-http "$addr/kit2:zstd"
start_proxy
command -v podman >/dev/null && podman_setup

layer_size() {
    skopeo inspect --raw --tls-verify=false "docker://$addr/$1" |
        python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}
files=$(find "$work/kit" -type f | wc -l)
kit_size=$(layer_size kit:esgz)
store=$work/store
# A cold store that keeps its compile cache (as a user's has after the first fetch):
# `system reset` also detaches the store's EROFS layer mounts.
reset_berth="mv '$store/cache' '$work/cache-kept' 2>/dev/null || true; '$berth' --root '$store' system reset --force >/dev/null; \
mkdir -p '$store'; mv '$work/cache-kept' '$store/cache' 2>/dev/null || true; sync"
"$berth" --root "$store" fetch -q "oci://$proxied/kit:esgz" >/dev/null # warm the compile cache

full=$($measure "$reset_berth" "$berth" --root "$store" fetch -q "oci://$proxied/kit:esgz")
partial=$($measure "$reset_berth" "$berth" --root "$store" fetch -q --partial "oci://$proxied/kit:esgz")
run=$($measure "$reset_berth" "$berth" --root "$store" run "oci://$proxied/kit:esgz" true)
lazy=$(python3 "$PWD/bench/first_exec.py" "$RUNS" "$reset_berth" \
    "$berth" --root "$store" run --lazy "oci://$proxied/kit:esgz" /bin/busybox echo started)
pull='{}'; pull2='{}'
if [ -n "${podman+x}" ]; then
    pull=$($measure "${podman[*]} rmi -a -f; sync" "${podman[@]}" pull -q --tls-verify=false "$proxied/kit:esgz")
    pull2=$($measure "${podman[*]} rmi -a -f; ${podman[*]} pull -q --tls-verify=false $proxied/kit:esgz; sync" \
        "${podman[@]}" pull -q --tls-verify=false "$proxied/kit2:esgz")
fi
# The second image, with the first stored (whole): what --partial downloads.
with_first="$reset_berth; '$berth' --root '$store' fetch -q 'oci://$addr/kit:esgz'"
second=$($measure "$with_first" "$berth" --root "$store" fetch -q --partial "oci://$proxied/kit2:esgz")
eval "$with_first" >/dev/null
second_json=$("$berth" --root "$store" --json fetch --partial "oci://$proxied/kit2:esgz" 2>/dev/null)
kit2_size=$(layer_size kit2:esgz)
# Lazy start's critical path: the TOC and the entrypoint's chunks, and what a run of a
# stored image costs on top (a floor for `run --lazy`).
critical=$(python3 "$PWD/bench/critical_path.py" "$proxied" kit esgz bin/busybox)
eval "$reset_berth"; "$berth" --root "$store" run "oci://$addr/kit:esgz" true >/dev/null # fetched and rendered
warm_run=$($measure true "$berth" --root "$store" run "oci://$addr/kit:esgz" true)
eval "$with_first" >/dev/null
zstd_json=$("$berth" --root "$store" --json fetch --partial "oci://$proxied/kit2:zstd" 2>/dev/null)
kit2_zstd_size=$(layer_size kit2:zstd)

python3 - "$files" "$kit_size" "$kit2_size" "$MBIT" "$full" "$partial" "$run" "$pull" "$pull2" "$second" "$second_json" \
    "$zstd_json" "$kit2_zstd_size" "$critical" "$warm_run" "$lazy" <<'PY'
import json, sys
files, size, size2, mbit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
full, partial, run, pull, pull2, second = (json.loads(a) for a in sys.argv[5:11])
second_json, zstd_json, zstd_size = json.loads(sys.argv[11]), json.loads(sys.argv[12]), int(sys.argv[13])
critical, warm_run, lazy = json.loads(sys.argv[14]), json.loads(sys.argv[15]), json.loads(sys.argv[16])
mib = lambda n: n / 2**20
print(f"kit image: {files} files, {mib(size):.0f} MiB eStargz layer, through a {mbit} Mbit/s proxy (median of runs)")
for name, r in [("berth fetch (whole layer)", full), ("berth fetch --partial (cold)", partial),
                ("berth run (fetch, render, first exec)", run), ("podman pull", pull)]:
    print(f"  {name:40} " + (f"{r['wall_s']:7.2f} s" if r else "(podman not installed)"))
print(f"  {'berth run --lazy: first exec':40} {lazy['first_exec_s']:7.2f} s; image stored after {lazy['total_s']:.2f} s")
if pull:
    print(f"  berth run / podman pull: {run['wall_s'] / pull['wall_s']:.2f}x; "
          f"berth run --lazy's first exec / podman pull: {lazy['first_exec_s'] / pull['wall_s']:.3f}x")
fetched = second_json["partialBytesFetched"]
print(f"  lazy start's critical path: footer + TOC ({mib(critical['toc_bytes']):.2f} MiB) + the "
      f"entrypoint's {critical['chunks']} chunks = {mib(critical['bytes']):.2f} MiB in {critical['seconds']:.2f} s; "
      f"berth run of the stored image {warm_run['wall_s']:.2f} s")
print(f"second image sharing 90% of its files ({mib(size2):.0f} MiB layer), the first stored:")
print(f"  berth fetch --partial  {second['wall_s']:7.2f} s, {mib(fetched):.1f} MiB downloaded = "
      f"{100 * fetched / size2:.1f}% of the layer; {second_json['filesFetched']} files fetched, "
      f"{second_json['filesReused']} from the store")
if pull2:
    print(f"  podman pull            {pull2['wall_s']:7.2f} s (the whole layer)")
z = zstd_json["partialBytesFetched"]
print(f"  as zstd:chunked ({mib(zstd_size):.0f} MiB layer), files from the eStargz first one: "
      f"{mib(z):.1f} MiB downloaded = {100 * z / zstd_size:.1f}%; {zstd_json['filesFetched']} files fetched")
PY
