"""The two install paths agree, and the Makefile's JupyterLab target starts where people run it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: conda-only tools: the broker's Java and Maven, make, Go for FerretDB, and pip itself
CONDA_TOOLS = {"python", "openjdk", "maven", "make", "go", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {"dependencies": {_name(r) for r in project["dependencies"]}}
    for extra, reqs in project["optional-dependencies"].items():
        out[extra] = {_name(r) for r in reqs}
    return out


def _environment() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep.get("pip", []) if not r.startswith("-")}
        else:
            names.add(_name(dep))
    return names - CONDA_TOOLS


def test_environment_yml_lists_the_same_packages_as_pyproject():
    wanted = set().union(*_pyproject().values())
    have = _environment()
    assert have == wanted, (f"only in environment.yml: {sorted(have - wanted)}; "
                            f"only in pyproject: {sorted(wanted - have)}")


def test_the_package_ships_its_subpackages():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert "kstream*" in find["include"]  # kstream.data.formats too, not only the top package


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_jupyterlab_as_the_current_user(tmp_path):
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    args = f"--no-browser --port={port} --ServerApp.token= --ServerApp.open_browser=False"
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answered = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None and answered is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as response:
                    answered = response.status
            except OSError:
                time.sleep(0.5)
        assert answered == 200, proc.stdout.read() if proc.poll() is not None else "no answer"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
