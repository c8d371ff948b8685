#!/usr/bin/env bash
# IMAP load benchmark: sessions per second, MB/s served, and RSS per idle
# (IDLEing) session.
#
# Starts the release binary on a fresh data directory, fills alice's INBOX
# with MSGS messages (APPEND), then runs CLIENTS concurrent clients for
# SECS seconds, each looping: LOGIN, SELECT INBOX, FETCH 1:* (FLAGS
# RFC822.SIZE ENVELOPE), FETCH of BODIES bodies, STORE +FLAGS, APPEND,
# LOGOUT. Then opens IDLE_CONNS sessions that log in, select and IDLE, and
# reports the server's memory (PSS) growth per session, at each count of IDLE_CONNS
# (default "1000 10000"). PEER=dovecot runs the same load against
# ../shared/peers/dovecot-start.sh (users alice and bob; its RSS is the sum
# over all its processes, one per IMAP session; at most 1000 sessions with
# the peer's process limit).
#
# usage: bench/imap.sh [MSGS] [CLIENTS] [SECS]     defaults: 1000 8 10
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-1000}; CLIENTS=${2:-8}; SECS=${3:-10}
PORT=${BENCH_PORT:-1153}
IDLE_CONNS=${IDLE_CONNS:-1000 10000}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
BODIES=${BODIES:-20}
# 10 000 idle sessions need that many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${PEER:-}" = dovecot ]; then
  "$PEERS/peers-clean.sh" mail >/dev/null 2>&1 || true
  "$PEERS/dovecot-start.sh" >/dev/null
  PORT=${PEER_IMAP_PORT:-1144}
  pid=0
  IDLE_CONNS=${IDLE_CONNS_PEER:-1000}
  trap '"$PEERS/dovecot-stop.sh" >/dev/null 2>&1 || true' EXIT
  echo "== dovecot (127.0.0.1:$PORT)"
else
if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
work=$(mktemp -d "$PWD/target/bench-imap.XXXXXX")
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
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
"$BIN" --config "$work/mailroom.toml" --create-data-dir user add alice@example.test --password secret >/dev/null
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
echo "== mailroom (127.0.0.1:$PORT)"
fi

python3 - "$PORT" "$MSGS" "$CLIENTS" "$SECS" "$BODIES" "$pid" "$IDLE_CONNS" <<'PY'
import imaplib, os, socket, sys, threading, time
port, msgs, clients, secs, bodies, pid = (int(x) for x in sys.argv[1:7])
idle_counts = [int(x) for x in sys.argv[7].split()]

DOVECOT = {"dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats", "dict"}

def rss_of(p):
    """Proportional set size in KiB: shared pages (Dovecot's processes
    share their libraries) are divided among the processes that map them,
    so a sum over processes is not inflated."""
    try:
        with open(f"/proc/{p}/smaps_rollup") as f:
            for l in f:
                if l.startswith("Pss:"):
                    return int(l.split()[1])
    except OSError:
        pass
    return 0

def rss():
    """KiB (PSS): the server process, or every Dovecot process."""
    if pid:
        return rss_of(pid)
    total = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() in DOVECOT:
                        total += rss_of(p)
            except OSError:
                pass
    return total

msg = (b"From: Bench <bench@example.test>\r\nTo: alice@example.test\r\n"
       b"Subject: benchmark message %d\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
       b"Message-ID: <b%d@example.test>\r\n\r\n" + b"lorem ipsum dolor sit amet\r\n" * 150)
M = imaplib.IMAP4("127.0.0.1", port)
M.login("alice", "secret")
t0 = time.time()
for i in range(msgs):
    M.append("INBOX", None, None, msg % (i, i))
print(f"filled INBOX with {msgs} messages of ~{len(msg)} octets in {time.time()-t0:.1f}s")
M.logout()

class Counting(imaplib.IMAP4):
    received = 0
    def _get_line(self):
        line = super()._get_line()
        Counting.received += len(line) + 2
        return line
    def read(self, size):
        data = super().read(size)
        Counting.received += len(data)
        return data

lock = threading.Lock()
sessions = 0
stop = time.time() + secs
def worker():
    global sessions
    while time.time() < stop:
        C = Counting("127.0.0.1", port)
        C.login("alice", "secret")
        C.select("INBOX")
        C.fetch("1:*", "(FLAGS RFC822.SIZE ENVELOPE)")
        C.fetch(f"1:{bodies}", "(BODY.PEEK[])")
        C.store("1", "+FLAGS", "(\\Flagged)")
        C.append("Drafts", None, None, b"Subject: bench\r\n\r\nx\r\n")
        C.logout()
        with lock:
            sessions += 1
threads = [threading.Thread(target=worker) for _ in range(clients)]
t0 = time.time()
for t in threads: t.start()
for t in threads: t.join()
el = time.time() - t0
print(f"{clients} clients, {el:.1f}s: {sessions} sessions = {sessions/el:.1f} sessions/s, "
      f"{Counting.received/el/1e6:.1f} MB/s received "
      f"(each: LOGIN SELECT FETCH 1:{msgs} ENVELOPE, {bodies} bodies, STORE, APPEND, LOGOUT)")

before = rss()
socks = []
for target in idle_counts:
    while len(socks) < target:
        s = socket.create_connection(("127.0.0.1", port))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
        while not f.readline().startswith(b"+ idling"):
            pass
        socks.append((s, f))
    time.sleep(2)
    during = rss()
    print(f"PSS: {before} KiB before, {during} KiB with {target} idling sessions = "
          f"{(during-before)/target:.1f} KiB per idle session")
for s, f in socks:
    s.close()
PY
