# bubblewrap: the sandbox evolution candidates are built in (tests in
# host/tests/evolution.rs build real candidates). Debian package `bubblewrap`.
if ! command -v bwrap >/dev/null 2>&1; then
    echo "==> apt-get install bubblewrap"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y --no-install-recommends bubblewrap >/dev/null 2>&1 \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends bubblewrap >/dev/null; }
    else
        sudo apt-get install -y --no-install-recommends bubblewrap >/dev/null 2>&1 \
            || { sudo apt-get update >/dev/null && sudo apt-get install -y --no-install-recommends bubblewrap >/dev/null; }
    fi
fi
