"""The reward server end to end: started from launchers/, a batch scored through verl's entry point,
token enforcement, then the fallback when the server is too slow or gone."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import REGISTRY, register
from radgrpo.rewards.client import ServerSettings, failures, post_scores
from radgrpo.rewards.verl_entry import compute_score

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "launchers" / "reward_server.sh"


def slow_scorer(options):
    """A scorer slower than the server's request timeout (loaded as module:function)."""

    def score(items):
        time.sleep(2.0)
        return [{"score": 1.0} for _ in items]

    return score


SLOW_WORD = "slowly"  # a reference holding it takes SLOW_SECONDS to score
SLOW_SECONDS = 2.5


def radcliq_components(options):
    """A small stand-in for the RadCliQ model scorers (same name and result keys): RadGraph F1 = token F1
    of prediction and reference, BERTScore = half of it, CheXbert cosine = 1 - it; slower than the
    server's request timeout for a reference with SLOW_WORD (radgrpo-eval's fallback test)."""
    from radgrpo.rewards.text import token_f1, words

    def score(items):
        out = []
        for item in items:
            if SLOW_WORD in item["reference"]:
                time.sleep(SLOW_SECONDS)
            f1 = token_f1(words(item["prediction"]), words(item["reference"]))
            out.append({"radgraph": f1, "bertscore": 0.5 * f1, "semb": 1.0 - f1})
        return out

    return score


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args, env=None):
    port = _free_port()
    process = subprocess.Popen(
        [str(LAUNCHER), "--port", str(port), *args],
        env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]), **(env or {})},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return process, url
        except urllib.error.HTTPError:  # up, but wants a token
            return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("reward server exited")
            time.sleep(0.1)
    raise RuntimeError("reward server did not start")


def stop_server(process):
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


@pytest.fixture
def similarity_reward():
    """A server-backed reward: the tiny deterministic text-similarity scorer, with fallback."""

    @register("_server_similarity", low=0.0, high=1.0, components=("server_failed",))
    def server_similarity(text, gt, extra_info, server=None, fallback_score=0.0):
        results = post_scores(ServerSettings.from_config(server, "reward.server"), "text_similarity", [{"prediction": text, "reference": gt.get("report", "")}])
        if results is None:
            return {"score": fallback_score, "server_failed": 1.0}
        return {"score": results[0]["score"], "server_failed": 0.0}

    yield
    del REGISTRY["_server_similarity"]


def test_server_scores_a_batch_through_the_verl_entry_point_then_falls_back(similarity_reward):
    process, url = start_server("--scorer", "text_similarity", "--max-wait-ms", "20")
    gt = encode_ground_truth("report", report="small left pleural effusion")
    reward_kwargs = {
        "terms": [{"name": "_server_similarity", "weight": 1.0, "params": {}}, {"name": "format", "weight": 0.0, "params": {}}],
        "server": {"url": url, "timeout": 2.0, "retries": 0},
        "fallback_score": 0.123,
    }
    outputs = ["small left pleural effusion", "small effusion", "no finding", ""] * 8  # 32 samples, as verl's threads send them
    try:
        with ThreadPoolExecutor(8) as pool:
            scored = list(pool.map(lambda text: compute_score("report", text, gt, {}, **reward_kwargs), outputs))
    finally:
        stop_server(process)
    assert [s["_server_similarity"] for s in scored[:4]] == pytest.approx([1.0, 2 * (2 / 2) * (2 / 4) / (1 + 2 / 4), 0.0, 0.0])
    assert all(s["_server_similarity/server_failed"] == 0.0 for s in scored)

    before = failures()
    start = time.monotonic()
    after_stop = compute_score("report", "small effusion", gt, {}, **reward_kwargs)
    assert after_stop["score"] == 0.123 and after_stop["_server_similarity/server_failed"] == 1.0
    assert failures() == before + 1 and time.monotonic() - start < 2.0
    assert set(after_stop) == set(scored[0])


def test_slow_scorer_hits_the_request_timeout_and_the_reward_falls_back(similarity_reward):
    process, url = start_server("--scorer", "test_reward_server:slow_scorer", "--request-timeout", "0.3")
    try:
        start = time.monotonic()
        assert post_scores(ServerSettings(url, timeout=5.0, retries=0), "slow_scorer", [{"x": 1}]) is None
        assert time.monotonic() - start < 1.5  # the server answered 504 after 0.3 s
        # client-side timeout: the client gives up before the server's own limit
        process2, url2 = start_server("--scorer", "test_reward_server:slow_scorer", "--request-timeout", "30")
        try:
            start = time.monotonic()
            assert post_scores(ServerSettings(url2, timeout=0.5, retries=0), "slow_scorer", [{"x": 1}]) is None
            assert time.monotonic() - start < 1.5
        finally:
            stop_server(process2)
    finally:
        stop_server(process)


def test_token_is_required_when_set():
    process, url = start_server("--scorer", "text_similarity", env={"RADGRPO_REWARD_TOKEN": "s3cret"})
    try:
        items = [{"prediction": "a", "reference": "a"}]
        assert post_scores(ServerSettings(url, token="wrong", retries=0), "text_similarity", items) is None
        assert post_scores(ServerSettings(url, token="s3cret", retries=0), "text_similarity", items) == [{"score": 1.0}]
    finally:
        stop_server(process)


def test_non_loopback_bind_without_token_is_refused():
    result = subprocess.run(
        [str(LAUNCHER), "--scorer", "text_similarity", "--host", "0.0.0.0"],
        env={k: v for k, v in os.environ.items() if k != "RADGRPO_REWARD_TOKEN"} | {"PYTHON": sys.executable},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "set --token" in result.stderr
