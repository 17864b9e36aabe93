"""The CPU engine's speed: the hf rollout against plain transformers, and where a default run's wall
time goes.

1. Generation, in this process, on the embedded tiny model and the same prompts (the synthetic
   grounding prompts with their images, each repeated `--n` times as a GRPO group): the hf rollout
   server's batched `generate_batch` against one plain batched `model.generate(do_sample=True)` call
   with the same inputs and token budget. Prints generated tokens per second of each and the ratio
   (target >= 0.8x), best of `--repeats`.
2. The embedded default (`python -m radgrpo.cli.train`), timed from outside: start-up (process start to
   the first step's start), the steps (verl's `timing_s/step`), and shut-down (last step logged to
   process exit). Skipped with `--no-run`.

    python benchmarks/engine.py [--prompts 8] [--n 4] [--repeats 3] [--no-run]
"""

from __future__ import annotations

import argparse
import json
import os
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


def default_run() -> None:
    """Time the embedded default from outside; the split comes from when its steps were logged."""
    with tempfile.TemporaryDirectory(prefix="radgrpo_engine_") as tmp:
        env = {**os.environ, "RADGRPO_OUTPUTS": tmp}
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "radgrpo.cli.train"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        logged: dict[int, float] = {}  # step -> when its metrics line appeared

        def watch():
            while proc.poll() is None:
                for path in Path(tmp).rglob("metrics.jsonl"):
                    for line in path.read_text().splitlines():
                        if line.strip() and line.endswith("}"):
                            logged.setdefault(json.loads(line)["step"], time.time())
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        output = proc.communicate()[0]
        ended = time.time()
        watcher.join()
        if proc.returncode != 0:
            sys.exit(f"the default run failed:\n{output[-3000:]}")
        (metrics,) = Path(tmp).rglob("metrics.jsonl")
        steps = {r["step"]: r["data"] for r in map(json.loads, metrics.read_text().splitlines())
                 if "timing_s/step" in r["data"]}
    first, last = min(steps), max(steps)
    step_time = sum(d["timing_s/step"] for d in steps.values())
    startup = logged[first] - started - steps[first]["timing_s/step"]
    shutdown = ended - logged[last]
    per_step = ", ".join(f"{d['timing_s/step']:.1f}" for d in steps.values())
    gen = ", ".join(f"{d['timing_s/gen']:.2f}" for d in steps.values())
    between = ended - started - startup - step_time - shutdown
    print(f"default run: {ended - started:.1f} s wall = start-up {startup:.1f} s + {len(steps)} steps "
          f"{step_time:.1f} s ({per_step}) + shut-down {shutdown:.1f} s (+ {between:.1f} s between steps); "
          f"gen per step {gen} s")
    print(f"  console: {len(output.splitlines())} lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-run", action="store_true", help="skip the default run")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    generation(args.prompts, args.n, args.max_tokens, args.repeats)
    if not args.no_run:
        default_run()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
