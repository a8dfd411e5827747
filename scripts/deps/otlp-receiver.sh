# The OpenTelemetry protocol's own Python messages (opentelemetry-proto),
# for the OTLP export test's receiver (host/tests/otlp_receiver.py).
OTLP_VENV="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-otlp"
if ! "$OTLP_VENV/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
    make_python_venv "$OTLP_VENV" 'opentelemetry-proto==1.45.2'
fi
export AGENTKERNEL_OTLP_PYTHON="$OTLP_VENV/bin/python"
