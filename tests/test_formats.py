"""The readers of kstream.data.formats, through the datasets: CICIDS2017 dialects, NetML JSON lines, NSL-KDD.

Each test writes its own small files (from the bundled samples' real rows) into tmp_path.
"""

import gzip
import json
import logging
import shutil
import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeClassifier

from kstream.data import datasets
from kstream.data.formats import cicflowmeter, kdd, netml
from kstream.errors import ConfigError, DataError
from kstream.paths import DATASETS_DIR

IMPROVED = DATASETS_DIR / "cicids2017-improved-sample"
NETML = DATASETS_DIR / "netml-iscx-vpn-nonvpn2016"
NSL = DATASETS_DIR / "nsl-kdd"

#: Features the improved re-extraction has and the 2017 CSVs lack.
ONLY_IN_IMPROVED = ["Fwd RST Flags", "Bwd RST Flags", "ICMP Code", "ICMP Type", "Total TCP Flow Time"]

# --- CICIDS2017 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_per_class(improved_rows):
    """Five real rows of each of seven improved-sample classes."""
    return improved_rows(5)


@pytest.mark.parametrize("dialect", ["MachineLearningCVE", "GeneratedLabelledFlows"])
def test_2017_csv_loads_with_canonical_features_and_labels(tmp_path, five_per_class, dialect, write_2017_csv):
    file = write_2017_csv(tmp_path / "Thursday-WorkingHours.pcap_ISCX.csv", five_per_class, dialect, blank_tail=2)
    ds = datasets.load("SELECTED_CICIDS", file)
    absent = ONLY_IN_IMPROVED + (["Protocol"] if dialect == "MachineLearningCVE" else [])
    assert ds.feature_names == [c for c in cicflowmeter.CICIDS_FEATURES if c not in absent]  # canonical order
    assert len(ds) == len(five_per_class)  # the blank rows are skipped
    assert list(ds.ids) == [f"Thursday-WorkingHours.pcap_ISCX-{i}" for i in range(len(five_per_class))]
    assert list(ds.labels) == list(five_per_class["Label"])  # folded onto the canonical names
    assert ds.levels["grouped"].value_counts()["WebAttack"] == 15
    shared = [c for c in cicflowmeter.CICIDS_FEATURES if c not in ONLY_IN_IMPROVED + ["Protocol", "Flow Bytes/s"]]
    expected = five_per_class[shared].to_numpy(dtype=np.float64)
    assert np.allclose(ds.features[shared].to_numpy(), expected, rtol=1e-12, equal_nan=True)
    flow_bytes = ds.features["Flow Bytes/s"].to_numpy()
    assert flow_bytes[0] == np.inf and np.isnan(flow_bytes[1:3]).all()
    assert np.allclose(flow_bytes[3:], five_per_class["Flow Bytes/s"].to_numpy()[3:])
    if dialect != "MachineLearningCVE":
        assert ds.features["Protocol"].tolist() == five_per_class["Protocol"].astype(float).tolist()
    assert "Fwd Header Length.1" not in ds.feature_names and "duplicates" in ds.feature_notes
    assert "renamed" in ds.feature_notes
    assert ("Protocol" in ds.feature_notes["missing"]) == (dialect == "MachineLearningCVE")


def test_a_latin1_2017_file_reads_the_same(tmp_path, five_per_class, write_2017_csv):
    mixed = write_2017_csv(tmp_path / "mixed.csv", five_per_class)
    cp1252 = mixed.read_bytes().replace("\u2013".encode(), b"\x96")  # every dash the cp1252 byte
    assert b"\x96" in cp1252 and "\u2013".encode() in mixed.read_bytes()
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "mixed.csv.gz").write_bytes(gzip.compress(cp1252))
    a, b = datasets.load("cicids2017", mixed), datasets.load("cicids2017", tmp_path / "latin1")
    assert list(a.labels) == list(b.labels) and list(a.ids) == list(b.ids)
    assert np.array_equal(a.features.to_numpy(), b.features.to_numpy(), equal_nan=True)


