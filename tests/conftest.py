"""Shared fixtures: one real Kafka broker per test session, trained models, unique names.

The broker is a real single-node KRaft Kafka started by :class:`kstream.broker.LocalBroker`
on free ports (or the cluster named by ``KSTREAM_TEST_BOOTSTRAP``). Each test gets its own
topic and consumer-group names so tests never see each other's records.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kstream import broker, modeling
from kstream.config import Settings

TRAINED = [
    ("binary_class", "decision-tree"),
    ("multi_class", "decision-tree"),
    ("binary_class", "random-forest"),
]


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap address of a real broker for the whole session."""
    given = os.environ.get("KSTREAM_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    with broker.LocalBroker() as local:
        yield local.bootstrap


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder holding the seed models the tests stream with."""
    root = tmp_path_factory.mktemp("models")
    for task, model in TRAINED:
        modeling.train("cicids2017", task, model, root)
    return root


@pytest.fixture
def names():
    """Unique topic/group names for one test."""
    tag = uuid.uuid4().hex[:10]
    return {
        "topic": f"flows-{tag}",
        "predictions_topic": f"preds-{tag}",
        "dlq_topic": f"dlq-{tag}",
        "group": f"group-{tag}",
    }


@pytest.fixture
def settings(kafka_bootstrap, models_dir, names, tmp_path) -> Settings:
    """Settings for a decision-tree binary detector on this test's own topics and store."""
    return Settings(
        model="decision-tree",
        models_dir=models_dir,
        bootstrap=kafka_bootstrap,
        store_url=str(tmp_path / "predictions.sqlite"),
        **names,
    )


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m kstream ARGS`` in a subprocess and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KSTREAM_", "KAFKA_BROKER_URL"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kstream", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
