#!/usr/bin/env bash
# SELECT, FETCH 1:* (FLAGS), FETCH 1:* (RFC822.SIZE) and STATUS SIZE on
# one big mailbox, mailroom against Dovecot
# in the same run (issue 18): wall time of each command as the client sees
# it, and the server's memory (PSS, KiB; Dovecot: the sum over all its
# processes, which share their libraries) before the login and after the
# FETCH, plus the peak RSS of the process that served the session.
#
# The mailbox is ../shared/peers/gen-mbox.py's (COUNT messages, seed 1),
# made once and kept under target/mbox/. mailroom gets it by `mailroom
# import` into alice's INBOX; Dovecot (../shared/peers/dovecot-start.sh,
# Maildir) gets the same messages as one file each in alice's
# Maildir/cur, so its first SELECT builds its index: the first session is
# reported apart from the second (warm) one on both servers.
#
# usage: bench/imap_big_mailbox.sh [COUNT]     default: 100000
#   MAILROOM_BIN=path measures that binary instead of building this checkout
#   PEER=0 skips Dovecot
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
PEERS=${PEERS:-$(cd .. && pwd)/shared/peers}
PORT=${BENCH_PORT:-1163}
mkdir -p target/mbox
MBOX=$PWD/target/mbox/gen-$COUNT.mbox
[ -s "$MBOX" ] || python3 "$PEERS/gen-mbox.py" "$MBOX" "$COUNT" 1 >/dev/null

if [ -n "${MAILROOM_BIN:-}" ]; then
  BIN=$MAILROOM_BIN
else
  cargo build --release -q -p mailroom
  BIN=$PWD/target/release/mailroom
fi
work=$(mktemp -d "$PWD/target/bench-big.XXXXXX")
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
[pop3]
listen = []
tls_listen = []
[admin]
listen = ""
TOML
M="$BIN --config $work/mailroom.toml"
$M --create-data-dir user add alice@example.test --password secret >/dev/null
t0=$(date +%s.%N)
$M import alice@example.test "$MBOX" --format mbox >/dev/null
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v n="$COUNT" 'BEGIN{printf "mailroom import: %d messages in %.1f s\n", n, b-a}'
$M serve 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

measure() { # name port pid(0 = every Dovecot process)
  python3 - "$@" <<'PY'
import imaplib, os, sys, time
name, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
DOVECOT = {"dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats", "dict"}
def field(p, f, key):
    try:
        with open(f"/proc/{p}/{f}") as fh:
            for l in fh:
                if l.startswith(key):
                    return int(l.split()[1])
    except OSError:
        pass
    return 0
def procs():
    if pid:
        return [pid]
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() in DOVECOT:
                        out.append(int(p))
            except OSError:
                pass
    return out
def pss():
    return sum(field(p, "smaps_rollup", "Pss:") for p in procs())
def session_hwm():
    # The process that served the session: the server itself, or
    # Dovecot's imap process with the highest peak.
    return max((field(p, "status", "VmHWM:") for p in procs()), default=0)
for run in ("first", "second"):
    before = pss()
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login("alice", "secret")
    t0 = time.time()
    typ, data = c.select("INBOX")
    t1 = time.time()
    typ2, rows = c.fetch("1:*", "(FLAGS)")
    t2 = time.time()
    typ3, sizes = c.fetch("1:*", "(RFC822.SIZE)")
    t3 = time.time()
    # STATUS SIZE (RFC 8438), where the server has it.
    try:
        c.status("INBOX", "(MESSAGES SIZE)")
        status = f"{time.time()-t3:.3f} s"
    except imaplib.IMAP4.error:
        status = "n/a"
    after = pss()
    hwm = session_hwm()
    c.logout()
    print(f"{name} {run}: SELECT {t1-t0:.3f} s ({int(data[0])} messages), "
          f"FETCH 1:* (FLAGS) {t2-t1:.3f} s ({len(rows)} responses), "
          f"FETCH 1:* (RFC822.SIZE) {t3-t2:.3f} s ({len(sizes)}), STATUS SIZE {status}, "
          f"PSS {before} -> {after} KiB, peak RSS of the serving process {hwm} KiB")
PY
}
measure mailroom "$PORT" "$pid"
kill -TERM $pid; wait $pid || true; pid=0

[ "${PEER:-1}" = 0 ] && exit 0
"$PEERS/peers-clean.sh" mail >/dev/null 2>&1 || true
"$PEERS/dovecot-start.sh" >/dev/null
trap '"$PEERS/dovecot-stop.sh" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
base=${PEER_MAILDIR_BASE:-/opt/peers/mail}/example.test/alice
mkdir -p "$base/cur" "$base/new" "$base/tmp"
python3 - "$MBOX" "$base/cur" <<'PY'
import mailbox, sys, time
src, cur = sys.argv[1], sys.argv[2]
now = int(time.time())
for i, m in enumerate(mailbox.mbox(src)):
    with open(f"{cur}/{now}.M{i}P1.bench:2,", "wb") as f:
        f.write(m.as_bytes().replace(b"\r\n", b"\n"))
PY
owner=$(stat -c %u:%g "$(dirname "$base")")
chown -R "$owner" "$base"
measure dovecot "${PEER_IMAP_PORT:-1144}" 0
"$PEERS/peers-clean.sh" mail >/dev/null 2>&1 || true