def test_a_model_trained_on_one_dialect_scores_the_other(tmp_path, five_per_class, write_2017_csv):
    train = datasets.load("cicids2017")
    other = datasets.load("cicids2017", write_2017_csv(tmp_path / "2017.csv", five_per_class))
    x = train.features.replace([np.inf, -np.inf], np.nan)
    model = make_pipeline(SimpleImputer(keep_empty_features=True), DecisionTreeClassifier(random_state=0))
    model.fit(x, train.target("binary_class"))
    # the other dialect's columns carry the same canonical names: aligned by name, its absent ones NaN
    predicted = model.predict(other.features.reindex(columns=train.feature_names).replace([np.inf, -np.inf], np.nan))
    assert len(predicted) == len(other) and set(predicted) <= {"benign", "attack"}


def test_a_folder_may_mix_dialects(tmp_path, five_per_class, write_2017_csv):
    shutil.copy(IMPROVED / "Heartbleed_11.csv.gz", tmp_path)
    write_2017_csv(tmp_path / "Wednesday.csv", five_per_class)
    ds = datasets.load("cicids2017", tmp_path)
    assert len(ds) == 11 + len(five_per_class) and ds.ids.is_unique
    assert ds.level == "label" and ds.labels.value_counts()["Heartbleed"] == 11
    assert "improved: 1" in ds.feature_notes["dialects"] and "MachineLearningCVE: 1" in ds.feature_notes["dialects"]


def test_each_flows_time_is_kept_beside_the_features_never_as_one(cicids):
    raw = pd.concat([pd.read_csv(f, usecols=["Timestamp"]) for f in sorted(IMPROVED.glob("*.csv.gz"))])
    assert cicids.times.dtype == "datetime64[ns]" and len(cicids.times) == len(cicids)
    assert (cicids.times.to_numpy() == pd.to_datetime(raw["Timestamp"]).to_numpy()).all()  # aligned row by row
    assert not [f for f in cicids.feature_names if "time" in f.lower() and "stamp" in f.lower()]
    assert "kept beside the features" in cicids.feature_notes["timestamps"]


def test_the_2017_timestamp_spellings_read_as_times(tmp_path, five_per_class, write_2017_csv):
    rows = five_per_class.copy()
    when = pd.to_datetime(rows["Timestamp"])
    spellings = [
        (when.dt.strftime("%-d/%-m/%Y %-H:%M"), when.dt.floor("min")),  # GeneratedLabelledFlows: day first, no seconds
        (when.dt.strftime("%d/%m/%Y %I:%M:%S %p"), when.dt.floor("s")),  # CICFlowMeter-V4: 12-hour clock, AM/PM
        (when.dt.strftime("%Y-%m-%dT%H:%M:%S.%f"), when),  # ISO, as the improved release
    ]
    rows["Timestamp"] = [spellings[i % 3][0].iloc[i] for i in range(len(rows))]
    ds = datasets.load("cicids2017", write_2017_csv(tmp_path / "Friday.csv", rows, "GeneratedLabelledFlows"))
    assert ds.times.tolist() == [spellings[i % 3][1].iloc[i] for i in range(len(rows))]
    assert any(" PM" in t for t in rows["Timestamp"])  # the sample's flows are afternoon ones: 12 hours added


def test_a_time_that_cannot_be_read_stops_the_load_naming_file_and_row(tmp_path, five_per_class, write_2017_csv):
    rows = five_per_class.copy()
    rows.loc[3, "Timestamp"] = "7/13/2017 10:00"  # month first: no CICFlowMeter writes it, and 13 is no month
    file = write_2017_csv(tmp_path / "Friday.csv", rows, "GeneratedLabelledFlows")
    with pytest.raises(DataError) as refused:
        datasets.load("cicids2017", file)
    message = str(refused.value)
    assert message.startswith(f"{file}: row 3 after the header has a Timestamp kstream cannot read ('7/13/2017 10:00'")
    assert message.endswith("fix or delete that row") and "\n" not in message


