#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: a cluster of its own in a
# folder, on a free loopback port, reached by password only.
#
#   bash scripts/postgres.sh start [--watch PID [--discard]] DIR
#       initializes a cluster in DIR (once: superuser `hms`, a random
#       password in DIR/password, scram-sha-256 on 127.0.0.1 only, no Unix
#       socket, fsync on), starts it and waits until it accepts connections,
#       then prints its URL:  postgres://hms:<password>@127.0.0.1:<port>/postgres
#       A DIR already initialized starts again on the same port with its data.
#       --watch PID  stop the server once process PID has exited, so a test
#                    that dies (or forgets) never leaves a server behind
#       --discard    with --watch: delete DIR too once the server is stopped
#   bash scripts/postgres.sh stop DIR     fast shutdown; nothing to do is fine
#   bash scripts/postgres.sh url DIR      prints the URL again
#   bash scripts/postgres.sh bindir       prints the folder of the PostgreSQL
#                                         programs used (initdb, psql, ...)
#
# PostgreSQL refuses to run as root: as root, the server runs as the system
# user hms-postgres (created when missing), which owns DIR, so every folder
# above DIR must be searchable by others (those under /tmp are).
# The programs are found in HMS_POSTGRES_BINDIR when set, else in the newest
# /usr/lib/postgresql/<version>/bin (Debian's package `postgresql`, which
# scripts/setup.sh installs), else on PATH.
set -euo pipefail

readonly SERVER_USER=hms-postgres
readonly SUPERUSER=hms
# Exit status when the PostgreSQL programs are missing, so that callers can
# tell "install it" from "it failed".
readonly EXIT_NOT_INSTALLED=3
# How long pg_ctl waits for the server to start or stop.
readonly WAIT_SECONDS=60

script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

die() {
    printf 'postgres.sh: %s\n' "$@" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'
}

# The folder holding initdb, pg_ctl and postgres.
bindir() {
    local dir
    if [[ -n "${HMS_POSTGRES_BINDIR:-}" ]]; then
        dir="$HMS_POSTGRES_BINDIR"
    else
        dir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
        if [[ ! -x "$dir/initdb" ]]; then
            dir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
        fi
    fi
    local program
    for program in initdb pg_ctl postgres; do
        if [[ ! -x "$dir/$program" ]]; then
            {
                echo "postgres.sh: PostgreSQL is not installed (no $program in ${HMS_POSTGRES_BINDIR:-/usr/lib/postgresql/*/bin or on PATH})"
                echo "postgres.sh: run 'bash scripts/setup.sh' (as root it installs the Debian package postgresql),"
                echo "postgres.sh: or set HMS_POSTGRES_BINDIR to the folder of initdb, pg_ctl and postgres"
            } >&2
            exit "$EXIT_NOT_INSTALLED"
        fi
    done
    printf '%s\n' "$dir"
}

# Runs "$@" as the user the server runs as: this user, or hms-postgres
# when root.
as_server() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u "$SERVER_USER" -- "$@"
    else
        "$@"
    fi
}

