#!/usr/bin/env bash
# Rebuild fuzz/seeds/: real inputs for every fuzz target, made by the tools that make
# them in the wild (umoci, skopeo, GNU tar, actool, mkfs.erofs, berth's EROFS writer) or
# copied from the specs' and berth's documented examples. Run from the repository root,
# as root (device nodes in the tar seeds); `just setup` installs the tools, plus
# erofs-utils. The seeds are committed; this script is how they were made.
set -euo pipefail
cd "$(dirname "$0")"
repo="$(cd .. && pwd)"
seeds="$PWD/seeds"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$seeds"
mkdir -p "$seeds"/{cimd_point,image_spec,appc_manifest,appc_discovery,registries_toml,auth_json,policy_toml,erofs_check,erofs_write,tar_apply,estargz_toc}

# --- distribution points: the forms README and the cimd tests document -------------
i=0
while IFS= read -r point; do
    printf '%s' "$point" > "$seeds/cimd_point/$(printf %02d $i)"; i=$((i + 1))
done <<'EOF'
cimd:docker:v=0:registry-1.docker.io/library/busybox:latest
cimd:oci:v=0:registry.lan:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
cimd:oci-layout:v=0:file%3A%2F%2F%2Fsrv%2Flayout?ref=v1
cimd:appc:v=0:coreos.com/etcd?arch=amd64&version=v3.1%2B1
cimd:aci-archive:v=0:https%3A%2F%2Fexample.com%2Fapp-1.0.aci
cimd:aci-archive:v=0:file%3A%2F%2F%2Fsrv%2Fapp.aci
cimd:http-tar:v=0:example.com/x.tar
docker://busybox
docker://127.0.0.1:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
oci://registry.lan:5000/app:v1
oci-layout:./layout:busybox
oci-archive:rel/img.tar:v2
appc:example.com/app:1.0
./x/../app.aci
https://example.com/app-1.0.aci
localhost:5000/team/app:v1
EOF

