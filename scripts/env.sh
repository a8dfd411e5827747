# Sourced by the scripts: one place for toolchain set-up and the target dir.
# A target dir outside the checkout is reused when it exists (CI on a
# machine that built before); otherwise the checkout's own `target/` is used.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d "$HOME/.cache/agentkernel/target" ]; then
    export CARGO_TARGET_DIR="$HOME/.cache/agentkernel/target"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export AGENTKERNEL_WASM_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/release"

ensure_wasm_target() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        echo "==> rustup target add wasm32-wasip2"
        rustup target add wasm32-wasip2
    fi
}

# Every wasm crate in the workspace: the bundled agents and the hostile guests.
wasm_packages() {
    for d in agents/*/ sandbox-tests/guests/*/; do
        [ -f "$d/Cargo.toml" ] && printf -- '-p %s ' "$(basename "$d")"
    done
}

build_wasm() {
    ensure_wasm_target
    echo "==> building agents and sandbox guests for wasm32-wasip2"
    # shellcheck disable=SC2046
    cargo build --release --target wasm32-wasip2 $(wasm_packages)
}

# Makes the venv `$1` afresh and pip-installs the rest of the arguments into
# it: the test-only Python tools (scripts/deps/*.sh), each in a venv of its
# own under the cache. Debian ships venv support separately (python3-venv).
make_python_venv() {
    local dir=$1
    shift
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        echo "    installing python3-venv (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    echo "    installing $* into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}
