# The official `a2a-sdk` Python client, for the A2A server test
# (host/tests/a2a_client.py). Installed once into a venv outside the checkout;
# reinstalled when the pinned version changes. Its JSON-RPC client needs
# nothing beyond the core package (httpx is a dependency of it; no extras).
A2A_VENV="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-a2a"
A2A_SDK_VERSION=1.3.0
if ! "$A2A_VENV/bin/python" -c "import httpx, importlib.metadata as m; assert m.version('a2a-sdk') == '$A2A_SDK_VERSION'" 2>/dev/null; then
    make_python_venv "$A2A_VENV" "a2a-sdk==$A2A_SDK_VERSION"
fi
export AGENTKERNEL_A2A_PYTHON="$A2A_VENV/bin/python"
