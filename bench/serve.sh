#!/usr/bin/env bash
# berth serve vs the CNCF distribution registry (Debian's docker-registry), the same
# images served on loopback in the same run:
#   - one large blob (1 GiB, an uncompressed layer): MB/s of one GET, median of RUNS,
#     both servers warm (page cache; berth has verified the blob once), and the aggregate
#     of STREAMS connections GETting it at once (the client splices bodies to /dev/null,
#     so it costs next to nothing);
#   - CLIENTS concurrent pulls (manifest, config, layers) of a multi-layer image, ROUNDS
#     each: latency p50/p99/max and errors;
#   - each server's peak RSS over the whole run.
# The client is bench/serve_load.rs (plain HTTP/1.1, 1 MiB reads). Run from the
# repository root (`just bench` runs it).
set -euo pipefail
RUNS=${RUNS:-7}
CLIENTS=${CLIENTS:-64}
ROUNDS=${ROUNDS:-3}
STREAMS=${STREAMS:-8}
BIG_MIB=${BIG_MIB:-1024}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/serve
mkdir -p "$work"
cargo bench -q -p berth --bench serve_load --no-run 2>/dev/null
load() { cargo bench -q -p berth --bench serve_load -- "$@" 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done
    echo "nothing listens on port $1" >&2; exit 1
}

big_layout() {
    # One uncompressed tar layer holding BIG_MIB of random bytes, written by hand (no
    # compression to wait for). The config's diff ID is the layer's digest.
    [ -f "$work/big/index.json" ] && return
    rm -rf "$work/big" "$work/big-src"; mkdir -p "$work/big/blobs/sha256" "$work/big-src"
    head -c $((BIG_MIB << 20)) /dev/urandom >"$work/big-src/random.bin"
    tar -C "$work/big-src" -cf "$work/big-layer.tar" random.bin
    python3 - "$work" <<'EOF'
import hashlib, json, os, shutil, sys
work = sys.argv[1]
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{work}/big/blobs/sha256/{d}", "wb").write(data)
    return d, len(data)
h = hashlib.sha256()
with open(f"{work}/big-layer.tar", "rb") as f:
    while chunk := f.read(1 << 20):
        h.update(chunk)
layer = h.hexdigest()
size = os.path.getsize(f"{work}/big-layer.tar")
shutil.move(f"{work}/big-layer.tar", f"{work}/big/blobs/sha256/{layer}")
config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]}}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config[0]}", "size": config[1]},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{layer}", "size": size}]}).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": f"sha256:{manifest[0]}", "size": manifest[1], "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
    open(f"{work}/big/index.json", "w"))
open(f"{work}/big/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(f"{work}/big/layer", "w").write(f"sha256:{layer}")
EOF
    rm -rf "$work/big-src"
}

multi_layout() {
    # busybox and four layers of the host's files, about 15 MB compressed, as images are.
    [ -f "$work/multi/index.json" ] && return
    rm -rf "$work/multi"
    (cd "$work" && umoci init --layout multi && umoci new --image multi:v1 \
        && umoci insert --image multi:v1 /bin/busybox /bin/busybox \
        && for d in /usr/share/zoneinfo /usr/include/linux /usr/share/i18n /usr/share/perl; do
            [ -d "$d" ] && umoci insert --image multi:v1 "$d" "$d"; done) >/dev/null
}

# push_big ADDR: the big layout into a registry, blob by blob (skopeo would compress it).
push_big() {
    local addr=$1 d loc
    for d in $(ls "$work/big/blobs/sha256"); do
        loc=$(curl -sfi -X POST "http://$addr/v2/big/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
        case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
        case $loc in *\?*) loc="$loc&digest=sha256:$d" ;; *) loc="$loc?digest=sha256:$d" ;; esac
        curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$work/big/blobs/sha256/$d" "$loc" >/dev/null
    done
    local m
    m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$work/big/index.json")
    curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$work/big/blobs/sha256/${m#sha256:}" "http://$addr/v2/big/manifests/v1" >/dev/null
}

big_layout
multi_layout

# The CNCF registry, with the two images.
rport=$(free_port); raddr=127.0.0.1:$rport
rm -rf "$work/registry"; mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$work/registry/data" "$raddr" >"$work/registry/config.yml"
docker-registry serve "$work/registry/config.yml" >/dev/null 2>&1 &
registry_pid=$!
trap 'kill $registry_pid ${serve_pid:-} 2>/dev/null || true' EXIT
wait_port "$rport"
push_big "$raddr"
skopeo copy -q --dest-tls-verify=false "oci:$work/multi:v1" "docker://$raddr/multi:v1"

