#!/usr/bin/env bash
# PostgreSQL next to SQLite in the same run (issue 21): SMTP (Postfix's
# smtp-source, as bench/smtp.sh) and IMAP (imaptest's benchmark, as
# bench/imaptest_compare.sh) on one node on SQLite, one node on PostgreSQL,
# and two nodes on one PostgreSQL database; then the cross-node latency
# from the end of DATA on node A to `* N EXISTS` in an IDLE session on
# node B (p50/p99/max). PostgreSQL is a private cluster started here
# (initdb as the postgres user in a temporary directory, a free loopback
# port, fsync on) and removed at the end. Root is needed (the peers, the
# postgres user). Passwords are hashed cheaply (argon2 64 KiB, 1 pass) on
# every server: say so next to the figures.
#
# usage: bench/postgres.sh [MSGS] [SESSIONS] [BYTES]    defaults: 5000 20 4096
#   IMAP_CLIENTS (20) IMAP_SECS (10): imaptest's load; SKIP_IMAP=1 skips it
#   LATENCY_COUNT (300): deliveries timed one at a time across nodes
#   MAILROOM_BIN=path benchmarks that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-5000}; SESS=${2:-20}; BYTES=${3:-4096}
IMAP_CLIENTS=${IMAP_CLIENTS:-20}; IMAP_SECS=${IMAP_SECS:-10}
LATENCY_COUNT=${LATENCY_COUNT:-300}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
TOOLS=${TOOLS:-$(cd .. && pwd)/shared/tools}
BASE_PORT=${BENCH_PORT:-2640}

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
PGBIN=${MAILROOM_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL (scripts/test-deps installs it)" >&2; exit 3; }

# Outside the checkout: the postgres user must reach its directory.
work=$(mktemp -d /tmp/mailroom-bench-pg.XXXXXX)
chmod 755 "$work"
pids=()
stop_nodes() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_nodes
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/pg"; chown postgres:postgres "$work/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$work/pg/data" -U mailroom -A trust -E UTF8 \
  --no-locale >/dev/null
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg/data" -w -l "$work/pg/log" \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $work/pg -c max_connections=200" start >/dev/null
createdb() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U mailroom -d postgres -qc "CREATE DATABASE $1"; }
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $NF}') on 127.0.0.1:$PGPORT" \
  "(fsync $("$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U mailroom -d postgres -Atc 'SHOW fsync'))," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

# node NAME BACKEND DB SMTP_PORT IMAP_PORT: writes NAME's config.
node() {
  local dir=$work/$1
  mkdir -p "$dir"; mkdir -p -m 700 "$dir/data"
  cat > "$dir/mailroom.toml" <<TOML
hostname = "$1.bench.example.test"
domains = ["example.test"]
data_dir = "data"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[smtp]
listen = ["127.0.0.1:$4"]
submission = []
submissions = []
max_connections_per_ip = 1000
[imap]
listen = ["127.0.0.1:$5"]
tls_listen = []
max_connections = 10000
max_connections_per_ip = 10000
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML
  if [ "$2" = postgres ]; then
    printf '[store]\nbackend = "postgres"\nurl = "postgres://mailroom@127.0.0.1:%s/%s"\nnode_id = "%s"\n' \
      "$PGPORT" "$3" "$1" >> "$dir/mailroom.toml"
  fi
}
cli() { local n=$1; shift; (cd "$work/$n" && "$BIN" --config mailroom.toml "$@"); }
start() {
  (cd "$work/$1" && exec "$BIN" --config mailroom.toml serve 2>server.log) &
  pids+=($!)
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return; sleep 0.1; done
  echo "node $1 did not start:"; cat "$work/$1/server.log"; exit 1
}
rate() { sed -n 's/.* = \([0-9]*\) msg\/s.*/\1/p' <<<"$1"; }
smtp_one() { "$PEERS/smtp-bench.sh" "127.0.0.1:$1" "$2" "$3" "$BYTES" -d | tail -1; }
commits() { grep -o 'commits=[0-9]* ops=[0-9]*' "$work/$1/server.log" | tail -1 || true; }
# imaptest logs in as imap@example.test, whose INBOX the SMTP load left
# empty; the header of its table and its last line of counts (the totals).
imap_bench() {
  [ "${SKIP_IMAP:-0}" = 1 ] && return
  USER_=imap@example.test "$TOOLS/imaptest-run.sh" bench "$1" "$2" "$IMAP_SECS" \
    > "$work/imaptest.$1" 2>&1 || true
  grep -m1 '^Logi' "$work/imaptest.$1" | sed 's/^/  /'
  grep -E '^ *[0-9]+( +[0-9]+)+' "$work/imaptest.$1" | tail -1 | sed 's/^/  /'
}

