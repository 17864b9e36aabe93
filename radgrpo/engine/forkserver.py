"""Fork a CPU run's Ray workers from one process that has already imported what they import.

Why: on a CPU machine, a tiny run's start-up is mostly Python processes importing torch, tensordict
(which imports torch._dynamo), transformers, Ray and verl, one after another: about 3 CPU-s for each
of the seven Ray workers verl starts per run. A fork server pays that once. It is the standard
library's `multiprocessing` forkserver-with-preload idea, applied to Ray's workers, which Ray starts
itself: the run's `runtime_env.py_executable` is radgrpo.engine.forkserver_client, which hands its
arguments, environment and standard streams to this server and stands in for the forked worker.

A forked worker must be the process Ray would have started, but its modules were imported before its
environment was known. Three things make it so:
- the server starts once Ray is up (radgrpo.engine.runner), with the environment Ray gives this
  run's workers: the job's runtime env, and the job id and raylet pid Ray adds. Ray's C++ config reads
  every RAY_* variable once, when Ray is imported, so these must be right before the import;
- each worker compares the variables read once at start-up (`fixed_at_start`: Ray's config,
  PYTHONHASHSEED) with the server's and refuses to run on a difference, instead of running with values
  nobody meant; Ray's random ids are drawn nowhere before the fork (`_actor_class_ids_from_os_entropy`);
- after the fork, the worker takes its own environment, streams, working directory and arguments,
  re-reads Ray's auth token, and installs what radgrpo's plugin installs per environment.

Only for runs on CPU with a Ray this run starts: a GPU worker must not inherit a process that may
have touched CUDA, and the workers of a joined (SLURM) cluster run on other nodes.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import gc
import importlib
import json
import os
import runpy
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from radgrpo.engine.forkserver_client import SOCKET_ENV, receive_exact

CLIENT = Path(__file__).with_name("forkserver_client.py")
# What verl's Ray workers import on a CPU run (their top-level imports, measured with
# PYTHONPROFILEIMPORTTIME): Ray's worker entry point, the module of every actor verl starts (training
# worker, rollout server and its load balancer, agent loop, reward loop, TransferQueue), and what they
# import later (torch's compiler and checkpoint helpers, pyarrow). A module left out is imported by the
# worker that needs it, as without a fork server.
PRELOAD = (
    "ray._private.workers.default_worker",
    "verl.single_controller.base.worker",
    "verl.workers.engine_workers",
    "verl.workers.rollout.router",
    "verl.experimental.agent_loop.agent_loop",
    "verl.experimental.reward_loop.reward_loop",
    "verl.experimental.reward_loop.reward_manager",
    "verl.trainer.ppo.v1.agent_loop_tq",
    "transfer_queue.storage.simple_storage",
    "transfer_queue.sampler.sequential_sampler",
    "radgrpo.engine.hf_rollout",
    "radgrpo.rewards.config",
    "transformers.models.auto.modeling_auto",
    "torch._inductor.compile_fx",
    "torch.distributed.checkpoint.state_dict",
    "pyarrow",
    "hydra.utils",
)
# The variables Ray's C++ config reads once, when `ray._raylet` is imported: `RAY_<name>` for each entry
# of Ray's src/ray/common/ray_config_def.h (lower-case names, and the upper-case ones below) and the
# worker's job id and raylet pid. Other RAY_* variables (verl's RAY_LOCAL_WORLD_SIZE for one actor,
# the raylet's RAY_LD_PRELOAD_ON_WORKERS) are read from os.environ when used, which the worker sets.
RAY_CONFIG_UPPER_CASE = frozenset({
    "AUTH_MODE", "ENABLE_K8S_TOKEN_AUTH", "USE_TLS", "TLS_SERVER_CERT", "TLS_SERVER_KEY", "TLS_CA_CERT",
    "REDIS_CA_CERT", "REDIS_CA_PATH", "REDIS_CLIENT_CERT", "REDIS_CLIENT_KEY", "REDIS_SERVER_NAME",
    "ENABLE_GCS_LEADER_ELECTION", "JOB_ID", "RAYLET_PID"})


# The interpreter's settings read at its start (PYTHONHASHSEED: verl sets it for reproducible runs);
# PYTHONPATH is not among them: a forked worker puts it on sys.path itself
INTERPRETER_START_VARIABLES = frozenset({
    "PYTHONHASHSEED", "PYTHONOPTIMIZE", "PYTHONWARNINGS", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONMALLOC",
    "PYTHONDEVMODE", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONHOME", "PYTHONINTMAXSTRDIGITS"})


def fixed_at_start(variable: str) -> bool:
    """Whether a process reads `variable` once, before the fork: Ray's C++ config, or the interpreter's
    start-up settings."""
    if variable in INTERPRETER_START_VARIABLES:
        return True
    name = variable.removeprefix("RAY_")
    return variable.startswith("RAY_") and (name in RAY_CONFIG_UPPER_CASE or name[:1].islower())


READY_TIMEOUT_S = 600.0  # importing verl takes ~3 s on a quiet machine; a loaded one can take much longer


def py_executable() -> str:
    """Ray's `runtime_env.py_executable` for workers forked by the server."""
    return f"{sys.executable} -I -S {CLIENT}"


