"""Where things live: the project's folders and kstream's cache, resolved from the package itself.

Nothing here depends on the current directory. ``KSTREAM_ROOT`` points at another project
folder (one holding ``datasets/``, ``models/``, ``notebooks/`` and ``runs/``) when kstream is
installed without its checkout; ``KSTREAM_HOME`` moves the cache (Kafka's jars, the local
broker's data).

>>> MODELS_DIR.name, RUNS_DIR.parent == PROJECT_ROOT
('models', True)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_ROOT", "DATASETS_DIR", "MODELS_DIR", "NOTEBOOKS_DIR", "RUNS_DIR", "cache_dir"]

#: The project checkout; bundled data, models, notebooks and runs are resolved from here.
PROJECT_ROOT = Path(os.environ.get("KSTREAM_ROOT") or Path(__file__).resolve().parents[1]).expanduser()
DATASETS_DIR = PROJECT_ROOT / "datasets"
MODELS_DIR = PROJECT_ROOT / "models"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "runs"


def cache_dir() -> Path:
    """Where kstream keeps downloads and broker state (``KSTREAM_HOME`` overrides).

    >>> cache_dir().name == "kstream" or "KSTREAM_HOME" in os.environ
    True
    """
    home = os.environ.get("KSTREAM_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "kstream"
