#!/usr/bin/env bash
# A throwaway PostgreSQL server on a free loopback port, for the tests and the benchmarks; never a production one.
#
#   eval "$(bash scripts/postgres.sh start)"   # prints the export lines below, server running
#   bash scripts/postgres.sh restart "$POLICYHUB_TEST_POSTGRES_DIR"   # a fast restart, same port (tests of reconnection)
#   bash scripts/postgres.sh stop "$POLICYHUB_TEST_POSTGRES_DIR"
#
# start: installs Debian's postgresql when missing (scripts/setup.sh), makes a cluster in a new folder owned by
# an unprivileged user (the server refuses to run as root: when run as root, the 'postgres' user the package
# creates, else 'nobody'), listening on 127.0.0.1 only, password authentication over TCP (scram-sha-256), a
# role 'hub' with a random password, CREATEDB and CREATEROLE (tests make roles of their own), and a database
# 'policyhub'. It prints:
#   export POLICYHUB_TEST_POSTGRES_DIR=/tmp/policyhub-pg.XXXX
#   export POLICYHUB_TEST_POSTGRES=postgres://hub@127.0.0.1:PORT/policyhub
#   export PGPASSWORD=...          (the hub reads it; so does psql)
# stop DIR: stops that server and removes its folder.
set -euo pipefail
command="${1:-}"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ "$command" = start ] && [ -z "$bin" ]; then
  bash "$(dirname "$0")/setup.sh" >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}
case "$command" in
  start)
    owner=$(id -un)
    if [ "$(id -u)" = 0 ]; then owner=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody); fi
    dir=$(mktemp -d /tmp/policyhub-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown "$owner" "$dir"
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE hub LOGIN CREATEDB CREATEROLE PASSWORD '$password'" -c "CREATE DATABASE policyhub OWNER hub" >/dev/null
    echo "$owner" > "$dir/owner"
    echo "export POLICYHUB_TEST_POSTGRES_DIR=$dir"
    echo "export POLICYHUB_TEST_POSTGRES=postgres://hub@127.0.0.1:$port/policyhub"
    echo "export PGPASSWORD=$password"
    ;;
  restart)
    dir="${2:?usage: postgres.sh restart DIR}"
    case "$dir" in /tmp/policyhub-pg.*) ;; *) echo "postgres.sh: $dir is not a folder this script made" >&2; exit 64 ;; esac
    owner=$(cat "$dir/owner")
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
    ;;
  stop)
    dir="${2:?usage: postgres.sh stop DIR}"
    case "$dir" in /tmp/policyhub-pg.*) ;; *) echo "postgres.sh: $dir is not a folder this script made" >&2; exit 64 ;; esac
    owner=$(cat "$dir/owner" 2>/dev/null || id -un)
    [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: postgres.sh start | restart DIR | stop DIR" >&2
    exit 64
    ;;
esac
