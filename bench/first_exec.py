#!/usr/bin/env python3
"""Time to the first exec of a container: run a command whose container prints one line
as soon as it starts, RUNS times (a reset command before each), and print JSON with the
median time until that line arrives and the median time until the command exits.

usage: first_exec.py RUNS 'RESET SHELL COMMAND' CMD [ARG...]
"""
import json
import statistics
import subprocess
import sys
import time


def once(reset, cmd):
    subprocess.run(reset, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.perf_counter()
    with open("/dev/null", "rb") as null:
        child = subprocess.Popen(cmd, stdin=null, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = child.stdout.readline()
        first = time.perf_counter() - start
        _, err = child.communicate()
    total = time.perf_counter() - start
    if child.returncode != 0 or not line:
        sys.exit(f"{' '.join(cmd)} failed ({child.returncode}): {err.decode(errors='replace')[-2000:]}")
    return first, total


def main():
    runs, reset, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    results = [once(reset, cmd) for _ in range(runs)]
    print(json.dumps({
        "first_exec_s": statistics.median(r[0] for r in results),
        "total_s": statistics.median(r[1] for r in results),
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
