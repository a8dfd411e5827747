# The official `openai` Python client, for the OpenAI-facade test
# (host/tests/openai_client.rs). Installed once into a venv outside the checkout.
OPENAI_VENV="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-openai"
if ! "$OPENAI_VENV/bin/python" -c 'import openai' 2>/dev/null; then
    make_python_venv "$OPENAI_VENV" 'openai>=1.40,<3'
fi
export AGENTKERNEL_OPENAI_PYTHON="$OPENAI_VENV/bin/python"
