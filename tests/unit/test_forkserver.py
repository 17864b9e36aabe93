"""radgrpo.engine.forkserver without Ray: a script started through the client's command line (what Ray
execs for a worker) runs forked from the server with the client's arguments, environment, working
directory and streams; exit codes and signals pass through; a killed client takes its worker along."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from radgrpo.engine.forkserver import ForkServer, _check_fixed_environment, py_executable

WORKER = """
import json, os, sys, time
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "x": os.environ.get("X"), "pid": os.getpid(),
                  "preloaded": "email.mime.text" in sys.modules, "path0": sys.path[0],
                  "pgid": os.getpgrp()}), flush=True)
print("to stderr", file=sys.stderr, flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


@pytest.fixture
def server():
    fork_server = ForkServer(preload=("email.mime.text",))
    fork_server.start({**os.environ, "X": "server"})
    yield fork_server
    fork_server.stop()


@pytest.fixture
def worker_script(tmp_path):
    script = tmp_path / "scripts" / "worker.py"
    script.parent.mkdir()
    script.write_text(WORKER)
    return script


def client_command(script, *args) -> list[str]:
    return [*py_executable().split(), str(script), *args]


def client_env(server) -> dict[str, str]:
    return {**os.environ, **server.env_vars(), "X": "client"}


def test_worker_runs_forked_with_the_clients_arguments_environment_and_streams(server, worker_script, tmp_path):
    client = subprocess.Popen(client_command(worker_script, "run", "3"), env=client_env(server), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0)
    stdout, stderr = client.communicate(timeout=60)
    assert client.returncode == 3, stderr
    seen = json.loads(stdout)
    assert seen["pgid"] == client.pid  # in the client's process group, which Ray kills with the worker
    assert seen["argv"] == [str(worker_script), "run", "3"]
    assert seen["cwd"] == str(tmp_path) and seen["x"] == "client"
    assert seen["preloaded"]  # imported by the server before the fork, not by the worker
    assert seen["path0"] == str(worker_script.parent)  # as `python worker.py` would have it
    assert "to stderr" in stderr


def test_signals_reach_the_worker_and_its_death_is_the_clients(server, worker_script):
    client = subprocess.Popen(client_command(worker_script, "sleep"), env=client_env(server),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    worker_pid = json.loads(client.stdout.readline())["pid"]
    assert worker_pid != client.pid
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == -signal.SIGTERM
    assert not alive(worker_pid)


def test_a_killed_client_takes_its_worker_along(server, worker_script):
    client = subprocess.Popen(client_command(worker_script, "sleep"), env=client_env(server),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    worker_pid = json.loads(client.stdout.readline())["pid"]
    client.kill()  # what Ray does to a worker that does not exit
    client.wait(timeout=30)
    deadline = time.monotonic() + 10
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker_pid)


def test_client_without_a_server_fails_with_the_reason(worker_script):
    env = {k: v for k, v in os.environ.items() if k != "RADGRPO_FORKSERVER_SOCKET"}
    result = subprocess.run(client_command(worker_script, "run", "0"), env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "RADGRPO_FORKSERVER_SOCKET is not set" in result.stderr


def test_a_server_that_cannot_preload_says_so_before_any_worker_starts(capfd):
    fork_server = ForkServer(preload=("radgrpo_no_such_module",))
    with pytest.raises(RuntimeError, match=r"exited \(code 1\) while importing"):
        fork_server.start(dict(os.environ))
    assert "No module named 'radgrpo_no_such_module'" in capfd.readouterr().err


def test_a_worker_refuses_variables_read_at_start_that_differ_from_the_servers(monkeypatch):
    monkeypatch.setenv("RAY_JOB_ID", "01000000")
    monkeypatch.setenv("RAY_object_timeout_milliseconds", "100")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    same = dict(os.environ)
    _check_fixed_environment({**same, "RAY_LOCAL_WORLD_SIZE": "2", "RAY_LD_PRELOAD_ON_WORKERS": "0",
                              "PYTHONPATH": "/elsewhere"})  # read when used, from the worker's own environment
    for variable in ("RAY_JOB_ID", "RAY_object_timeout_milliseconds", "RAY_AUTH_MODE", "PYTHONHASHSEED"):
        with pytest.raises(RuntimeError, match=variable):
            _check_fixed_environment({**same, variable: "1"})


RAY_IDS = """
import ray
from radgrpo.engine.forkserver import _actor_class_ids_from_os_entropy, _check_ray_ids_unseeded
{define}
_check_ray_ids_unseeded()
"""


@pytest.mark.parametrize("define, unseeded", [
    ("with _actor_class_ids_from_os_entropy():\n    ray.remote(type('A', (), {{}}))", True),
    ("ray.remote(type('A', (), {{}}))", False),  # what `import verl` does, unguarded
])
def test_ray_ids_are_not_drawn_before_the_fork(define, unseeded):
    result = subprocess.run([sys.executable, "-c", RAY_IDS.format(define=define.format())], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode == 0) == unseeded, result.stderr[-2000:]
    if not unseeded:
        assert "every forked worker would draw the same ones" in result.stderr


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (the server reaps its children)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
