# Headless Chromium (Debian package) and playwright-core, for the chat page
# test (host/tests/web_page.rs). Playwright drives the system Chromium; it
# never downloads a browser of its own.
if [ ! -x /usr/bin/chromium ]; then
    echo "    installing chromium (apt)"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
PLAYWRIGHT_DIR="${AGENTKERNEL_CACHE:-$HOME/.cache/agentkernel}/playwright"
if [ ! -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ]; then
    echo "    installing playwright-core into $PLAYWRIGHT_DIR"
    mkdir -p "$PLAYWRIGHT_DIR"
    npm install --silent --no-audit --no-fund --prefix "$PLAYWRIGHT_DIR" playwright-core@1.64.1 >/dev/null
fi
export AGENTKERNEL_NODE_PATH="$PLAYWRIGHT_DIR/node_modules"
export AGENTKERNEL_CHROMIUM=/usr/bin/chromium