def test_data_without_a_timestamp_in_every_file_has_no_times(tmp_path, five_per_class, write_2017_csv, samples,
                                                             caplog):
    shutil.copy(IMPROVED / "Heartbleed_11.csv.gz", tmp_path)
    write_2017_csv(tmp_path / "Wednesday.csv", five_per_class)  # MachineLearningCVE: no Timestamp column
    with caplog.at_level(logging.WARNING, logger="kstream.data.formats.cicflowmeter"):
        assert datasets.load("cicids2017", tmp_path).times is None
    assert "have no Timestamp column (Wednesday.csv): the data has no flow times" in caplog.text
    assert [samples[name].times for name in ("csv-sample", "nsl-kdd", "netml")] == [None, None, None]
    assert datasets.load("cicids2017", tmp_path / "Heartbleed_11.csv.gz").times.notna().all()


@pytest.mark.parametrize(
    "raw, fine, grouped",
    [
        ("Web Attack \x96 Brute Force", "Web Attack - Brute Force", "WebAttack"),
        ("Web Attack \ufffd XSS", "Web Attack - XSS", "WebAttack"),
        ("web attack \u2013 sql injection", "Web Attack - SQL Injection", "WebAttack"),
        ("Web Attack - Sql Injection", "Web Attack - SQL Injection", "WebAttack"),
        ("PortScan", "Portscan", "PortScan"),
        ("Portscan", "Portscan", "PortScan"),
        ("Bot", "Botnet", "Bot"),
        ("Botnet", "Botnet", "Bot"),
        ("DoS slowloris", "DoS Slowloris", "DoS"),
        ("DDoS", "DDoS", "DoS"),
        ("Heartbleed", "Heartbleed", "DoS"),
        (" FTP-Patator ", "FTP-Patator", "BruteForce"),
        ("SSH-Patator - Attempted", "SSH-Patator - Attempted", "BruteForce"),
        ("Infiltration - Portscan", "Infiltration - Portscan", "PortScan"),
        ("Infiltration", "Infiltration", "Infiltration"),
        ("BENIGN", "BENIGN", "BENIGN"),
        ("WebAttack", None, "WebAttack"),
        ("BruteForce", None, "BruteForce"),
        ("DoS", None, "DoS"),
    ],
)
def test_cicids_labels_fold_onto_one_canonical_name(raw, fine, grouped):
    assert cicflowmeter.fold_cicids_label(raw) == (fine, grouped)


def test_every_canonical_class_has_a_group():
    assert set(cicflowmeter.CICIDS_LABELS.values()) == set(cicflowmeter.CICIDS_GROUPS)
    assert set(cicflowmeter.CICIDS_GROUPS.values()) == {"BENIGN", "Bot", "BruteForce", "DoS", "Infiltration",
                                                       "PortScan", "WebAttack"}


# --- NetML ---------------------------------------------------------------------------------------


def netml_flow(fid: int, **extra) -> dict:
    flow = {
        "id": fid, "sa": "IP_masked", "da": "IP_masked", "src_port": 50000 + fid, "dst_port": 443, "pr": 6,
        "time_start": 1.5e9, "time_end": 1.5e9 + 3, "time_length": 3.0, "bytes_in": 10 * fid, "bytes_out": 7,
        "pld_ccnt": list(range(16)), "hdr_ccnt": [fid] * 12, "intervals_ccnt": [0] * 16,
        "ack_psh_rst_syn_fin_cnt": [1, 2, 3, 4, 5], "rev_pld_ccnt": [1] * 16, "rev_hdr_ccnt": [2] * 12,
        "rev_intervals_ccnt": [3] * 16, "rev_ack_psh_rst_syn_fin_cnt": [0] * 5,
        "http_host": "files.example", "brand_new_field": 5,
    }  # fmt: skip
    flow.update(extra)
    return flow


