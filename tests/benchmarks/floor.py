"""The least a hook runner written in Python does for each hook, for bench.py to set beside
hookrun: the floor under the hooks figures.

Usage: ``python floor.py DIR LOG DB``. Runs the executable files of DIR in byte-wise order,
each in a session of its own with stdin on /dev/null and its stdout and stderr on pipes,
waiting for the pipes and a pidfd with poll() and collecting the exit status with wait4(); it
reads the first KiB of each file first (hookrun's header), appends one line per hook to LOG
and records every hook in one SQLite transaction in DB. It stops at the first hook that fails,
and exits with that hook's status. No checks, no timeouts, no signals, no terminal output:
whatever hookrun spends beyond this is its own.
"""

import os
import select
import sqlite3
import sys
import time

READ_SIZE = 1 << 16
HEAD_SIZE = 1024
POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR


def run_one(path, env):
    """Run ``path``; returns its exit status as a shell reports it."""
    with open(path, "rb") as handle:
        handle.read(HEAD_SIZE)
    out, err = os.pipe(), os.pipe()
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, out[1], 1), (os.POSIX_SPAWN_DUP2, err[1], 2)]
    try:
        pid = os.posix_spawn(path, [path], env, file_actions=actions, setsid=True)
    finally:
        os.close(out[1])
        os.close(err[1])
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    reading = {out[0], err[0]}
    for fd in (out[0], err[0], pidfd):
        poller.register(fd, POLL_IN)
    status = None
    while reading or status is None:
        for fd, _event in poller.poll():
            if fd == pidfd:
                status = os.waitstatus_to_exitcode(os.wait4(pid, 0)[1])
                poller.unregister(fd)
            elif not os.read(fd, READ_SIZE):
                reading.discard(fd)
                poller.unregister(fd)
    for fd in (out[0], err[0], pidfd):
        os.close(fd)
    return status if status >= 0 else 128 - status


def main(directory, log_path, db_path):
    env = dict(os.environ)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    records = []
    status = 0
    for name in sorted(os.listdir(directory.encode())):
        path = os.path.join(directory, name.decode("utf-8", "surrogateescape"))
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            continue
        started = time.time()
        status = run_one(path, env)
        records.append((name, status, started, time.time() - started))
        os.write(log, f"{started:.3f} {name!r} end exit={status}\n".encode())
        if status:
            break
    os.close(log)
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS tasks (name, exit, started, duration)")
        db.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?)", records)
    db.close()
    return status


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(*sys.argv[1:]))
