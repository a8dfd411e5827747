# Agents in Python and JavaScript: the toolchains that make WebAssembly
# components of them, and `build_polyglot_agents`, which builds every one.
#
# - componentize-py (PyPI), in a venv of its own under the cache;
# - @bytecodealliance/componentize-js (the JS engine, StarlingMonkey),
#   @bytecodealliance/jco (inspects and transpiles components) and rolldown
#   (bundles an agent with the SDK into one module), npm-installed into a
#   prefix under the cache.
# Each is pinned; a changed pin reinstalls it, otherwise this only checks.
#
# A polyglot agent is a directory under agents/ or sandbox-tests/polyglot/
# holding wit/world.wit (a world named like the directory, importing only
# the capabilities it calls) and app.py (Python: `WitWorld`) or index.js
# (JavaScript: `describe`, `handle`). Its component lands beside the Rust
# agents', as $AGENTKERNEL_WASM_DIR/<name with - as _>.wasm.
#
# Functions: build_polyglot_agents (every agent not up to date; fast when
# none changed), build_polyglot_agent DIR, test_polyglot_agents (their unit
# tests), polyglot_agent_dirs, polyglot_wasm_path DIR and
# polyglot_component_imports FILE.WASM. sdk/js/run-component.mjs runs a
# built component under node with fake capabilities.
#
# Exports AGENTKERNEL_COMPONENTIZE_PY, AGENTKERNEL_POLYGLOT_PYTHON (the
# venv's python, for the Python agents' unit tests), AGENTKERNEL_COMPONENTIZE_JS,
# AGENTKERNEL_JCO, AGENTKERNEL_ROLLDOWN and AGENTKERNEL_POLYGLOT_JS_DIR.
# Sourced: no `exit`, no `set` changes.

AGENTKERNEL_COMPONENTIZE_PY_VERSION=0.25.1
AGENTKERNEL_COMPONENTIZE_JS_VERSION=0.23.0
AGENTKERNEL_JCO_VERSION=1.35.0
AGENTKERNEL_ROLLDOWN_VERSION=1.3.4

_polyglot_cache="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}"
_polyglot_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_polyglot_py_venv="$_polyglot_cache/venv-componentize-py"
_polyglot_js_dir="$_polyglot_cache/componentize-js"

if ! "$_polyglot_py_venv/bin/python" -c "import importlib.metadata as m; assert m.version('componentize-py') == '$AGENTKERNEL_COMPONENTIZE_PY_VERSION'" 2>/dev/null; then
    make_python_venv "$_polyglot_py_venv" "componentize-py==$AGENTKERNEL_COMPONENTIZE_PY_VERSION"
fi
export AGENTKERNEL_COMPONENTIZE_PY="$_polyglot_py_venv/bin/componentize-py"
export AGENTKERNEL_POLYGLOT_PYTHON="$_polyglot_py_venv/bin/python"

# The version of npm package $1 installed in the prefix, or nothing.
_polyglot_npm_version() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch { }' \
        "$_polyglot_js_dir/node_modules/$1/package.json" 2>/dev/null
}

if ! command -v npm >/dev/null 2>&1; then
    echo "    installing nodejs and npm (apt)"
    if [ "$(id -u)" = 0 ]; then _polyglot_sudo=; else _polyglot_sudo=sudo; fi
    $_polyglot_sudo apt-get update -qq
    $_polyglot_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ "$(_polyglot_npm_version @bytecodealliance/componentize-js)" != "$AGENTKERNEL_COMPONENTIZE_JS_VERSION" ] \
    || [ "$(_polyglot_npm_version @bytecodealliance/jco)" != "$AGENTKERNEL_JCO_VERSION" ] \
    || [ "$(_polyglot_npm_version rolldown)" != "$AGENTKERNEL_ROLLDOWN_VERSION" ]; then
    echo "    installing componentize-js $AGENTKERNEL_COMPONENTIZE_JS_VERSION, jco $AGENTKERNEL_JCO_VERSION, rolldown $AGENTKERNEL_ROLLDOWN_VERSION into $_polyglot_js_dir"
    mkdir -p "$_polyglot_js_dir"
    npm install --silent --no-audit --no-fund --save-exact --prefix "$_polyglot_js_dir" \
        "@bytecodealliance/componentize-js@$AGENTKERNEL_COMPONENTIZE_JS_VERSION" \
        "@bytecodealliance/jco@$AGENTKERNEL_JCO_VERSION" \
        "rolldown@$AGENTKERNEL_ROLLDOWN_VERSION" >/dev/null
fi
export AGENTKERNEL_POLYGLOT_JS_DIR="$_polyglot_js_dir"
export AGENTKERNEL_COMPONENTIZE_JS="$_polyglot_js_dir/node_modules/.bin/componentize-js"
export AGENTKERNEL_JCO="$_polyglot_js_dir/node_modules/.bin/jco"
export AGENTKERNEL_ROLLDOWN="$_polyglot_js_dir/node_modules/.bin/rolldown"

# The polyglot agents' directories, relative to the checkout.
polyglot_agent_dirs() {
    local d
    for d in "$_polyglot_root"/agents/*/ "$_polyglot_root"/sandbox-tests/polyglot/*/; do
        d=${d%/}
        if [ -f "$d/wit/world.wit" ] && { [ -f "$d/app.py" ] || [ -f "$d/index.js" ]; }; then
            echo "${d#"$_polyglot_root"/}"
        fi
    done
}