@pytest.fixture
def netml_files(tmp_path):
    """A NetML layout: <prefix>_set/<prefix>_set.json.gz beside <prefix>_annotations/ with two levels."""
    flows = [
        netml_flow(1, dns_query_name=["a.example"], dns_answer_ttl=[60, 120, 300], dns_answer_ip=["x", "y", "z"]),
        netml_flow(2, pld_ccnt=[5, 6, 7]),  # shorter than its fixed length
        netml_flow(3),  # not annotated at the fine level: skipped
    ]
    (tmp_path / "9_mini_set").mkdir()
    (tmp_path / "9_mini_annotations").mkdir()
    set_file = tmp_path / "9_mini_set" / "9_mini_set.json.gz"
    set_file.write_bytes(gzip.compress("\n".join(json.dumps(f) for f in flows).encode() + b"\n"))
    (tmp_path / "9_mini_annotations" / "9_mini_anno_top.json.gz").write_bytes(
        gzip.compress(json.dumps({"1": "chat", "2": "voip", "3": "voip"}).encode())
    )
    (tmp_path / "9_mini_annotations" / "9_mini_anno_fine.json").write_text(json.dumps({"1": "icq", "2": "skype"}))
    return set_file


def test_netml_list_fields_expand_to_fixed_columns(netml_files, caplog):
    with caplog.at_level(logging.WARNING):
        ds = datasets.load("SELECTED_NET", netml_files)
    assert ds.feature_names == list(netml.NETML_FEATURES)
    assert list(ds.ids) == ["1", "2"] and list(ds.levels) == ["top", "fine"]
    assert list(ds.labels) == ["chat", "voip"] and list(ds.with_level("fine").labels) == ["icq", "skype"]
    f = ds.features
    assert [f"pld_ccnt_{i}" for i in range(16)] == [c for c in f.columns if c.startswith("pld_ccnt_")]
    assert f.loc[0, [f"pld_ccnt_{i}" for i in range(16)]].tolist() == list(range(16))
    assert f.loc[1, ["pld_ccnt_0", "pld_ccnt_1", "pld_ccnt_2"]].tolist() == [5, 6, 7]
    assert f.loc[1, [f"pld_ccnt_{i}" for i in range(3, 16)]].isna().all()  # padded with NaN
    assert f.loc[0, "hdr_ccnt_11"] == 1 and f.loc[1, "hdr_ccnt_0"] == 2
    assert f.loc[0, "dns_answer_ttl_count"] == 3 and f.loc[0, "dns_answer_ttl_mean"] == 160
    assert f.loc[0, "dns_query_name_count"] == 1 and f.loc[0, "dns_answer_ip_count"] == 3
    assert f.loc[1, "dns_answer_ttl_count"] == 0 and np.isnan(f.loc[1, "dns_answer_ttl_mean"])
    assert not {"id", "sa", "da", "src_port", "time_start", "time_end", "http_host", "brand_new_field"} & set(f)
    assert f.loc[0, "dst_port"] == 443 and f.loc[1, "bytes_in"] == 20
    text = caplog.text
    assert "brand_new_field" in text and "pld_ccnt" in text and "without a label" in text
    assert "list-valued" in ds.feature_notes and "ignored" in ds.feature_notes
    with pytest.raises(DataError, match=r"no labels at level 'mid' \(only top, fine\)"):
        ds.with_level("mid")
    with pytest.raises(ConfigError, match="choose one of: top, mid, fine"):
        ds.with_level("finest")


def test_netml_histograms_in_the_bundled_sample_have_their_fixed_lengths(caplog):
    with gzip.open(NETML / "1_test-std_set.json.gz", "rt") as fh:
        first = json.loads(fh.readline())
    with caplog.at_level(logging.WARNING):
        ds = datasets.load("netml")
    assert "unexpected length" not in caplog.text
    row = ds.features.iloc[0]
    assert ds.ids.iloc[0] == str(first["id"])
    for name, n in netml.NETML_HISTOGRAMS.items():
        assert len(first[name]) == n
        assert row[[f"{name}_{i}" for i in range(n)]].tolist() == first[name]


