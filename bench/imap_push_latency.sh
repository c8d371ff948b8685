#!/usr/bin/env bash
# Push latency with many idle sessions (issue 15): USERS users each have one
# session in IDLE on their INBOX; then, one at a time, COUNT messages are
# delivered over SMTP to random users and COUNT SEND transactions go to
# random users (a different one each time: at most one ALERT per user per
# second). For each, the time from the client's end of DATA (".") to the
# moment the target session reads its `* N EXISTS` (delivery) or its
# `* OK [ALERT]` (SEND); reports p50, p99 and max of both, and checks that
# no other session heard anything.
#
# usage: bench/imap_push_latency.sh [USERS] [COUNT]     defaults: 1000 200
# env: MAILROOM_BIN (a built binary instead of building this tree)
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${1:-1000}; COUNT=${2:-200}
PORT=${BENCH_PORT:-1164}; SMTP_PORT=${BENCH_SMTP_PORT:-2564}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-push.XXXXXX")
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

"$BIN" --config "$work/mailroom.toml" --create-data-dir \
  user add u0@example.test --password pw >/dev/null
for i in $(seq 1 $((USERS - 1))); do
  "$BIN" --config "$work/mailroom.toml" user add "u$i@example.test" --password pw >/dev/null
done
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
kill -0 $pid 2>/dev/null || { echo "server did not start:"; cat "$work/server.log"; exit 1; }
echo "== $BIN: $USERS users idling, $COUNT deliveries and $COUNT SENDs"
python3 - "$PORT" "$SMTP_PORT" "$USERS" "$COUNT" <<'PY'
import asyncio, random, sys, time
port, smtp_port, users, count = (int(x) for x in sys.argv[1:5])
random.seed(15)
waiters = {}        # user -> future resolved by the next EXISTS / ALERT
stray = []
failed = []

async def session(i, ready):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    await r.readline()
    async def until(tag, ok):
        while True:
            line = await r.readline()
            if not line:
                failed.append(f"session {i}: closed")
                ready.release()
                return False
            if line.startswith(tag):
                if line.startswith(ok):
                    return True
                failed.append(f"session {i}: {line!r}")
                ready.release()
                return False
    w.write(b"a LOGIN u%d pw\r\n" % i)
    if not await until(b"a ", b"a OK"):
        return
    w.write(b"b SELECT INBOX\r\n")
    if not await until(b"b ", b"b OK"):
        return
    w.write(b"c IDLE\r\n")
    if not await until(b"+", b"+"):
        return
    ready.release()
    while True:
        line = await r.readline()
        if not line:
            return
        if line.endswith(b" EXISTS\r\n") or line.startswith(b"* OK [ALERT]"):
            f = waiters.pop(i, None)
            if f is None:
                stray.append((i, line))
            else:
                f.set_result(time.perf_counter())

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
    ready = asyncio.Semaphore(0)
    t0 = time.time()
    tasks = []
    for i in range(users):
        tasks.append(asyncio.create_task(session(i, ready)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    for _ in range(users):
        await asyncio.wait_for(ready.acquire(), 120)
    if failed:
        raise SystemExit(f"{len(failed)} sessions failed, e.g. {failed[0]}")
    print(f"  {users} sessions in IDLE after {time.time() - t0:.1f}s", flush=True)
    await asyncio.sleep(1)
    r, w = await asyncio.open_connection("127.0.0.1", smtp_port)
    await r.readline()
    await smtp_cmd(r, w, b"EHLO bench", b"250")
    results = {}
    for verb in (b"MAIL", b"SEND"):
        lat = []
        targets = random.sample(range(users), count) if verb == b"SEND" else \
            [random.randrange(users) for _ in range(count)]
        for n, to in enumerate(targets):
            await smtp_cmd(r, w, verb + b" FROM:<bench@example.test>", b"250")
            await smtp_cmd(r, w, b"RCPT TO:<u%d@example.test>" % to, b"250")
            await smtp_cmd(r, w, b"DATA", b"354")
            fut = asyncio.get_running_loop().create_future()
            waiters[to] = fut
            w.write(b"Subject: bench %d\r\n\r\nlatency probe\r\n" % n)
            t = time.perf_counter()
            await smtp_cmd(r, w, b".", b"250")
            seen = await asyncio.wait_for(fut, 10)
            lat.append(seen - t)
        results[verb] = lat
    for verb, name in ((b"MAIL", "delivery-to-EXISTS"), (b"SEND", "SEND-to-ALERT")):
        lat = results[verb]
        print(f"  {name}: p50 {pct(lat, 0.5):.2f} ms  p99 {pct(lat, 0.99):.2f} ms  "
              f"max {max(lat) * 1000:.2f} ms  ({len(lat)} messages)")
    await asyncio.sleep(0.5)
    print(f"  stray EXISTS/ALERT in other sessions: {len(stray)}")
    for t in tasks:
        t.cancel()

asyncio.run(main())
PY
