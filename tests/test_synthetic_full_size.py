"""--size full / --clips N of the synthetic generator: the real development set's counts and proportions
(planned only: writing 169,300 WAVs is bench/full_size.py's job), and a small scaled set written for real."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from asc_tf.data import synthetic
from asc_tf.data.meta import DEVICES


def _clips(recordings, part):
    return Counter(d for r in recordings if r.part == part for d in r.devices)


def test_full_size_has_the_real_counts_and_proportions():
    counts = synthetic.TAU_FULL
    recordings = synthetic.plan_tau_recordings(counts, seed=0)
    train, test = _clips(recordings, "train"), _clips(recordings, "test")
    assert sum(train.values()) * counts.clips_per_segment == 139_620
    assert sum(test.values()) * counts.clips_per_segment == 29_680
    assert set(train) == {"a", "b", "c", "s1", "s2", "s3"}  # s4-s6 never in training
    assert [train[d] for d in ("b", "c", "s1", "s2", "s3")] == [750] * 5 and train["a"] == 10_212
    assert set(test) == set(DEVICES) and max(test.values()) - min(test.values()) <= 1
    scenes = Counter(r.scene for r in recordings if r.part == "train")
    assert max(scenes.values()) - min(scenes.values()) <= 1
    assert len({r.city for r in recordings if r.part == "train"}) == len(synthetic.CITIES)
    names = [r.filename(0, d) for r in recordings for d in r.devices]
    assert len(names) == len(set(names))
    tiers = Counter(synthetic.nested_tiers([r for r in recordings if r.part == "train"], 0).values())
    total = sum(tiers.values())
    for n in (5, 10, 25, 50):  # nested splits hold about n % of the recordings
        assert sum(v for k, v in tiers.items() if k <= n) == round(total * n / 100)


@pytest.mark.parametrize("clips", [1000, 5000, 20000])
def test_scaled_sizes_keep_the_total_and_proportions(clips):
    counts = synthetic.TauCounts.scaled(clips)
    recordings = synthetic.plan_tau_recordings(counts, seed=1)
    train, test = _clips(recordings, "train"), _clips(recordings, "test")
    total = (sum(train.values()) + sum(test.values())) * counts.clips_per_segment
    assert abs(total - clips) <= 10
    assert sum(test.values()) / (sum(train.values()) + sum(test.values())) == pytest.approx(2968 / 16930, abs=0.01)
    assert train["a"] / sum(train.values()) == pytest.approx(10212 / 13962, abs=0.02)


def test_a_small_dataset_in_the_real_layout_is_written_with_nested_splits(tmp_path):
    synthetic.generate(tmp_path, seed=3, size=synthetic.TauCounts(train_segments=12, test_segments=9, eval_segments=1))
    dev = tmp_path / synthetic.DEV_DIR_NAME
    meta = pd.read_csv(dev / "meta.csv", sep="\t")
    splits = {n: set(pd.read_csv(dev / "split_setup" / f"split{n}.csv", sep="\t")["filename"]) for n in (5, 25, 100)}
    test = set(pd.read_csv(dev / "split_setup" / "test.csv", sep="\t")["filename"])
    assert len(splits[100]) + len(test) == len(meta) == 210
    assert splits[5] <= splits[25] <= splits[100] and not splits[100] & test
    assert set(meta["source_label"][meta["filename"].isin(test)]) == set(DEVICES)


def test_too_few_clips_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path), "--clips", "500"])
    assert exit_info.value.code == 2 and "--clips must be at least" in capsys.readouterr().err
