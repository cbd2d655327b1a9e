"""Dead letters: the original record, why and where from, always within the DLQ's record size."""

import hashlib

import pytest

from kstream.clients import Message
from kstream.errors import ConfigError
from kstream.messages.deadletters import (
    DROPPED_HEADERS_HEADER,
    MAX_KEY_BYTES,
    MAX_REASON_BYTES,
    ORIGINAL_SHA256_HEADER,
    ORIGINAL_SIZE_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
    DeadLetterBuilder,
    bounded_text,
    describe,
    minimum_budget,
    record_size,
)


def _deep(levels):
    value = []
    for _ in range(levels):
        value = [value]
    return value


def test_a_small_record_keeps_key_value_and_headers_and_gains_reason_and_source():
    msg = Message("flows", 2, 41, b"r41", b'{"a": "x"}', {"kstream-send-ns": b"12", "trace": b"t"})
    letter = DeadLetterBuilder().build(msg, "non-numeric value for feature 'a': 'x'")
    assert (letter.key, letter.value) == (b"r41", b'{"a": "x"}')
    assert letter.headers == [
        ("kstream-send-ns", b"12"),
        ("trace", b"t"),
        (REASON_HEADER, b"non-numeric value for feature 'a': 'x'"),
        (SOURCE_HEADER, b"flows/2/41"),
    ]
    assert letter.reason == "non-numeric value for feature 'a': 'x'" and letter.source == "flows/2/41"
    assert letter.size() == record_size(letter.key, letter.value, letter.headers)


def test_a_large_value_is_cut_to_the_budget_with_its_size_and_hash():
    value = bytes(range(256)) * 40_000  # 10 MB
    letter = DeadLetterBuilder(budget=100_000).build(Message("flows", 0, 1, b"k", value, {}), "too big")
    headers = dict(letter.headers)
    assert letter.size() <= 100_000 and letter.size() > 99_000  # cut, but the room is used
    assert value.startswith(letter.value)
    assert headers[ORIGINAL_SIZE_HEADER] == b"10240000"
    assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(value).hexdigest().encode()


def test_headers_beyond_their_share_are_dropped_and_counted():
    headers = {f"h{i}": b"v" * 1000 for i in range(100)}
    letter = DeadLetterBuilder(budget=20_000).build(Message("flows", 0, 1, b"k", b"v", headers), "r")
    names = [n for n, _ in letter.headers]
    kept = [n for n in names if n.startswith("h")]
    assert 0 < len(kept) < 100 and kept == [f"h{i}" for i in range(len(kept))]
    assert dict(letter.headers)[DROPPED_HEADERS_HEADER] == str(100 - len(kept)).encode()
    assert letter.size() <= 20_000


def test_a_record_cannot_forge_the_reason_or_source_and_bad_names_are_escaped():
    headers = {REASON_HEADER: b"all fine", SOURCE_HEADER: b"elsewhere/0/0", "bad\udcff": b"1", "ok": None,
               "bad\\udcff": b"2", "original-" + SOURCE_HEADER: b"3"}
    letter = DeadLetterBuilder().build(Message("flows", 0, 9, None, None, headers), "value is empty (null message)")
    assert [n for n, _ in letter.headers].count(REASON_HEADER) == 1
    assert dict(letter.headers)[REASON_HEADER] == b"value is empty (null message)"
    assert dict(letter.headers)["original-" + REASON_HEADER] == b"all fine"
    assert dict(letter.headers)["bad\\udcff"] == b"1" and dict(letter.headers)["ok"] == b""
    assert len({n for n, _ in letter.headers}) == len(letter.headers)  # the escaped name met its twin: one kept
    assert dict(letter.headers)[DROPPED_HEADERS_HEADER] == b"2"
    for name, data in letter.headers:
        name.encode("utf-8")  # the producer encodes names strictly
        assert type(data) is bytes
    assert letter.key is None and letter.value == b""


def test_a_long_key_is_bounded_with_its_hash():
    keys = [b"k" * 100_000, b"k" * 99_999 + b"j"]
    letters = [DeadLetterBuilder().build(Message("flows", 0, 1, k, b"", {}), "r") for k in keys]
    assert all(len(x.key) == MAX_KEY_BYTES for x in letters)
    assert letters[0].key != letters[1].key
    assert letters[0].key.endswith(hashlib.sha256(keys[0]).hexdigest().encode())


def test_reasons_are_bounded_single_line_text_whatever_they_hold():
    huge = bounded_text("value: " + "\u00e9" * 600_000)
    assert len(huge.encode()) <= MAX_REASON_BYTES and huge.endswith("\u2026")
    assert "\n" not in bounded_text("a\nb\r\x00c") and bounded_text("a\nb") == "a\\x0ab"
    assert bounded_text("lone \udcff surrogate").encode() == b"lone \\udcff surrogate"
    letter = DeadLetterBuilder().build(Message("flows", 0, 1, b"k", b"v", {}), "x" * 5000)
    assert len(dict(letter.headers)[REASON_HEADER]) <= MAX_REASON_BYTES


def test_describe_never_quotes_a_whole_value_nor_recurses():
    assert describe(_deep(5000)) == "a JSON array of 1 item"
    assert len(describe("y" * 600_000)) < 80 and "600000 characters" in describe("y" * 600_000)
    assert describe(10**5000) == "an integer of 16610 bits"
    assert describe(float("nan")) == "nan" and describe(object()) == "an object" and describe(1j) == "a complex"
    assert describe("\n\x1b[31m") == "'\\n\\x1b[31m'"  # escaped: no terminal control reaches a log


def test_a_budget_too_small_for_a_bare_dead_letter_fails_at_construction():
    need = minimum_budget()
    with pytest.raises(ConfigError, match=r"max\.message\.bytes.*at least \d+"):
        DeadLetterBuilder(budget=need - 1)
    DeadLetterBuilder(budget=need)


@pytest.mark.parametrize("extra", [0, 1, 7, 3000, 1_000_000 - 2060])
def test_the_worst_record_fits_any_accepted_budget(extra):
    budget = minimum_budget() + extra
    msg = Message(
        "t" * 249,
        2**31 - 1,
        2**63 - 1,
        b"\xff" * 200_000,
        b"{" * 3_000_000,
        {f"h{i}" * 50: b"v" * (i * 37 % 3000) for i in range(2000)},
    )
    letter = DeadLetterBuilder(budget).build(msg, "\u00e9\n" * 100_000)
    assert letter.size() <= budget
    assert dict(letter.headers)[SOURCE_HEADER] == f"{'t' * 249}/{2**31 - 1}/{2**63 - 1}".encode()
