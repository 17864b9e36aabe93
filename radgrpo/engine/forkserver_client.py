"""Ray's Python "executable" for a run's workers when they are forked (radgrpo.engine.forkserver).

Ray starts every Python worker as `exec <py_executable> default_worker.py <args>`; with the run's
`runtime_env.py_executable` pointing here, this script asks the run's fork server to fork a worker with
this process's arguments, environment, working directory and standard streams, then stands in for it:
it forwards the signals Ray sends and exits with the worker's exit status. If this process is killed,
the worker sees its connection close and kills itself.

Runs as `python -I -S forkserver_client.py`: the standard library only, so it starts in ~20 ms.
"""

import array
import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "RADGRPO_FORKSERVER_SOCKET"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def send_request(conn: socket.socket, argv: list[str]) -> None:
    """One length-prefixed JSON request, with stdin/stdout/stderr passed alongside (SCM_RIGHTS)."""
    body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "pgid": os.getpgrp()}).encode()
    fds = array.array("i", [0, 1, 2])
    conn.sendmsg([struct.pack("!I", len(body)) + body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def receive_exact(conn: socket.socket, size: int) -> bytes:
    """`size` bytes from `conn` (the server reads requests with it too)."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def main(argv: list[str]) -> int:
    path = os.environ.get(SOCKET_ENV)
    if not path:
        print(f"radgrpo fork server client: {SOCKET_ENV} is not set", file=sys.stderr)
        return 2
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        send_request(conn, argv)
        (pid,) = struct.unpack("!q", receive_exact(conn, 8))
        for number in FORWARDED_SIGNALS:
            signal.signal(number, lambda sig, _frame: os.kill(pid, sig))
        (status,) = struct.unpack("!i", receive_exact(conn, 4))
    except (OSError, ConnectionError) as error:
        print(f"radgrpo fork server client: {path}: {error}", file=sys.stderr)
        return 1
    if status < 0:  # killed by a signal: die of the same signal, as the worker did
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
