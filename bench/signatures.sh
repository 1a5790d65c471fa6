#!/usr/bin/env bash
# Signature checks on fetch: berth fetch of a small image with no policy, with a
# `signed-by` rule satisfied by containers' simple signing (skopeo --sign-by, GnuPG, a
# lookaside directory) and by a cosign signature (a .sig tag, P-256 key from openssl), vs
# `skopeo copy` without and with a policy.json `signedBy` rule over the same simple
# signature. Same local CNCF registry, cold store each run (berth keeps its trust keys
# and compile cache), medians of RUNS runs. Run from the repository root.
set -euo pipefail
RUNS=${RUNS:-7}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/signatures
measure="python3 $PWD/bench/measure.py $RUNS"
rm -rf "$work"; mkdir -p "$work"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
    "$work/registry" "$addr" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
export GNUPGHOME
GNUPGHOME=$(mktemp -d /tmp/gpg-bench.XXXXXX)
trap 'kill $registry_pid 2>/dev/null || true; gpgconf --kill gpg-agent 2>/dev/null || true; rm -rf "$GNUPGHOME"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done

# A small image (busybox), so the check's own cost shows.
cp /bin/busybox "$work/busybox"
(cd "$work" && umoci init --layout layout && umoci new --image layout:app \
    && umoci insert --image layout:app busybox /bin/busybox) >/dev/null

gpg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key "Bench <bench@example.com>" ed25519 sign never 2>/dev/null
fpr=$(gpg --with-colons --fingerprint bench@example.com | awk -F: '/^fpr/{print $10; exit}')
gpg --armor --export "$fpr" >"$work/key.asc"
gpg --export "$fpr" >"$work/key.gpg"
mkdir -p "$work/registries.d"
printf 'docker:\n  %s:\n    lookaside: file://%s/lookaside\n    sigstore-staging: file://%s/lookaside\n' \
    "$addr" "$work" "$work" >"$work/registries.d/bench.yaml"
skopeo --registries.d "$work/registries.d" copy -q --dest-tls-verify=false --format oci --sign-by "$fpr" \
    "oci:$work/layout:app" "docker://$addr/signed/app:v1"
skopeo copy -q --dest-tls-verify=false --format oci "oci:$work/layout:app" "docker://$addr/cosigned/app:v1"

# A cosign signature, pushed as cosign pushes it: the payload layer and its signature
# annotation under the sha256-<hex>.sig tag.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/cosign.key"
openssl ec -in "$work/cosign.key" -pubout -out "$work/cosign.pub" 2>/dev/null
python3 - "$addr" "$work/cosign.key" <<'EOF'
import base64, hashlib, json, subprocess, sys, urllib.request
addr, key = sys.argv[1], sys.argv[2]
def req(method, path, body=b"", headers=None):
    r = urllib.request.Request(f"http://{addr}{path}" if path.startswith("/") else path, data=body or None,
                               method=method, headers=headers or {})
    return urllib.request.urlopen(r)
raw = req("GET", "/v2/cosigned/app/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).read()
digest = "sha256:" + hashlib.sha256(raw).hexdigest()
payload = json.dumps({"critical": {"identity": {"docker-reference": f"{addr}/cosigned/app:v1"},
    "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"}, "optional": None}).encode()
sig = base64.b64encode(subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=payload,
                                      capture_output=True, check=True).stdout).decode()
def upload(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req("POST", "/v2/cosigned/app/blobs/uploads/").headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{addr}{loc}"
    req("PUT", loc + ("&" if "?" in loc else "?") + f"digest={d}", data, {"Content-Type": "application/octet-stream"})
    return d
config = b"{}"
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": upload(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": upload(payload),
                "size": len(payload), "annotations": {"dev.cosignproject.cosign/signature": sig}}]}).encode()
