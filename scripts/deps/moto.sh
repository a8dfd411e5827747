# moto_server: a real EC2 API on loopback for the aws-ec2 tests
# (host/tests/aws.rs start one per test). Installed once from PyPI into a
# venv; later runs only check it is there. Exports AGENTKERNEL_MOTO_SERVER.
moto_venv="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-moto"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    make_python_venv "$moto_venv" 'moto[server]>=5.1,<6'
fi
export AGENTKERNEL_MOTO_SERVER="$moto_venv/bin/moto_server"
