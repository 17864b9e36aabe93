"""Client side of the model-based rewards: call the reward server (or an OpenAI-compatible judge)
and fall back instead of failing.

RadVLM-GRPO serves its RadCliQ scorers from a dedicated node that `compute_score` calls over HTTP
(notes/rewards-and-metrics.md). A training step must not die or hang because that node is slow or
gone, so every call has a timeout and a retry count, and on failure the reward returns its
configured `fallback_score` with a `server_failed` component of 1; the batch mean of that component
is the step's failure rate in the metrics. `failures()` counts them per process as well.
Standard library only: this runs inside verl's reward workers.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping

TOKEN_ENV = "RADGRPO_REWARD_TOKEN"
_lock = threading.Lock()
_failures = 0


@dataclass(frozen=True)
class ServerSettings:
    url: str
    token: str | None = None
    timeout: float = 30.0
    retries: int = 1

    @classmethod
    def from_config(
        cls, config: Mapping | None, key: str, service: str = "the reward server (launchers/reward_server.sh)"
    ) -> "ServerSettings":
        """Settings from a `server`/`judge` config mapping; ValueError naming `key`.url when unset."""
        config = config or {}
        url = config.get("url")
        if not url:
            raise ValueError(f"{key}.url is not set: start {service} and set {key}.url to its address")
        token = config.get("token") or os.environ.get(TOKEN_ENV)
        return cls(str(url).rstrip("/"), token, float(config.get("timeout", 30.0)), int(config.get("retries", 1)))


def post_json(settings: ServerSettings, path: str, payload: dict) -> Any | None:
    """POST `payload` to `settings.url + path`; the decoded reply, or None after `retries` failures."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if settings.token:
        headers["Authorization"] = f"Bearer {settings.token}"
    for _ in range(max(1, settings.retries + 1)):
        request = urllib.request.Request(settings.url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            continue
    return record_failure()


def post_scores(settings: ServerSettings, scorer: str, items: list[dict]) -> list[dict] | None:
    """Score `items` with the server's `scorer`; one result dict per item, or None on failure."""
    reply = post_json(settings, "/score", {"scorer": scorer, "items": items})
    results = reply.get("results") if isinstance(reply, dict) else None
    if not isinstance(results, list) or len(results) != len(items) or not all(isinstance(r, dict) for r in results):
        return record_failure() if reply is not None else None
    return results


def record_failure() -> None:
    """Count one failed call (unreachable, timed out, or an unusable reply); returns None."""
    global _failures
    with _lock:
        _failures += 1


def failures() -> int:
    """Server calls that failed (after retries) in this process."""
    return _failures