req("PUT", f"/v2/cosigned/app/manifests/{digest.replace(':', '-')}.sig", manifest,
    {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
EOF

store=$work/store
"$berth" --root "$store" trust --prefix "$addr/signed" --skip-fingerprint-review "$work/key.asc" >/dev/null
"$berth" --root "$store" trust --prefix "$addr/cosigned" --skip-fingerprint-review "$work/cosign.pub" >/dev/null
cosign_fpr=$("$berth" --root "$store" --json trust list | python3 -c \
    'import json,sys; print([k["fingerprint"] for k in json.load(sys.stdin) if k["kind"] == "sigstore"][0])')
printf '[[registry]]\nprefix = "%s"\nlookaside = "file://%s/lookaside"\n' "$addr" "$work" >"$work/registries.toml"
printf '[[rule]]\nkind = "*"\nscope = "%s/signed"\naction = "signed-by"\nkeys = ["%s"]\n[[rule]]\nkind = "*"\nscope = "%s/cosigned"\naction = "signed-by"\nkeys = ["%s"]\n' \
    "$addr" "$fpr" "$addr" "$cosign_fpr" >"$work/policy.toml"
printf '{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"%s/signed": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "%s"}]}}}\n' \
    "$addr" "$work/key.gpg" >"$work/policy.json"
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$work/accept.json"
printf 'default = "accept"\n' >"$work/accept.toml"
# skopeo's signedBy does check (its row measures a verification): the signed image
# passes, and the same rule over the repository without a GnuPG signature refuses.
printf '{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"%s/cosigned": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "%s"}]}}}\n' \
    "$addr" "$work/key.gpg" >"$work/check.json"
skopeo_copy() { skopeo --registries.d "$work/registries.d" --policy "$1" copy -q --remove-signatures \
    --src-tls-verify=false "docker://$addr/$2" "oci:$work/check:app" 2>/dev/null; }
skopeo_copy "$work/policy.json" signed/app:v1 || { echo "skopeo refused the signed image" >&2; exit 1; }
if skopeo_copy "$work/check.json" cosigned/app:v1; then echo "skopeo's signedBy accepted an unsigned image" >&2; exit 1; fi
rm -rf "$work/check"

reset="rm -rf '$store/blobs' '$store/tmp' '$store'/berth.db*"
fetch=("$berth" --root "$store" fetch -q --registries-conf "$work/registries.toml")
"${fetch[@]}" "oci://$addr/signed/app:v1" >/dev/null   # warm the compile cache
plain=$($measure "$reset" "${fetch[@]}" "oci://$addr/signed/app:v1")
accepting=$($measure "$reset" "$berth" --root "$store" --policy "$work/accept.toml" fetch -q \
    --registries-conf "$work/registries.toml" "oci://$addr/signed/app:v1")
simple=$($measure "$reset" "$berth" --root "$store" --policy "$work/policy.toml" fetch -q \
    --registries-conf "$work/registries.toml" "oci://$addr/signed/app:v1")
cosign=$($measure "$reset" "$berth" --root "$store" --policy "$work/policy.toml" fetch -q \
    --registries-conf "$work/registries.toml" "oci://$addr/cosigned/app:v1")
skopeo=(skopeo --registries.d "$work/registries.d")
s_plain=$($measure "rm -rf '$work/dst'" "${skopeo[@]}" --policy "$work/accept.json" copy -q --remove-signatures --src-tls-verify=false \
    "docker://$addr/signed/app:v1" "oci:$work/dst:app")
s_signed=$($measure "rm -rf '$work/dst'" "${skopeo[@]}" --policy "$work/policy.json" copy -q --remove-signatures --src-tls-verify=false \
    "docker://$addr/signed/app:v1" "oci:$work/dst:app")
python3 - "$plain" "$accepting" "$simple" "$cosign" "$s_plain" "$s_signed" <<'EOF'
import json, sys
b, ba, bs, bc, s, ss = (json.loads(a) for a in sys.argv[1:])
print(f"fetch of a small image (busybox, 1 layer), median of {b['runs']} runs, cold store each time")
for name, r in [("berth fetch, no policy", b), ("berth, a policy that accepts", ba),
                ("berth, signed-by (simple signing)", bs), ("berth, signed-by (cosign)", bc),
                ("skopeo copy, accept anything", s), ("skopeo copy, signedBy (simple signing)", ss)]:
    print(f"  {name:40} {r['wall_s'] * 1000:7.1f} ms  ratio to skopeo signedBy {r['wall_s'] / ss['wall_s']:.2f}")
print(f"  the signature check's own cost: berth +{(bs['wall_s'] - ba['wall_s']) * 1000:.1f} ms (simple), "
      f"+{(bc['wall_s'] - ba['wall_s']) * 1000:.1f} ms (cosign); skopeo +{(ss['wall_s'] - s['wall_s']) * 1000:.1f} ms")
EOF
