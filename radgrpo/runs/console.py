"""What a training run prints: a header, one line per step, the summary - and nothing else.

verl and Ray print about 1,000 lines for a 2-step run (verl's whole config, per-step metric dumps,
every worker's warnings). By default `RunConsole` sends all of it - file descriptors 1 and 2 of this
process, which is also where Ray forwards its workers' output - to `<run_dir>/train.log`, and prints
on the real console only
  - a header: run folder, device, model, data, reward, where the full log is;
  - one progress line per step, read from the run's `metrics.jsonl` as verl writes it;
  - the final summary (printed by the caller after the run).
`verbose=true` also streams the full output to the console, each distinct warning once.
A failure becomes one line naming the error and the log that holds the rest (`failure_message`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional, TextIO

from radgrpo.runs.folder import RunFolder
from radgrpo.runs.retention import prune_rollouts, steps_to_keep


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_PREFIX = re.compile(r"^\((?:[\w.:-]+ )?pid=\d+(?:, ip=[\d.]+)?\)\s*")
_TIMESTAMP = re.compile(r"^\[?\d{4}-\d{2}-\d{2}[ T][\d:,.]+\]?\s*")
_REPEATED = re.compile(r"\s*\[repeated \d+x across cluster\]\s*$")
_WARNING = re.compile(r"warn", re.IGNORECASE)


def warning_key(line: str) -> Optional[str]:
    """The identity of a warning line (without colours, Ray's process prefix, timestamps and repeat
    counts), or None when the line is not a warning."""
    text = _ANSI.sub("", line).strip()
    text = _RAY_PREFIX.sub("", text)
    if not _WARNING.search(text):
        return None
    text = _TIMESTAMP.sub("", text)
    text = re.sub(r"^WARNING:[\d\- :,]+:", "WARNING:", text)  # verl's "WARNING:<date>:" prefix
    return _REPEATED.sub("", text)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def step_line(step: int, total: Optional[int], metrics: dict[str, Any]) -> Optional[str]:
    """One console line for one metrics.jsonl entry: training steps and validation passes."""
    of = f"/{total}" if total else ""
    if "actor/pg_loss" not in metrics and "critic/score/mean" not in metrics:
        val = {k: v for k, v in metrics.items() if k.startswith("val-core/")}
        if not val:
            return None
        return f"validation (step {step}): " + ", ".join(f"{k.split('/', 2)[-1]} {_fmt(v)}" for k, v in val.items())
    parts = [f"step {step}{of}", f"reward {_fmt(metrics.get('critic/score/mean'))}"]
    components = [(k[len("reward/"):-len("/mean")], v) for k, v in metrics.items()
                  if k.startswith("reward/") and k.endswith("/mean")]
    if components:
        parts[-1] += " (" + ", ".join(f"{name} {_fmt(v)}" for name, v in components) + ")"
    for label, key in (("kl", "actor/kl_loss"), ("grad", "actor/grad_norm"), ("len", "response_length/mean")):
        if key in metrics:
            parts.append(f"{label} {_fmt(metrics[key])}")
    if "timing_s/step" in metrics:
        parts.append(f"{metrics['timing_s/step']:.1f} s")
    return "  ".join(parts)


def header_lines(cfg, plan) -> list[str]:
    """Run folder, device, model, data, reward, and where verl's own output went."""
    reward_terms = " + ".join(t.name if t.weight == 1 else f"{t.weight:g} {t.name}" for t in cfg.reward.get("terms", []))
    train = plan.train_files[0] if len(plan.train_files) == 1 else f"{len(plan.train_files)} files"
    return [
        f"radgrpo: run folder {plan.run_dir}",
        f"radgrpo: device {plan.device} | model {cfg.model.name} ({plan.model_path})",
        f"radgrpo: data {cfg.data.name} ({train})",
        f"radgrpo: reward {cfg.reward.name} ({reward_terms or 'no terms'}) | {cfg.algorithm.name},"
        f" {cfg.algorithm.total_training_steps} steps",
    ]


class TrainingFailed(RuntimeError):
    """A run that started training and failed; its message is one line ending with the log's path."""


