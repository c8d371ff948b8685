#!/usr/bin/env bash
# FETCH of the structure and of one small part, and SEARCH BODY, of big
# multipart messages (issues 18 and 19: the streaming MIME scan and the
# stored part offsets): wall time, server CPU and the server's peak RSS
# per phase, COUNT messages of MIB MiB each (a small text part, a big
# base64 part, a small quoted-printable part), one client on a raw socket
# and CONC at once.
#
# Phases: BODYSTRUCTURE of each message (cold: nothing cached yet),
# BODY.PEEK[1] of each (the cached offsets), SEARCH BODY of a word in the
# last part of one message, and all of it again by CONC clients at once.
#
# usage: bench/imap_big_sections.sh [COUNT] [MIB] [CONC]   defaults: 6 20 6
#   MAILROOM_BIN=path measures that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-6}; MIB=${2:-20}; CONC=${3:-6}
PORT=${BENCH_PORT:-1184}
need=$(( COUNT * MIB * 3 + 500 ))
free=$(df -Pm . | awk 'NR==2 {print $4}')
if [ "$free" -lt "$need" ]; then
  echo "need about $need MiB free here, have $free" >&2; exit 1
fi
if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-bigsections.XXXXXX")
pid=0
trap '[ "$pid" != 0 ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
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
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML
"$BIN" --config "$work/mailroom.toml" --create-data-dir user add alice@example.test \
  --password secret >/dev/null
"$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

python3 -u - "$PORT" "$COUNT" "$MIB" "$CONC" "$pid" <<'PY'
import os, random, socket, sys, threading, time
port, count, mib, conc, pid = (int(x) for x in sys.argv[1:6])
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def hwm():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024

class Client:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        self.buf = self.buf.split(b"\r\n", 1)[1]
        self.command(b"LOGIN alice secret", b"l")
    def command(self, line, tag, literal=None):
        self.s.sendall(tag + b" " + line + b"\r\n")
        if literal is not None:
            while b"\r\n" not in self.buf:
                self.buf += self.s.recv(4096)
            self.buf = self.buf.split(b"\r\n", 1)[1]
            self.s.sendall(literal + b"\r\n")
        end = b"\r\n" + tag + b" "
        while True:
            hay = b"\r\n" + self.buf
            i = hay.find(end)
            j = hay.find(b"\r\n", i + 2) if i >= 0 else -1
            if j >= 0:
                reply, self.buf = hay[2:j + 2], hay[j + 2:]
                assert (tag + b" OK") in reply, reply[-300:]
                return reply
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buf += chunk

rng = random.Random(1)
alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
line = bytes(rng.choice(alphabet) for _ in range(76)) + b"\r\n"
big = line * (mib * 1024 * 1024 // len(line))
def message(n):
    return (b"From: <bob@other.test>\r\nTo: <alice@example.test>\r\nSubject: parts %d\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part of %d\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" % (n, n) + big +
            b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"the end: mark=\r\ner%d\r\n--b--\r\n" % n)

c = Client()
print(f"start: peak RSS {hwm()} MiB")
t0 = time.time()
for n in range(1, count + 1):
    m = message(n)
    c.command(b"APPEND INBOX {%d}" % len(m), b"a", m)
print(f"appended {count} x {len(message(1)) >> 20} MiB in {time.time()-t0:.1f}s: peak RSS {hwm()} MiB")
c.command(b"EXAMINE INBOX", b"e")

def phase(name, make):
    c0, w0 = cpu(), time.perf_counter()
    for n in range(1, count + 1):
        c.command(make(n), b"f")
    w1, c1 = time.perf_counter(), cpu()
    print(f"{name}, {count} messages one after the other: {(w1-w0)*1000:.0f} ms, "
          f"server CPU {(c1-c0)*1000:.0f} ms, peak RSS {hwm()} MiB")

phase("FETCH n BODYSTRUCTURE (cold)", lambda n: b"FETCH %d BODYSTRUCTURE" % n)
time.sleep(1)
phase("FETCH n BODY.PEEK[1]", lambda n: b"FETCH %d BODY.PEEK[1]" % n)
phase("SEARCH BODY markerN", lambda n: b"SEARCH BODY marker%d" % n)

def worker(k, out):
    d = Client()
    d.command(b"EXAMINE INBOX", b"e")
    for n in range(1, count + 1):
        d.command(b"FETCH %d (ENVELOPE BODYSTRUCTURE BODY.PEEK[1])" % n, b"f")
    d.command(b"SEARCH BODY marker%d" % (k % count + 1), b"s")
    out.append(k)
c0, w0, done = cpu(), time.perf_counter(), []
threads = [threading.Thread(target=worker, args=(k, done)) for k in range(conc)]
for t in threads: t.start()
for t in threads: t.join()
assert len(done) == conc
print(f"{conc} clients at once, each FETCH (ENVELOPE BODYSTRUCTURE BODY.PEEK[1]) of every "
      f"message and one SEARCH BODY: {(time.perf_counter()-w0)*1000:.0f} ms, "
      f"server CPU {(cpu()-c0)*1000:.0f} ms, peak RSS {hwm()} MiB")
PY
