#!/usr/bin/env bash
# SMTP throughput benchmark: durable accepted messages per second.
#
# Starts the release binary on a fresh data directory and drives it with
# Postfix's smtp-source (MSGS messages of BYTES octets over SESSIONS
# concurrent sessions), then measures, in the same run and with the same
# generator, smtp-sink (accepts and discards: the ceiling of this setup) and
# Postfix itself (a durable peer with one fsync per message). Also reports
# fsyncs per message (store commits / deliveries) and RSS per idle
# connection. Root is needed for the peers (../shared/peers installs them).
#
# usage: bench/smtp.sh [MSGS] [SESSIONS] [BYTES]     defaults: 20000 20 4096
#   SHAPES="reuse conn" (the default) measures both load shapes, each on
#     every server: "reuse" is smtp-source -d (many messages per
#     connection), "conn" one connection per message
#   ROUNDS=N repeats the whole measurement N times (default 1)
#   MAILROOM_ONLY=1 skips the peers (for quick iterations)
#   MAILROOM_BIN=path benchmarks that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-20000}; SESS=${2:-20}; BYTES=${3:-4096}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
PORT=${BENCH_PORT:-2530}
IDLE_CONNS=${IDLE_CONNS:-500}

# MAILROOM_BIN=path runs a given binary (A/B comparisons) instead of
# building this checkout.
if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
work=$(mktemp -d "$PWD/target/bench.XXXXXX")
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
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
# Only `serve` creates a missing data directory (SPEC 7); make it as an
# installer would, so the CLI can add the user first.
mkdir -p -m 700 "$work/data"
"$BIN" --config "$work/mailroom.toml" user add alice@example.test --password secret >/dev/null
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

SHAPES=${SHAPES:-reuse conn}
ROUNDS=${ROUNDS:-1}
shape_flags() { [ "$1" = reuse ] && echo -d || true; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }   # clock ticks
rate() { sed -n 's/.* = \([0-9]*\) msg\/s.*/\1/p' <<<"$1"; }
# The peers run beside mailroom (idle, they cost nothing), so that each
# shape is measured on the three servers back to back: on a shared
# machine the load moves between minutes, and a ratio is only worth
# something between runs made under the same load.
if [ "${MAILROOM_ONLY:-0}" != 1 ]; then
  "$PEERS/smtp-sink-start.sh" >/dev/null
  "$PEERS/postfix-start.sh" >/dev/null
  trap 'kill $pid 2>/dev/null || true; rm -rf "$work"; "$PEERS/smtp-sink-stop.sh" >/dev/null 2>&1 || true; "$PEERS/postfix-stop.sh" >/dev/null 2>&1 || true' EXIT
fi
for round in $(seq "$ROUNDS"); do
for shape in $SHAPES; do
  echo "== round $round, shape $shape: mailroom (127.0.0.1:$PORT)"
  c0=$(cpu)
  # shellcheck disable=SC2046
  mr=$("$PEERS/smtp-bench.sh" "127.0.0.1:$PORT" "$MSGS" "$SESS" "$BYTES" $(shape_flags "$shape") | tail -1)
  c1=$(cpu)
  echo "$mr"
  awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$MSGS" \
    'BEGIN{printf "server CPU: %.2f s = %.0f us per message\n", t/hz, t/hz*1e6/n}'
  [ "${MAILROOM_ONLY:-0}" = 1 ] && continue
  echo "== round $round, shape $shape: smtp-sink (discards everything: the ceiling)"
  # shellcheck disable=SC2046
  sink=$("$PEERS/smtp-bench.sh" 127.0.0.1:2527 "$MSGS" "$SESS" "$BYTES" $(shape_flags "$shape") | tail -1)
  echo "$sink"
  echo "== round $round, shape $shape: postfix (durable, one fsync per message)"
  # shellcheck disable=SC2046
  pf=$("$PEERS/smtp-bench.sh" 127.0.0.1:2526 "$MSGS" "$SESS" "$BYTES" $(shape_flags "$shape") | tail -1)
  echo "$pf"
  awk -v m="$(rate "$mr")" -v s="$(rate "$sink")" -v p="$(rate "$pf")" -v sh="$shape" \
    'BEGIN{printf "ratios (%s): mailroom/smtp-sink = %.2f, mailroom/postfix = %.2f\n", sh, m/s, m/p}'
done
done

# RSS per idle connection: open IDLE_CONNS sessions that only read the greeting.
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
python3 - "$PORT" "$IDLE_CONNS" <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.recv(512); socks.append(s)
time.sleep(3)
PY
py=$!
sleep 2
during=$(rss)
wait $py || true
awk -v b="$before" -v d="$during" -v n="$IDLE_CONNS" \
  'BEGIN{printf "RSS: %d KiB before, %d KiB with %d idle sessions = %.1f KiB per idle session\n", b, d, n, (d-b)/n}'

kill -TERM $pid; wait $pid || true
stats=$(grep -o 'commits=[0-9]* ops=[0-9]*' "$work/server.log" | tail -1 || true)
echo "store: $stats" | awk '{split($2,c,"="); split($3,o,"="); if (o[2] > 0) printf "%s  -> %.3f fsyncs per message, %.1f messages per commit\n", $0, c[2]/o[2], o[2]/c[2]; else print}'