# -- the server process ---------------------------------------------------------------------------


def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    header, ancillary, _flags, _address = conn.recvmsg(4, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(header) < 4:
        raise ConnectionError("short request")
    (size,) = struct.unpack("!I", header)
    return json.loads(receive_exact(conn, size)), list(fds)


def _run_worker(conn: socket.socket, request: dict, fds: list[int]) -> int:
    """In the forked child: become the process Ray asked for and run its entry point."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    try:  # Ray gives each worker a process group and kills it when the worker dies: join the client's
        os.setpgid(0, request["pgid"])
    except OSError:
        pass  # another session: Ray then skips that clean-up, as for any worker sharing the raylet's group
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    argv = request["argv"]
    # what a fresh `python <script>` would put first on its path: the script's folder, then PYTHONPATH
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:1] = [os.path.dirname(os.path.abspath(argv[0])), *extra]
    sys.argv = list(argv)
    threading.Thread(target=_die_with_client, args=(conn,), daemon=True, name="radgrpo-forkserver-client").start()
    _reread_ray_auth_token()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # from OS entropy, as in a fresh process (`random` reseeds itself at a fork)
    plugin = sys.modules.get("radgrpo.engine.plugin")  # loaded by a preloaded `import verl`
    if plugin is not None:
        plugin.apply_environment()
    try:
        runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return code


def _check_fixed_environment(worker_env: dict[str, str]) -> None:
    """A worker whose variables `fixed_at_start` differ from the server's would run with the server's
    values: refuse."""
    server = {k: v for k, v in os.environ.items() if fixed_at_start(k)}
    worker = {k: v for k, v in worker_env.items() if fixed_at_start(k)}
    differing = sorted(k for k in server.keys() | worker.keys() if server.get(k) != worker.get(k))
    if differing:
        raise RuntimeError(f"this Ray worker's environment differs from radgrpo's fork server's in {differing}, "
                           "which the server read when it started; run with cluster.fork_workers=false")


@contextlib.contextmanager
def _actor_class_ids_from_os_entropy():
    """Ray draws an id for every `@ray.remote` class when its module is imported, from a C++ generator
    that seeds itself on first use and is not reseeded in a forked child: drawn here, every worker
    would then draw the same object and task ids (seen: two workers' start-up objects collided in the
    object store). While the server imports, those class ids come from os.urandom instead."""
    import ray.actor
    from ray import ActorClassID

    class _FromOsEntropy:
        @staticmethod
        def from_random():
            return ActorClassID(os.urandom(ActorClassID.size()))

    ray.actor.ActorClassID = _FromOsEntropy
    try:
        yield
    finally:
        ray.actor.ActorClassID = ActorClassID


def _check_ray_ids_unseeded() -> None:
    """Fork two children that each draw one id of every random Ray id type: equal draws mean the
    generator was seeded in this process, and the workers would collide."""
    import ray._raylet as raylet

    kinds = [getattr(raylet, name) for name in ("ObjectID", "ActorID", "ActorClassID", "WorkerID", "UniqueID",
                                                "PlacementGroupID", "FunctionID", "NodeID")]
    draws = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, json.dumps([kind.from_random().hex() for kind in kinds]).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            draws.append(json.loads(pipe.read()))
        os.waitpid(pid, 0)
    same = [kind.__name__ for kind, a, b in zip(kinds, *draws) if a == b]
    if same:
        raise RuntimeError(f"Ray's random {same} ids were drawn while importing the preloaded modules: every "
                           "forked worker would draw the same ones")


def _reread_ray_auth_token() -> None:
    """Ray's auth token loader caches the token on first use: read it again, as Ray's own
    `reset_auth_token_state` does."""
    raylet = sys.modules.get("ray._raylet")
    if raylet is not None:
        raylet.AuthenticationTokenLoader.instance().reset_cache()


def _die_with_client(conn: socket.socket) -> None:
    """The client stands in for this worker in Ray's eyes: when it is gone (Ray killed it), so is this."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _fork_worker(conn: socket.socket, listener: socket.socket, others: list[socket.socket]) -> int | None:
    """Read one request from `conn` and fork its worker; returns the child's pid (None: a bad request, or
    a worker refused by `_check_fixed_environment`, which the client reports as a failed start)."""
    try:
        request, fds = _receive_request(conn)
    except (OSError, ConnectionError, ValueError) as error:
        print(f"radgrpo fork server: bad request: {error}", file=sys.stderr, flush=True)
        return None
    try:
        _check_fixed_environment(request["env"])
    except RuntimeError as refusal:
        os.write(fds[2], f"radgrpo fork server: {refusal}\n".encode())
        print(f"radgrpo fork server: {refusal}", file=sys.stderr, flush=True)
        for fd in fds:
            os.close(fd)
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            listener.close()
            for other in others:
                other.close()
            code = _run_worker(conn, request, fds)
        except BaseException:  # noqa: BLE001  (the child must never return into the server loop)
            import traceback

            traceback.print_exc()
        finally:
            try:
                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.sendall(struct.pack("!q", pid))
    return pid


# Threads a fork may leave behind: jemalloc's background purging thread (started by pyarrow's bundled
# jemalloc); jemalloc's own fork handlers switch it off in the child, which then purges inline.
FORK_SAFE_THREADS = {"jemalloc_bg_thd"}


def _threads_a_fork_would_lose() -> list[str]:
    """Names of this process's threads other than the calling one, except FORK_SAFE_THREADS."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        if int(tid) != threading.get_native_id():
            with open(f"/proc/self/task/{tid}/comm") as comm:
                names.append(comm.read().strip())
    return [name for name in names if name not in FORK_SAFE_THREADS]


def serve(socket_path: str, preload: tuple[str, ...]) -> None:
    """Listen at `socket_path` at once (clients wait in the backlog), import `preload`, then fork a
    worker per request until the parent process is gone or SIGTERM arrives."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    start = time.monotonic()
    with _actor_class_ids_from_os_entropy():
        for name in preload:
            importlib.import_module(name)
    _check_ray_ids_unseeded()
    # a fork copies one thread: a library thread started by an import would be missing in every worker
    lost = _threads_a_fork_would_lose()
    if lost:
        raise RuntimeError(f"importing the preloaded modules started threads ({', '.join(lost)}); "
                           "forking would leave them out of every worker")
    gc.freeze()  # the workers share the imported objects' pages: the collector must not touch them
    print(f"ready: {len(sys.modules)} modules in {time.monotonic() - start:.1f} s", flush=True)
    os.dup2(2, 1)  # stdout was the run's readiness pipe
    children: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while os.getppid() == parent:
        for _key, _events in selector.select(timeout=0.2):
            conn, _address = listener.accept()
            pid = _fork_worker(conn, listener, list(children.values()))
            if pid is None:
                conn.close()
            else:
                children[pid] = conn
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                conn = children.pop(pid)
                try:
                    conn.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status)))
                except OSError:
                    pass
                conn.close()


