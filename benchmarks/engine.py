"""The CPU engine's speed: the hf rollout against plain transformers, and where a default run's wall
time goes.

1. Generation, in this process, on the embedded tiny model and the same prompts (the synthetic
   grounding prompts with their images, each repeated `--n` times as a GRPO group): the hf rollout
   server's batched `generate_batch` against one plain batched `model.generate(do_sample=True)` call
   with the same inputs and token budget. Prints generated tokens per second of each and the ratio
   (target >= 0.8x), best of `--repeats`.
2. The embedded default (`python -m radgrpo.cli.train`), timed from outside: start-up (process start to
   the first step's start), the steps (verl's `timing_s/step`), and shut-down (last step logged to
   process exit); verl's start-up milestones (its INFO log lines, timestamped); every process of the
   run (sampled from /proc every 0.25 s: Ray's actor name, start, CPU-seconds per phase) and how many
   cores were busy over time. CPU-seconds are the figure to compare on a shared machine: wall time
   moves with other load, the work a run does does not. Skipped with `--no-run`; `--repo` times
   another checkout, `--save`/`--baseline` compare two runs.

    python benchmarks/engine.py [--prompts 8] [--n 4] [--repeats 3] [--no-run] [--no-generation]
        [--repo PATH] [--save FILE.json] [--baseline FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _server_and_requests(prompts: int, n: int, max_tokens: int):
    import numpy as np
    from omegaconf import OmegaConf
    from PIL import Image

    from radgrpo.data.prompts import chat_content, load_prompt
    from radgrpo.data.synthetic import QUESTION, draw_chest
    from radgrpo.engine.hf_rollout import HFRolloutServer, _Request
    from radgrpo.models.processors import register_torchvision_free_processors
    from radgrpo.models.tiny import WARM_START_PROMPT, cache_root, ensure_tiny_model

    register_torchvision_free_processors()
    os.environ.setdefault("RADGRPO_MODEL_FAMILY", "qwen2_5_vl")  # what a run's engine sets for the server
    path = str(ensure_tiny_model("tiny_qwen2_5_vl", cache_root() / "tiny_models"))
    server = HFRolloutServer(OmegaConf.create({"max_model_len": None, "response_length": max_tokens, "seed": 0}),
                             OmegaConf.create({"path": path, "trust_remote_code": False, "override_config": {}}),
                             replica_rank=0)
    messages = chat_content(load_prompt(WARM_START_PROMPT).render(QUESTION, "grounding", 1))  # the default data's prompt
    text = server.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    rng = np.random.default_rng(0)
    requests = []
    for p in range(prompts):
        image = Image.fromarray(draw_chest(rng, 112, int(rng.integers(0, 3)))[0], mode="L").convert("RGB")
        ids = server.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
        for k in range(n):
            sampling = {"temperature": 1.0, "top_p": 1.0, "max_tokens": max_tokens}
            requests.append(_Request(ids, sampling, [image], server.request_seed(ids, [image], f"det-{p * n + k}"), None))
    return server, requests


def _plain_generate(server, requests, max_tokens: int) -> int:
    """One plain batched `generate` call on the same left-padded inputs; returns tokens generated."""
    import torch

    width = max(len(r.prompt_ids) for r in requests)
    ids = torch.full((len(requests), width), server.pad_id)
    mask = torch.zeros_like(ids)
    for row, r in enumerate(requests):
        ids[row, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
        mask[row, width - len(r.prompt_ids):] = 1
    vision = server.processor.image_processor(images=[i for r in requests for i in r.images], return_tensors="pt")
    with torch.no_grad():
        out = server.model.generate(input_ids=ids, attention_mask=mask, **vision,
                                    mm_token_type_ids=(ids == server.processor.image_token_id).long(),
                                    do_sample=True, temperature=1.0, top_p=1.0, top_k=None, max_new_tokens=max_tokens,
                                    suppress_tokens=server.suppress_tokens, eos_token_id=sorted(server.eos_ids),
                                    pad_token_id=server.pad_id)
    new = out[:, width:]
    lengths = [next((i + 1 for i, t in enumerate(row.tolist()) if t in server.eos_ids), len(row)) for row in new]
    return sum(lengths)


def generation(prompts: int, n: int, max_tokens: int, repeats: int) -> float:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    server, requests = _server_and_requests(prompts, n, max_tokens)
    best = {"hf rollout": 0.0, "plain generate": 0.0}
    for _ in range(repeats):
        for name in best:
            started = time.perf_counter()
            if name == "hf rollout":
                tokens = sum(len(o.token_ids) for o in server.generate_batch(requests))
            else:
                tokens = _plain_generate(server, requests, max_tokens)
            best[name] = max(best[name], tokens / (time.perf_counter() - started))
    ratio = best["hf rollout"] / best["plain generate"]
    print(f"generation, {len(requests)} requests ({prompts} prompts x {n}, images, up to {max_tokens} tokens), "
          f"best of {repeats}:")
    for name, rate in best.items():
        print(f"  {name:15s} {rate:8.0f} tokens/s")
    print(f"  ratio hf rollout / plain generate: {ratio:.2f} (target >= 0.8)")
    return ratio


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# verl's own progress lines (logged at INFO, which the benchmark turns on for its run) that mark the
# start-up phases, in order; a line's own timestamp is used when it has one, else when it appeared
MARKERS = {
    "ray init kwargs": "ray.init called",
    "worker group kwargs": "worker group created",
    "actor and ref model engine initialized": "actor/ref models built (FSDP)",
    "reward loop manager initialized": "reward loop ready",
    "checkpoint engine manager initialized": "checkpoint engine ready",
    "all initialize finished, ready to fit": "ready to fit",
    "Training from scratch": "fit started",
}
_LINE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})[,.](\d{3})")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def _stat(pid: int):
    """(ppid, cpu seconds, start time since boot in s) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[19]) / CLOCK_TICKS


