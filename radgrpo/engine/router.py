"""The rollout load balancer of CPU runs: verl's routing, without verl in its process.

verl 0.9.1 routes every generation request through one Ray actor, `GlobalRequestLoadBalancer`
(`verl/workers/rollout/router.py`). Unpickling that class in its actor process imports verl's package
(torch, transformers, TransferQueue) and so radgrpo's plugin: measured 4.7 of a tiny run's 53 CPU-s,
while the rollout servers generate nothing yet, to route requests to one hf rollout server.

`DeterministicRouter` implements verl's load-balancer protocol (`RequestLoadBalancer` in the same file)
the way verl's balancer does with `rollout.full_determinism` (which the CPU profile sets): a request id
always goes to the same server, picked from its hash over the pool. The hash is CRC-32, stable across
processes, where verl's uses Python's salted `hash`. Its module imports nothing beyond the standard
library, so its Ray actor imports Ray alone. verl loads it through its router plugin point
(`actor_rollout_ref.rollout.router_config_path`: a YAML naming `router_class`, whose contents verl
passes to the constructor after the servers), set by radgrpo.engine.verl_config's CPU profile.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

ROUTER_CONFIG = Path(__file__).with_name("cpu_router.yaml")


class DeterministicRouter:
    """Route each request id to `servers[crc32(request_id) % len(servers)]`, counting in-flight requests."""

    def __init__(self, servers: dict[str, Any], config: dict | None = None):
        self._servers: dict[str, Any] = dict(servers)
        self._inflight: dict[str, int] = {sid: 0 for sid in servers}

    def acquire_server(self, request_id: str, **extra) -> tuple[str, Any]:
        if not self._servers:
            raise RuntimeError("No available servers in load balancer")
        ids = list(self._servers)
        server_id = ids[zlib.crc32(str(request_id).encode()) % len(ids)]
        self._inflight[server_id] += 1
        return server_id, self._servers[server_id]

    def release_server(self, server_id: str, request_id: str | None = None) -> None:
        if self._inflight.get(server_id, 0) > 0:
            self._inflight[server_id] -= 1

    def require_acquire_fields(self) -> list[str]:
        return []

    def require_release_fields(self) -> list[str]:
        return []

    def add_servers(self, servers: dict[str, Any]) -> None:
        for sid, handle in servers.items():
            self._servers[sid] = handle
            self._inflight.setdefault(sid, 0)

    def remove_servers(self, server_ids: list[str]) -> None:
        for sid in server_ids:
            self._servers.pop(sid, None)
            self._inflight.pop(sid, None)

    def get_all_servers(self) -> list[str]:
        return list(self._servers)

    def get_status(self) -> dict:
        return {"servers": dict(self._inflight), "total_inflight": self.get_total_inflight(),
                "active_servers": len(self._servers), "registered_handles": list(self._servers)}

    def clear_sticky_cache(self) -> dict:
        """Nothing is cached: the hash decides. Returns verl's diagnostics shape."""
        return {"cleared_entries": 0, "server_loads": dict(self._inflight)}

    def get_total_inflight(self) -> int:
        return sum(self._inflight.values())
