# The Python agent stack a user would otherwise pick, for the peer phases of
# benches/chat_load.rs: FastAPI on uvicorn (with its standard extras: uvloop,
# httptools) and the official `openai` client, running benches/peers/python_stack.py.
# Installed once into a venv outside the checkout.
PYSTACK_VENV="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-python-stack"
if ! "$PYSTACK_VENV/bin/python" -c 'import fastapi, uvicorn, uvloop, openai' 2>/dev/null; then
    make_python_venv "$PYSTACK_VENV" 'fastapi==0.165.0' 'uvicorn[standard]==0.55.0' 'openai==2.54.0'
fi
export AGENTKERNEL_PYSTACK_PYTHON="$PYSTACK_VENV/bin/python"
