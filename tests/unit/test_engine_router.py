"""The CPU runs' rollout load balancer (radgrpo.engine.router): verl's protocol, verl's deterministic
routing, loaded through verl's own router plugin point, and no verl in its process."""

from __future__ import annotations

import inspect
import subprocess
import sys

from radgrpo.engine.router import ROUTER_CONFIG, DeterministicRouter
from radgrpo.engine.verl_config import CPU_PROFILE, GPU_PROFILE

from ..conftest import REPO


def test_it_has_every_method_of_verls_load_balancer_protocol():
    from verl.workers.rollout.router import RequestLoadBalancer

    wanted = {name for name, _ in inspect.getmembers(RequestLoadBalancer, inspect.isfunction)
              if not name.startswith("_")}
    assert wanted and wanted <= set(dir(DeterministicRouter))


def test_a_request_id_always_reaches_the_same_server_and_in_flight_requests_are_counted():
    servers = {f"server-{i}": object() for i in range(3)}
    router = DeterministicRouter(servers, {"router_class": "x"})
    picks = {rid: router.acquire_server(rid)[0] for rid in (f"det-{i}" for i in range(30))}
    assert len(set(picks.values())) == 3  # the hash spreads 30 ids over the three servers
    assert router.get_total_inflight() == 30
    again = DeterministicRouter(servers)
    assert all(again.acquire_server(rid)[0] == sid for rid, sid in picks.items())  # a fresh process agrees
    for rid, sid in picks.items():
        router.release_server(sid, rid)
    assert router.get_total_inflight() == 0
    router.release_server("server-0")  # an extra release never goes below zero
    assert router.get_status()["servers"]["server-0"] == 0
    router.remove_servers(["server-0", "server-1"])
    assert {router.acquire_server(rid)[0] for rid in picks} == {"server-2"}
    assert router.clear_sticky_cache()["cleared_entries"] == 0


def test_verl_builds_it_from_the_cpu_profile_router_file():
    from verl.workers.rollout.router import _load_router_yaml, _resolve_router_class

    assert CPU_PROFILE["actor_rollout_ref.rollout.router_config_path"] == str(ROUTER_CONFIG)
    assert "actor_rollout_ref.rollout.router_config_path" not in GPU_PROFILE  # vLLM keeps verl's balancer
    config = _load_router_yaml(str(ROUTER_CONFIG))
    assert _resolve_router_class(config["router_class"]) is DeterministicRouter


def test_its_module_imports_neither_verl_nor_torch():
    code = ("import sys, radgrpo.engine.router; "
            "print(sorted(m for m in ('verl', 'torch', 'transformers', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