# berth: the same images fetched from that registry into a store, then served.
rm -rf "$work/store"
"$berth" --root "$work/store" fetch -q "oci://$raddr/big:v1" >/dev/null
"$berth" --root "$work/store" fetch -q "oci://$raddr/multi:v1" >/dev/null
bport=$(free_port); baddr=127.0.0.1:$bport
"$berth" --root "$work/store" -q serve --read-only --listen "$baddr" >/dev/null 2>&1 &
serve_pid=$!
wait_port "$bport"
# In berth's store the images are named after the registry they came from.
bname=${raddr/:/_}

layer=$(cat "$work/big/layer")
echo "berth serve vs docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}'), loopback, same images, same run"
first=$(load blob "$baddr" "$bname/big" "$layer" 1)
load blob "$raddr" big "$layer" 1 >/dev/null   # the registry's page cache warm too
# CPU time (user + system, clock ticks) a server spends while it serves.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
b=(); r=(); bticks=0; rticks=0
for _ in $(seq "$RUNS"); do
    t=$(cpu "$serve_pid"); b+=("$(load blob "$baddr" "$bname/big" "$layer" 1)"); bticks=$((bticks + $(cpu "$serve_pid") - t))
    t=$(cpu "$registry_pid"); r+=("$(load blob "$raddr" big "$layer" 1)"); rticks=$((rticks + $(cpu "$registry_pid") - t))
done
bs=(); rs=()
for _ in $(seq 3); do
    bs+=("$(load streams "$baddr" "$bname/big" "$layer" "$STREAMS")")
    rs+=("$(load streams "$raddr" big "$layer" "$STREAMS")")
done
bp=$(load pulls "$baddr" "$bname/multi" v1 "$CLIENTS" "$ROUNDS")
rp=$(load pulls "$raddr" multi v1 "$CLIENTS" "$ROUNDS")
rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
python3 - "$first" "$(printf '%s\n' "${b[@]}")" "$(printf '%s\n' "${r[@]}")" "$bp" "$rp" \
    "$(rss "$serve_pid")" "$(rss "$registry_pid")" "$CLIENTS" "$ROUNDS" \
    "$(printf '%s\n' "${bs[@]}")" "$(printf '%s\n' "${rs[@]}")" "$STREAMS" \
    "$bticks" "$rticks" "$(getconf CLK_TCK)" <<'EOF'
import json, statistics, sys
first, b, r, bp, rp = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
rate = lambda runs: statistics.median(json.loads(l)["mb_s"][0] for l in runs.splitlines())
mb, mr = rate(b), rate(r)
size = first["bytes"] / 2**20
print(f"  one {size:.0f} MiB blob, one connection, median of {len(b.splitlines())} GETs:")
print(f"    berth serve      {mb:8.0f} MB/s   (first GET, hashed while served: {first['mb_s'][0]:.0f} MB/s)")
print(f"    docker-registry  {mr:8.0f} MB/s   berth/registry {mb / mr:.2f}x")
gib = len(b.splitlines()) * first["bytes"] / 2**30
tick = int(sys.argv[15])
cb, cr = int(sys.argv[13]) / tick / gib, int(sys.argv[14]) / tick / gib
print(f"    server CPU per GiB sent: berth {cb * 1000:.0f} ms, docker-registry {cr * 1000:.0f} ms ({cr / cb:.2f}x)")
agg = lambda runs: statistics.median(json.loads(l)["mb_s"] for l in runs.splitlines())
sb, sr = agg(sys.argv[10]), agg(sys.argv[11])
print(f"  the same blob on {sys.argv[12]} connections at once, aggregate, median of 3:")
print(f"    berth serve      {sb:8.0f} MB/s")
print(f"    docker-registry  {sr:8.0f} MB/s   berth/registry {sb / sr:.2f}x")
clients, rounds = sys.argv[8], sys.argv[9]
print(f"  {clients} concurrent pulls x {rounds} of a multi-layer image:")
for name, p in (("berth serve", bp), ("docker-registry", rp)):
    print(f"    {name:16} p50 {p['p50_ms']:7.1f} ms  p99 {p['p99_ms']:7.1f} ms  max {p['max_ms']:7.1f} ms  "
          f"{p['mb_s']:6.0f} MB/s  errors {p['errors']}" + (f" ({p['first_error']})" if p['errors'] else ""))
print(f"  peak RSS: berth serve {sys.argv[6]} MiB, docker-registry {sys.argv[7]} MiB")
EOF
