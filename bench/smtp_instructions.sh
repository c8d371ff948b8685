#!/usr/bin/env bash
# Instructions per accepted SMTP message: the whole server (every thread),
# counted by valgrind's callgrind, which is repeatable on a shared, noisy
# machine where wall-clock figures are not (issue 18's gate).
#
# Starts the release binary under callgrind on a fresh data directory, lets
# it settle, zeroes the counters (`callgrind_control -z`), drives MSGS
# messages of BYTES octets over SESSIONS sessions with Postfix's smtp-source
# in one shape, dumps the counters (`callgrind_control -d`) and divides. The
# start-up and the shutdown are thus not counted. Both shapes by default:
# "conn" (one connection per message) and "reuse" (smtp-source -d: many
# messages per connection). The dump is kept under target/callgrind/ for
# `callgrind_annotate --inclusive=yes`.
#
# usage: bench/smtp_instructions.sh [MSGS] [SESSIONS] [BYTES] [SHAPES]
#        defaults: 2000 20 4096 "conn reuse"
#   MAILROOM_BIN=path measures that binary instead of building this checkout
#   TAG=name names the kept profiles target/callgrind/callgrind.TAG.SHAPE.out.*
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-2000}; SESS=${2:-20}; BYTES=${3:-4096}; SHAPES=${4:-conn reuse}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
PORT=${BENCH_PORT:-2531}
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
out=$PWD/target/callgrind
mkdir -p "$out"

for shape in $SHAPES; do
  work=$(mktemp -d "$PWD/target/bench-cg.XXXXXX")
  cat > "$work/mailroom.toml" <<TOML
hostname = "bench.example.test"
domains = ["example.test"]
data_dir = "data"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[smtp]
listen = ["127.0.0.1:$PORT"]
submission = []
submissions = []
max_connections_per_ip = 1000
[imap]
listen = []
tls_listen = []
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML
  mkdir -p -m 700 "$work/data"
  "$BIN" --config "$work/mailroom.toml" user add alice@example.test --password secret >/dev/null
  file="$out/callgrind.${TAG:-mailroom}.$shape.out"
  rm -f "$file"*
  valgrind --tool=callgrind --callgrind-out-file="$file" \
    "$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  # One warm-up message: the first delivery creates the account.
  smtp-source -m 1 -s 1 -l "$BYTES" -f a@example.test -t alice@example.test "127.0.0.1:$PORT"
  sleep 1
  callgrind_control -z "$pid" >/dev/null 2>&1
  flags=(); [ "$shape" = reuse ] && flags=(-d)
  t0=$(date +%s.%N)
  smtp-source -m "$MSGS" -s "$SESS" -l "$BYTES" -f a@example.test -t alice@example.test \
    "${flags[@]}" "127.0.0.1:$PORT"
  t1=$(date +%s.%N)
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -TERM $pid; wait $pid || true
  trap - EXIT
  dump=$(ls -t "$file".* 2>/dev/null | head -1)
  ir=$(grep -h '^summary:' "$dump" | awk '{print $2}')
  stats=$(grep -o 'commits=[0-9]* ops=[0-9]*' "$work/server.log" | tail -1 || true)
  got=$(sqlite3 "$work/data/store.db" 'SELECT count(*) FROM entries' 2>/dev/null || echo '?')
  awk -v ir="$ir" -v n="$MSGS" -v s="$shape" -v a="$t0" -v b="$t1" -v st="$stats" -v got="$got" \
    'BEGIN{printf "%s: %d msgs, %.0f instructions per message (%.3g total), %.1f s under callgrind, %s, %s entries stored\n", s, n, ir/n, ir, b-a, st, got}'
  echo "   profile: $dump"
  rm -rf "$work"
done
