#!/usr/bin/env bash
# Delivery-to-EXISTS CPU: what one delivered message costs the server when
# many sessions sit in IDLE on the mailbox it lands in, and whether that
# cost grows with the mailbox's size (it should not: each session reads
# only what changed, not the whole mailbox).
#
# For each mailbox size in SIZES: starts the release binary on a fresh
# data directory, fills alice's INBOX with that many messages (APPEND,
# 8 connections), opens IDLE_SESSIONS sessions that LOGIN, SELECT INBOX and
# IDLE, then delivers DELIVERIES messages over SMTP one at a time, each
# time waiting until every session has its `* N EXISTS`. Reports the
# server's CPU seconds (user + system, from /proc/PID/stat) per delivered
# message over that phase, and the wall time until the last session saw
# each EXISTS.
#
# usage: bench/imap_idle_cpu.sh [IDLE_SESSIONS] [DELIVERIES]   defaults: 1000 20
# env: SIZES ("1000 10000"), MAILROOM_BIN (a built binary instead of
# building this tree: e.g. main's, for a before/after comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${1:-1000}; DELIVERIES=${2:-20}
SIZES=${SIZES:-1000 10000}
PORT=${BENCH_PORT:-1154}; SMTP_PORT=${BENCH_SMTP_PORT:-2554}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-idle-cpu.XXXXXX")
pid=0
trap '[ "$pid" != 0 ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
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
[imap]
listen = ["127.0.0.1:$PORT"]
tls_listen = []
max_connections = 100000
max_connections_per_ip = 100000
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML

echo "== $BIN: $IDLE idle sessions, $DELIVERIES deliveries per size"
for size in $SIZES; do
  rm -rf "$work/data"
  "$BIN" --config "$work/mailroom.toml" --create-data-dir \
    user add alice@example.test --password secret >/dev/null
  "$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  python3 - "$PORT" "$SMTP_PORT" "$size" "$IDLE" "$DELIVERIES" "$pid" <<'PY'
import asyncio, imaplib, os, smtplib, sys, threading, time
port, smtp_port, size, idle, deliveries, pid = (int(x) for x in sys.argv[1:7])
TICK = os.sysconf("SC_CLK_TCK")

def cpu():
    """Server CPU seconds so far: utime + stime (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK

msg = (b"From: Bench <bench@example.test>\r\nTo: alice@example.test\r\n"
       b"Subject: message %d\r\n\r\n" + b"lorem ipsum dolor sit amet\r\n" * 20)

def fill(lo, hi):
    M = imaplib.IMAP4("127.0.0.1", port)
    M.login("alice", "secret")
    for i in range(lo, hi):
        M.append("INBOX", None, None, msg % i)
    M.logout()

t0 = time.time()
step = (size + 7) // 8
threads = [threading.Thread(target=fill, args=(lo, min(lo + step, size)))
           for lo in range(0, size, step)]
for t in threads: t.start()
for t in threads: t.join()
print(f"  {size} messages: filled in {time.time() - t0:.1f}s", flush=True)

exists = []

async def session(i, ready):
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await r.readline()
    async def until(tag):
        while True:
            line = await r.readline()
            if not line:
                raise SystemExit(f"session {i}: connection closed")
            if line.startswith(tag):
                return line
    w.write(b"a LOGIN alice secret\r\n"); await until(b"a ")
    w.write(b"b SELECT INBOX\r\n"); await until(b"b OK")
    w.write(b"c IDLE\r\n"); await until(b"+")
    ready.release()
    while True:
        line = await r.readline()
        if not line:
            return
        parts = line.split()
        if len(parts) == 3 and parts[2] == b"EXISTS":
            exists[i] = int(parts[1])

async def main():
    global exists
    exists = [size] * idle
    ready = asyncio.Semaphore(0)
    t0 = time.time()
    tasks = []
    for i in range(idle):
        tasks.append(asyncio.create_task(session(i, ready)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    for _ in range(idle):
        await ready.acquire()
    print(f"  {idle} sessions in IDLE after {time.time() - t0:.1f}s", flush=True)
    await asyncio.sleep(1)
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    c0, t0 = cpu(), time.time()
    lat = []
    for d in range(deliveries):
        t = time.time()
        await asyncio.to_thread(s.sendmail, "bench@example.test", ["alice@example.test"],
                                msg % (size + d))
        want = size + d + 1
        while min(exists) < want:
            await asyncio.sleep(0.002)
        lat.append(time.time() - t)
    c1, t1 = cpu(), time.time()
    s.quit()
    per = (c1 - c0) / deliveries
    lat.sort()
    print(f"  mailbox of {size}: {per * 1000:.1f} ms server CPU per delivered message "
          f"({c1 - c0:.2f}s for {deliveries}); delivery to the last EXISTS: "
          f"median {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms", flush=True)
    for t in tasks: t.cancel()

asyncio.run(main())
PY
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; pid=0
done
