"""Train inside a SLURM allocation: in place on one node, or with Ray spanning several nodes.

Multi-node runs have one task per node (submitit ``tasks_per_node=1``). Rank 0 starts the Ray head
with a fixed ``num_cpus``/``num_gpus`` (an unset value hangs under SLURM, verl issue #523) and writes
its address to ``<run_dir>/ray/<job>-<restart>/head``; the other ranks join it and block. Once every
node is in, rank 0 trains on that Ray (``run_local(cfg, ray_address=<head>)``; verl's
``trainer.nnodes`` comes from ``cluster.nnodes``). Whatever
happens, rank 0 then writes ``done`` and stops the head; the other ranks see ``done`` (or lose the
head) and stop their node, so no Ray process outlives the run or holds the allocation.

Ray processes are started with ``ray start --block`` as child processes and stopped by signalling
those children: never ``ray stop``, which kills every Ray instance on the machine. The head gets its
own ``--temp-dir``, so a plain ``ray.init()`` elsewhere on the node never attaches to this cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from radgrpo.errors import SlurmRunError
from radgrpo.runs.folder import RunFolder

# trains in this process: (config, Ray address to join or None for a fresh local Ray) -> summary
RunLocal = Callable[[DictConfig, "str | None"], dict]

TAG = "[radgrpo.cluster]"
HEAD_TIMEOUT_S = 600  # how long other ranks wait for rank 0 to publish the head address
NODES_TIMEOUT_S = 300  # how long rank 0 waits for every node to join


def run_in_allocation(cfg: DictConfig, run_local: RunLocal) -> dict | None:
    nnodes = int(cfg.cluster.nnodes)
    if nnodes <= 1:
        return run_local(cfg, None)
    ntasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if ntasks != nnodes:
        raise SlurmRunError(
            f"cluster.nnodes={nnodes} needs one task per node in this SLURM job, found SLURM_NTASKS={ntasks}; "
            "submit from outside an allocation (radgrpo cluster=slurm_multinode ...) and let radgrpo start the tasks"
        )
    rank = int(os.environ.get("SLURM_PROCID", "0"))
    key = f"{os.environ['SLURM_JOB_ID']}-{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    rendezvous = RunFolder(Path(str(cfg.paths.run_dir))).ray / key
    rendezvous.mkdir(parents=True, exist_ok=True)
    num_cpus = int(cfg.cluster.ray_num_cpus)
    num_gpus = int(cfg.cluster.gpus_per_node)
    _same_auth_everywhere()
    if rank == 0:
        return _head(cfg, run_local, rendezvous, key, nnodes, num_cpus, num_gpus)
    _worker(rendezvous, rank, num_cpus, num_gpus)
    return None


def _head(cfg, run_local, rendezvous: Path, key: str, nnodes: int, num_cpus: int, num_gpus: int) -> dict:
    proc = None
    try:
        ip = _node_ip()
        port = _free_port()
        address = f"{ip}:{port}"
        proc = _ray_start(rendezvous / "head.log", [
            "--head", f"--node-ip-address={ip}", f"--port={port}",
            f"--temp-dir=/tmp/radgrpo-ray-{key}", "--include-dashboard=false",
            f"--ray-client-server-port={_free_port()}",
        ], num_cpus, num_gpus)
        _wait(lambda: _port_open(ip, port), proc, 120, f"Ray head at {address}", rendezvous / "head.log")
        (rendezvous / "head").write_text(address)
        print(f"{TAG} rank 0: Ray head at {address} ({num_cpus} CPUs, {num_gpus} GPUs); "
              f"waiting for {nnodes - 1} more node(s)", flush=True)
        status = _wait_for_nodes(address, nnodes, proc, rendezvous)
        print(status, flush=True)
        (rendezvous / "status.txt").write_text(status)
        return run_local(cfg, address)
    finally:
        _disconnect()
        (rendezvous / "done").touch()
        _stop(proc, "Ray head")


def _worker(rendezvous: Path, rank: int, num_cpus: int, num_gpus: int) -> None:
    head_file, done = rendezvous / "head", rendezvous / "done"
    deadline = time.monotonic() + HEAD_TIMEOUT_S
    while not head_file.exists():
        if done.exists():
            print(f"{TAG} rank {rank}: rank 0 ended before starting Ray; nothing to join", flush=True)
            return
        if time.monotonic() > deadline:
            raise SlurmRunError(f"rank {rank}: no Ray head address in {head_file} after {HEAD_TIMEOUT_S}s; "
                               f"see rank 0's log")
        time.sleep(0.5)
    address = head_file.read_text().strip()
    log = rendezvous / f"node{rank}.log"
    proc = _ray_start(log, [f"--address={address}", f"--node-ip-address={_node_ip()}"], num_cpus, num_gpus)
    print(f"{TAG} rank {rank}: joined Ray at {address}; blocking until rank 0 is done", flush=True)
    try:
        while not done.exists():
            if proc.poll() is not None:
                print(f"{TAG} rank {rank}: Ray node exited ({proc.returncode}) before rank 0 was done; see {log}",
                      flush=True)
                return
            time.sleep(1)
        print(f"{TAG} rank {rank}: rank 0 is done; stopping this node's Ray", flush=True)
    finally:
        _stop(proc, f"Ray node (rank {rank})")


def _ray_start(log: Path, args: list[str], num_cpus: int, num_gpus: int) -> subprocess.Popen:
    ray = Path(sys.executable).with_name("ray")
    cmd = [str(ray) if ray.exists() else (shutil.which("ray") or "ray"), "start", "--block", *args,
           f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", "--disable-usage-stats",
           # several nodes may share one host (the one-machine cluster): no fixed default ports
           f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
           f"--runtime-env-agent-port={_free_port()}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def _wait_for_nodes(address: str, nnodes: int, head: subprocess.Popen, rendezvous: Path) -> str:
    """Block until ``nnodes`` Ray nodes are alive; return ``ray status`` once it lists them all.

    The node table (``ray.nodes()``) is authoritative and saved as ``nodes.json``; ``ray status``
    (the autoscaler's view) catches up a few seconds later, so it is polled until it agrees.
    """
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        _wait(lambda: sum(n["Alive"] for n in ray.nodes()) >= nnodes, head, NODES_TIMEOUT_S,
              f"{nnodes} Ray nodes", rendezvous)
        nodes = [{"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "port": n["NodeManagerPort"],
                  "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]]
        (rendezvous / "nodes.json").write_text(json.dumps(nodes, indent=1))
    finally:
        ray.shutdown()
    ray_bin = Path(sys.executable).with_name("ray")
    deadline = time.monotonic() + 60
    while True:
        status = subprocess.run([str(ray_bin), "status", f"--address={address}"], capture_output=True,
                                text=True, timeout=60).stdout
        active = status.split("Active:", 1)[-1].split("Pending:", 1)[0]
        if active.count("node_") >= nnodes or time.monotonic() > deadline:
            return status
        time.sleep(1)


def _wait(ready, proc: subprocess.Popen, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise SlurmRunError(f"Ray exited ({proc.returncode}) while waiting for {what}; see {log}")
        if time.monotonic() > deadline:
            raise SlurmRunError(f"{what} not up after {timeout_s:.0f}s; see {log}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen | None, what: str, timeout_s: float = 10) -> None:
    """SIGTERM the ``ray start --block`` process group (it stops its raylet, GCS ...), SIGKILL if stuck."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            print(f"{TAG} {what} stopped", flush=True)
            return
        except subprocess.TimeoutExpired:
            continue


def _same_auth_everywhere() -> None:
    """Make `ray start` and `ray.init(address=...)` agree on token authentication.

    Ray 2.60's `ray start` turns token auth on whenever ~/.ray/auth_token exists (every local
    `ray.init()` creates one), but `ray.init(address=<ip:port>)` only does so when RAY_AUTH_MODE says
    so, and then fails with "Failed to connect to Ray cluster". Deciding once, in the environment the
    Ray processes and the driver inherit, keeps them consistent.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token auth
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _disconnect() -> None:
    """Leave the cluster (the engine keeps its driver connected when given an address)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _node_ip() -> str:
    import ray.util

    return ray.util.get_node_ip_address()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0

