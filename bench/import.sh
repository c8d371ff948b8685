#!/usr/bin/env bash
# Import/export benchmark (issue 20): a generated MSGS-message mboxrd file
# (BYTES octets each) is imported with `mailroom import`, then exported as
# Maildir and as mbox, each under /usr/bin/time -v: wall time, messages
# per second and the process's peak RSS (the figure that shows memory stays
# bounded whatever the input's size). No server needs to run; the store
# commits with fsync as in production.
#
# usage: bench/import.sh [MSGS] [BYTES]     defaults: 100000 2048
#   MAILROOM_BIN=path benchmarks that binary instead of building this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
MSGS=${1:-100000}; BYTES=${2:-2048}
if [ -z "${MAILROOM_BIN:-}" ]; then
  cargo build --release -q -p mailroom
  MAILROOM_BIN=target/release/mailroom
fi
BIN=$(readlink -f "$MAILROOM_BIN")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/mailroom.toml" <<CONF
data_dir = "data"
domains = ["example.test"]
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
CONF
M="$BIN --config $WORK/mailroom.toml"
$M --create-data-dir user add alice@example.test --password secret >/dev/null

python3 - "$WORK/in.mbox" "$MSGS" "$BYTES" <<'PY'
import sys
out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 2)[:70] + "\n"
with open(out, "w") as f:
    for i in range(n):
        head = (f"From MAILER-DAEMON Mon Jan  2 15:04:05 2006\n"
                f"From: bob@example.test\nTo: alice@example.test\n"
                f"Subject: message {i}\nMessage-ID: <{i}@bench.test>\n\n")
        body = line * max(1, (size - len(head)) // len(line))
        f.write(head + body + "\n")
PY
echo "input: $MSGS messages, $(du -h "$WORK/in.mbox" | cut -f1) mbox"

# run LABEL CMD...: prints wall time, messages/s and peak RSS.
run() {
  local label=$1; shift
  /usr/bin/time -v "$@" > "$WORK/out" 2> "$WORK/time" || { cat "$WORK/out" "$WORK/time"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$WORK/time")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time")
  local secs
  secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  awk -v l="$label" -v s="$secs" -v n="$MSGS" -v r="$rss" \
    'BEGIN{printf "%-16s %8.1f s  %8.0f msg/s  peak RSS %6.1f MiB\n", l, s, n/s, r/1024}'
  tail -1 "$WORK/out"
}

run "import mbox" $M import alice "$WORK/in.mbox"
run "export maildir" $M export alice "$WORK/maildir"
run "export mbox" $M export alice "$WORK/mbox" --format mbox
rm -rf "$WORK/data/"*.db* ; $M --create-data-dir user add alice@example.test --password secret >/dev/null
run "import maildir" $M import alice "$WORK/maildir"
