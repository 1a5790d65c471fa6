#!/usr/bin/env python3
"""A TCP proxy whose downstream direction (server to client) shares one token bucket:
a registry behind a link of MBIT megabits per second, for every client at once.

usage: throttle.py LISTEN_PORT UPSTREAM_HOST:PORT MBIT
Prints "ready" on stdout once it listens.
"""
import socket
import sys
import threading
import time

listen_port, upstream, mbit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
rate = mbit * 1e6 / 8  # bytes per second
host, port = upstream.rsplit(":", 1)
lock = threading.Lock()
bucket = {"tokens": 0.0, "at": time.monotonic()}
BURST = 64 * 1024


def take(n):
    """Wait until n bytes may go out."""
    while True:
        with lock:
            now = time.monotonic()
            bucket["tokens"] = min(BURST, bucket["tokens"] + (now - bucket["at"]) * rate)
            bucket["at"] = now
            if bucket["tokens"] >= n:
                bucket["tokens"] -= n
                return
            wait = (n - bucket["tokens"]) / rate
        time.sleep(wait)


def pipe(src, dst, throttled):
    try:
        while True:
            data = src.recv(16 * 1024)
            if not data:
                break
            if throttled:
                take(len(data))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    server = socket.create_connection((host, int(port)))
    threading.Thread(target=pipe, args=(client, server, False), daemon=True).start()
    threading.Thread(target=pipe, args=(server, client, True), daemon=True).start()


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", listen_port))
listener.listen(128)
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    serve(conn)
