#!/usr/bin/env bash
# appc: `berth fetch` of a discovered, signed ACI (discovery, download, signature check
# against a trusted key, hashing into the store) vs what a user does without berth:
# `actool discover` + `curl` of the ACI and its signature + `gpg --verify`. Both reach the
# discovery name through the same local server (a plain-HTTP proxy, tests/e2e/appc).
# Medians of RUNS runs. Run from the repository root; BERTH overrides the binary.
set -euo pipefail
RUNS=${RUNS:-7}
berth=${BERTH:-$PWD/target/release/berth}
work=$PWD/target/bench/appc
mkdir -p "$work"
for tool in actool gpg curl python3; do
    command -v $tool >/dev/null || { echo "appc: skipped ($tool not installed; just setup installs it)"; exit 0; }
done

name=berth.invalid/files
www=$work/www/berth.invalid
export GNUPGHOME=$work/gnupg
fixture() {
    # busybox + /usr/share/doc (~9k paths) as one ACI, signed.
    [ -f "$www/aci/files.aci.asc" ] && return
    rm -rf "$work/src" "$work/www" "$GNUPGHOME"
    mkdir -p "$work/src/rootfs/bin" "$work/src/rootfs/usr/share" "$www/aci" "$www/files" "$GNUPGHOME"
    chmod 700 "$GNUPGHOME"
    cp /bin/busybox "$work/src/rootfs/bin/"
    cp -a /usr/share/doc "$work/src/rootfs/usr/share/"
    printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"%s","labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}]}' \
        "$name" >"$work/src/manifest"
    actool build --overwrite "$work/src" "$www/aci/files.aci"
    gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-gen-key 'Bench <bench@berth.invalid>' ed25519 sign never
    gpg --batch --quiet --armor --export bench@berth.invalid >"$work/key.asc"
    gpg --batch --quiet --armor --local-user bench@berth.invalid --detach-sign --output "$www/aci/files.aci.asc" "$www/aci/files.aci"
    cp "$work/key.asc" "$www/pubkeys.gpg"
    printf '<meta name="ac-discovery" content="berth.invalid https://berth.invalid/aci/files.{ext}">\n<meta name="ac-discovery-pubkeys" content="berth.invalid https://berth.invalid/pubkeys.gpg">\n' \
        >"$www/files/discovery.html"
}
fixture

python3 tests/e2e/appc/server.py "$work/www" "$work/requests.log" >"$work/port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
export HTTP_PROXY=http://127.0.0.1:$(head -1 "$work/port") HTTPS_PROXY=http://127.0.0.1:$(head -1 "$work/port")
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
timed() {
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}

store=$work/store
cold_store() {
    # Trusted key and compiled-handler cache kept: what a user has after `berth trust`.
    find "$store" -mindepth 1 -maxdepth 1 ! -name cache ! -name trust -exec rm -rf {} + 2>/dev/null || true
}
"$berth" --root "$store" trust --prefix berth.invalid --skip-fingerprint-review "$work/key.asc" >/dev/null
berth_fetch() { "$berth" --root "$store" fetch -q --insecure-options http "cimd:appc:v=0:$name?version=1.0"; }
by_hand() {
    local urls aci asc
    urls=$(actool discover --insecure "$name,version=1.0")
    aci=$(sed -n 's/.*ACI: \([^,]*\).*/\1/p' <<<"$urls" | head -1)
    asc=$(sed -n 's/.*ASC: \([^ ]*\).*/\1/p' <<<"$urls" | head -1)
    curl -fsS -o "$work/dl.aci" "${aci/https:/http:}" && curl -fsS -o "$work/dl.aci.asc" "${asc/https:/http:}"
    gpg --batch --quiet --verify "$work/dl.aci.asc" "$work/dl.aci"
}
cold_store; berth_fetch >/dev/null  # checked once: `timed` hides failures
rm -f "$work/dl.aci"; by_hand >/dev/null; [ -s "$work/dl.aci" ]
echo "appc fetch of a discovered signed ACI ($(du -h "$www/aci/files.aci" | cut -f1)), median of $RUNS runs"
b=(); p=()
for _ in $(seq "$RUNS"); do
    cold_store; b+=("$(timed berth_fetch)")
    rm -f "$work/dl.aci" "$work/dl.aci.asc"; p+=("$(timed by_hand)")
done
mb=$(median "${b[@]}"); mp=$(median "${p[@]}")
python3 -c "print(f'  berth fetch          {$mb*1000:8.1f} ms\n  actool discover+curl+gpg --verify {$mp*1000:8.1f} ms\n  ratio {$mb/$mp:.2f}x')"
cold_store
