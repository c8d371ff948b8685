#!/usr/bin/env bash
# Import of big messages (issue 19): MSGS messages of MIB MiB each, as a
# Maildir and as an mboxrd file, imported with `mailroom import` under
# /usr/bin/time -v: wall time and the process's peak RSS, the figure that
# shows a big message is spooled and copied in chunks, never held whole
# (before issue 19 it was read whole, several times over). A second run
# of each must import nothing again (dedup by digest).
#
# usage: bench/import_big.sh [MSGS] [MIB]     defaults: 10 20
#   MAILROOM_BIN=path benchmarks that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-10}; MIB=${2:-20}
if [ -z "${MAILROOM_BIN:-}" ]; then
  cargo build --release -q -p mailroom
  MAILROOM_BIN=target/release/mailroom
fi
BIN=$(readlink -f "$MAILROOM_BIN")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The inputs twice over, the store (about 2x, with its WAL) and the spool.
NEED_KIB=$(( MSGS * MIB * 1024 * 5 ))
FREE_KIB=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
if [ "$FREE_KIB" -lt "$NEED_KIB" ]; then
  echo "need $((NEED_KIB >> 10)) MiB free in $WORK, have $((FREE_KIB >> 10))" >&2
  exit 1
fi
cat > "$WORK/mailroom.toml" <<CONF
data_dir = "data"
domains = ["example.test"]
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
CONF
M="$BIN --config $WORK/mailroom.toml"
$M --create-data-dir user add alice@example.test --password secret >/dev/null

python3 - "$WORK" "$MSGS" "$MIB" <<'PY'
import os, sys
work, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 2)[:70] + "\n"
os.makedirs(f"{work}/maildir/cur"); os.makedirs(f"{work}/maildir/new")
with open(f"{work}/in.mbox", "w") as mbox:
    for i in range(n):
        head = (f"From: bob@example.test\nTo: alice@example.test\n"
                f"Subject: big {i}\nMessage-ID: <big{i}@bench.test>\n\n")
        body = (f"{i} " + line) * (mib * 1024 * 1024 // (len(line) + 2))
        with open(f"{work}/maildir/cur/{1700000000 + i}.M{i}P1.bench:2,S", "w") as f:
            f.write(head + body)
        mbox.write("From MAILER-DAEMON Mon Jan  2 15:04:05 2006\n" + head
                   + body.replace("\nFrom ", "\n>From ") + "\n")
PY
echo "input: $MSGS messages of $MIB MiB, $(du -sh "$WORK/maildir" | cut -f1) Maildir, $(du -h "$WORK/in.mbox" | cut -f1) mbox"

# run LABEL CMD...: prints wall time and peak RSS, then the command's line.
run() {
  local label=$1; shift
  /usr/bin/time -v "$@" > "$WORK/out" 2> "$WORK/time" || { cat "$WORK/out" "$WORK/time"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$WORK/time")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time")
  printf "%-22s %10s wall  peak RSS %6.1f MiB   %s\n" "$label" "$wall" "$(echo "$rss" | awk '{print $1/1024}')" "$(tail -1 "$WORK/out")"
}

run "import maildir" $M import alice "$WORK/maildir"
run "import maildir again" $M import alice "$WORK/maildir"
run "import mbox" $M import alice "$WORK/in.mbox" --folder Mbox
run "import mbox again" $M import alice "$WORK/in.mbox" --folder Mbox
left=$( (find "$WORK/data/spool" -type f 2>/dev/null || true) | wc -l)
echo "spool files left: $left"
