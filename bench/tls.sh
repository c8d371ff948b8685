#!/usr/bin/env bash
# TLS benchmark: full handshakes per second on the IMAPS port, and memory
# (PSS) per idle IMAPS session in IDLE.
#
# Handshakes: CLIENTS processes loop for SECS seconds, each connecting,
# completing a full TLS handshake (no resumption), reading the greeting and
# closing; the server's CPU time per handshake is reported too, since the
# clients share the machine's cores and bound the rate. Idle: IDLE_CONNS (default "1000 10000") sessions that handshake,
# LOGIN, SELECT INBOX and IDLE; the server's PSS growth per session is
# reported at each count.
#
# PEER=dovecot runs the same against ../shared/peers/dovecot-start.sh with
# PEER_TLS=1 (imaps on 1994, an RSA-2048 certificate; Dovecot's memory is
# the sum over its processes, one per session; at most 1000 sessions with
# the peer's process limit). CERT=peer makes mailroom serve that same
# RSA-2048 certificate, so the handshake figures compare like with like;
# by default it serves its own self-signed ECDSA P-256 one.
#
# usage: bench/tls.sh [SECS] [CLIENTS]     defaults: 10 2
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}; CLIENTS=${2:-2}
PORT=${BENCH_PORT:-1193}
IDLE_CONNS=${IDLE_CONNS:-1000 10000}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
PEER_TLS_DIR=${PEER_TLS_DIR:-/opt/peers/tls}
# 10 000 idle sessions need that many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${PEER:-}" = dovecot ]; then
  "$PEERS/peers-clean.sh" mail >/dev/null 2>&1 || true
  PEER_TLS=1 "$PEERS/dovecot-start.sh" >/dev/null
  PORT=${PEER_IMAPS_PORT:-1994}
  pid=0
  IDLE_CONNS=${IDLE_CONNS_PEER:-1000}
  trap '"$PEERS/dovecot-stop.sh" >/dev/null 2>&1 || true' EXIT
  echo "== dovecot imaps (127.0.0.1:$PORT)"
else
  if [ -n "${MAILROOM_BIN:-}" ]; then
    BIN=$MAILROOM_BIN
  else
    cargo build --release -q -p mailroom
    BIN=$PWD/target/release/mailroom
  fi
  work=$(mktemp -d "$PWD/target/bench-tls.XXXXXX")
  trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
  tls=""
  if [ "${CERT:-}" = peer ]; then
    tls="cert = \"$PEER_TLS_DIR/cert.pem\"
key = \"$PEER_TLS_DIR/key.pem\""
  fi
  cat > "$work/mailroom.toml" <<TOML
hostname = "bench.example.test"
domains = ["example.test"]
data_dir = "data"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[tls]
$tls
[smtp]
listen = []
submission = []
submissions = []
[imap]
listen = []
tls_listen = ["127.0.0.1:$PORT"]
max_connections = 100000
max_connections_per_ip = 100000
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML
  # Only `serve` creates a missing data directory (SPEC 7); make it as an
  # installer would, so the CLI can add the user first.
  mkdir -p -m 700 "$work/data"
  "$BIN" --config "$work/mailroom.toml" user add alice@example.test --password secret >/dev/null
  "$BIN" --config "$work/mailroom.toml" serve 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  echo "== mailroom imaps (127.0.0.1:$PORT, certificate: ${CERT:-own ECDSA P-256})"
fi

python3 - "$PORT" "$SECS" "$CLIENTS" "$pid" "$IDLE_CONNS" <<'PY'
import multiprocessing, os, socket, ssl, sys, time
port, secs, clients, pid = (int(x) for x in sys.argv[1:5])
idle_counts = [int(x) for x in sys.argv[5].split()]

DOVECOT = {"dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats", "dict"}

def pss_of(p):
    """Proportional set size in KiB, so Dovecot's shared pages are not
    counted once per process."""
    try:
        with open(f"/proc/{p}/smaps_rollup") as f:
            for l in f:
                if l.startswith("Pss:"):
                    return int(l.split()[1])
    except OSError:
        pass
    return 0

def pss():
    if pid:
        return pss_of(pid)
    total = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() in DOVECOT:
                        total += pss_of(p)
            except OSError:
                pass
    return total

def cpu_seconds():
    """User+system CPU of the server (every Dovecot process for the peer)."""
    tick = os.sysconf("SC_CLK_TCK")
    def of(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return 0.0
    if pid:
        return of(pid)
    total = 0.0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() in DOVECOT:
                        total += of(p)
            except OSError:
                pass
    return total

def context():
    # Throughput, not trust: the same for both servers.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx

def handshakes(q):
    ctx = context()
    n, stop = 0, time.time() + secs
    while time.time() < stop:
        raw = socket.create_connection(("127.0.0.1", port))
        s = ctx.wrap_socket(raw)   # a new context per process: no resumption
        s.recv(512)                # the greeting
        s.close()
        n += 1
    q.put(n)

q = multiprocessing.Queue()
procs = [multiprocessing.Process(target=handshakes, args=(q,)) for _ in range(clients)]
t0, c0 = time.time(), cpu_seconds()
for p in procs: p.start()
total = sum(q.get() for _ in procs)
for p in procs: p.join()
el, cpu = time.time() - t0, cpu_seconds() - c0
# The clients share the two cores: server CPU per handshake is the figure
# that does not depend on how fast the client side is.
print(f"{clients} clients, {el:.1f}s: {total} full handshakes = {total/el:.0f} handshakes/s, "
      f"server CPU {cpu*1e6/max(total,1):.0f} us per handshake")
s = context().wrap_socket(socket.create_connection(("127.0.0.1", port)))
print(f"negotiated: {s.version()} {s.cipher()[0]}")
s.close()

ctx = context()
before = pss()
socks = []
for target in idle_counts:
    while len(socks) < target:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
        while not f.readline().startswith(b"+ idling"):
            pass
        socks.append((s, f))
    time.sleep(2)
    during = pss()
    print(f"PSS: {before} KiB before, {during} KiB with {target} idling TLS sessions = "
          f"{(during-before)/target:.1f} KiB per idle TLS session")
for s, f in socks:
    s.close()
PY
