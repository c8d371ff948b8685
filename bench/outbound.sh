#!/usr/bin/env bash
# Outbound benchmark: relayed messages per second, end to end, to smtp-sink.
#
# Starts smtp-sink (../shared/peers: accepts and discards, the "remote MX"),
# then the release binary on a fresh data directory with [relay] smarthost
# pointing at the sink and the loopback as a relay network. Postfix's
# smtp-source injects MSGS messages of BYTES octets over SESSIONS sessions
# to a remote recipient; the clock runs from the first injection until the
# queue worker has delivered them all (mailroom_outbound_delivered_total on
# the admin port), so it measures accept + queue + delivery with connection
# reuse. Also reports the store's commits per message. Then, in the same
# run, the Postfix peer is reconfigured to relay everything to the same
# sink and measured the same way until its queue holds none of them; its
# normal config (it never relays) is restored on exit. Root is needed for
# the peers.
#
# usage: bench/outbound.sh [MSGS] [SESSIONS] [BYTES]   defaults: 5000 20 4096
#   MAILROOM_ONLY=1 skips Postfix (for quick iterations)
#   MAILROOM_BIN=path benchmarks that binary instead of building this checkout
#   PER_DOMAIN=N sets [relay] max_connections_per_domain (default 10)
#   BENCH_TIMEOUT=secs bounds every wait (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-5000}; SESS=${2:-20}; BYTES=${3:-4096}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
SINK_PORT=${PEER_SINK_PORT:-2527}
PF_PORT=${PEER_SMTP_PORT:-2526}
PF_CONF=${PEER_ROOT:-/opt/peers}/postfix/etc
PER_DOMAIN=${PER_DOMAIN:-10}
TIMEOUT=${BENCH_TIMEOUT:-600}
FROM=a@example.test; TO=rcpt@sink.test

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# Waits until "$@" succeeds, polling every 50 ms; fails after TIMEOUT s.
wait_for() {
  local end=$(( $(date +%s) + TIMEOUT ))
  until "$@"; do [ "$(date +%s)" -lt $end ] || return 1; sleep 0.05; done
}

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
work=$(mktemp -d "$PWD/target/bench-outbound.XXXXXX")
pid=
sink_was_up=0; pf_was_up=0; pf_tls=0; pf_touched=0
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  if [ $pf_touched = 1 ]; then
    # Our messages still queued (a timeout) must not bounce after the
    # restore; then the peer's own config (no relaying) comes back.
    postqueue -c "$PF_CONF" -j 2>/dev/null | grep "@${TO#*@}" |
      sed -n 's/.*"queue_id": *"\([0-9A-Za-z]*\)".*/\1/p' |
      postsuper -c "$PF_CONF" -d - >/dev/null 2>&1 || true
    PEER_TLS=$pf_tls "$PEERS/postfix-start.sh" >/dev/null || echo "warning: postfix-start.sh failed" >&2
    [ $pf_was_up = 1 ] || "$PEERS/postfix-stop.sh" >/dev/null || true
  fi
  [ $sink_was_up = 1 ] || "$PEERS/smtp-sink-stop.sh" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[ -f "${PEER_ROOT:-/opt/peers}/sink/pid" ] && kill -0 "$(cat "${PEER_ROOT:-/opt/peers}/sink/pid")" 2>/dev/null && sink_was_up=1
"$PEERS/smtp-sink-start.sh" >/dev/null
command -v smtp-source >/dev/null || { echo "smtp-source missing (smtp-sink-start.sh installs postfix)" >&2; exit 1; }
inject() {   # inject PORT: smtp-source, many messages per connection (-d)
  timeout "$TIMEOUT" smtp-source -d -l "$BYTES" -m "$MSGS" -s "$SESS" -f "$FROM" -t "$TO" "127.0.0.1:$1"
}
report() {   # report NAME T0 T1 T2: injection and end-to-end rates
  awk -v name="$1" -v a="$2" -v b="$3" -v c="$4" -v n="$MSGS" -v s="$SESS" -v l="$BYTES" 'BEGIN{
    printf "%s: %d msgs x %d B, %d sessions: accepted in %.2f s (%.0f msg/s), relayed in %.2f s = %.0f msg/s end to end\n",
      name, n, l, s, b-a, n/(b-a), c-a, n/(c-a)}'
}

