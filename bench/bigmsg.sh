#!/usr/bin/env bash
# Big-message benchmark (issue 19): COUNT messages of MIB MiB, CONC at a
# time, over SMTP (to alice) and IMAP APPEND (to bob), then read back over
# POP3 RETR and IMAP FETCH BODY.PEEK[] and compared with what was sent.
# Reports each phase's throughput and the server's resident memory after
# it (VmRSS) and at its peak (VmHWM): with messages above [store]
# spool_threshold spooled to disk and streamed in and out of the store, the
# peak stays near the baseline plus CONC x the threshold, whatever MIB is.
#
# Checks the free disk first: the store keeps every message once, and the
# SQLite WAL may hold as much again until its checkpoint.
#
# usage: bench/bigmsg.sh [COUNT] [MIB] [CONC]   defaults: 200 20 20
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-200}; MIB=${2:-20}; CONC=${3:-20}
SMTP_PORT=${BENCH_PORT:-2541}; IMAP_PORT=$((SMTP_PORT + 1)); POP3_PORT=$((SMTP_PORT + 2))

need_mib=$((COUNT * MIB * 5 / 2))
free_mib=$(df -Pm "$PWD/target" 2>/dev/null | awk 'NR == 2 { print $4 }' || df -Pm . | awk 'NR == 2 { print $4 }')
if [ "${free_mib:-0}" -lt "$need_mib" ]; then
  echo "bigmsg: needs about $need_mib MiB free under target/, has ${free_mib:-0} MiB;" \
       "try fewer or smaller messages: bench/bigmsg.sh COUNT MIB" >&2
  exit 1
fi

cargo build --release -q -p mailroom
BIN=$PWD/target/release/mailroom
mkdir -p target
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
listen = ["127.0.0.1:$IMAP_PORT"]
tls_listen = []
max_connections_per_ip = 1000
[pop3]
listen = ["127.0.0.1:$POP3_PORT"]
tls_listen = []
max_connections_per_ip = 1000
[admin]
listen = ""
TOML
mkdir -p -m 700 "$work/data"
for u in alice bob; do
  "$BIN" --config "$work/mailroom.toml" user add "$u@example.test" --password secret >/dev/null
done
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$IMAP_PORT) 2>/dev/null && break; sleep 0.1; done

mem() {
  awk '/^VmRSS|^VmHWM/ { printf "%s %d MiB  ", $1, $2 / 1024 }' "/proc/$pid/status"
  echo
}
echo "== baseline: $(mem)"
half=$((COUNT / 2))
python3 bench/bigmsg_load.py smtp "$SMTP_PORT" "$half" "$MIB" "$CONC"; echo "   $(mem)"
python3 bench/bigmsg_load.py append "$IMAP_PORT" "$((COUNT - half))" "$MIB" "$CONC"; echo "   $(mem)"
python3 bench/bigmsg_load.py pop3 "$POP3_PORT" "$half" "$MIB" "$CONC"; echo "   $(mem)"
python3 bench/bigmsg_load.py imap "$IMAP_PORT" "$((COUNT - half))" "$MIB" "$CONC"; echo "   $(mem)"
echo "== store: $(du -sh "$work/data" | cut -f1); spool: $(ls "$work/data/spool" | wc -l) files"
