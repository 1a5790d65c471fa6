#!/usr/bin/env python3
"""Run a command RUNS times (a reset command before each) and print JSON with the
median wall time and the median peak RSS of the timed command and its children.

usage: measure.py RUNS 'RESET SHELL COMMAND' CMD [ARG...]
"""
import json
import os
import statistics
import subprocess
import sys
import time


def once(reset, cmd):
    subprocess.run(reset, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Peak RSS of exactly this child: fork a waiter so RUSAGE_CHILDREN is fresh.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        start = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        import resource
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        os.write(w, json.dumps({"wall": wall, "rss_kib": rss_kib, "code": done.returncode,
                                "stderr": done.stderr.decode(errors="replace")[-2000:]}).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    result = json.loads(data)
    if result["code"] != 0:
        sys.exit(f"{' '.join(cmd)} failed ({result['code']}): {result['stderr']}")
    return result


def main():
    runs, reset, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    results = [once(reset, cmd) for _ in range(runs)]
    print(json.dumps({
        "wall_s": statistics.median(r["wall"] for r in results),
        "rss_mib": statistics.median(r["rss_kib"] for r in results) / 1024,
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