declare -A smtp_rates
run_single() { # LABEL BACKEND DB
  local p=$BASE_PORT
  node "$1" "$2" "$3" "$p" $((p + 1))
  cli "$1" user add alice@example.test --password secret >/dev/null
  cli "$1" user add imap@example.test --password secret >/dev/null
  start "$1" "$p"
  echo "== $1: SMTP, $MSGS x $BYTES B over $SESS sessions (many per connection)"
  local r; r=$(smtp_one "$p" "$MSGS" "$SESS"); echo "  $r"
  smtp_rates[$1]=$(rate "$r")
  echo "== $1: imaptest bench, $IMAP_CLIENTS clients, $IMAP_SECS s"
  imap_bench $((p + 1)) "$IMAP_CLIENTS"
  stop_nodes
  echo "  store: $(commits "$1")"
}

run_single sqlite sqlite ""
createdb one
run_single postgres postgres one

# Two nodes on one database: half the sessions and messages on each.
createdb two
pa=$((BASE_PORT + 10)); pb=$((BASE_PORT + 20))
node node-a postgres two "$pa" $((pa + 1))
node node-b postgres two "$pb" $((pb + 1))
cli node-a user add alice@example.test --password secret >/dev/null
cli node-a user add lat@example.test --password pw >/dev/null
cli node-a user add imap@example.test --password secret >/dev/null
start node-a "$pa"; start node-b "$pb"
echo "== two nodes on one database: SMTP, $((MSGS / 2)) messages over $((SESS / 2)) sessions on each"
t0=$(date +%s.%N)
smtp_one "$pa" $((MSGS / 2)) $((SESS / 2)) > "$work/a.out" &
ja=$!
smtp_one "$pb" $((MSGS / 2)) $((SESS / 2)) > "$work/b.out" &
jb=$!
wait $ja $jb
t1=$(date +%s.%N)
sed 's/^/  node-a: /' "$work/a.out"; sed 's/^/  node-b: /' "$work/b.out"
two=$(awk -v n=$(( (MSGS / 2) * 2 )) -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
echo "  together: $two msg/s accepted"
if [ "${SKIP_IMAP:-0}" != 1 ]; then
  echo "== two nodes: imaptest bench, $((IMAP_CLIENTS / 2)) clients on each, $IMAP_SECS s"
  imap_bench $((pa + 1)) $((IMAP_CLIENTS / 2)) > "$work/ia.out" &
  ja=$!
  imap_bench $((pb + 1)) $((IMAP_CLIENTS / 2)) > "$work/ib.out" &
  jb=$!
  wait $ja $jb || true
  echo "  node-a:"; cat "$work/ia.out"; echo "  node-b:"; cat "$work/ib.out"
fi

echo "== cross-node latency: end of DATA on node-a to * N EXISTS in IDLE on node-b, $LATENCY_COUNT messages one at a time"
python3 - "$pa" $((pb + 1)) "$LATENCY_COUNT" <<'PY'
import asyncio, sys, time
smtp_port, imap_port, count = (int(x) for x in sys.argv[1:4])

async def until(r, tag):
    while True:
        line = await r.readline()
        if not line:
            raise SystemExit("IMAP connection closed")
        if line.startswith(tag):
            if not line.startswith(tag + b"OK"):
                raise SystemExit(f"IMAP: {line!r}")
            return

async def smtp_cmd(r, w, line, code):
    w.write(line + b"\r\n")
    while True:
        l = await r.readline()
        if l[3:4] != b"-":
            assert l.startswith(code), (line, l)
            return

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] * 1000

async def main():
    ir, iw = await asyncio.open_connection("127.0.0.1", imap_port)
    await ir.readline()
    iw.write(b"a LOGIN lat@example.test pw\r\n"); await until(ir, b"a ")
    iw.write(b"b SELECT INBOX\r\n"); await until(ir, b"b ")
    iw.write(b"c IDLE\r\n")
    while not (await ir.readline()).startswith(b"+"):
        pass
    sr, sw = await asyncio.open_connection("127.0.0.1", smtp_port)
    await sr.readline()
    await smtp_cmd(sr, sw, b"EHLO bench", b"250")
    lat = []
    for n in range(1, count + 1):
        await smtp_cmd(sr, sw, b"MAIL FROM:<bench@example.test>", b"250")
        await smtp_cmd(sr, sw, b"RCPT TO:<lat@example.test>", b"250")
        await smtp_cmd(sr, sw, b"DATA", b"354")
        sw.write(b"Subject: probe %d\r\n\r\nlatency probe\r\n" % n)
        t = time.perf_counter()
        await smtp_cmd(sr, sw, b".", b"250")
        want = b"* %d EXISTS\r\n" % n
        while True:
            line = await asyncio.wait_for(ir.readline(), 10)
            if line == want:
                break
        lat.append(time.perf_counter() - t)
    print(f"  end of DATA to EXISTS on the other node: p50 {pct(lat, 0.5):.2f} ms  "
          f"p99 {pct(lat, 0.99):.2f} ms  max {max(lat) * 1000:.2f} ms  ({len(lat)} messages)")

asyncio.run(main())
PY
stop_nodes
echo "  node-a store: $(commits node-a)"
echo "  node-b store: $(commits node-b)"
awk -v s="${smtp_rates[sqlite]}" -v p="${smtp_rates[postgres]}" -v t="$two" \
  'BEGIN{printf "SMTP ratios: one node postgres/sqlite = %.2f, two nodes postgres/sqlite = %.2f\n", p/s, t/s}'
