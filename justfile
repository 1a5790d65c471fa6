# berth: every developer and CI entry point. `just` lists the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Install what builds and tests need (idempotent): Debian packages and the wasm target.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    need=()
    command -v skopeo >/dev/null || need+=(skopeo)
    command -v umoci >/dev/null || need+=(umoci)
    command -v docker-registry >/dev/null || need+=(docker-registry)
    [ -x /bin/busybox ] || need+=(busybox-static)
    command -v python3 >/dev/null || need+=(python3)
    command -v zstd >/dev/null || need+=(zstd)
    command -v crun >/dev/null || need+=(crun)
    command -v runc >/dev/null || need+=(runc)
    command -v useradd >/dev/null || need+=(passwd)
    command -v setpriv >/dev/null || need+=(util-linux)
    command -v actool >/dev/null || need+=(appc-spec)
    command -v gpg >/dev/null || need+=(gnupg)
    command -v openssl >/dev/null || need+=(openssl)
    command -v bzip2 >/dev/null || need+=(bzip2)
    command -v xz >/dev/null || need+=(xz-utils)
    command -v curl >/dev/null || need+=(curl)
    command -v tmux >/dev/null || need+=(tmux)
    command -v podman >/dev/null || need+=(podman)
    command -v containerd >/dev/null || need+=(containerd)
    command -v ctr-remote >/dev/null || need+=(stargz-snapshotter)
    command -v script >/dev/null || need+=(bsdutils)
    pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev pkg-config)
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing ${need[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    for target in wasm32-wasip2 wasm32-unknown-unknown; do
        rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    done

# Build the release binaries: target/release/berth (handler components embedded) and
# target/release/berth-runtime (the OCI runtime: runc's command line).
build: setup
    cargo build --release -p berth

# Install berth, its shell completions (bash, zsh, fish) and man pages under PREFIX.
install PREFIX="/usr/local": build
    #!/usr/bin/env bash
    set -euo pipefail
    prefix="{{PREFIX}}"
    install -Dm755 target/release/berth "$prefix/bin/berth"
    bin="$prefix/bin/berth"
    mkdir -p "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
        "$prefix/share/fish/vendor_completions.d" "$prefix/share/man/man1"
    "$bin" completion bash > "$prefix/share/bash-completion/completions/berth"
    "$bin" completion zsh > "$prefix/share/zsh/site-functions/_berth"
    "$bin" completion fish > "$prefix/share/fish/vendor_completions.d/berth.fish"
    "$bin" man "$prefix/share/man/man1"
    echo "installed $bin ($(du -h "$bin" | cut -f1)), completions and $(ls "$prefix/share/man/man1" | grep -c '^berth') man pages under $prefix"

# Check formatting and lints, for the host and for the wasm32-wasip2 handlers.
lint: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy --target wasm32-wasip2 -p berth-handler-oci-layout -p berth-handler-docker -p berth-handler-oci -p berth-registry -p berth-guest -p berth-hostile-handler -p berth-image-spec -p berth-example-http-tar -p berth-appc-spec -p berth-aci -p berth-handler-aci-archive -p berth-handler-appc -- -D warnings
    cargo clippy --target wasm32-unknown-unknown -p berth-policy-default -p berth-hostile-policy -- -D warnings

# Everything CI runs: lints, unit tests, and end-to-end tests against real tools' images.
test: setup lint
    cargo test --workspace

# Fuzz each parser of untrusted bytes for FUZZ_SECONDS (default 60), or only the targets named.
fuzz *targets: setup
    #!/usr/bin/env bash
    set -euo pipefail
    # cargo-fuzz + libFuzzer, one target at a time; FUZZ_RUNS=N also stops a target after N
    # executions. Seeds are fuzz/seeds (fuzz/make-seeds.sh), crashes land in fuzz/artifacts.
    # Not part of `test`: there the seeds and regressions are only replayed (fuzz/harness).
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    # libFuzzer's instrumentation flags are unstable; stable rustc takes them with this.
    export RUSTC_BOOTSTRAP=1
    # Safe Rust needs no sanitizer to report a panic; -a keeps overflow checks and debug asserts.
    flags=(--sanitizer none --debug-assertions)
    targets="{{targets}}"
    [ -n "$targets" ] || targets=$(cargo fuzz list)
    cargo fuzz build "${flags[@]}"
    # Layers are written into a private tmpfs (nodev, nosuid) when root, else /dev/shm.
    wrap=()
    if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
        export BERTH_FUZZ_TMP=$(mktemp -d)
        trap 'rmdir "$BERTH_FUZZ_TMP"' EXIT
        wrap=(unshare --mount --propagation private sh -c \
            'mount -t tmpfs -o nodev,nosuid,size=2g berth-fuzz "$BERTH_FUZZ_TMP" && exec "$@"' sh)
    fi
    for target in $targets; do
        case "$target" in
            tar_apply | erofs_write) options=(-dict=fuzz/dicts/tar.dict -max_len=65536) ;;
            erofs_check) options=(-max_len=65536) ;;
            registries_toml | policy_toml) options=(-dict=fuzz/dicts/toml.dict) ;;
            *) options=(-dict=fuzz/dicts/$target.dict) ;;
        esac
        [ -z "${FUZZ_RUNS:-}" ] || options+=(-runs="$FUZZ_RUNS")
        mkdir -p "fuzz/corpus/$target"
        echo "== $target"
        "${wrap[@]}" cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
            "${options[@]}" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    done

