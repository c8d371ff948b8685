"""Load generator for bench/pop3.sh (standard library only).

fill PORT MSGS BYTES        deliver MSGS messages to alice over SMTP
run PORT CLIENTS ROUNDS WINDOW
                            CLIENTS concurrent POP3 clients, each doing
                            ROUNDS sessions of login, STAT, RETR of every
                            message (WINDOW RETRs in flight), QUIT
idle PORT N SECONDS         N logged-in sessions kept idle for SECONDS
"""
import asyncio
import smtplib
import sys
import threading
import time


def fill(port, msgs, size):
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    def worker(start, count):
        s = smtplib.SMTP("127.0.0.1", port, timeout=60)
        for i in range(start, start + count):
            msg = f"Subject: bench {i}\r\nFrom: b@remote.test\r\n\r\n{body}"
            s.sendmail("b@remote.test", ["alice@example.test"], msg)
        s.quit()
    threads, per = [], (msgs + 7) // 8
    for start in range(0, msgs, per):
        t = threading.Thread(target=worker, args=(start, min(per, msgs - start)))
        t.start()
        threads.append(t)
    t0 = time.monotonic()
    for t in threads:
        t.join()
    print(f"delivered {msgs} messages in {time.monotonic() - t0:.1f} s")


async def line(reader):
    data = await reader.readline()
    if not data.startswith(b"+OK"):
        raise RuntimeError(f"unexpected: {data!r}")
    return data


async def session(port, window):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await line(reader)
    writer.write(b"USER alice\r\nPASS secret\r\nSTAT\r\n")
    await line(reader)
    await line(reader)
    count = int((await line(reader)).split()[1])
    received = 0
    sent = 1
    done = 0
    while sent <= min(window, count):
        writer.write(b"RETR %d\r\n" % sent)
        sent += 1
    tail = b""
    while done < count:
        chunk = await reader.read(1 << 18)
        if not chunk:
            raise RuntimeError("closed")
        received += len(chunk)
        data = tail + chunk
        ended = data.count(b"\r\n.\r\n")
        tail = data[-4:]
        # A terminator split across chunks is counted once: drop the
        # part of the tail already counted.
        if ended and data.endswith(b"\r\n.\r\n"):
            tail = b""
        done += ended
        more = b""
        while sent <= count and sent - done <= window:
            more += b"RETR %d\r\n" % sent
            sent += 1
        if more:
            writer.write(more)
    writer.write(b"QUIT\r\n")
    await line(reader)
    writer.close()
    return received


async def client(port, rounds, window, totals):
    for _ in range(rounds):
        totals.append(await session(port, window))


async def run(port, clients, rounds, window):
    totals = []
    t0 = time.monotonic()
    await asyncio.gather(*(client(port, rounds, window, totals) for _ in range(clients)))
    dt = time.monotonic() - t0
    n, octets = len(totals), sum(totals)
    print(f"{n} sessions in {dt:.2f} s = {n / dt:.2f} sessions/s, "
          f"{octets / 1e6:.1f} MB = {octets / 1e6 / dt:.1f} MB/s")


async def idle(port, n, seconds):
    conns = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await line(reader)
        writer.write(b"USER alice\r\nPASS secret\r\n")
        await line(reader)
        await line(reader)
        conns.append(writer)
    await asyncio.sleep(seconds)
    for w in conns:
        w.close()


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    args = [int(a) for a in sys.argv[3:]]
    if cmd == "fill":
        fill(port, *args)
    elif cmd == "run":
        asyncio.run(run(port, *args))
    elif cmd == "idle":
        asyncio.run(idle(port, *args))
    else:
        raise SystemExit(__doc__)


main()
