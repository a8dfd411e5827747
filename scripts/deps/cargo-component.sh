# cargo-component, the Bytecode Alliance's cargo subcommand for components:
# an agent built with it must load and run like one built with plain cargo
# (host/tests/cargo_component.rs builds sandbox-tests/cargo-component/).
# It compiles core modules for wasm32-wasip1 and adapts them to WASI 0.2, so
# it needs that target too. Built once into the cache (a few minutes).
CARGO_COMPONENT_VERSION=0.21.1
CARGO_COMPONENT_ROOT="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/cargo-component-$CARGO_COMPONENT_VERSION"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    echo "    rustup target add wasm32-wasip1"
    rustup target add wasm32-wasip1
fi
if ! "$CARGO_COMPONENT_ROOT/bin/cargo-component" --version 2>/dev/null | grep -q " $CARGO_COMPONENT_VERSION"; then
    echo "    installing cargo-component $CARGO_COMPONENT_VERSION into $CARGO_COMPONENT_ROOT"
    # Its own target dir: not the workspace's, which it would otherwise share.
    _cc_build=$(mktemp -d)
    cargo install --quiet --locked "cargo-component@$CARGO_COMPONENT_VERSION" \
        --root "$CARGO_COMPONENT_ROOT" --target-dir "$_cc_build"
    rm -rf "$_cc_build"
fi
export AGENTKERNEL_CARGO_COMPONENT="$CARGO_COMPONENT_ROOT/bin/cargo-component"
