#!/usr/bin/python3
"""Server CPU per operation for the benchmark harness.

usage: cpu.py [--children] PID... -- COMMAND ARGS...

Reads utime+stime (fields 14 and 15 of /proc/PID/stat: every thread of the
process) of the given PIDs before and after running COMMAND, then prints the
command's JSON object (its last line that parses as one, e.g. loadgen --json)
merged with server_cpu_s and server_cpu_us_per_op (server CPU / successes).
Pass every server process (nginx: the master and all workers), or --children
to add the live descendants of the given PIDs. The box is shared and
saturates, so CPU per operation is the number to compare, not the rate alone.
Resolution is one clock tick (usually 10 ms): run for seconds, not milliseconds.
Exit status is the command's.
"""
import json
import os
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime+stime of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15, counted from 3


def descendants(pids):
    """The given PIDs plus all their live descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    seen, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return sorted(seen)


def main(argv):
    with_children = False
    if argv and argv[0] == "--children":
        with_children, argv = True, argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    sep = argv.index("--")
    try:
        pids = [int(p) for p in argv[:sep]]
    except ValueError:
        sys.exit("cpu.py: PIDs must be numbers")
    command = argv[sep + 1:]
    if not pids or not command:
        sys.exit(__doc__)
    if with_children:
        pids = descendants(pids)

    before = {pid: cpu_ticks(pid) for pid in pids}
    missing = [pid for pid, t in before.items() if t is None]
    if missing:
        sys.exit(f"cpu.py: no such process: {missing}")
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    after = {pid: cpu_ticks(pid) for pid in pids}

    gone = [pid for pid, t in after.items() if t is None]
    if gone:
        # An exited worker takes its CPU time with it: the total would be low.
        print(f"cpu.py: processes exited during the run, their CPU is missing: {gone}", file=sys.stderr)
    ticks = sum(after[p] - before[p] for p in pids if after[p] is not None)

    result = None
    for line in reversed(proc.stdout.splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            result = doc
            break
    if result is None:
        sys.stdout.write(proc.stdout)
        print("cpu.py: the command printed no JSON object", file=sys.stderr)
        result = {}
    cpu_s = ticks / TICK
    ok = result.get("successes") or 0
    result["server_pids"] = pids
    result["server_cpu_s"] = round(cpu_s, 3)
    result["server_cpu_us_per_op"] = round(cpu_s * 1e6 / ok, 1) if ok else None
    mb = (result.get("bytes") or 0) / 1e6
    if mb:
        result["server_cpu_us_per_mb"] = round(cpu_s * 1e6 / mb, 1)
    print(json.dumps(result))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
