#!/usr/bin/env python3
"""Load for bench/bigmsg.sh: big messages in, then out (issue 19).

usage: bigmsg_load.py smtp|append|pop3|imap HOST_PORT COUNT MIB CONCURRENCY

smtp/append send COUNT messages of MIB MiB each (alice's over SMTP, bob's
over IMAP APPEND), CONCURRENCY at a time; pop3/imap read them back (RETR,
FETCH BODY.PEEK[]) and check each against what was sent. Prints one line:
phase, messages, seconds, MiB/s.
"""
import hashlib
import imaplib
import poplib
import random
import smtplib
import sys
import threading
import time


def message(seed, mib):
    rnd = random.Random(seed)
    head = (f"From: <bob@other.test>\r\nTo: <alice@example.test>\r\n"
            f"Subject: big {seed}\r\n\r\n").encode()
    text = bytes(rnd.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                 for _ in range(76))
    body = bytearray(head)
    n = 0
    while len(body) < mib << 20:
        # Lines rotate (the content varies), and one in 1000 starts with a
        # dot (stuffing is exercised).
        dot = b"." if n % 1000 == 0 else b""
        body += dot + text[n % 7:] + text[:n % 7] + b"\r\n"
        n += 1
    return bytes(body)


def run(count, conc, work):
    todo = list(range(count))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            try:
                work(i)
            except Exception as e:  # reported, and the bench fails
                errors.append(f"{i}: {e!r}")

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("errors: " + "; ".join(errors[:5]))


def main():
    phase, port, count, mib, conc = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
    digests = {}

    def smtp(i):
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as s:
            s.sendmail("bob@other.test", ["alice@example.test"], message(i, mib))

    def append(i):
        m = imaplib.IMAP4("127.0.0.1", port, timeout=600)
        m.login("bob", "secret")
        typ, _ = m.append("INBOX", None, None, message(100000 + i, mib))
        assert typ == "OK", typ
        m.logout()

    def pop3(i):
        p = poplib.POP3("127.0.0.1", port, timeout=600)
        p.user("alice")
        p.pass_("secret")
        _, lines, _ = p.retr(i + 1)
        got = b"\r\n".join(lines) + b"\r\n"
        seed = int(got.split(b"Subject: big ", 1)[1].split(b"\r\n", 1)[0])
        want = message(seed, mib)
        if not got.endswith(want):
            at = next((k for k in range(1, min(len(got), len(want)) + 1)
                       if got[-k] != want[-k]), 0)
            raise AssertionError(f"message {i + 1} differs: {len(got)} octets for "
                                 f"{len(want)}, first difference {at} from the end: "
                                 f"{got[-at - 40:-at + 40]!r} for {want[-at - 40:-at + 40]!r}")
        p.quit()

    def imap(i):
        m = imaplib.IMAP4("127.0.0.1", port, timeout=600)
        m.login("bob", "secret")
        m.select("INBOX", readonly=True)
        typ, data = m.fetch(str(i + 1), "(BODY.PEEK[])")
        got = data[0][1]
        seed = int(got.split(b"Subject: big ", 1)[1].split(b"\r\n", 1)[0])
        assert hashlib.sha256(got).digest() == hashlib.sha256(message(seed, mib)).digest()
        m.logout()

    work = {"smtp": smtp, "append": append, "pop3": pop3, "imap": imap}[phase]
    start = time.time()
    run(count, conc, work)
    secs = time.time() - start
    print(f"{phase:6} {count} x {mib} MiB, {conc} at a time: {secs:.1f} s, "
          f"{count * mib / secs:.1f} MiB/s")


if __name__ == "__main__":
    main()