PORT=$(free_port); APORT=$(free_port)
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
relay_networks = ["127.0.0.0/8"]
[imap]
listen = []
tls_listen = []
[pop3]
listen = []
tls_listen = []
[admin]
listen = "127.0.0.1:$APORT"
[relay]
smarthost = "127.0.0.1:$SINK_PORT"
max_connections_per_domain = $PER_DOMAIN
TOML
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
metric() { curl -sf "http://127.0.0.1:$APORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
mr_done() {
  local d f
  d=$(metric mailroom_outbound_delivered_total); f=$(metric mailroom_outbound_failed_total)
  [ "${f:-0}" = 0 ] || { echo "mailroom: $f recipients failed" >&2; exit 1; }
  [ "${d:-0}" -ge "$MSGS" ]
}

echo "== mailroom (127.0.0.1:$PORT -> smarthost smtp-sink 127.0.0.1:$SINK_PORT, max_connections_per_domain = $PER_DOMAIN)"
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }   # clock ticks
c0=$(cpu)
t0=$(now); inject "$PORT"; t1=$(now)
wait_for mr_done || { echo "mailroom: not all delivered within $TIMEOUT s" >&2; exit 1; }
t2=$(now); c1=$(cpu)
mr=$(report mailroom "$t0" "$t1" "$t2")
echo "$mr"
awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$MSGS" \
  'BEGIN{printf "server CPU: %.2f s = %.0f us per message (in and out)\n", t/hz, t/hz*1e6/n}'
deferred=$(metric mailroom_outbound_deferred_total)
left=$("$BIN" --config "$work/mailroom.toml" queue list 2>/dev/null | wc -l || echo "?")
echo "queue: $left rows left, ${deferred:-0} deferrals"
kill -TERM $pid; wait $pid || true; pid=
stats=$(grep -o 'commits=[0-9]* ops=[0-9]*' "$work/server.log" | tail -1 || true)
cpm=$(awk -v s="$stats" -v n="$MSGS" 'BEGIN{split(s, a, /[ =]/); if (n > 0) printf "%.3f", a[2]/n}')
echo "store: $stats -> $cpm commits per message (accept + queue + delivery)"

if [ "${MAILROOM_ONLY:-0}" = 1 ]; then echo "summary: mailroom $(sed -n 's/.* = \([0-9]*\) msg\/s end to end/\1/p' <<<"$mr") msg/s, $cpm commits/msg"; exit 0; fi

echo "== postfix (127.0.0.1:$PF_PORT, relayhost [127.0.0.1]:$SINK_PORT)"
postfix -c "$PF_CONF" status >/dev/null 2>&1 && pf_was_up=1
grep -q '^smtpd_tls_cert_file' "$PF_CONF/main.cf" 2>/dev/null && pf_tls=1
"$PEERS/postfix-start.sh" >/dev/null
pf_touched=1
postconf -c "$PF_CONF" -e "relayhost = [127.0.0.1]:$SINK_PORT" "default_transport = smtp" \
  "relay_transport = smtp" "mynetworks = 127.0.0.0/8"
postfix -c "$PF_CONF" reload 2>/dev/null
sleep 1   # let the reloaded qmgr and smtpd take over
pf_ours() { postqueue -c "$PF_CONF" -j 2>/dev/null | grep -c "@${TO#*@}" || true; }
pf_done() { [ "$(pf_ours)" = 0 ]; }
wait_for pf_done || { echo "postfix: a previous run's messages are still queued" >&2; exit 1; }
t0=$(now); inject "$PF_PORT"; t1=$(now)
wait_for pf_done || { echo "postfix: not all relayed within $TIMEOUT s" >&2; exit 1; }
t2=$(now)
pf=$(report postfix "$t0" "$t1" "$t2")
echo "$pf"

rate() { sed -n 's/.* = \([0-9]*\) msg\/s end to end/\1/p' <<<"$1"; }
awk -v m="$(rate "$mr")" -v p="$(rate "$pf")" -v c="$cpm" -v n="$MSGS" -v s="$SESS" -v l="$BYTES" \
  'BEGIN{printf "summary (%d msgs x %d B, %d sessions): mailroom %d msg/s (%s commits/msg), postfix %d msg/s, mailroom/postfix = %.2f\n", n, l, s, m, c, p, m/p}'
