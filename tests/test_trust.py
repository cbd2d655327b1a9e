"""Model trust: an allowlist of hashes or a signing key, kept outside the models folder."""

from __future__ import annotations

import json

import pytest

from kstream.errors import ConfigError, ModelError
from kstream.modeling import artifacts, training
from kstream.modeling.artifacts import ModelRef
from kstream.modeling.trust import Trust


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cicids):
    ref = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path_factory.mktemp("m"))
    training.train(ref, cicids, {"max_depth": 4})
    return ref


def test_an_allowlist_admits_only_the_hashes_it_lists(trained, tmp_path):
    sha = json.loads((trained.directory / "model.json").read_text())["sha256"]
    allow = tmp_path / "trusted.txt"
    allow.write_text("# reviewed models\n" + "0" * 64 + "\n")
    with pytest.raises(ModelError, match="is not in the model allowlist"):
        artifacts.load(trained, Trust.from_env({"KSTREAM_TRUSTED_MODELS": str(allow)}))
    allow.write_text(f"{sha}  # decision tree, trained here\n")
    assert artifacts.load(trained, Trust.from_env({"KSTREAM_TRUSTED_MODELS": str(allow)})).card.sha256 == sha
    allow.write_text("not-a-hash\n")
    with pytest.raises(ConfigError, match="must list sha256 hashes"):
        Trust.from_env({"KSTREAM_TRUSTED_MODELS": str(allow)})


def test_a_key_admits_only_cards_signed_with_it(trained, cicids, tmp_path):
    with pytest.raises(ModelError, match="not signed with KSTREAM_MODEL_KEY"):  # trained without the key
        artifacts.load(trained, Trust(key=b"team-key"))
    signed = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path)
    card = artifacts.save(artifacts.load(trained).pipeline, artifacts.load(trained).card, signed.directory,
                          Trust(key=b"team-key"))
    assert card.signature and artifacts.load(signed, Trust(key=b"team-key")).card.signature == card.signature
    with pytest.raises(ModelError, match="not signed"):
        artifacts.load(signed, Trust(key=b"another-key"))
    edited = json.loads((signed.directory / "model.json").read_text())
    edited["metrics"]["accuracy"] = 1.0  # the hash still matches the pickle; the card lies
    (signed.directory / "model.json").write_text(json.dumps(edited))
    with pytest.raises(ModelError, match="changed after signing"):
        artifacts.load(signed, Trust(key=b"team-key"))


def test_the_cli_refuses_an_untrusted_model_with_one_line(trained, tmp_path, cli, one_line_error):
    allow = tmp_path / "trusted.txt"
    allow.write_text("")
    proc = cli("-q", "evaluate", "-m", "decision-tree", "--models-dir", str(trained.models_dir),
               env={"KSTREAM_TRUSTED_MODELS": str(allow)})
    one_line_error(proc, "not in the model allowlist", str(allow))


def test_a_card_signed_before_drift_references_existed_still_loads_with_its_key(trained, tmp_path):
    old = ModelRef("cicids2017", "binary_class", "decision-tree", models_dir=tmp_path)
    old.directory.mkdir(parents=True)
    card = json.loads((trained.directory / "model.json").read_text())
    del card["drift_reference"]  # as written by an earlier kstream, and signed so
    card["signature"] = Trust(key=b"team-key").sign(card)
    (old.directory / "model.json").write_text(json.dumps(card))
    (old.directory / "model.joblib").write_bytes((trained.directory / "model.joblib").read_bytes())
    (old.directory / artifacts.TRAIN_VECTORS).write_bytes((trained.directory / artifacts.TRAIN_VECTORS).read_bytes())
    loaded = artifacts.load(old, Trust(key=b"team-key"))
    assert loaded.card.drift_reference == {}
    with pytest.raises(ModelError, match="no drift reference"):
        loaded.reference()
