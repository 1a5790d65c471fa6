#!/usr/bin/env python3
"""Time OCI runtimes, interleaved, and print medians and ratios.

usage: runtime.py RUNS podman PODMAN_ARGS_JSON IMAGE RUNTIME...
       runtime.py RUNS lifecycle BUNDLE STATE_DIR RUNTIME...

podman:    `podman PODMAN_ARGS --runtime R run --rm --network none IMAGE /bin/busybox true`
lifecycle: `R create --pid-file`, `R start`, wait for the process to exit (this script is
           a child subreaper, so it reaps the container's init, as conmon and the shim do),
           `R delete`: the runtime's own cost of one container.
The first runtime is the one compared with the others (ratio first/other).
"""
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36


def check(cmd):
    # stderr to a file, not a pipe: `create` leaves the container's init holding the
    # runtime's stdio until `start`, so reading a pipe to its end would wait forever.
    with tempfile.TemporaryFile() as err:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        if done.returncode != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {err.read().decode(errors='replace')[-2000:]}")


def podman_once(podman, image, runtime):
    start = time.perf_counter()
    check(podman + ["--runtime", runtime, "run", "--rm", "--network", "none", image, "/bin/busybox", "true"])
    return time.perf_counter() - start


def lifecycle_once(bundle, state, runtime, n):
    cid = f"bench-{os.getpid()}-{n}"
    pid_file = os.path.join(state, f"{cid}.pid")
    root = ["--root", os.path.join(state, os.path.basename(runtime))]
    start = time.perf_counter()
    check([runtime] + root + ["create", "--bundle", bundle, "--pid-file", pid_file, cid])
    check([runtime] + root + ["start", cid])
    with open(pid_file) as f:
        pid = int(f.read())
    os.waitpid(pid, 0)
    check([runtime] + root + ["delete", cid])
    elapsed = time.perf_counter() - start
    os.remove(pid_file)
    return elapsed


def main():
    runs, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "podman":
        podman, image, runtimes = json.loads(sys.argv[3]), sys.argv[4], sys.argv[5:]
        once = lambda rt, n: podman_once(podman, image, rt)
    else:
        bundle, state, runtimes = sys.argv[3], sys.argv[4], sys.argv[5:]
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            sys.exit("cannot become a child subreaper")
        once = lambda rt, n: lifecycle_once(bundle, state, rt, n)
    for rt in runtimes:  # one checked warm-up run each
        once(rt, -1)
    times = {rt: [] for rt in runtimes}
    for n in range(runs):
        for rt in runtimes:
            times[rt].append(once(rt, n))
    medians = {rt: statistics.median(t) for rt, t in times.items()}
    first = runtimes[0]
    for rt in runtimes:
        name = os.path.basename(rt)
        print(f"  {name:14} {medians[rt] * 1000:8.1f} ms   (min {min(times[rt]) * 1000:.1f}, max {max(times[rt]) * 1000:.1f})")
    for rt in runtimes[1:]:
        print(f"  ratio {os.path.basename(first)}/{os.path.basename(rt)} {medians[first] / medians[rt]:.2f}")


if __name__ == "__main__":
    main()
