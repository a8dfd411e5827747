# The wasmtime CLI of the same version as the host's wasmtime, for the
# `wasmtime serve` peer in benches/chat_load.rs (an equivalent wasi:http echo
# component under the same load generator). Built once into the cache with
# only the features `serve` needs (a few minutes on two cores).
# The version is read from Cargo.lock, so it follows the host's wasmtime.
WASMTIME_CLI_VERSION=$(awk '/^name = "wasmtime"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
WASMTIME_CLI_ROOT="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/wasmtime-cli-$WASMTIME_CLI_VERSION"
if ! "$WASMTIME_CLI_ROOT/bin/wasmtime" --version 2>/dev/null | grep -q " $WASMTIME_CLI_VERSION"; then
    echo "    installing wasmtime-cli $WASMTIME_CLI_VERSION into $WASMTIME_CLI_ROOT"
    # Its own target dir: not the workspace's, which it would otherwise share.
    _wt_build=$(mktemp -d)
    cargo install --quiet --locked "wasmtime-cli@$WASMTIME_CLI_VERSION" \
        --no-default-features \
        --features serve,run,component-model-async,cranelift,pooling-allocator,parallel-compilation,cache \
        --root "$WASMTIME_CLI_ROOT" --target-dir "$_wt_build"
    rm -rf "$_wt_build"
fi
export AGENTKERNEL_WASMTIME_CLI="$WASMTIME_CLI_ROOT/bin/wasmtime"