def test_netml_folder_needs_exactly_one_set_file(tmp_path):
    for name in ("1_a_set.json", "2_b_set.json"):
        (tmp_path / name).write_text('{"id": 1}\n')
    with pytest.raises(DataError, match="exactly one NetML set file"):
        datasets.load("netml", tmp_path)


def test_netml_without_annotations_says_where_labels_live(tmp_path):
    (tmp_path / "1_a_set.json").write_text('{"id": 1}\n')
    with pytest.raises(DataError, match="annotation files"):
        datasets.load("netml", tmp_path)


# --- NSL-KDD -------------------------------------------------------------------------------------


def kdd_rows(file: str, n: int) -> list[list[str]]:
    with gzip.open(NSL / f"{file}.txt.gz", "rt") as fh:
        return [next(fh).rstrip("\n").split(",") for _ in range(n)]


def test_nsl_kdd_test_only_attacks_get_their_category_and_unknown_ones_unknown(tmp_path, caplog):
    novel = f"zeroday{uuid.uuid4().hex[:6]}"
    attacks = ["apache2", "xsnoop", "httptunnel", "mscan", "neptune", "normal", novel, "perl"]
    rows = kdd_rows("KDDTest+", len(attacks))
    for row, attack in zip(rows, attacks):
        row[41] = attack
    rows[0][2] = "no_such_service"
    (tmp_path / "KDDTest+.txt").write_text("".join(",".join(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING):
        ds = datasets.load("nsl-kdd", tmp_path / "KDDTest+.txt")  # Field Names/Attack Types: the bundled ones
    assert list(ds.levels["attack"]) == attacks
    assert list(ds.labels) == ["dos", "r2l", "u2r", "probe", "dos", "normal", "unknown", "u2r"]
    assert novel in caplog.text and "no_such_service" not in ds.feature_names
    assert "service values outside the fixed vocabulary" in caplog.text
    assert np.isnan(ds.features.loc[0, "service"])
    assert ds.features.loc[1, "service"] == kdd.NSL_KDD_SERVICES.index(rows[1][2])
    assert ds.features.loc[1, "protocol_type"] == kdd.NSL_KDD_PROTOCOLS.index(rows[1][1])
    assert ds.features.loc[1, "flag"] == kdd.NSL_KDD_FLAGS.index(rows[1][3])
    assert ds.test_mask is None  # one file: kstream's own stratified split
    assert "difficulty" not in ds.feature_names and list(ds.ids) == [f"KDDTest+-{i}" for i in range(len(attacks))]


def test_nsl_kdd_map_covers_every_attack_of_the_bundled_files():
    table = dict(line.split(",") for line in (NSL / "Attack Types.csv").read_text().splitlines())
    assert not set(kdd.NSL_KDD_TEST_ONLY_ATTACKS) & set(table)  # only the 17 the file lacks
    assert len(kdd.NSL_KDD_TEST_ONLY_ATTACKS) == 17
    assert set(kdd.NSL_KDD_TEST_ONLY_ATTACKS.values()) <= {"dos", "probe", "r2l", "u2r"}


def test_nsl_kdd_subset_files_are_skipped_beside_their_full_file(tmp_path):
    train = kdd_rows("KDDTrain+_20Percent", 40)
    (tmp_path / "KDDTrain+.txt").write_text("".join(",".join(r) + "\n" for r in train))
    (tmp_path / "KDDTrain+_20Percent.txt").write_text("".join(",".join(r) + "\n" for r in train[:10]))
    (tmp_path / "KDDTest+.txt").write_text("".join(",".join(r) + "\n" for r in kdd_rows("KDDTest+", 20)))
    ds = datasets.load("nsl-kdd", tmp_path)
    assert len(ds) == 60 and not ds.ids.str.startswith("KDDTrain+_20Percent").any()
    assert ds.test_mask.sum() == 20 and ds.ids[ds.test_mask].str.startswith("KDDTest+-").all()


# --- chunked reading -----------------------------------------------------------------------------


@pytest.fixture
def small_sources(tmp_path, five_per_class, write_2017_csv):
    cic = tmp_path / "cic"
    cic.mkdir()
    shutil.copy(IMPROVED / "Heartbleed_11.csv.gz", cic)
    shutil.copy(IMPROVED / "Web_Attack_-_XSS_18.csv.gz", cic)
    write_2017_csv(cic / "Thursday.csv", five_per_class, "GeneratedLabelledFlows", blank_tail=3)  # with Timestamp
    kdd = tmp_path / "kdd"
    kdd.mkdir()
    (kdd / "KDDTrain+_20Percent.txt").write_text(
        "".join(",".join(r) + "\n" for r in kdd_rows("KDDTrain+_20Percent", 30))
    )
    test_rows = "".join(",".join(r) + "\n" for r in kdd_rows("KDDTest+", 25))
    (kdd / "KDDTest+.txt.gz").write_bytes(gzip.compress(test_rows.encode()))
    net = tmp_path / "net"
    net.mkdir()
    for anno in NETML.glob("*_anno_*"):
        shutil.copy(anno, net)
    with gzip.open(NETML / "1_test-std_set.json.gz", "rt") as fh:
        (net / "1_test-std_set.json").write_text("".join(next(fh) for _ in range(40)))  # plain, not gzipped
    return {"cicids2017": cic, "netml": net, "nsl-kdd": kdd}


@pytest.mark.parametrize("name", datasets.available())
def test_chunked_reading_gives_the_same_dataset_as_whole_reading(small_sources, name):
    whole = datasets.load(name, small_sources[name], chunksize=10**6)
    chunked = datasets.load(name, small_sources[name], chunksize=7)
    assert len(whole) > 14  # more than two chunks
    assert whole.ids.equals(chunked.ids)
    assert whole.features.equals(chunked.features)
    assert whole.levels.keys() == chunked.levels.keys()
    assert all(whole.levels[k].equals(chunked.levels[k]) for k in whole.levels)
    assert (whole.test_mask is None) == (chunked.test_mask is None)
    assert (whole.times is None) == (chunked.times is None) == (name != "cicids2017")
    if whole.times is not None:
        assert whole.times.equals(chunked.times)
    if whole.test_mask is not None:
        assert np.array_equal(whole.test_mask, chunked.test_mask) and whole.test_mask.any()


def test_leaky_names_are_recognised():
    for name in ["id", " Flow ID", "Src IP", "Destination IP", "Timestamp", "Label", "sa", "da", "difficulty",
                 "Attempted Category", "time_start", "src_port"]:
        assert datasets.is_leaky(name), name
    for name in ["Dst Port", "dst_port", "Protocol", "land", "dns_answer_ip_count", "Total TCP Flow Time"]:
        assert not datasets.is_leaky(name), name


# --- any CICFlowMeter output: other spellings, subsets of the columns, other label columns -------------

#: 19 columns of a feature-selected CICIDS2017 CSV as papers publish them (2017 spelling), with their
#: improved-release (canonical) names.
SELECTED_2017 = {
    "Destination Port": "Dst Port", "Flow Duration": "Flow Duration", "Total Fwd Packets": "Total Fwd Packet",
    "Total Length of Fwd Packets": "Total Length of Fwd Packet", "Fwd Packet Length Max": "Fwd Packet Length Max",
    "Bwd Packet Length Min": "Bwd Packet Length Min", "Flow IAT Mean": "Flow IAT Mean",
    "Flow IAT Max": "Flow IAT Max", "Fwd IAT Total": "Fwd IAT Total", "Bwd IAT Mean": "Bwd IAT Mean",
    "Fwd PSH Flags": "Fwd PSH Flags", "Min Packet Length": "Packet Length Min",
    "Max Packet Length": "Packet Length Max", "PSH Flag Count": "PSH Flag Count",
    "Average Packet Size": "Average Packet Size", "Init_Win_bytes_forward": "FWD Init Win Bytes",
    "Init_Win_bytes_backward": "Bwd Init Win Bytes", "min_seg_size_forward": "Fwd Seg Size Min",
    "Active Mean": "Active Mean",
}  # fmt: skip
#: The same features as CICFlowMeter-V3 (CSE-CIC-IDS2018) abbreviates them.
SELECTED_2018 = {
    "Dst Port": "Dst Port", "Flow Duration": "Flow Duration", "Tot Fwd Pkts": "Total Fwd Packet",
    "TotLen Fwd Pkts": "Total Length of Fwd Packet", "Fwd Pkt Len Max": "Fwd Packet Length Max",
    "Bwd Pkt Len Min": "Bwd Packet Length Min", "Flow IAT Mean": "Flow IAT Mean", "Flow IAT Max": "Flow IAT Max",
    "Fwd IAT Tot": "Fwd IAT Total", "Bwd IAT Mean": "Bwd IAT Mean", "Fwd PSH Flags": "Fwd PSH Flags",
    "Pkt Len Min": "Packet Length Min", "Pkt Len Max": "Packet Length Max", "PSH Flag Cnt": "PSH Flag Count",
    "Pkt Size Avg": "Average Packet Size", "Init Fwd Win Byts": "FWD Init Win Bytes",
    "Init Bwd Win Byts": "Bwd Init Win Bytes", "Fwd Seg Size Min": "Fwd Seg Size Min", "Active Mean": "Active Mean",
}  # fmt: skip


def write_selected(path, rows: pd.DataFrame, names: dict[str, str], label="Label", numeric=True, snake=False):
    """Write improved rows under other column names, the class as 0/1 (0 = benign) or as names."""
    out = pd.DataFrame({(n.lower().replace(" ", "_").replace("/", "_") if snake else n): rows[canon]
                        for n, canon in names.items()})
    out[label] = (rows["Label"] != "BENIGN").astype(int) if numeric else rows["Label"]
    out.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("names, snake", [(SELECTED_2017, False), (SELECTED_2018, False), (SELECTED_2018, True)])
def test_a_feature_selected_file_in_any_spelling_reads_onto_canonical_names(tmp_path, five_per_class, names, snake):
    ds = datasets.load("cicids2017", write_selected(tmp_path / "selected.csv", five_per_class, names, snake=snake))
    canonical = list(names.values())
    assert ds.feature_names == [c for c in cicflowmeter.CICIDS_FEATURES if c in canonical]  # canonical order
    assert np.allclose(ds.features[canonical].to_numpy(), five_per_class[canonical].to_numpy(dtype=float))
    assert set(ds.labels) == {"BENIGN", "Attack"}
    assert (ds.target("binary_class") == "attack").tolist() == (five_per_class["Label"] != "BENIGN").tolist()


def test_another_label_column_with_class_names(tmp_path, five_per_class):
    file = write_selected(tmp_path / "s.csv", five_per_class, SELECTED_2017, label="Class", numeric=False)
    with pytest.raises(DataError, match="has no 'Label' column; pass --label-column NAME"):
        datasets.load("cicids2017", file)
    ds = datasets.load("cicids2017", file, label_column="Class")
    assert list(ds.labels) == list(five_per_class["Label"])


def test_a_csv_with_too_few_flow_features_is_not_cicflowmeter_output(tmp_path):
    (tmp_path / "x.csv").write_text("Flow Duration,colour,Label\n1,red,BENIGN\n")
    with pytest.raises(DataError, match="is not CICFlowMeter output: 1 of its columns are CICFlowMeter features"):
        datasets.load("cicids2017", tmp_path / "x.csv")
