# PostgreSQL: a throwaway cluster on loopback for the tests that need a real
# server. Debian package `postgresql` (installed if missing). The cluster lives
# in a temp dir owned by the `postgres` user (or by you when not root), trusts
# every loopback connection, and is stopped and removed when the sourcing shell
# exits. Exports AGENTKERNEL_TEST_POSTGRES_URL and AGENTKERNEL_REQUIRE_POSTGRES=1
# (tests fail rather than skip). A URL already in the environment (your own
# server) is used as is. If no server can be started, nothing is exported and
# the PostgreSQL tests skip. Sourced: no `exit`, no `set` changes.

_agentkernel_pg_skip() {
    echo "    postgres: cannot start ($1); PostgreSQL tests will skip"
}

# The bin directory of the newest PostgreSQL server on this machine, if any.
_agentkernel_pg_bindir() {
    local d found="" best
    if d=$(command -v initdb 2>/dev/null) && d=$(readlink -f "$d") \
        && [ -x "$(dirname "$d")/pg_ctl" ]; then
        dirname "$d"
        return 0
    fi
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then found+="$d"$'\n'; fi
    done
    [ -n "$found" ] || return 1
    best=$(printf '%s' "$found" | sort -V | tail -n 1)
    echo "$best"
}

# A loopback TCP port nobody listens on.
_agentkernel_pg_port() {
    local p
    if p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) \
        && [ -n "$p" ]; then
        echo "$p"
        return 0
    fi
    for ((p = 55432 + RANDOM % 500; p < 56432; p++)); do
        if ! (: <>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

_agentkernel_pg_start() {
    local bindir psql dir port url cleanup attempt started="" sudo=""
    local -a as=()
    if ! bindir=$(_agentkernel_pg_bindir); then
        if ! command -v apt-get >/dev/null 2>&1; then
            _agentkernel_pg_skip "no PostgreSQL server binaries and no apt-get"
            return 1
        fi
        echo "    installing postgresql (apt)"
        [ "$(id -u)" = 0 ] || sudo=sudo
        if ! { $sudo apt-get update -qq \
            && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; then
            _agentkernel_pg_skip "apt-get install postgresql failed"
            return 1
        fi
        if ! bindir=$(_agentkernel_pg_bindir); then
            _agentkernel_pg_skip "no initdb after installing postgresql"
            return 1
        fi
    fi
    psql="$bindir/psql"
    [ -x "$psql" ] || psql=$(command -v psql 2>/dev/null) || {
        _agentkernel_pg_skip "no psql"
        return 1
    }
    # The server refuses to run as root: as root, run it as `postgres`.
    if [ "$(id -u)" = 0 ]; then
        if ! id -u postgres >/dev/null 2>&1; then
            _agentkernel_pg_skip "running as root and there is no postgres user"
            return 1
        fi
        as=(runuser -u postgres --)
    fi
    if ! dir=$(mktemp -d /tmp/agentkernel-pg.XXXXXX); then
        _agentkernel_pg_skip "mktemp failed"
        return 1
    fi
    # Self-contained (no helper functions needed): runs from the EXIT trap.
    cleanup="(cd / && $(printf '%q ' ${as[@]+"${as[@]}"} "$bindir/pg_ctl") -D $(printf %q "$dir/data") -m immediate -w stop) >/dev/null 2>&1 || true; rm -rf $(printf %q "$dir") || true"
    if [ ${#as[@]} -gt 0 ] && ! chown postgres: "$dir"; then
        eval "$cleanup"
        _agentkernel_pg_skip "cannot chown $dir to postgres"
        return 1
    fi
    if ! (cd / && ${as[@]+"${as[@]}"} mkdir "$dir/sock"); then
        eval "$cleanup"
        _agentkernel_pg_skip "cannot write to $dir"
        return 1
    fi
    if ! (cd / && ${as[@]+"${as[@]}"} "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
            -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1); then
        rm -rf "$dir/data"
        if ! (cd / && ${as[@]+"${as[@]}"} "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
                -E UTF8 --locale=C >>"$dir/initdb.log" 2>&1); then
            tail -n 5 "$dir/initdb.log" | sed 's/^/    postgres: /'
            eval "$cleanup"
            _agentkernel_pg_skip "initdb failed"
            return 1
        fi
    fi
    # The port is free when picked, not when bound: retry on a lost race.
    for attempt in 1 2 3; do
        if ! port=$(_agentkernel_pg_port); then break; fi
        if (cd / && ${as[@]+"${as[@]}"} "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
                -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c max_connections=300 -c shared_buffers=64MB" \
                >/dev/null 2>&1); then
            started=1
            break
        fi
    done
    if [ -z "$started" ]; then
        [ -f "$dir/server.log" ] && tail -n 5 "$dir/server.log" | sed 's/^/    postgres: /'
        eval "$cleanup"
        _agentkernel_pg_skip "pg_ctl start failed"
        return 1
    fi
    if [ "$(PGCONNECT_TIMEOUT=10 "$psql" -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'select 1' 2>/dev/null)" != 1 ]; then
        eval "$cleanup"
        _agentkernel_pg_skip "the server on 127.0.0.1:$port does not answer"
        return 1
    fi
    # Stop and remove it when this shell exits, then run any earlier EXIT trap.
    local prev=""
    local current
    current=$(trap -p EXIT)
    if [ -n "$current" ]; then
        eval "set -- $current" # trap -- 'command' EXIT
        prev=$3
    fi
    # shellcheck disable=SC2064
    trap "$cleanup${prev:+; $prev}" EXIT
    url="postgres://postgres@127.0.0.1:$port/postgres"
    export AGENTKERNEL_TEST_POSTGRES_URL="$url"
    export AGENTKERNEL_REQUIRE_POSTGRES=1
    _AGENTKERNEL_PG_DIR="$dir"
    echo "    postgres: $("$bindir/postgres" --version | sed 's/^postgres (PostgreSQL) //') on 127.0.0.1:$port ($dir)"
}

if [ -n "${AGENTKERNEL_TEST_POSTGRES_URL:-}" ]; then
    if [ -n "${_AGENTKERNEL_PG_DIR:-}" ]; then
        echo "    postgres: already running ($_AGENTKERNEL_PG_DIR)"
    else
        echo "    postgres: using AGENTKERNEL_TEST_POSTGRES_URL from the environment"
    fi
else
    _agentkernel_pg_start || true
fi
unset -f _agentkernel_pg_skip _agentkernel_pg_bindir _agentkernel_pg_port _agentkernel_pg_start