def _title(pid: int) -> str:
    """Ray's process title (`ray::TaskRunnerV1`) or the script a Python process runs."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    if not parts:
        return ""
    if parts[0].startswith("ray::"):
        return parts[0].split()[0]
    if not Path(parts[0]).name.startswith("python"):
        return Path(parts[0].split()[0]).name
    script = next((p for p in parts[1:] if not p.startswith("-")), "")
    if script == "radgrpo.cli.train" or parts[1:2] == ["-m"]:
        return f"python -m {script}"
    return f"python {Path(script).name}"


def _better_title(old: str, new: str) -> bool:
    """Keep the first Ray actor name a process shows (a worker starts as a script, may idle as
    ray::IDLE, then takes its actor's name and shows `ray::<actor>.<method>` while busy)."""
    named = lambda t: t.startswith("ray::") and t != "ray::IDLE"  # noqa: E731
    return bool(new) and not named(old) and (named(new) or not old or new == "ray::IDLE")


class ProcessSampler:
    """Every process descended from one root pid, sampled from /proc every `period` seconds: title
    (Ray's `ray::<actor>` names; the first title other than ray::IDLE is kept), start time, and the
    CPU seconds (user + system) it had used at each sample."""

    def __init__(self, root: int, period: float = 0.25):
        self.root, self.period = root, period
        self.boot = _boot_time()
        self.procs: dict[int, dict] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.sample()
            time.sleep(self.period)

    def sample(self):
        now = time.time()
        stats = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat:
                    stats[int(entry.name)] = stat
        tracked = set(self.procs) | {self.root}
        changed = True
        while changed:  # children of tracked processes, transitively
            changed = False
            for pid, (ppid, _, _) in stats.items():
                if ppid in tracked and pid not in tracked:
                    tracked.add(pid)
                    changed = True
        for pid in tracked:
            if pid not in stats:
                continue
            _, cpu, started = stats[pid]
            info = self.procs.setdefault(pid, {"start": self.boot + started, "title": "", "cpu": []})
            title = _title(pid)
            if _better_title(info["title"], title):
                info["title"] = title.split(".")[0]
            info["cpu"].append((now, cpu))

    def cpu_at(self, pid: int, when: float) -> float:
        """CPU seconds the process had used by `when` (its last sample before then)."""
        used = 0.0
        for t, cpu in self.procs[pid]["cpu"]:
            if t > when:
                break
            used = cpu
        return used


def _watch_logs(folder: Path, seen: dict[str, float], logged: dict[int, float], done: threading.Event):
    """Timestamp the run's marker lines (train.log) and each step's metrics line (metrics.jsonl)."""
    offsets: dict[Path, int] = {}
    while not done.is_set():
        for path in [*folder.rglob("train.log"), *folder.rglob("metrics.jsonl")]:
            with open(path, errors="replace") as f:
                f.seek(offsets.get(path, 0))
                text = f.read()
            complete = text[:text.rfind("\n") + 1]
            offsets[path] = offsets.get(path, 0) + len(complete.encode(errors="replace"))
            now = time.time()
            for line in complete.splitlines():
                if path.name == "metrics.jsonl":
                    if line.strip():
                        logged.setdefault(json.loads(line)["step"], now)
                    continue
                for marker, phase in MARKERS.items():
                    if marker in line and phase not in seen:
                        stamp = _LINE_TIME.search(line)
                        seen[phase] = (time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
                                       + int(stamp.group(2)) / 1000) if stamp else now
        time.sleep(0.1)


def default_run(repo: Path = REPO, baseline: Path | None = None, save: Path | None = None) -> dict:
    """Time the embedded default from outside: wall split by when its steps were logged, verl's
    start-up markers, and every process's start and CPU seconds per phase (sampled from /proc)."""
    with tempfile.TemporaryDirectory(prefix="radgrpo_engine_") as tmp:
        env = {**os.environ, "RADGRPO_OUTPUTS": tmp, "VERL_LOGGING_LEVEL": "INFO", "PYTHONPATH": str(repo)}
        commit = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"], capture_output=True,
                                text=True).stdout.strip()[:72]
        print(f"default run of {repo} ({commit})")
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "radgrpo.cli.train"], cwd=repo, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = ProcessSampler(proc.pid)
        sampler.thread.start()
        seen: dict[str, float] = {}
        logged: dict[int, float] = {}  # step -> when its metrics line appeared
        done = threading.Event()
        watcher = threading.Thread(target=_watch_logs, args=(Path(tmp), seen, logged, done), daemon=True)
        watcher.start()
        output = proc.communicate()[0]
        ended = time.time()
        sampler.stop.set()
        sampler.thread.join()
        time.sleep(0.3)
        done.set()
        watcher.join()
        if proc.returncode != 0:
            sys.exit(f"the default run failed:\n{output[-3000:]}")
        (metrics,) = Path(tmp).rglob("metrics.jsonl")
        steps = {r["step"]: r["data"] for r in map(json.loads, metrics.read_text().splitlines())
                 if "timing_s/step" in r["data"]}
    first, last = min(steps), max(steps)
    step_time = sum(d["timing_s/step"] for d in steps.values())
    first_start = logged[first] - steps[first]["timing_s/step"]
    startup = first_start - started
    shutdown = ended - logged[last]
    per_step = ", ".join(f"{d['timing_s/step']:.1f}" for d in steps.values())
    gen = ", ".join(f"{d['timing_s/gen']:.2f}" for d in steps.values())
    between = ended - started - startup - step_time - shutdown
    bounds = [("start-up", started, first_start)]
    previous = first_start
    for step in sorted(steps):
        bounds.append((f"step {step}", previous, logged[step]))
        previous = logged[step]
    bounds.append(("shut-down", previous, ended + 1))
    phase_cpu = {name: sum(sampler.cpu_at(pid, b) - sampler.cpu_at(pid, a) for pid in sampler.procs)
                 for name, a, b in bounds}
    sampled_cpu = sum(info["cpu"][-1][1] for info in sampler.procs.values())
    result = {"wall": ended - started, "startup": startup, "steps": [d["timing_s/step"] for d in steps.values()],
              "shutdown": shutdown, "cpu_sampled": sampled_cpu,
              "processes": len(sampler.procs), "phase_cpu": phase_cpu}

    print(f"default run: {ended - started:.1f} s wall = start-up {startup:.1f} s + {len(steps)} steps "
          f"{step_time:.1f} s ({per_step}) + shut-down {shutdown:.1f} s (+ {between:.1f} s between steps); "
          f"gen per step {gen} s")
    print(f"  CPU: {sampled_cpu:.1f} CPU-s sampled over {len(sampler.procs)} processes; per phase: "
          + ", ".join(f"{name} {cpu:.1f}" for name, cpu in phase_cpu.items()))
    print(f"  console: {len(output.splitlines())} lines")
    print("  timeline (s from launch):")
    for phase, when in sorted(seen.items(), key=lambda kv: kv[1]):
        print(f"    {when - started:6.1f}  {phase}")
    for step in sorted(steps):
        print(f"    {logged[step] - steps[step]['timing_s/step'] - started:6.1f}  step {step} starts "
              f"({steps[step]['timing_s/step']:.1f} s)")
    print(f"    {ended - started:6.1f}  process exit")
    names = [name for name, _, _ in bounds]
    print(f"  processes: start, end (s from launch), CPU-s per phase ({', '.join(names)}), total")
    for pid, info in sorted(sampler.procs.items(), key=lambda kv: kv[1]["start"]):
        cpus = [sampler.cpu_at(pid, b) - sampler.cpu_at(pid, a) for _, a, b in bounds]
        end = info["cpu"][-1][0] - started
        print(f"    {info['start'] - started:6.1f} {end:6.1f}  {info['title'][:38]:38s} "
              + " ".join(f"{c:5.1f}" for c in cpus) + f"  {info['cpu'][-1][1]:5.1f}")
    width = 2.5
    windows = [started + width * i for i in range(int((ended - started) / width) + 1)]
    busy = [sum(sampler.cpu_at(pid, a + width) - sampler.cpu_at(pid, a) for pid in sampler.procs) / width
            for a in windows]
    result["busy_cores"] = busy
    print(f"  cores busy per {width:g} s from launch (2 = both cores, all processes of the run): "
          + " ".join(f"{b:.1f}" for b in busy))
    print(f"  mean {sampled_cpu / (ended - started):.2f} cores busy over the run")
    if save:
        save.write_text(json.dumps(result, indent=1))
    if baseline:
        base = json.loads(baseline.read_text())
        print(f"  against {baseline.name}: wall {result['wall'] / base['wall']:.2f}x, "
              f"CPU-s {result['cpu_sampled'] / base['cpu_sampled']:.2f}x, start-up "
              f"{result['startup'] / base['startup']:.2f}x, steps "
              + ", ".join(f"{a / b:.2f}x" for a, b in zip(result["steps"], base["steps"])))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-run", action="store_true", help="skip the default run")
    parser.add_argument("--no-generation", action="store_true", help="skip the generation comparison")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the radgrpo checkout whose default run is timed (its folder is PYTHONPATH and cwd)")
    parser.add_argument("--save", type=Path, help="write the default run's figures to this JSON file")
    parser.add_argument("--baseline", type=Path, help="a --save file to compare the default run against")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.no_generation:
        generation(args.prompts, args.n, args.max_tokens, args.repeats)
    if not args.no_run:
        default_run(args.repo, args.baseline, args.save)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
