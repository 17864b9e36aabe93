"""A wheel-installed radgrpo finds its config inside the package: build the wheel from a copy of the
checkout, install it into a fresh folder (dependencies: the environment running these tests), and run
`radgrpo dry_run=true` from outside any checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

from ..conftest import REPO

SOURCE_IGNORE = shutil.ignore_patterns(".venv", ".git", ".cache", "outputs", "build", "dist", "*.egg-info",
                                       "__pycache__", ".pytest_cache", "multirun", "wandb")


def test_a_wheel_install_runs_a_dry_run_from_outside_the_checkout(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=SOURCE_IGNORE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("radgrpo-*.whl")
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    shutil.rmtree(source)  # nothing may come from the checkout copy
    assert (target / "radgrpo" / "conf" / "train.yaml").is_file() and not (target / "radgrpo" / "conf").is_symlink()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]),
           "RADGRPO_OUTPUTS": str(tmp_path / "outputs"), "RADGRPO_CACHE": str(tmp_path / "cache")}
    where = subprocess.run([sys.executable, "-c", "import radgrpo; print(radgrpo.CONF_DIR)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(target / "radgrpo" / "conf")
    result = subprocess.run([str(target / "bin" / "radgrpo"), "dry_run=true"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(dry run: nothing started)" in result.stdout
    assert f"path: {target / 'radgrpo' / 'rewards' / 'verl_entry.py'}" in result.stdout  # the reward entry
