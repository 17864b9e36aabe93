"""radgrpo-eval's configuration around the metrics: model-based report metrics switched on by their
paths and checked as the training reward is, their per-sample values averaged without fallbacks;
wandb labels in the training run's group; the best step for a lower-is-better metric; and
`radgrpo suite=<name>`, a suite's datasets as verl validation sets."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from radgrpo.errors import ConfigError
from radgrpo.eval.evaluate import write_best
from radgrpo.eval.metrics import Record, bootstrap_ci, report_metrics
from radgrpo.eval.model_metrics import active_metrics, score_samples
from radgrpo.runs.plan import plan_run

from ..conftest import CONF_DIR
from .test_config_tree import compose_train


def compose_eval(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="eval", overrides=overrides)


# ----- model-based report metrics ------------------------------------------------------------------
def test_model_metrics_are_off_until_a_path_or_endpoint_is_given(tmp_path):
    assert active_metrics(compose_eval([])) == []
    with pytest.raises(ConfigError, match=r"^model_metrics\.radcliq: model_metrics\.radcliq\.models\.radgraph is not set"):
        active_metrics(compose_eval(["model_metrics.radcliq.server.url=http://127.0.0.1:1"]))
    with pytest.raises(ConfigError, match=r"model_metrics\.radcliq\.server\.url is not set"):
        active_metrics(compose_eval([f"model_metrics.radcliq.models.{k}={tmp_path}" for k in ("radgraph", "chexbert", "bertscore")]))
    with pytest.raises(ConfigError, match=r"model_metrics\.green\.judge\.model is not set"):
        active_metrics(compose_eval(["model_metrics.green.judge.url=http://127.0.0.1:1"]))
    (metric,) = active_metrics(compose_eval([*(f"model_metrics.radcliq.models.{k}={tmp_path}" for k in ("radgraph", "chexbert", "bertscore")),
                                             "model_metrics.radcliq.server.url=http://127.0.0.1:1"]))
    # the training reward's terms and shared options: the same call a training step makes
    assert metric.reward == "radcliq" and metric.params["version"] == "v1"
    assert metric.params["server"]["url"] == "http://127.0.0.1:1" and metric.params["fallback_score"] == -3.0
    assert metric.components == ("radgraph", "bertscore", "semb", "bleu2")


def test_an_unreachable_server_is_a_counted_fallback_and_a_short_report_is_radcliq_3(tmp_path):
    cfg = compose_eval([*(f"model_metrics.radcliq.models.{k}={tmp_path}" for k in ("radgraph", "chexbert", "bertscore")),
                        "model_metrics.radcliq.server.url=http://127.0.0.1:9", "model_metrics.radcliq.server.retries=0",
                        "model_metrics.radcliq.server.timeout=2"])
    gt = {"task": "report", "report": "Small left pleural effusion."}
    values, fallbacks = score_samples(["no effusion seen here", "tiny"], [gt, gt], [{}, {}], active_metrics(cfg))
    assert fallbacks == {"radcliq": 1}
    assert values[0] == {"radcliq": None, "radcliq/radgraph": None, "radcliq/bertscore": None, "radcliq/semb": None,
                         "radcliq/bleu2": None}
    assert values[1]["radcliq"] == 3.0  # RadVLM-GRPO: <= 5 characters scores -3, no server call


def test_report_metrics_average_model_values_without_the_fallbacks():
    gt = {"task": "report", "report": "the lungs are clear"}
    records = [Record("the lungs are clear", gt, {}, {"radcliq": 1.0}), Record("x", gt, {}, {"radcliq": None}),
               Record("the lungs", gt, {}, {"radcliq": 2.0})]
    out = report_metrics(records)
    assert out["radcliq"] == pytest.approx(1.5)
    assert report_metrics(records[1:2]).keys() == {"bleu4", "rouge_l"}  # nothing scored: no value
    low, high = bootstrap_ci(records, report_metrics, 300, 0)["radcliq"]
    assert 1.0 <= low <= 1.5 <= high <= 2.0


def test_best_step_is_the_lowest_radcliq_and_the_highest_bleu(tmp_path):
    rows = [{"step": "global_step_1", "dataset": "mimic", "metric": "radcliq", "value": 0.9},
            {"step": "global_step_2", "dataset": "mimic", "metric": "radcliq", "value": 0.4},
            {"step": "global_step_1", "dataset": "mimic", "metric": "bleu4", "value": 0.3},
            {"step": "global_step_2", "dataset": "mimic", "metric": "bleu4", "value": 0.2}]
    best = OmegaConf.load(write_best(rows, tmp_path))
    assert best.mimic.radcliq.step == "global_step_2" and best.mimic.bleu4.step == "global_step_1"


# ----- wandb labels --------------------------------------------------------------------------------
def test_eval_runs_join_the_training_runs_group(tmp_path):
    from radgrpo.tracking.labels import eval_labels

    cfg = compose_eval(["logger=wandb"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # a run with no sweep or experiment: its evaluations are grouped under its folder name
    assert eval_labels(cfg, run_dir).group == "run"
    # the training run's own logger.group, as recorded in its folder
    (run_dir / "radgrpo_config.yaml").write_text(OmegaConf.to_yaml({"logger": {"group": "ablation-7"}}))
    labels = eval_labels(cfg, run_dir, ("suite:radvlm_grounding", "step:global_step_2"))
    assert labels.job_type == "eval" and labels.group == "ablation-7"
    assert {"model:tiny_qwen2_5_vl", "suite:radvlm_grounding", "step:global_step_2"} <= set(labels.tags)
    # the evaluation's own logger.group wins; a base model has no training run
    assert eval_labels(compose_eval(["logger=wandb", "logger.group=mine"]), run_dir).group == "mine"
    assert eval_labels(cfg, None).group is None


# ----- suites as verl validation sets -------------------------------------------------------------
def _parquet(folder):
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"data_source": folder.parent.name, "extra_info": {"id": "0"}}]),
                   folder / "part-00000.parquet")
    return str(folder / "part-00000.parquet")


def test_a_suite_adds_its_datasets_to_verls_validation_files(tmp_path):
    data = tmp_path / "vindr_grounding"
    own = [_parquet(data / "train"), _parquet(data / "val")][1]
    suite = [_parquet(tmp_path / "suites" / name / "val") for name in ("vindr-cxr", "mscxr", "chestima")]
    cfg = compose_train(["data=prepared", f"data.dir={data}", "suite=radvlm_grounding",
                         f"suite.root={tmp_path / 'suites'}", "cluster.device=cpu"], tmp_path)
    assert list(plan_run(cfg).verl_config.data.val_files) == [own, *suite]
    # without a suite, the data's own val split only
    plain = compose_train(["data=prepared", f"data.dir={data}", "cluster.device=cpu"], tmp_path)
    assert "suite" not in plain and list(plan_run(plain).verl_config.data.val_files) == [own]


def test_a_suite_of_another_task_needs_a_reward_routed_by_task(tmp_path):
    data = tmp_path / "vindr_grounding"
    _parquet(data / "train"), _parquet(data / "val")
    report = _parquet(tmp_path / "suites" / "mimic" / "val")
    args = ["data=prepared", f"data.dir={data}", "suite=radvlm_report", f"suite.root={tmp_path / 'suites'}",
            "cluster.device=cpu"]
    with pytest.raises(ConfigError, match=r"suite radvlm_report: set 'mimic' is a report set, but reward=iou scores grounding"):
        plan_run(compose_train(args, tmp_path))
    assert report in plan_run(compose_train([*args, "reward=radvlm_tasks"], tmp_path)).verl_config.data.val_files


def test_a_suite_with_a_missing_root_or_folder_fails_before_anything_runs(tmp_path):
    from radgrpo.runs.plan import missing_keys

    cfg = compose_train(["suite=radvlm_grounding"], tmp_path)
    assert missing_keys(cfg) == ["suite.root"]
    with open_dict(cfg):
        cfg.suite.root = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"suite\.sets\.vindr-cxr\.files: file not found"):
        plan_run(cfg)
