"""asyncio echo server and load client for libeventpoll (loopback only, bounded).

server PORTFILE [SECONDS]  -- serve on 127.0.0.1 (port written to PORTFILE) for at most
                              SECONDS (default 120), or until a client sends b"QUIT\n".
client PORT CONNS ROUNDS   -- open CONNS connections at once, each sends ROUNDS lines and
                              checks every echo; prints a summary and "N passed, M failed"
                              (connections), exit 1 on any error.
"""
import asyncio
import os
import sys
import time


async def serve(portfile, seconds):
    stop = asyncio.Event()
    peak = 0
    live = 0

    async def handle(reader, writer):
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if line == b"QUIT\n":
                    stop.set()
                    break
                writer.write(line)
                await writer.drain()
        finally:
            live -= 1
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        print("server: time limit reached", file=sys.stderr)
    server.close()
    await server.wait_closed()
    print(f"server: peak concurrent connections {peak}")


async def client(port, conns, rounds):
    errors = []
    opened = asyncio.Event()
    ready = 0

    async def one(i):
        nonlocal ready
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 30)
        except Exception as e:  # noqa: BLE001 - every failure is counted
            errors.append(f"connect {i}: {e!r}")
            ready += 1
            if ready == conns:
                opened.set()
            return False
        ready += 1
        if ready == conns:
            opened.set()
        # Hold every connection open until all are connected: real concurrency.
        await asyncio.wait_for(opened.wait(), 60)
        try:
            for r in range(rounds):
                msg = f"conn {i} round {r} {'x' * (i % 50)}\n".encode()
                writer.write(msg)
                await writer.drain()
                got = await asyncio.wait_for(reader.readline(), 30)
                if got != msg:
                    errors.append(f"conn {i} round {r}: got {got!r}")
                    return False
            return True
        except Exception as e:  # noqa: BLE001
            errors.append(f"conn {i}: {e!r}")
            return False
        finally:
            writer.close()

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(conns)))
    dt = time.monotonic() - t0
    ok = sum(results)
    print(f"client: {conns} connections x {rounds} echoes in {dt:.2f} s, "
          f"{ok * rounds / dt:.0f} echoes/s, {len(errors)} errors")
    for e in errors[:10]:
        print("  " + e)
    # Ask the server to stop.
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"QUIT\n")
        await w.drain()
        w.close()
    except Exception:  # noqa: BLE001
        pass
    print(f"{ok} passed, {conns - ok} failed")
    return not errors


def main():
    if sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 120))
    else:
        ok = asyncio.run(client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