# --- OCI and Docker documents: umoci makes an image, skopeo converts it ------------
(
    cd "$work"
    mkdir rootfs-src && echo hello > rootfs-src/hello
    umoci init --layout layout >/dev/null
    umoci new --image layout:app >/dev/null
    umoci insert --image layout:app rootfs-src/hello /hello >/dev/null
    umoci config --image layout:app --config.entrypoint /bin/sh --config.cmd -c --config.cmd 'echo hi' \
        --config.env PATH=/usr/bin --config.workingdir /srv --config.user 1000:1000 \
        --config.exposedports 8080/tcp --config.label org.example=1 --os linux --architecture arm64 >/dev/null
    cp layout/index.json "$seeds/image_spec/oci-index-umoci.json"
    for blob in layout/blobs/sha256/*; do
        if head -c1 "$blob" | grep -q '{'; then
            kind=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("manifest" if "layers" in d else "config" if "rootfs" in d else "other")' "$blob")
            [ "$kind" = other ] || cp "$blob" "$seeds/image_spec/oci-$kind-umoci-$(basename "$blob" | head -c 8).json"
        fi
    done
    skopeo copy -q --format v2s2 oci:layout:app dir:docker >/dev/null
    cp docker/manifest.json "$seeds/image_spec/docker-manifest-skopeo.json"
    for blob in docker/*; do
        case "$(basename "$blob")" in manifest.json | version) continue ;; esac
        if head -c1 "$blob" | grep -q '{'; then cp "$blob" "$seeds/image_spec/docker-config-skopeo.json"; fi
    done
)
# A multi-platform index and a Docker manifest list, as the specs show them.
cat > "$seeds/image_spec/oci-index-platforms.json" <<'EOF'
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7143,"digest":"sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f","platform":{"architecture":"ppc64le","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7682,"digest":"sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270","platform":{"architecture":"arm64","os":"linux","variant":"v8"},"annotations":{"org.opencontainers.image.ref.name":"v1"}}],"annotations":{"com.example.key1":"value1"}}
EOF
cat > "$seeds/image_spec/docker-list.json" <<'EOF'
{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha512:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331fe692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f","size":7143,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}
EOF

# --- appc: the spec's example manifest, and one actool builds --------------------
cp /usr/share/doc/appc-spec/examples/image.json "$seeds/appc_manifest/spec-example.json"
(
    cd "$work"
    mkdir -p aci/rootfs/bin && echo '#!/bin/sh' > aci/rootfs/bin/app && chmod 755 aci/rootfs/bin/app
    cat > aci/manifest <<'EOF'
{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app","labels":[{"name":"version","value":"1.0.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],"app":{"exec":["/bin/app","--serve"],"user":"0","group":"0","workingDirectory":"/","environment":[{"name":"MODE","value":"prod"}],"ports":[{"name":"http","protocol":"tcp","port":8080}],"mountPoints":[{"name":"data","path":"/data","readOnly":true}]},"dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"2"}],"imageID":"sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}],"pathWhitelist":["/bin/app"],"annotations":[{"name":"authors","value":"me"}]}
EOF
    actool build --no-compression --owner-root aci app.aci
    actool cat-manifest app.aci > "$seeds/appc_manifest/actool-built.json"
    # The ACI itself is a tar in appc's dialect (flags 0x02).
    { printf '\x02'; cat app.aci; } > "$seeds/tar_apply/aci-actool"
    { printf '\x02'; cat app.aci; } > "$seeds/erofs_write/aci-actool"
)

# --- discovery documents: the reference implementation's tests -------------------
cat > "$seeds/appc_discovery/meta01.html" <<'EOF'
<!DOCTYPE html>
<html>
<head>
	<title>My app</title>
	<meta name="ac-discovery" content="example.com https://storage.example.com/{name}-{version}-{os}-{arch}.{ext}">
	<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
</head>
<body><h1>My App</h1></body>
</html>
EOF
cat > "$seeds/appc_discovery/quirks.html" <<'EOF'
<html><HEAD><!-- <meta name="ac-discovery" content="example.com https://wrong/{name}"> -->
<script>var s = '<meta name="ac-discovery" content="x y">';</script>
<META NAME=ac-discovery CONTENT='example.com/group https://example.com/{name}?v={version}&amp;os={os}&#x26;arch={arch}.{ext}' />
<meta content="example.com https://mirror.example.com/{name}-{version}.{ext}" name="AC-Discovery">
<meta name="ac-discovery-pubkeys" content="example.com/group
  https://example.com/keys.asc">
</HEAD></html>
EOF

# --- configuration files: berth's documented examples ----------------------------
cat > "$seeds/registries_toml/mirrors.toml" <<'EOF'
[[registry]]
prefix = "registry-1.docker.io"    # a registry host[:port]
insecure = false                   # allow plain HTTP and unverified TLS
blocked = false                    # refuse every fetch from it
mirror-by-digest-only = true       # mirrors serve only digest-addressed requests
[[registry.mirror]]
location = "mirror.internal:5000"
insecure = true

[[registry]]
prefix = "Registry.LAN:5000"
blocked = true
EOF
cat > "$seeds/auth_json/podman.json" <<'EOF'
{
	"auths": {
		"registry.lan:5000": {
			"auth": "bWU6czNjcmV0"
		},
		"https://index.docker.io/v1/": {
			"auth": "dTpw",
			"identitytoken": ""
		}
	}
}
EOF
cat > "$seeds/auth_json/docker-config.json" <<'EOF'
{"auths":{"quay.io":{}},"credHelpers":{"gcr.io":"gcloud"},"HttpHeaders":{"User-Agent":"Docker-Client"}}
EOF
printf '%s' 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"' \
    > "$seeds/auth_json/challenge-bearer"
printf '%s' 'Basic realm="Registry Realm", charset=UTF-8' > "$seeds/auth_json/challenge-basic"
cat > "$seeds/policy_toml/documented.toml" <<'EOF'
default = "accept"                  # what applies when no rule matches: accept | reject

[[rule]]                            # the most specific matching rule decides
kind = "docker"                     # point type, or "*" (the default)
scope = "registry.lan:5000/team"    # host[/name prefix], "" for every point of the kind
action = "signed-by"                # accept | reject | signed-by
keys = ["0123ABCD"]                 # signed-by: a fingerprint one signature must match

[[rule]]
scope = "registry-1.docker.io"
action = "reject"

[limits]
allowed-registries = ["registry.lan:5000", "registry-1.docker.io"]
max-image-size = "2GiB"             # bytes, or a number with KiB/MiB/GiB
forbid-root = true                  # no process may run as uid 0
forbidden-volume-sources = ["/", "/etc", "/var/run"]
EOF

# --- layer tars: GNU tar (gnu and pax formats), python's tarfile for hostile ones ---
(
    cd "$work"
    mkdir -p t/etc t/usr/bin t/opaque t/dev
    echo root:x:0:0::/root:/bin/sh > t/etc/passwd
    printf '#!/bin/sh\n' > t/usr/bin/tool && chmod 4755 t/usr/bin/tool
    ln -s usr/bin t/bin
    ln t/etc/passwd t/etc/passwd-
    touch t/.wh.gone t/opaque/.wh..wh..opq t/opaque/kept
    mkfifo t/dev/fifo
    mknod t/dev/null c 1 3
    setfattr -n user.comment -v berth t/etc/passwd 2>/dev/null || true
    long=t/$(printf 'd%.0s' $(seq 1 60))/$(printf 'f%.0s' $(seq 1 80))
    mkdir -p "$(dirname "$long")" && echo long > "$long"
    tar -C t -b 1 --format=gnu --numeric-owner -cf gnu.tar .
    tar -C t -b 1 --format=pax --pax-option=delete=atime,delete=ctime --xattrs --numeric-owner -cf pax.tar .
    python3 - <<'EOF'
import io, tarfile
tarfile.RECORDSIZE = 1024  # no padding to 10 KiB records: smaller seeds
def add(tf, name, kind=tarfile.REGTYPE, data=b"", link=""):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.linkname = link; ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644; ti.mtime = 1700000000
    tf.addfile(ti, io.BytesIO(data) if data else None)
with tarfile.open("hostile.tar", "w", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "up", tarfile.SYMTYPE, link="..")
    add(tf, "up/escaped", data=b"x")
    add(tf, "abs", tarfile.SYMTYPE, link="/etc")
    add(tf, "abs/passwd", data=b"x")
    add(tf, "../outside", data=b"x")
    add(tf, "link", tarfile.LNKTYPE, link="../../etc/passwd")
with tarfile.open("replace.tar", "w", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "./", tarfile.DIRTYPE)
    add(tf, "d", tarfile.DIRTYPE)
    add(tf, "d/f", data=b"one")
    add(tf, "d", data=b"now a file")
    add(tf, ".wh.d")
    add(tf, "s", tarfile.SYMTYPE, link="d")
    add(tf, "s/.wh..wh..opq")
    add(tf, "h", tarfile.LNKTYPE, link="s")
EOF
    # Each tar in two of the four forms (flags: whiteouts deleted or kept for overlayfs,
    # applied once or twice).
    for t in gnu pax hostile replace; do
        case $t in gnu | hostile) forms="00 05" ;; *) forms="01 04" ;; esac
        for flags in $forms; do
            { printf "\\x$flags"; cat "$t.tar"; } > "$seeds/tar_apply/$t-$flags"
        done
        { printf '\x00'; cat "$t.tar"; } > "$seeds/erofs_write/$t-00"
    done
    # EROFS images: berth's writer (the images fsck checks) and mkfs.erofs.
    for t in gnu pax; do
        cargo run -q --manifest-path "$repo/Cargo.toml" -p berth-fuzz --example erofs_image -- "$t.tar" \
            "$seeds/erofs_check/berth-$t.erofs"
    done
    if command -v mkfs.erofs >/dev/null; then
        rm -rf t/dev # mkfs.erofs 1.5 stores what berth's writer would too; keep it small
        mkfs.erofs "$seeds/erofs_check/mkfs-erofs.img" t >/dev/null
    fi
)
# --- eStargz: a layer converted by stargz-snapshotter's ctr-remote (through a containerd
# and a docker-registry of this script's own), cut into the three inputs of the target:
# its footer, the gzip member holding the TOC, and the TOC's JSON, each after the TOC
# offset as 8 little-endian bytes.
(
    cd "$work"
    mkdir -p esgz/rootfs/data
    for i in $(seq 1 12); do head -c $((i * 20000)) /dev/urandom > "esgz/rootfs/data/f$i"; done
    ln -s f1 esgz/rootfs/data/link
    umoci init --layout esgz/layout
    umoci new --image esgz/layout:v1
    umoci insert --image esgz/layout:v1 esgz/rootfs / >/dev/null
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$work/esgz/registry" "$port" > esgz/registry.yml
    printf 'version = 2\nroot = "%s"\nstate = "%s"\n[grpc]\n  address = "%s"\n' \
        "$work/esgz/c-root" "$work/esgz/c-state" "$work/esgz/c.sock" > esgz/containerd.toml
    docker-registry serve esgz/registry.yml >/dev/null 2>&1 & registry=$!
    containerd --config esgz/containerd.toml >/dev/null 2>&1 & daemon=$!
    trap 'kill $registry $daemon' EXIT
    until ctr -a esgz/c.sock version >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do
        sleep 0.1
    done
    skopeo copy -q --dest-tls-verify=false oci:esgz/layout:v1 "docker://127.0.0.1:$port/s:plain"
    ctr_remote() { ctr-remote -a esgz/c.sock -n seeds "$@" >/dev/null; }
    ctr_remote images pull --plain-http "127.0.0.1:$port/s:plain"
    ctr_remote images convert --estargz --oci --estargz-chunk-size 65536 \
        "127.0.0.1:$port/s:plain" "127.0.0.1:$port/s:esgz"
    ctr_remote images push --plain-http "127.0.0.1:$port/s:esgz"
    layer=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/s:esgz" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
    curl -sf "http://127.0.0.1:$port/v2/s/blobs/$layer" -o esgz/layer.gz
    python3 - esgz/layer.gz "$seeds/estargz_toc" <<'EOF'
import gzip, io, struct, sys, tarfile
blob = open(sys.argv[1], "rb").read()
footer = blob[-51:]
offset = int(footer[16:32], 16)
member = blob[offset:-51]
toc = tarfile.open(fileobj=io.BytesIO(gzip.decompress(member))).extractfile("stargz.index.json").read()
prefix = struct.pack("<Q", offset)
for name, data in [("footer", footer), ("toc-member", member), ("toc", toc)]:
    open(f"{sys.argv[2]}/{name}-ctr-remote.bin", "wb").write(prefix + data)
EOF
    # zstd:chunked: the layer's annotations as `key=value` lines, and its compressed TOC.
    ctr_remote images convert --zstdchunked --oci --estargz-chunk-size 65536 \
        "127.0.0.1:$port/s:plain" "127.0.0.1:$port/s:zstd"
    ctr_remote images push --plain-http "127.0.0.1:$port/s:zstd"
    skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/s:zstd" > esgz/zstd-manifest.json
    layer=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' esgz/zstd-manifest.json)
    curl -sf "http://127.0.0.1:$port/v2/s/blobs/$layer" -o esgz/layer.zst
    python3 - esgz/zstd-manifest.json esgz/layer.zst "$seeds/estargz_toc" <<'EOF'
import json, struct, sys
annotations = json.load(open(sys.argv[1]))["layers"][0]["annotations"]
blob = open(sys.argv[2], "rb").read()
offset, length, _, _ = (int(f) for f in annotations["io.containers.zstd-chunked.manifest-position"].split(":"))
lines = "".join(f"{k}={v}\n" for k, v in sorted(annotations.items())).encode()
open(f"{sys.argv[3]}/annotations-ctr-remote-zstdchunked.bin", "wb").write(bytes(8) + lines)
open(f"{sys.argv[3]}/toc-zstd-ctr-remote.bin", "wb").write(struct.pack("<Q", offset - 8) + blob[offset:offset + length])
EOF
)
du -sh "$seeds"
