"""Benchmark: radgrpo-prep vs a seed-000-style converter on a generated RadVLM LLaVA JSON.

The baseline works the way seed 000's `llava_json_to_verl_iou_robust.py` does: `json.load` of the
whole file, a Python loop over records building verl rows, `datasets.Dataset.from_list`,
`to_parquet`. It produces the same rows as radgrpo-prep (checked below), so the comparison is of
the data path, not of what is computed. Both run as whole processes (radgrpo-prep through its
console script, Hydra start-up included); peak RSS is each process's ru_maxrss.

    .venv/bin/python benchmarks/prep.py                 # 200,000 and 400,000 records
    .venv/bin/python benchmarks/prep.py --records 20000 --no-double --repeat 1

Prints records/s (wall and CPU) and peak RSS of both, the ratios, and whether radgrpo-prep's RSS
stays flat when the input doubles. Each side runs `--repeat` times and the best run counts, because
on a shared machine wall time mostly measures the neighbours; CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PREP = str(Path(PYTHON).with_name("radgrpo-prep"))

FINDINGS = ["nodule", "pleural effusion", "cardiomegaly", "consolidation", "pneumothorax", "atelectasis"]
REPORT = ("The cardiomediastinal silhouette is within normal limits. There is no focal consolidation, "
          "pleural effusion or pneumothorax. {} Degenerative changes of the thoracic spine.")


def make_images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"cxr_{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def record(i: int, images: list[str], rng: random.Random) -> dict:
    """A RadVLM-style record: 60% grounding (VinDr-CXR), 40% report (MIMIC-CXR)."""
    image = images[i % len(images)]
    if rng.random() < 0.6:
        boxes = []
        for _ in range(rng.randint(0, 3)):
            x1, y1 = rng.random() * 0.6, rng.random() * 0.6
            boxes.append([round(x1, 2), round(y1, 2), round(x1 + 0.05 + rng.random() * 0.3, 2),
                          round(y1 + 0.05 + rng.random() * 0.3, 2)])
        question = "Could you indicate if there are any abnormalities on this Chest X-ray and their locations?"
        answer = ("No abnormalities or lesions are detected on this Chest X-ray." if not boxes else
                  "The findings include " + "; ".join(f"a {rng.choice(FINDINGS)} located at the coordinates {b}"
                                                      for b in boxes) + ".")
        rid = f"{rng.choice(['vindr-cxr', 'vindr-cxr-mono'])}_{i}"
    else:
        question = "Write a radiology report for this Chest X-ray."
        answer = REPORT.format(f"Finding number {i} noted.")
        rid = f"mimic-cxr_{i}"
    return {"image": image, "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                                              {"from": "gpt", "value": answer}], "id": rid}


def make_input(path: Path, n: int, images: list[str]) -> None:
    """Write the JSON list the way RadVLM does (indented), streaming to keep this script small."""
    rng = random.Random(n)
    with open(path, "w") as fh:
        fh.write("[\n")
        for i in range(n):
            fh.write(("" if i == 0 else ",\n") + json.dumps(record(i, images, rng), indent=4))
        fh.write("\n]\n")


BASELINE = textwrap.dedent('''
    """Seed-000-style converter: json.load, per-record Python, Dataset.from_list, to_parquet."""
    import json, os, re, sys
    import datasets
    from radgrpo.data.schema import encode_ground_truth

    BOX = re.compile(r"\\[([^\\[\\]]+)\\]")
    WHERE = re.compile(r"locat|where|position|coordinates|bounding box", re.IGNORECASE)
    NONE = ("no abnormalities", "no lesions", "clear of any", "no visible", "no signs", "can't find any",
            "no detectable", "does not display")

    src, out = sys.argv[1], sys.argv[2]
    with open(src) as fh:
        data = json.load(fh)
    rows = []
    for i, rec in enumerate(data):
        try:
            image, conv, rid = rec["image"], rec["conversations"], rec["id"]
            question = conv[0]["value"].replace("<image>", "").strip()
            answer = conv[1]["value"].strip()
            boxes = [[float(v) for v in m.split(",")] for m in BOX.findall(answer)]
            if not boxes and not WHERE.search(question):
                continue  # not a grounding sample
            if not boxes and not any(p in answer.lower() for p in NONE):
                continue
            if any(len(b) != 4 or not all(0 <= v <= 1 for v in b) for b in boxes):
                continue
            image = image if os.path.isabs(image) else os.path.join(os.path.dirname(src), image)
            if not os.path.exists(image):
                continue
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        dataset = rid.rsplit("_", 1)[0]
        answer_type = "no_finding" if not boxes else "single_box" if len(boxes) == 1 else "multi_box"
        rows.append({
            "data_source": dataset,
            "prompt": [{"role": "user", "content": "<image>\\n" + question}],
            "images": [{"image": "file://" + image}],
            "ability": "grounding",
            "reward_model": {"style": "rule", "ground_truth": encode_ground_truth("grounding", boxes=boxes)},
            "extra_info": {"id": rid, "split": "train", "index": len(rows), "source_index": i,
                           "task": "grounding", "dataset": dataset, "question": question,
                           "answer": answer, "answer_type": answer_type, "label": "",
                           "num_images": 1, "num_boxes": len(boxes)},
        })
    os.makedirs(out, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(os.path.join(out, "train.parquet"))
    print(len(rows))
''')


def measured(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (bytes) of one command, run as its
    own process under a wrapper that reads the child's rusage."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(time.perf_counter() - t, u.ru_utime + u.ru_stime, u.ru_maxrss, r.returncode)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    out = subprocess.run([PYTHON, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=True)
    seconds, cpu, rss_kb, rc = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"{cmd[0]} failed ({rc}): {out.stderr[-2000:]}")
    return float(seconds), float(cpu), int(rss_kb) * 1024


def best_of(cmd: list[str], repeat: int) -> tuple[float, float, int]:
    """Fastest wall and CPU time and the largest peak RSS over `repeat` runs (the machine may be
    shared: the minimum is the least disturbed run)."""
    runs = [measured(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)


def rows_of(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(folder)
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: r["extra_info"]["id"])


def bench(n: int, work: Path, images: list[str], check_same: bool, repeat: int) -> dict:
    src = work / f"llava_{n}.json"
    t = time.perf_counter()
    make_input(src, n, images)
    print(f"  generated {n:,} records ({src.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s")
    baseline_script = work / "baseline.py"
    baseline_script.write_text(BASELINE)
    ours_out, base_out = work / f"ours_{n}", work / f"base_{n}"
    ours = [PREP, f"input={src}", f"output={ours_out}", "task=grounding", "val_fraction=0", "progress=false",
            "force=true", f"hydra.run.dir={work}/hydra"]
    base = [PYTHON, str(baseline_script), str(src), str(base_out)]
    ours_t, ours_cpu, ours_rss = best_of(ours, repeat)
    base_t, base_cpu, base_rss = best_of(base, repeat)
    result = {"records": n, "ours_s": ours_t, "ours_cpu": ours_cpu, "ours_rss": ours_rss,
              "base_s": base_t, "base_cpu": base_cpu, "base_rss": base_rss}
    if check_same:
        ours_rows, base_rows = rows_of(ours_out / "train"), rows_of(base_out)
        result["same_rows"] = ours_rows == base_rows
        result["rows"] = len(ours_rows)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--no-double", action="store_true", help="skip the 2x input run (RSS flatness)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radgrpo-prep-bench-") as tmp:
        work = Path(tmp)
        images = make_images(work / "images", args.images)
        sizes = [args.records] + ([] if args.no_double else [2 * args.records])
        results = []
        for n in sizes:
            print(f"== {n:,} records")
            r = bench(n, work, images, check_same=(n == args.records), repeat=args.repeat)
            results.append(r)
            for name, key in (("radgrpo-prep", "ours"), ("baseline    ", "base")):
                print(f"  {name}: {r[key + '_s']:.2f}s wall, {n / r[key + '_s']:,.0f} records/s; "
                      f"{r[key + '_cpu']:.2f}s CPU, {n / r[key + '_cpu']:,.0f} records/CPU-s; "
                      f"peak RSS {r[key + '_rss'] / 2**20:.0f} MiB")
            print(f"  throughput x{r['base_s'] / r['ours_s']:.2f} (wall), x{r['base_cpu'] / r['ours_cpu']:.2f} (CPU); "
                  f"peak RSS ratio {r['ours_rss'] / r['base_rss']:.3f}" +
                  (f", same rows: {r['same_rows']} ({r['rows']:,} rows)" if "same_rows" in r else ""))
        if len(results) == 2:
            growth = results[1]["ours_rss"] / results[0]["ours_rss"] - 1
            print(f"== radgrpo-prep peak RSS at 2x input: {growth * 100:+.1f}% "
                  f"({'flat' if abs(growth) <= 0.2 else 'NOT flat'}, target within 20%)")


if __name__ == "__main__":
    main()