def failure_message(exc: BaseException, log_path: Path) -> str:
    """One line for a failed run: the error's last line (Ray wraps a worker's traceback) and the log."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    name = type(exc).__name__
    reason = last if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", last) else f"{name}: {last}" if last else name
    return f"training failed: {reason[:300]}; full log: {log_path}"


class RunConsole:
    """Capture this process's output into the run's train.log while a run trains (see module doc)."""

    POLL_S = 0.5

    def __init__(self, run_dir: Path, verbose: bool = False):
        self.run_dir = Path(run_dir)
        self.log_path = RunFolder(self.run_dir).train_log
        self.verbose = verbose
        self.out: Optional[TextIO] = None
        self._saved: dict[int, int] = {}
        self._reader: Optional[threading.Thread] = None
        self._tail: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._seen_warnings: set[str] = set()
        self.suppressed_warnings = 0
        self.started = time.time()

    # ----- output capture ---------------------------------------------------------------------
    def __enter__(self) -> "RunConsole":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        read_end, write_end = os.pipe()
        for fd in (1, 2):
            self._saved[fd] = os.dup(fd)
            os.dup2(write_end, fd)
        os.close(write_end)
        self._reader = threading.Thread(target=self._copy, args=(read_end,), name="radgrpo-console", daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join()
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        # the pipe closes once every process that inherited it has exited (Ray's are shut down by now)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.verbose and self.suppressed_warnings:
            self.print(f"radgrpo: {self.suppressed_warnings} repeated warning lines not shown (all in {self.log_path})")
        self.out.close()

    def _copy(self, read_end: int) -> None:
        """Everything written to fds 1/2 goes to train.log; with verbose, to the console too."""
        with os.fdopen(read_end, "rb") as pipe, open(self.log_path, "ab") as log:
            for raw in pipe:
                log.write(raw)
                log.flush()
                if self.verbose:
                    line = raw.decode("utf-8", "replace")
                    key = warning_key(line)
                    if key is not None and key in self._seen_warnings:
                        self.suppressed_warnings += 1
                        continue
                    if key is not None:
                        self._seen_warnings.add(key)
                    self.out.write(line)

    def print(self, line: str) -> None:
        self.out.write(line + "\n")

    # ----- progress ---------------------------------------------------------------------------
    def start(self, cfg, plan) -> None:
        """Print the header and follow `metrics.jsonl`, one line per step as verl logs it."""
        for line in header_lines(cfg, plan):
            self.print(line)
        where = "here and in" if self.verbose else "in"
        self.print(f"radgrpo: verl and Ray output {where} {self.log_path}" + ("" if self.verbose else " (verbose=true to show it)"))
        total = plan.verl_config.trainer.get("total_training_steps")
        retention = cfg.logger.get("rollouts") or {}
        self._retention = (int(retention.get("every_n_steps", 1)), retention.get("keep_last"))
        steps_to_keep([], *self._retention, last_step=None)  # a bad setting fails now, not mid-run
        self._tail = threading.Thread(target=self._follow, args=(RunFolder(self.run_dir).metrics, total),
                                      name="radgrpo-steps", daemon=True)
        self._tail.start()

    def _follow(self, path: Path, total: Optional[int]) -> None:
        """Print each step's line as verl logs it, and prune rollout dumps (radgrpo.runs.retention)."""
        offset, last_step = 0, None
        while True:
            stopping = self._stop.is_set()
            if path.exists():
                if path.stat().st_size < offset:  # verl truncated it (a fresh attempt)
                    offset = 0
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]
                offset += len(complete)
                for entry in complete.decode().splitlines():
                    if entry.strip():
                        record = json.loads(entry)
                        last_step = int(record["step"])
                        line = step_line(last_step, total, record["data"])
                        if line:
                            self.print(f"radgrpo: {line}  [at {time.time() - self.started:.0f} s]")
            if last_step is not None:
                prune_rollouts(RunFolder(self.run_dir).rollouts, *self._retention, last_step=last_step)
            if stopping:
                return
            self._stop.wait(self.POLL_S)
