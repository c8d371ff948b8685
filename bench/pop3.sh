#!/usr/bin/env bash
# POP3 benchmark: sessions per second, MB/s retrieved and RSS per idle
# session.
#
# Starts the release binary on a fresh data directory, fills one mailbox
# with MSGS messages of BYTES octets over SMTP, then runs CLIENTS
# concurrent POP3 clients (bench/pop3_load.py), each doing ROUNDS sessions
# of: USER/PASS, STAT, RETR of every message (pipelined in windows of
# WINDOW, RFC 2449 PIPELINING), QUIT. Every RETR sets \Seen, so the store's
# writes (one per pipelined window) are part of the figure. Then opens
# IDLE_CONNS sessions that log in and stay idle, and reports the RSS
# they cost.
#
# usage: bench/pop3.sh [MSGS] [CLIENTS] [ROUNDS] [BYTES]   defaults: 1000 8 3 4096
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-1000}; CLIENTS=${2:-8}; ROUNDS=${3:-3}; BYTES=${4:-4096}
SMTP_PORT=${BENCH_PORT:-2531}; POP3_PORT=${BENCH_POP3_PORT:-2532}
IDLE_CONNS=${IDLE_CONNS:-500}; WINDOW=${WINDOW:-50}

cargo build --release -q -p mailroom
BIN=$PWD/target/release/mailroom
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
listen = ["127.0.0.1:$SMTP_PORT"]
submission = []
submissions = []
max_connections_per_ip = 1000
[imap]
listen = []
tls_listen = []
[pop3]
listen = ["127.0.0.1:$POP3_PORT"]
tls_listen = []
max_connections = 4000
max_connections_per_ip = 2000
[admin]
listen = ""
TOML
# Only `serve` creates a missing data directory (SPEC 7); make it as an
# installer would, so the CLI can add the user first.
mkdir -p -m 700 "$work/data"
"$BIN" --config "$work/mailroom.toml" user add alice@example.test --password secret >/dev/null
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$POP3_PORT) 2>/dev/null && break; sleep 0.1; done

echo "== filling alice's INBOX with $MSGS messages of $BYTES octets over SMTP"
python3 bench/pop3_load.py fill "$SMTP_PORT" "$MSGS" "$BYTES"

echo "== $CLIENTS clients x $ROUNDS sessions: login, STAT, RETR 1..$MSGS, QUIT"
python3 bench/pop3_load.py run "$POP3_PORT" "$CLIENTS" "$ROUNDS" "$WINDOW"

# RSS per idle session: IDLE_CONNS sessions logged in on the mailbox
# (each holds its snapshot of MSGS entries), doing nothing.
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
python3 bench/pop3_load.py idle "$POP3_PORT" "$IDLE_CONNS" 4 &
py=$!
sleep 3
during=$(rss)
wait $py || true
awk -v b="$before" -v d="$during" -v n="$IDLE_CONNS" -v m="$MSGS" \
  'BEGIN{printf "RSS: %d KiB before, %d KiB with %d idle logged-in sessions (maildrop of %d) = %.1f KiB per idle session\n", b, d, n, m, (d-b)/n}'

kill -TERM $pid; wait $pid || true
