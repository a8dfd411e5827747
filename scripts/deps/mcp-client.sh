# The official `mcp` Python client, for the MCP server test
# (host/tests/mcp_client.py). Installed once into a venv outside the checkout.
MCP_VENV="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-mcp"
if ! "$MCP_VENV/bin/python" -c 'import mcp' 2>/dev/null; then
    make_python_venv "$MCP_VENV" 'mcp==2.3.0'
fi
export AGENTKERNEL_MCP_PYTHON="$MCP_VENV/bin/python"
