# moto_server: a real EC2 API on loopback for the aws-ec2 tests
# (host/tests/aws.rs start one per test). Installed once from PyPI into a
# venv; later runs only check it is there. Exports AGENTKERNEL_MOTO_SERVER.
moto_venv="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/venv-moto"
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    # Debian ships venv support separately (python3-venv).
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        echo "    installing python3-venv (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    echo "    installing moto[server] into $moto_venv"
    rm -rf "$moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
export AGENTKERNEL_MOTO_SERVER="$moto_venv/bin/moto_server"