# As root: the system user hms-postgres exists and owns DIR.
prepare_server_user() {
    local dir="$1"
    [[ "$(id -u)" -eq 0 ]] || return 0
    if ! id -u "$SERVER_USER" >/dev/null 2>&1; then
        # Test processes start servers in parallel: one creates the user.
        local locks=/run/lock
        [[ -d "$locks" ]] || locks=/tmp
        flock "$locks/hms-postgres-useradd.lock" bash -c "id -u $SERVER_USER >/dev/null 2>&1 ||
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin $SERVER_USER" ||
            die "cannot create the system user $SERVER_USER (PostgreSQL does not run as root)"
    fi
    if [[ "$(stat -c %U "$dir")" != "$SERVER_USER" ]]; then
        chown -R "$SERVER_USER:$SERVER_USER" "$dir"
    fi
    if ! runuser -u "$SERVER_USER" -- test -w "$dir"; then
        die "$SERVER_USER cannot reach $dir: every folder above it must be searchable by others" \
            "(chmod o+x on them), or use a folder under /tmp"
    fi
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

url_of() {
    local dir="$1"
    [[ -f "$dir/password" && -f "$dir/port" ]] ||
        die "$dir holds no server of this script: 'postgres.sh start $dir' makes one"
    printf 'postgres://%s:%s@127.0.0.1:%s/postgres\n' "$SUPERUSER" "$(cat "$dir/password")" "$(cat "$dir/port")"
}

initialize() {
    local dir="$1" bin="$2"
    # Hex: safe in a URL as it is.
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$dir/password.new")
    if [[ "$(id -u)" -eq 0 ]]; then
        chown "$SERVER_USER:$SERVER_USER" "$dir/password.new"
    fi
    if ! as_server "$bin/initdb" --pgdata="$dir/data" --username="$SUPERUSER" \
        --pwfile="$dir/password.new" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir/data" "$dir/password.new"
        die "initdb failed in $dir/data (its output is above)"
    fi
    # Password logins over loopback TCP only: no local (socket) or trust line.
    printf 'host all all 127.0.0.1/32 scram-sha-256\n' >"$dir/data/pg_hba.conf"
    cat >>"$dir/data/postgresql.conf" <<'EOF'

# scripts/postgres.sh: a test server, loopback TCP only.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
fsync = on
max_connections = 200
EOF
    mv "$dir/password.new" "$dir/password"
}

# Starts the cluster of DIR on the port in DIR/port; 0 once it accepts
# connections, 1 when it failed to start, 2 when the port was taken.
launch() {
    local dir="$1" bin="$2"
    local port
    port="$(cat "$dir/port")"
    : >"$dir/server.log"
    [[ "$(id -u)" -ne 0 ]] || chown "$SERVER_USER:$SERVER_USER" "$dir/server.log"
    # pg_ctl -w waits for the postmaster to report itself ready, which it
    # does only once it listens: no socket needed to tell.
    if as_server "$bin/pg_ctl" --pgdata="$dir/data" --log="$dir/server.log" \
        --options="-p $port" --wait --timeout="$WAIT_SECONDS" start >/dev/null 2>"$dir/pg_ctl.err"; then
        return 0
    fi
    if grep -q 'could not bind\|Address already in use' "$dir/server.log"; then
        return 2
    fi
    cat "$dir/pg_ctl.err" "$dir/server.log" >&2
    return 1
}

running() {
    local dir="$1" bin="$2"
    as_server "$bin/pg_ctl" --pgdata="$dir/data" status >/dev/null 2>&1
}

# Process PID's start time: with the PID itself, names one process even
# after the PID is reused.
start_time() {
    awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || true
}

# A background process that stops the server (and deletes DIR when
# discarding) once process PID has exited.
watch_process() {
    local dir="$1" pid="$2" discard="$3"
    local born
    born="$(start_time "$pid")"
    if [[ -z "$born" ]]; then
        stop "$dir"
        die "--watch $pid: the process exited while the server started (the server was stopped again)"
    fi
    # setsid and no inherited output: a caller reading this script's output
    # to its end gets that end when this script exits, not the watchdog.
    setsid bash "$script" watchdog "$dir" "$pid" "$born" "$discard" \
        </dev/null >>"$dir/watchdog.log" 2>&1 &
    echo $! >"$dir/watchdog.pid"
}

# The watchdog's loop (the internal command `watchdog`).
watchdog() {
    local dir="$1" pid="$2" born="$3" discard="$4"
    while [[ "$(start_time "$pid")" == "$born" ]]; do
        sleep 0.5
    done
    # Its own stop must not kill it before it is done.
    rm -f "$dir/watchdog.pid"
    stop "$dir"
    if [[ "$discard" == 1 ]]; then
        rm -rf "$dir"
    fi
}

start() {
    local dir="$1" watch="$2" discard="$3"
    local bin
    bin="$(bindir)"
    mkdir -p "$dir"
    chmod 700 "$dir"
    dir="$(cd "$dir" && pwd)"
    prepare_server_user "$dir"
    # The server's working folder must be one it can enter.
    cd "$dir"
    local fresh=0
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        initialize "$dir" "$bin"
        fresh=1
    elif running "$dir" "$bin"; then
        die "a server already runs in $dir: 'postgres.sh url $dir' prints its URL," \
            "'postgres.sh stop $dir' stops it"
    fi
    local attempt outcome
    for attempt in 1 2 3 4 5; do
        if ((fresh)) || [[ ! -f "$dir/port" ]]; then
            free_port >"$dir/port"
        fi
        outcome=0
        launch "$dir" "$bin" || outcome=$?
        case "$outcome" in
            0) break ;;
            1) die "the server in $dir did not start (its log is above)" ;;
            2)
                ((fresh)) ||
                    die "port $(cat "$dir/port") of the server in $dir is taken by another program:" \
                        "stop that program, or start a new server in another folder"
                ;;
        esac
        ((attempt < 5)) || die "no free port found in 5 attempts"
    done
    if [[ -n "$watch" ]]; then
        watch_process "$dir" "$watch" "$discard"
    fi
    url_of "$dir"
}

stop() {
    local dir="$1"
    [[ -d "$dir/data" ]] || die "$dir holds no server of this script (no $dir/data)"
    dir="$(cd "$dir" && pwd)"
    cd "$dir"
    if [[ -f "$dir/watchdog.pid" ]]; then
        kill "$(cat "$dir/watchdog.pid")" 2>/dev/null || true
        rm -f "$dir/watchdog.pid"
    fi
    local bin
    bin="$(bindir)"
    if ! running "$dir" "$bin"; then
        return 0
    fi
    as_server "$bin/pg_ctl" --pgdata="$dir/data" --mode=fast --wait \
        --timeout="$WAIT_SECONDS" stop >/dev/null ||
        die "the server in $dir did not stop within $WAIT_SECONDS s (see $dir/server.log)"
}

main() {
    local command="${1:-}"
    (($#)) && shift
    case "$command" in
        -h | --help | help)
            usage
            ;;
        start)
            local watch="" discard=0 dir=""
            while (($#)); do
                case "$1" in
                    --watch)
                        [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--watch takes a process id (e.g. --watch \$\$)"
                        watch="$2"
                        shift 2
                        ;;
                    --discard)
                        discard=1
                        shift
                        ;;
                    -*) die "start: unknown option '$1' (try --help)" ;;
                    *)
                        [[ -z "$dir" ]] || die "start takes one folder, got '$dir' and '$1'"
                        dir="$1"
                        shift
                        ;;
                esac
            done
            [[ -n "$dir" ]] || die "start needs a folder: postgres.sh start [--watch PID] DIR"
            ((!discard)) || [[ -n "$watch" ]] || die "--discard needs --watch PID: it deletes DIR once PID has exited"
            [[ -z "$watch" || -n "$(start_time "$watch")" ]] ||
                die "--watch $watch: no such process (give the id of a running process, e.g. \$\$)"
            start "$dir" "$watch" "$discard"
            ;;
        stop | url)
            (($# == 1)) || die "$command takes one folder: postgres.sh $command DIR"
            if [[ "$command" == stop ]]; then
                stop "$1"
            else
                url_of "$1"
            fi
            ;;
        bindir)
            bindir
            ;;
        watchdog)
            watchdog "$@"
            ;;
        "") die "no command given: start, stop, url or bindir (try --help)" ;;
        *) die "unknown command '$command' (try --help)" ;;
    esac
}

main "$@"