# The main job: build a busybox image with umoci, fetch it into a demo store, show it, run it.
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    demo=target/demo
    # EROFS layer mounts stay up between runs (shared by containers): detach them first.
    for m in "$demo"/store/mounts/*; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$demo"; mkdir -p "$demo"
    export BERTH_ROOT="$PWD/$demo/store"
    berth=target/release/berth
    cp /bin/busybox "$demo/busybox"
    (cd "$demo" && umoci init --layout layout >/dev/null && umoci new --image layout:busybox \
        && umoci insert --image layout:busybox busybox /bin/busybox >/dev/null \
        && umoci config --image layout:busybox --config.entrypoint /bin/busybox --config.cmd sh)
    echo "== berth fetch oci-layout:$demo/layout:busybox"
    $berth fetch "oci-layout:$demo/layout:busybox"
    echo; echo "== berth image list"
    $berth image list
    echo; echo "== berth image inspect busybox (runtime config)"
    $berth image inspect "oci-layout:$demo/layout:busybox" | python3 -c 'import json,sys; r=json.load(sys.stdin)["record"]; print(json.dumps({k: r[k] for k in ("canonical","format","platform","runtime")}, indent=2))'
    echo; echo "== berth run oci-layout:$demo/layout:busybox (overlay of its snapshots, namespaces)"
    $berth run "oci-layout:$demo/layout:busybox" -- sh -c 'echo "hello from pid $$ in $(hostname)"; busybox ls /'
    echo; echo "== berth fsck"
    $berth fsck

# Not run by CI (about 30 minutes): the crash campaign over an 8-layer image (660 SIGKILLs of
# fetch, render, run), eight processes on one store for 40 rounds, then the e2e suite twice
# under `stress-ng --cpu 2` (installed if missing) to shake out timing flakes.
soak: setup
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build -p berth
    cargo test -p berth-tests --test e2e -- --ignored --nocapture soak_
    command -v stress-ng >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; \
        $sudo apt-get install -y -qq --no-install-recommends stress-ng >/dev/null; }
    for pass in 1 2; do
        echo "== the e2e suite under stress-ng --cpu 2, pass $pass"
        stress-ng --cpu 2 --quiet & load=$!
        status=0
        cargo test -p berth-tests --test e2e || status=$?
        kill "$load"; wait "$load" || true
        [ "$status" -eq 0 ] || exit "$status"
    done

# Benchmarks: berth vs skopeo/umoci/podman on the same images, the sandbox's start-up costs,
# launch vs crun/runc, berth serve vs docker-registry (bench/serve.sh), and berth-runtime vs
# crun/runc under podman (bench/runtime.sh).
bench: build
    bench/run.sh
