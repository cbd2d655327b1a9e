"""What a long-lived broker keeps: `kstream broker topics` lists topics by the run that made them, and
`kstream broker delete` deletes exactly the runs, topics or ages it is given, on both client backends."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from kstream.clients import BACKENDS, Record, backend
from kstream.errors import ConfigError
from kstream.servers import retention


@pytest.mark.kafka
@pytest.mark.parametrize("client", list(BACKENDS))
def test_broker_topics_lists_runs_and_delete_removes_only_what_it_picks(client, kafka_bootstrap, cli,
                                                                        one_line_error):
    kafka = backend(client)
    old_run = "20200102030405000006"  # a run started years ago
    new_run = dt.datetime.now().strftime("%Y%m%d%H%M%S%f")  # one started now
    mine = f"mine-{uuid.uuid4().hex[:8]}"  # a topic no run named
    old = [f"flows-{client}.{old_run}", f"predictions-{client}.{old_run}"]
    new = [f"flows-{client}.{new_run}", f"predictions-{client}.{new_run}"]
    kafka.ensure_topics(kafka_bootstrap, {old[0]: 2, old[1]: 2, new[0]: 1, new[1]: 1, mine: 1})
    with kafka.Producer(kafka_bootstrap) as producer:
        producer.publish([Record(old[0], b"x")] * 10, deadline_s=30)
    where = ["--bootstrap", kafka_bootstrap, "--client", client]

    listed = cli("broker", "topics", *where)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:-1]}
    assert rows[old_run][1:5] == ["2020-01-02", "03:04", "2", "4"]  # started, topics, partitions
    assert rows[new_run][3:5] == ["2", "2"] and rows[mine][1:4] == ["-", "1", "1"]
    assert rows[old_run][5] == "-"  # a cluster that is not the local broker: no size on disk

    # a name that picks nothing stops the command before anything is deleted
    one_line_error(cli("broker", "delete", old_run, "no-such-run", *where), "no-such-run names no run")
    assert set(old + new + [mine]) <= set(kafka.list_topics(kafka_bootstrap))

    dry = cli("broker", "delete", "--older-than", "1d", "--dry-run", *where)
    assert dry.returncode == 0 and dry.stdout.split() == ["would", "delete", "2", "topic(s)", *sorted(old)]
    assert set(old) <= set(kafka.list_topics(kafka_bootstrap))

    deleted = cli("broker", "delete", "--older-than", "1d", *where)
    assert deleted.returncode == 0, deleted.stderr
    assert sorted(deleted.stdout.split()[3:]) == sorted(old)
    left = set(kafka.list_topics(kafka_bootstrap))
    assert not set(old) & left and set(new + [mine]) <= left

    gone = cli("broker", "delete", new_run, mine, *where)
    assert gone.returncode == 0 and sorted(gone.stdout.split()[3:]) == sorted(new + [mine]), gone.stderr
    assert not set(new + [mine]) & set(kafka.list_topics(kafka_bootstrap))


def test_a_run_still_writing_keeps_all_its_topics_and_an_age_needs_a_unit():
    start = dt.datetime(2026, 1, 1)
    run = start.strftime("%Y%m%d%H%M%S%f")
    now = start + dt.timedelta(days=10)
    quiet = [retention.TopicUse(f"{t}.{run}", run, start, 1, 100, start + dt.timedelta(hours=1))
             for t in ("flows", "predictions")]
    assert retention.select(quiet, older_than=dt.timedelta(days=9), now=now) == [t.topic for t in quiet]
    busy = [quiet[0], retention.TopicUse(quiet[1].topic, run, start, 1, 100, now - dt.timedelta(minutes=5))]
    assert retention.select(busy, older_than=dt.timedelta(days=9), now=now) == []
    assert retention.select(busy, older_than=dt.timedelta(minutes=4), now=now) == [t.topic for t in busy]
    for bad in ("7", "7 weeks", "-1d", ""):
        with pytest.raises(ConfigError, match="a number and a unit"):
            retention.parse_age(bad)
