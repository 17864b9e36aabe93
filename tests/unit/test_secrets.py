"""One redaction module: secret-named keys in configs, secret values in text, files and the console."""

import io
import sys

from omegaconf import OmegaConf

from radgrpo.tracking.secrets import (REDACTED, RedactingStream, is_secret_name, redact_config, redact_files, scrub_argv,
                                      secret_values)


def test_secret_names_and_lookalikes_that_are_not():
    for name in ("WANDB_API_KEY", "HF_TOKEN", "RADGRPO_REWARD_TOKEN", "token", "reward.server.token", "api_key",
                 "apikey", "client_secret", "db_password", "AWS_SECRET_ACCESS_KEY", "openai-api-key", "passwd"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "max_new_tokens", "pad_token_id", "tokenizer", "token_f1", "key", "secrets_dir_count",
                 "use_kl_loss", "loss_agg_mode", "keyword"):
        assert not is_secret_name(name), name


def test_config_secrets_are_redacted_at_any_depth_and_their_values_in_other_strings():
    cfg = OmegaConf.create({"reward": {"server": {"url": "http://h", "token": "tok-123456"}},
                            "env": [{"HF_TOKEN": "hf_abcdefgh"}], "note": "curl -H 'Bearer tok-123456'",
                            "judge": {"api_key": None}, "max_tokens": 64})
    values = secret_values(cfg, environ={"WANDB_API_KEY": "wandb-secret-1", "PATH": "/bin", "SHORT_TOKEN": "ab"})
    assert values == {"tok-123456", "hf_abcdefgh", "wandb-secret-1"}  # null and too-short values are not secrets
    out = redact_config(cfg, values)
    assert out["reward"]["server"] == {"url": "http://h", "token": REDACTED}
    assert out["env"] == [{"HF_TOKEN": REDACTED}] and out["note"] == f"curl -H 'Bearer {REDACTED}'"
    assert out["judge"]["api_key"] is None and out["max_tokens"] == 64
    assert OmegaConf.select(cfg, "reward.server.token") == "tok-123456"  # the input is left as it was


def test_files_and_console_are_scrubbed(tmp_path):
    clean, dirty = tmp_path / "a.yaml", tmp_path / "b.yaml"
    clean.write_text("x: 1\n")
    dirty.write_text("- reward.server.token=tok-123456\n")
    assert redact_files([clean, dirty, tmp_path / "missing"], {"tok-123456"}) == [dirty]
    assert dirty.read_text() == f"- reward.server.token={REDACTED}\n"
    sink = io.StringIO()
    stream = RedactingStream(sink, {"tok-123456"})
    stream.write("config: {'token': 'tok-123456'}\n")
    assert sink.getvalue() == f"config: {{'token': '{REDACTED}'}}\n"


def test_a_capture_installed_on_the_scrubbed_stream_sees_redacted_text():
    """wandb captures the console by replacing `sys.stdout.write` (its console_capture._patch), after
    radgrpo scrubbed the stream when verl's trainer runs in the radgrpo process."""
    from wandb.sdk.lib import console_capture

    sink, captured = io.StringIO(), []
    stream = RedactingStream(sink, {"tok-123456"})
    console_capture._patch(stream, {0: lambda text, n: captured.append(text)})
    print("token tok-123456", file=stream)
    assert captured == [f"token {REDACTED}", "\n"] and sink.getvalue() == f"token {REDACTED}\n"


def test_the_command_line_wandb_records_is_scrubbed(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["radgrpo", "logger=wandb", "+reward.server.token=tok-123456"])
    scrub_argv({"tok-123456"})
    assert sys.argv == ["radgrpo", "logger=wandb", f"+reward.server.token={REDACTED}"]
