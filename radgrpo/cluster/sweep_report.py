"""A Hydra callback that lets a sweep finish when some of its runs fail, then says which and where.

Hydra's sweeper raises the first failed run's exception once the launcher has returned, and never
reaches ``on_multirun_end``; nothing says which other runs failed or where their logs are. With this
callback (set by conf/cluster/slurm.yaml):

- ``on_job_end`` (in each run's process, e.g. a SLURM array task) writes ``<run_dir>/job_status.json``
  (status, one-line error, log paths, SLURM job id) and hands Hydra a completed return for a failed
  run, so the sweep goes on collecting the others;
- ``on_multirun_end`` (in the submitting process) reads every run's status, prints one line per run,
  writes ``<sweep_dir>/sweep_report.json`` and, when a run failed, prints one line naming each failed
  run and its log and exits with status 1 (SystemExit: Hydra turns a callback's exceptions into
  warnings, which would end a failed sweep with status 0).

A run killed outright (no Python left to write its status) makes submitit raise in the launcher
first; that error names the job's log files itself.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from radgrpo.errors import last_error_line

STATUS_FILE = "job_status.json"


def _log_paths() -> dict[str, str]:
    """stdout/stderr of the submitit task this process runs in, if any."""
    if not os.environ.get("SUBMITIT_FOLDER"):
        return {}
    import submitit

    paths = submitit.JobEnvironment().paths
    return {"stdout": str(paths.stdout), "stderr": str(paths.stderr)}


class SweepReport(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra = HydraConfig.get()
        if hydra.mode != RunMode.MULTIRUN or os.environ.get("SLURM_PROCID", "0") != "0":
            return  # multi-node runs: rank 0 speaks for the run
        failed = job_return.status == JobStatus.FAILED
        status = {
            "num": hydra.job.num,
            "overrides": list(hydra.overrides.task),
            "status": "failed" if failed else "completed",
            "run_dir": hydra.runtime.output_dir,
            "slurm_job_id": os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID")),
            "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
            "log": _log_paths(),
        }
        if failed:
            err = job_return._return_value
            trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            status["error"] = last_error_line(trace)
            # Hydra keeps the exception for the sweeper; put it in this run's log too
            print(trace, f"[radgrpo.sweep] run #{hydra.job.num} failed: {status['error']}", sep="\n",
                  file=sys.stderr, flush=True)
        Path(hydra.runtime.output_dir, STATUS_FILE).write_text(json.dumps(status, indent=1))
        if failed:
            # Reported by on_multirun_end once every run is in; letting Hydra see the failure now
            # would stop the sweep before the report.
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = {"failed": status["error"], "log": status["log"]}

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        runs = []
        for run_dir in sorted(p.parent for p in sweep_dir.glob("*/.hydra")):
            status_file = run_dir / STATUS_FILE
            if status_file.exists():
                runs.append(json.loads(status_file.read_text()))
            else:
                runs.append({"run_dir": str(run_dir), "status": "unknown", "overrides": [],
                             "error": "no job_status.json: the run was killed or never started"})
        runs.sort(key=lambda r: r.get("num", 1 << 30))
        (sweep_dir / "sweep_report.json").write_text(json.dumps(runs, indent=1))
        failed = [r for r in runs if r["status"] != "completed"]
        print(f"[radgrpo.sweep] {len(runs) - len(failed)} of {len(runs)} runs completed; report: "
              f"{sweep_dir / 'sweep_report.json'}", flush=True)
        for r in runs:
            line = f"[radgrpo.sweep]   #{r.get('num', '?')} {r['status'].upper():9} {' '.join(r['overrides'])}"
            if r["status"] != "completed":
                line += f"  error: {r.get('error')}  log: {r.get('log', {}).get('stderr', r['run_dir'])}"
            print(line, flush=True)
        if failed:
            names = "; ".join(
                f"#{r.get('num', '?')} ({' '.join(r['overrides'])}) log: {r.get('log', {}).get('stderr', r['run_dir'])}"
                for r in failed
            )
            print(f"radgrpo: error: {len(failed)} of {len(runs)} sweep runs failed: {names}", file=sys.stderr,
                  flush=True)
            raise SystemExit(1)
