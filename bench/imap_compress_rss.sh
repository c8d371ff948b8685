#!/usr/bin/env bash
# What COMPRESS=DEFLATE (RFC 4978) costs an idle session in memory: the
# server's VmRSS (/proc/PID/status) after SESSIONS sessions that LOGIN,
# SELECT INBOX, FETCH the mailbox's headers and then sit in IDLE, without
# compression and then (on a fresh server) with COMPRESS DEFLATE first.
# Reports the RSS growth per session of each and their difference: the
# cost of an idle compressed session.
#
# usage: bench/imap_compress_rss.sh [SESSIONS]   default: 200
# env: MAILROOM_BIN (a built binary instead of building this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${1:-200}
PORT=${BENCH_PORT:-1156}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-compress-rss.XXXXXX")
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
listen = []
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

for mode in plain compress; do
  rm -rf "$work/data"
  "$BIN" --config "$work/mailroom.toml" --create-data-dir \
    user add alice@example.test --password secret >/dev/null
  "$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  python3 - "$PORT" "$SESSIONS" "$pid" "$mode" <<'PY'
import socket, sys, time, zlib
port, n, pid, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.c = self.d = None
        self.buf = b""
        self.until(b"* OK")
    def send(self, data):
        if self.c:
            data = self.c.compress(data) + self.c.flush(zlib.Z_SYNC_FLUSH)
        self.s.sendall(data)
    def until(self, marker):
        while marker not in self.buf:
            chunk = self.s.recv(65536)
            assert chunk, "closed"
            self.buf += self.d.decompress(chunk) if self.d else chunk
        self.buf = b""
    def cmd(self, tag, text):
        self.send(tag + b" " + text + b"\r\n")
        self.until(b"\r\n" + tag + b" OK" if False else tag + b" OK")

seed = Conn()
seed.cmd(b"a", b"LOGIN alice secret")
for i in range(20):
    msg = b"Subject: message %d\r\nFrom: a@example.test\r\n\r\n" % i + b"lorem ipsum dolor sit amet\r\n" * 40
    seed.send(b"p%d APPEND INBOX {%d+}\r\n" % (i, len(msg)) + msg + b"\r\n")
    seed.until(b"p%d OK" % i)
seed.cmd(b"z", b"LOGOUT")
time.sleep(0.5)
base = rss_kib()
conns = []
for i in range(n):
    c = Conn()
    c.cmd(b"a", b"LOGIN alice secret")
    if mode == "compress":
        c.cmd(b"c", b"COMPRESS DEFLATE")
        c.c = zlib.compressobj(6, zlib.DEFLATED, -15)
        c.d = zlib.decompressobj(-15)
    c.cmd(b"s", b"SELECT INBOX")
    c.cmd(b"f", b"FETCH 1:* (FLAGS BODY.PEEK[HEADER])")
    c.send(b"i IDLE\r\n")
    c.until(b"+ ")
    conns.append(c)
time.sleep(1)
after = rss_kib()
print(f"{mode}: {n} idle sessions: VmRSS {base} -> {after} KiB, {(after - base) / n:.1f} KiB per session")
PY
  kill $pid; wait $pid 2>/dev/null || true; pid=0
done
