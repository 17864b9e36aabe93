"""radgrpo as a user installs it from a wheel: built from a copy of the checkout, installed into a fresh
folder (dependencies: the environment running the tests), used from outside any checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .conftest import REPO

SOURCE_IGNORE = shutil.ignore_patterns(".venv", ".git", ".cache", "outputs", "build", "dist", "*.egg-info",
                                       "__pycache__", ".pytest_cache", "multirun", "wandb")


@dataclass(frozen=True)
class WheelInstall:
    target: Path  # the install folder (pip --target)
    env: dict[str, str]  # PYTHONPATH = the install, then the test environment's packages

    @property
    def package(self) -> Path:
        return self.target / "radgrpo"

    @property
    def radgrpo(self) -> str:
        return str(self.target / "bin" / "radgrpo")


def install_wheel(folder: Path) -> WheelInstall:
    """Build radgrpo's wheel and install it under `folder`; nothing of the checkout copy is left."""
    source = folder / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=SOURCE_IGNORE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(folder / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (folder / "dist").glob("radgrpo-*.whl")
    target = folder / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    shutil.rmtree(source)  # nothing may come from the checkout copy
    assert (target / "radgrpo" / "conf" / "train.yaml").is_file() and not (target / "radgrpo" / "conf").is_symlink()
    env = {"PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    return WheelInstall(target, env)
