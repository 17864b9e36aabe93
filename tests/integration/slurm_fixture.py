"""A real SLURM cluster for the tests: started by launchers/slurm/up, stopped after the session.

Test modules import the fixture (`from slurm_fixture import slurm_cluster`) and mark their tests
`@pytest.mark.slurm`. When a cluster from launchers/slurm is already up (a developer's), the session
uses it and leaves it running; otherwise it starts one and stops every daemon it started at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UP = REPO / "launchers" / "slurm" / "up"
DOWN = REPO / "launchers" / "slurm" / "down"
STATE = Path(os.environ.get("RADGRPO_SLURM_STATE", "/tmp/radgrpo-slurm"))

# What every SLURM test run asks for on this 2-core CPU machine: no GPUs from SLURM (verl still uses
# one logical GPU per node), 2 of a node's 4 declared CPUs, a short time limit.
CPU_SLURM_ARGS = [
    "cluster.slurm.gpus_per_node=0",
    "cluster.slurm.cpus_per_task=2",
    "cluster.slurm.time_min=30",
]


def _alive(pid_file: Path) -> bool:
    try:
        return Path(f"/proc/{int(pid_file.read_text())}").exists()
    except (OSError, ValueError):
        return False


@dataclass
class SlurmCluster:
    state: Path

    def sacct(self, job_id: str | int) -> list[dict[str, str]]:
        """Accounting rows (allocations only) of a job or job array: JobID, State, NNodes, Restarts."""
        fields = ["JobID", "State", "NNodes", "ExitCode"]
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", ",".join(fields)],
                             capture_output=True, text=True, check=True).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]

    def wait_state(self, job_id: str | int, states: set[str], timeout_s: float = 60) -> list[dict[str, str]]:
        """Accounting lags the job's end by a few seconds: poll until every row is in `states`."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.sacct(job_id)
            if rows and all(r["State"].split()[0] in states for r in rows):
                return rows
            if time.monotonic() > deadline:
                return rows
            time.sleep(1)


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("the one-machine SLURM cluster (launchers/slurm/up) needs root")
    was_up = _alive(STATE / "pids" / "slurmctld.pid")
    proc = subprocess.run([str(UP), "--nodes", "2", "--cpus", "4", "--state", str(STATE)],
                          capture_output=True, text=True, timeout=1500)
    print(proc.stdout)
    if proc.returncode != 0:
        pytest.fail(f"launchers/slurm/up failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    os.environ["SLURM_CONF"] = str(STATE / "slurm.conf")
    yield SlurmCluster(STATE)
    if was_up:
        return
    down = subprocess.run([str(DOWN), "--state", str(STATE)], capture_output=True, text=True, timeout=300)
    print(down.stdout, down.stderr)
    left = [p.name for p in (STATE / "pids").glob("*.pid") if _alive(p)]
    assert not left, f"daemons still running after launchers/slurm/down: {left}"


# Not pytest's tmp_path: pytest keeps only the 3 newest /tmp/pytest-of-<user>/pytest-N folders, so
# other pytest sessions on the machine can delete a folder while a SLURM job still writes to it.
RUNS_ROOT = Path(os.environ.get("RADGRPO_SLURM_TEST_RUNS", "/tmp/radgrpo-slurm-test-runs"))


@pytest.fixture
def run_root(request) -> Path:
    """A fresh folder for one test's runs (and so its own submitit folders: job ids restart at 1
    when the cluster's state is deleted, and a reused folder would hold stale results)."""
    RUNS_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{request.node.name[:60]}-", dir=RUNS_ROOT))


APPS = {"radgrpo": "train", "radgrpo-difficulty": "difficulty", "radgrpo-eval": "eval", "radgrpo-report": "report"}


def radgrpo_cmd(app: str = "radgrpo") -> list[str]:
    """The console script `app` of this venv (or its module when not installed)."""
    script = Path(sys.executable).with_name(app)
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                  f"from radgrpo.cli.{APPS[app]} import main; main()"]


def radgrpo_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "HYDRA_FULL_ERROR": "1"}


def run_radgrpo(args: list[str], timeout_s: float = 1200, app: str = "radgrpo") -> subprocess.CompletedProcess:
    """Run the `radgrpo` app (or another radgrpo-* app) to its end; stdout and stderr together in `.stdout`."""
    proc = subprocess.run([*radgrpo_cmd(app), *args], cwd=REPO, env=radgrpo_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout_s)
    print(proc.stdout[-20000:])
    return proc


SUBMITTED = re.compile(r"submitted SLURM job (\d+) .*Run dir: (\S+)")


def submitted(output: str) -> tuple[str, Path]:
    """(job id, run dir) from the line radgrpo.cluster prints when it submits."""
    match = SUBMITTED.search(output)
    assert match, f"no 'submitted SLURM job' line in the output:\n{output[-3000:]}"
    return match.group(1), Path(match.group(2))
