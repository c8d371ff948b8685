#!/usr/bin/env bash
# Mail authentication benchmark (issue 16), in one run:
#  1. inbound SMTP throughput with [checks] on (SPF, DKIM, DMARC, ARC, an
#     Authentication-Results field per message) vs off ([checks] enabled =
#     false), durable accepted messages per second with Postfix's
#     smtp-source; the sender domain's SPF and DMARC records come from the
#     test DNS server (crates/testdns/examples/serve.rs) and, after the
#     first message, from mailroom's TTL cache (the records' TTL is 1 s,
#     so some lookups repeat: the worst case for a cache);
#  2. the DKIM signing cost per outbound message (what the queue worker
#     does per message): RSA 2048, Ed25519, and both
#     (crates/delivery/examples/dkim_sign_bench.rs).
#
# usage: bench/auth.sh [MSGS] [SESSIONS] [BYTES]     defaults: 5000 20 4096
#   MAILROOM_BIN=path benchmarks that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-5000}; SESS=${2:-20}; BYTES=${3:-4096}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
PORT=${BENCH_PORT:-2531}

cargo build --release -q -p mailroom
cargo build --release -q -p testdns --example serve
cargo build --release -q -p delivery --example dkim_sign_bench
BIN=${MAILROOM_BIN:-$PWD/target/release/mailroom}
work=$(mktemp -d "$PWD/target/bench.XXXXXX")
pid=""; dns=""
trap 'kill $pid $dns 2>/dev/null || true; rm -rf "$work"' EXIT

# The DMARC tree walk (mail-auth follows DMARCbis) asks _dmarc.example
# too. A real resolver caches its NXDOMAIN by the zone's SOA, which the
# test server does not send; a TXT that is not DMARC means the same
# (no policy there) and is cached, so every answer can come from a cache.
target/release/examples/serve \
  txt sender.example "v=spf1 ip4:127.0.0.1 -all" \
  txt _dmarc.sender.example "v=DMARC1; p=none" \
  txt _dmarc.example "not a DMARC record" >"$work/dns.out" 2>"$work/dns.err" &
dns=$!
for _ in $(seq 100); do grep -q listening "$work/dns.out" 2>/dev/null && break; sleep 0.1; done
DNS_ADDR=$(awk '/listening/ {print $2}' "$work/dns.out")

run() { # $1: on|off
  local enabled=true; [ "$1" = off ] && enabled=false
  rm -rf "$work/data" && mkdir -p -m 700 "$work/data"
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
[relay]
resolver = "$DNS_ADDR"
[checks]
enabled = $enabled
TOML
  "$BIN" --config "$work/mailroom.toml" user add alice@example.test --password secret >/dev/null
  "$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  local r
  r=$(FROM=bench@sender.example "$PEERS/smtp-bench.sh" "127.0.0.1:$PORT" "$MSGS" "$SESS" "$BYTES" -d | tail -1)
  kill -TERM $pid; wait $pid || true; pid=""
  echo "checks $1: $r"
}

on=$(run on); echo "$on"
sleep 1.5   # the DNS server reports its count once a second
echo "DNS for $MSGS messages: $(tail -1 "$work/dns.err")"
off=$(run off); echo "$off"
rate() { sed -n 's/.* = \([0-9]*\) msg\/s.*/\1/p' <<<"$1"; }
awk -v a="$(rate "$on")" -v b="$(rate "$off")" \
  'BEGIN{printf "ratio: checks on / off = %.2f\n", a/b}'

echo "== DKIM signing per outbound message"
target/release/examples/dkim_sign_bench "$((MSGS / 5 > 100 ? MSGS / 5 : 100))" "$BYTES"
