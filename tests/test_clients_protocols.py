"""Both client backends satisfy the Producer, Consumer and Backend protocols, statically and at run time.

The assignments below are checked by mypy (this file is in ``[tool.mypy] files``, so ``make lint`` checks it):
a backend whose method lost a parameter or changed a return type fails there. The tests check the same
at run time on clients built without a broker (a client makes no network call in ``__init__``), and
that the static check can fail: mypy rejects a producer that lacks part of the protocol.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kstream.clients import BACKENDS, Backend, Consumer, Producer, backend, confluent, kafka_python

ROOT = Path(__file__).resolve().parent.parent

# statically checked: each module is a Backend, each class makes what the protocol says
BACKEND_MODULES: tuple[Backend, ...] = (kafka_python, confluent)
PRODUCERS: tuple[type[Producer], ...] = (kafka_python.Producer, confluent.Producer)
CONSUMERS: tuple[type[Consumer], ...] = (kafka_python.Consumer, confluent.Consumer)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_satisfies_the_protocols_at_run_time(name: str) -> None:
    kafka = backend(name)
    assert isinstance(kafka, Backend)
    with kafka.Producer("127.0.0.1:9", {}) as producer, kafka.Consumer("127.0.0.1:9", ["flows"], "g") as consumer:
        assert isinstance(producer, Producer) and isinstance(consumer, Consumer)
        assert not isinstance(producer, Consumer) and not isinstance(consumer, Producer)
        assert consumer.topics == ["flows"] and consumer.group == "g" and consumer.rebalances == 0
        assert producer.max_request_size > 0


def test_an_object_missing_a_method_is_not_a_consumer() -> None:
    class NoCommit:
        topics, group, assignment, rebalances = ["flows"], "g", None, 0

        def poll(self, max_records: int, timeout_ms: int) -> list:
            return []

    assert not isinstance(NoCommit(), Consumer)


def test_mypy_rejects_a_producer_that_lacks_part_of_the_protocol(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""
        from kstream.clients import Producer, kafka_python

        class SendOnly:
            def send(self, topic: str, value: bytes) -> None: ...

        good: type[Producer] = kafka_python.Producer
        bad: type[Producer] = SendOnly
    """))
    out, err, status = api.run([str(probe), "--config-file", str(ROOT / "pyproject.toml"),
                                "--cache-dir", str(tmp_path / "cache"), "--follow-imports", "silent"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 1, out + err
    assert "probe.py:8:" in errors[0] and '"type[SendOnly]"' in errors[0], errors