# -- the run's side -------------------------------------------------------------------------------


def ray_worker_environment() -> dict[str, str]:
    """The environment Ray gives this job's Python workers, from the driver once `ray.init` has run and
    the job's runtime env is applied to `os.environ` (radgrpo.engine.runner): the driver's, plus the
    variables the raylet adds for a worker of this job."""
    import ray
    from ray._private import ray_constants, worker

    raylet = worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
    return {**os.environ, "RAY_JOB_ID": ray.get_runtime_context().get_job_id(), "RAY_RAYLET_PID": str(raylet.pid)}


class ForkServer:
    """The fork server of one run. Created before Ray starts (Ray's runtime env must name the client
    and the socket: `py_executable()`, `env_vars()`), started once Ray is up and before verl asks for
    a worker (`start`), stopped after Ray (`stop`)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD) -> None:
        self.preload = preload
        self._folder = tempfile.mkdtemp(prefix="radgrpo-fork-")
        self.socket_path = os.path.join(self._folder, "socket")
        self._process: subprocess.Popen | None = None
        self.ready_message = ""

    def env_vars(self) -> dict[str, str]:
        """What the clients need in their environment (with `py_executable()` as Ray's runtime env's
        `py_executable`, Ray's workers are forked here)."""
        return {SOCKET_ENV: self.socket_path}

    def start(self, worker_env: dict[str, str], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the server in `worker_env` (the environment Ray gives the run's workers) and wait until
        it has imported its modules; raises if it failed (its traceback is on this process's stderr,
        that is in train.log): a worker whose server died would fail to start, and Ray would retry it
        for ever."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "radgrpo.engine.forkserver", self.socket_path, *self.preload],
            env={**worker_env, SOCKET_ENV: self.socket_path}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True)
        ready, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            self.stop()
            reason = "did not get ready in time" if not ready else f"exited (code {self._process.returncode})"
            raise RuntimeError(f"radgrpo's worker fork server {reason} while importing verl; its error "
                               "is printed above")
        self.ready_message = line.strip()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for leftover in (self.socket_path, self._folder):
            try:
                os.rmdir(leftover) if leftover == self._folder else os.unlink(leftover)
            except OSError:
                pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(sys.argv[1], tuple(sys.argv[2:]))
