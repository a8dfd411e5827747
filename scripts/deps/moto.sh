# moto_server: a real EC2 API on loopback for the aws-ec2 tests
# (host/tests/aws.rs). Installed once into a venv from PyPI; later runs only
# check it is there. Exports AGENTKERNEL_MOTO_SERVER for the tests.
moto_venv="${AGENTKERNEL_MOTO_VENV:-$HOME/.cache/agentkernel/venv-moto}"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    echo "==> installing moto[server] into $moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi
export AGENTKERNEL_MOTO_SERVER="$moto_venv/bin/moto_server"
