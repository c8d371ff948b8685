#!/usr/bin/env bash
# FETCH of ENVELOPE and BODYSTRUCTURE over a whole mailbox (issue 18, the
# per-body cache): wall time and server CPU per `FETCH 1:* (ENVELOPE
# BODYSTRUCTURE)`, the first one (cold: nothing cached yet) and the mean
# of the REPEAT after it (warm), with one client on a raw socket so that
# the client's parsing is not what is measured.
#
# Starts the release binary on a fresh data directory and APPENDs MSGS
# multipart messages of ~12 KB (a text part, an HTML part, a base64
# attachment) to alice's INBOX. Server CPU is utime + stime of the server
# process from /proc, so other builders on the machine do not count.
#
# usage: bench/imap_fetch_structure.sh [MSGS] [REPEAT]   defaults: 2000 10
#   MAILROOM_BIN=path measures that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-2000}; REPEAT=${2:-10}
PORT=${BENCH_PORT:-1183}

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
mkdir -p target
work=$(mktemp -d "$PWD/target/bench-fetchstruct.XXXXXX")
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

python3 -u - "$PORT" "$MSGS" "$REPEAT" "$pid" <<'PY'
import base64, imaplib, os, socket, sys, time
port, msgs, repeat, pid = (int(x) for x in sys.argv[1:5])
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    """Seconds of CPU the server process has used (utime + stime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

attachment = base64.encodebytes(bytes(range(256)) * 24).replace(b"\n", b"\r\n")
msg = (b"From: Bench Sender <bench@example.test>\r\nTo: Alice <alice@example.test>, "
       b"team: bob@example.test, carol@example.test;\r\nCc: dave@example.test\r\n"
       b"Subject: benchmark message %d\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
       b"Message-ID: <b%d@example.test>\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
       b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
       b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
       + b"lorem ipsum dolor sit amet\r\n" * 60 +
       b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
       + b"<p>lorem ipsum dolor sit amet</p>\r\n" * 60 +
       b"--inner--\r\n--outer\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
       b"Content-Disposition: attachment; filename=a.bin\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment + b"--outer--\r\n")
M = imaplib.IMAP4("127.0.0.1", port)
M.login("alice", "secret")
t0 = time.time()
for i in range(msgs):
    M.append("INBOX", None, None, msg % (i, i))
print(f"filled INBOX with {msgs} messages of ~{len(msg)} octets in {time.time()-t0:.1f}s")
M.logout()

s = socket.create_connection(("127.0.0.1", port))
buf = b""
def command(line, tag):
    global buf
    s.sendall(tag + b" " + line + b"\r\n")
    end = b"\r\n" + tag + b" "
    while True:
        # The tagged line ends the reply; it may be the first line.
        hay = b"\r\n" + buf
        i = hay.find(end)
        j = hay.find(b"\r\n", i + 2) if i >= 0 else -1
        if j >= 0:
            reply, buf = hay[2:j + 2], hay[j + 2:]
            return reply
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit("server closed the connection")
        buf += chunk

buf = b""
while b"\r\n" not in buf:
    buf += s.recv(4096)
buf = buf.split(b"\r\n", 1)[1]
command(b"LOGIN alice secret", b"l")
command(b"EXAMINE INBOX", b"e")
def timed(tag):
    c0, t0 = cpu(), time.perf_counter()
    reply = command(b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)", tag)
    t1, c1 = time.perf_counter(), cpu()
    assert reply.count(b" FETCH (") == msgs, reply[-200:]
    return t1 - t0, c1 - c0, len(reply)
wall, used, size = timed(b"f0")
print(f"cold FETCH 1:{msgs} (ENVELOPE BODYSTRUCTURE): {wall*1000:.0f} ms, "
      f"server CPU {used*1000:.0f} ms, {size} octets")
# The first FETCH writes the cache in the background: let it land.
time.sleep(2)
walls, cpus = [], []
for k in range(repeat):
    wall, used, _ = timed(b"f%d" % (k + 1))
    walls.append(wall)
    cpus.append(used)
print(f"warm FETCH 1:{msgs} (ENVELOPE BODYSTRUCTURE), mean of {repeat}: "
      f"{sum(walls)/repeat*1000:.0f} ms (min {min(walls)*1000:.0f}), "
      f"server CPU {sum(cpus)/repeat*1000:.0f} ms")
PY
