"""A real model on prepared data trains with real-run values; only the smoke-sized options (the tiny
model, the synthetic data) shrink them, so `radgrpo` with no arguments stays a 2-step smoke run."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from radgrpo.runs.plan import plan_run

from ..conftest import CONF_DIR
from .test_config_tree import compose_train

SMOKE = OmegaConf.load(CONF_DIR / "smoke_sized.yaml").algorithm
REAL_MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not OmegaConf.load(p).get("tiny"))


def prepared_dir(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "ds" / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{"data_source": "x", "extra_info": {"id": str(i)}} for i in range(4)]),
                       tmp_path / "ds" / split / "part-00000.parquet")
    return tmp_path / "ds"


def vllm_serves(model: str) -> bool:
    from radgrpo.models.families import get_family

    return get_family(str(OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml").family)).vllm_serves


@pytest.mark.parametrize("model", REAL_MODELS)
def test_a_real_model_on_prepared_data_inherits_no_smoke_value(model, tmp_path):
    cfg = compose_train([f"model={model}", "data=prepared", f"data.dir={prepared_dir(tmp_path)}",
                         # a family vLLM cannot serve is planned for the CPU (on GPU it stops at planning)
                         "cluster.device=cuda" if vllm_serves(model) else "cluster.device=cpu"], tmp_path)
    inherited = {k: v for k, v in SMOKE.items() if cfg.algorithm.get(k) == v}
    assert not inherited, f"model={model} data=prepared composes smoke-sized values {inherited}"
    verl = plan_run(cfg).verl_config
    assert verl.trainer.total_training_steps is None  # verl derives steps from the epochs and the data
    assert verl.trainer.total_epochs == cfg.algorithm.total_epochs
    assert verl.data.train_batch_size % verl.actor_rollout_ref.actor.ppo_mini_batch_size == 0
    assert verl.trainer.save_freq > 0


def test_the_smoke_sized_options_shrink_the_algorithm(tmp_path):
    for overrides in ([], ["model=qwen2_5_vl_7b"], ["data=prepared", "data.dir=/d"]):
        cfg = compose_train(overrides, tmp_path)
        assert {k: cfg.algorithm[k] for k in SMOKE} == dict(SMOKE), overrides


def test_command_line_values_win_over_the_smoke_sizes(tmp_path):
    cfg = compose_train(["algorithm.total_training_steps=5", "algorithm.train_batch_size=16"], tmp_path)
    assert cfg.algorithm.total_training_steps == 5 and cfg.algorithm.train_batch_size == 16
