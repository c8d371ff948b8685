#!/usr/bin/env bash
# imaptest's benchmark (Dovecot's IMAP load tester, ../shared/tools) against
# mailroom and Dovecot in the same run (issue 18): commands completed per
# type in SECS seconds, for each client count, with alice's INBOX emptied
# before every run (imaptest leaves messages behind). Both servers check
# passwords cheaply: Dovecot's peer keeps them in plain text, mailroom gets
# `argon2_memory_kib = 64`, `argon2_iterations = 1`; say so next to the
# figures. The last line of each run is imaptest's own totals line.
#
# usage: bench/imaptest_compare.sh [SECS] [CLIENT COUNTS]   defaults: 10 "10 50"
#   MAILROOM_BIN=path measures that binary instead of building this checkout
#   PEER=0 skips Dovecot
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; COUNTS=${2:-10 50}
TOOLS=${TOOLS:-$(cd .. && pwd)/shared/tools}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
PORT=${BENCH_PORT:-1173}

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
work=$(mktemp -d "$PWD/target/bench-imaptest.XXXXXX")
pid=0
cleanup() {
  [ "$pid" != 0 ] && kill "$pid" 2>/dev/null
  rm -rf "$work"
  if [ "${PEER:-1}" != 0 ]; then "$PEERS/dovecot-stop.sh" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

start_mailroom() {
  rm -rf "$work/data"
  cat > "$work/mailroom.toml" <<TOML
hostname = "bench.example.test"
domains = ["example.test"]
data_dir = "data"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[smtp]
listen = []
submission = []
submissions = []
[imap]
listen = ["127.0.0.1:$PORT"]
tls_listen = []
max_connections = 10000
max_connections_per_ip = 10000
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML
  "$BIN" --config "$work/mailroom.toml" --create-data-dir user add alice@example.test \
    --password secret >/dev/null
  "$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
}

for clients in $COUNTS; do
  # A fresh store per run: the INBOX starts empty, as Dovecot's does.
  start_mailroom
  echo "== mailroom, $clients clients, $SECS s"
  "$TOOLS/imaptest-run.sh" bench "$PORT" "$clients" "$SECS" 2>&1 | tail -4
  kill -TERM "$pid"; wait "$pid" || true; pid=0
  [ "${PEER:-1}" = 0 ] && continue
  "$PEERS/peers-clean.sh" mail >/dev/null 2>&1 || true
  "$PEERS/dovecot-start.sh" >/dev/null
  echo "== dovecot, $clients clients, $SECS s"
  "$TOOLS/imaptest-run.sh" bench "${PEER_IMAP_PORT:-1144}" "$clients" "$SECS" 2>&1 | tail -4
  "$PEERS/dovecot-stop.sh" >/dev/null 2>&1 || true
done