# Where the component of polyglot agent directory $1 lands.
polyglot_wasm_path() {
    local name
    name=$(basename "$1")
    echo "${AGENTKERNEL_WASM_DIR:-${CARGO_TARGET_DIR:-$_polyglot_root/target}/wasm32-wasip2/release}/${name//-/_}.wasm"
}

# The component's imports (`pkg:ns/iface@version`), one a line.
polyglot_component_imports() {
    "$AGENTKERNEL_JCO" wit "$1" | sed -n 's/^  import \([^;]*\);$/\1/p'
}

# Compiles polyglot agent directory $1 (relative to the checkout), language
# $2, into the file $3, with scratch directory $4.
_polyglot_compile() {
    local dir=$1 lang=$2 out=$3 tmp=$4 name iface
    local externals=()
    name=$(basename "$dir")
    if [ "$lang" = python ]; then
        # VIRTUAL_ENV: componentize-py adds that venv's site-packages to the
        # path (otherwise those of whichever python3 is first on PATH); this
        # one holds nothing an agent imports, so what is bundled does not
        # depend on the machine. Only modules the app imports are bundled.
        (cd "$_polyglot_root/$dir" && VIRTUAL_ENV="$_polyglot_py_venv" "$AGENTKERNEL_COMPONENTIZE_PY" -q \
            -d wit -w "$name" componentize app -p . -p "$_polyglot_root/sdk/python" -o "$out")
    else
        # One module (the agent and the SDK) with the WIT interfaces left as
        # imports; no HTTP in the engine (`fetch` would import wasi:http,
        # which the host does not give agents).
        for iface in types log memory llm agents http aws-ec2 evolution; do
            externals+=(-e "agentkernel:agent/$iface@0.1.0")
        done
        (cd "$_polyglot_root" \
            && "$AGENTKERNEL_ROLLDOWN" "$dir/index.js" -o "$tmp/$name.js" -f esm -p neutral "${externals[@]}" \
            && "$AGENTKERNEL_COMPONENTIZE_JS" "$tmp/$name.js" --wit "$dir/wit" -n "$name" -d http fetch-event -o "$out")
    fi
}

# Builds the polyglot agent in directory $1 (relative to the checkout) unless
# its component is newer than every source it is made of: the agent's files
# (tests and docs aside), its language's SDK, the WIT package and the tool.
build_polyglot_agent() {
    local dir=$1 name out lang sdk stamp newer tmp start ms
    name=$(basename "$dir")
    out=$(polyglot_wasm_path "$dir")
    if [ -f "$_polyglot_root/$dir/app.py" ]; then
        lang=python sdk=sdk/python stamp="$_polyglot_py_venv/pyvenv.cfg"
    else
        lang=js sdk=sdk/js stamp="$_polyglot_js_dir/node_modules/.package-lock.json"
    fi
    if [ -f "$out" ]; then
        newer=$(cd "$_polyglot_root" && find -L "$dir" "$sdk" wit "$stamp" -type f -newer "$out" \
            ! -path '*/__pycache__/*' ! -path '*/node_modules/*' ! -name 'test_*.py' ! -name '*.test.js' \
            ! -name '*.md' ! -name 'testing.*' ! -name 'run-component.mjs' -print -quit 2>/dev/null || true)
        if [ -z "$newer" ]; then
            echo "    $name: up to date ($out)"
            return 0
        fi
    fi
    mkdir -p "$(dirname "$out")"
    tmp=$(mktemp -d)
    start=$(date +%s%N)
    if ! _polyglot_compile "$dir" "$lang" "$tmp/out.wasm" "$tmp" >"$tmp/build.log" 2>&1 || [ ! -s "$tmp/out.wasm" ]; then
        echo "    $name: build failed ($lang):" >&2
        cat "$tmp/build.log" >&2
        rm -rf "$tmp"
        return 1
    fi
    # Whole or not at all: a half-copied component must not look up to date.
    mv "$tmp/out.wasm" "$out.part" && mv "$out.part" "$out"
    rm -rf "$tmp"
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "    $name: built $out ($lang, $(( $(stat -c %s "$out") / 1024 )) KiB, $((ms / 1000)).$((ms % 1000 / 100)) s)"
}

# Builds every polyglot agent that is not up to date.
build_polyglot_agents() {
    local dir
    echo "==> building the Python and JavaScript agents"
    for dir in $(polyglot_agent_dirs); do
        build_polyglot_agent "$dir" || return 1
    done
}

# Runs the Python SDK's tests (its WIT side, on bindings componentize-py
# generates) and the polyglot agents' own unit tests (their logic under a
# plain Python or node, with the SDKs' fake capabilities; no component, no host).
test_polyglot_agents() {
    local dir status=0
    echo "==> sdk/python: unittest"
    "$AGENTKERNEL_POLYGLOT_PYTHON" -m unittest discover -s "$_polyglot_root/sdk/python" || status=1
    for dir in $(polyglot_agent_dirs); do
        if [ -f "$_polyglot_root/$dir/app.py" ]; then
            compgen -G "$_polyglot_root/$dir/test_*.py" >/dev/null || continue
            echo "==> $dir: unittest"
            "$AGENTKERNEL_POLYGLOT_PYTHON" -m unittest discover -s "$_polyglot_root/$dir" || status=1
        else
            compgen -G "$_polyglot_root/$dir/*.test.js" >/dev/null || continue
            echo "==> $dir: node --test"
            node --test "$_polyglot_root/$dir/" || status=1
        fi
    done
    return $status
}
