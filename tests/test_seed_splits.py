"""Seed splits in eval files: `seeds: {train: ..., test: ...}`. pytest plays test; RL
(and export, by default) keep to train."""

from __future__ import annotations

import pytest

from pytest_crafter_eval.config import spec


def _load(tmp_path, seeds: str) -> spec.EvalSpec:
    path = tmp_path / "s.yaml"
    path.write_text(f"models: [local/random]\nseeds: {seeds}\n")
    return spec.load(path)


def test_a_split_gives_both_sets_and_pytest_plays_test(tmp_path):
    loaded = _load(tmp_path, "{train: 100-104, test: '0,1,2'}")
    assert loaded.seeds == loaded.test_seeds == (0, 1, 2)
    assert loaded.train_seeds == (100, 101, 102, 103, 104)
    assert [loaded.split_of(s) for s in (0, 100, 7)] == ["test", "train", "train"]
    # --seeds replaces what is played, not the splits
    again = loaded.with_overrides(seeds=(101, 2))
    assert again.seeds == (101, 2) and [again.split_of(s) for s in again.seeds] == [
        "train",
        "test",
    ]


def test_a_plain_seeds_value_declares_no_split(tmp_path):
    loaded = _load(tmp_path, "0-4")
    assert loaded.seeds == (0, 1, 2, 3, 4)
    assert loaded.train_seeds == loaded.test_seeds == ()
    assert loaded.split_of(3) is None


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (
            "\n  train: 5-20\n  test: 0-9",
            (
                "s.yaml:3: seeds.train: seed 5 is also in seeds.test (line 4) with 4 more: "
                "a seed belongs to one split"
            ),
        ),
        ("{train: 5-20}", "s.yaml:2: seeds: missing key 'test'"),
        ("{train: 5-20, test: 0-1, val: 3}", "s.yaml:2: seeds.val: unknown key"),
        ("{train: 5-20, test: -1}", "s.yaml:2: seeds.test: a seed count must be at least 1"),
    ],
)
def test_bad_splits_are_one_line_errors_with_file_and_line(tmp_path, seeds, message):
    with pytest.raises(spec.SpecError) as error:
        _load(tmp_path, seeds)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_file_named_with_a_space_and_no_name_key_is_an_error_not_a_hang(tmp_path):
    path = tmp_path / "my eval.yaml"
    path.write_text("models: [local/random]\n")
    with pytest.raises(spec.SpecError, match=r"my eval.yaml:1: name: must be a short name"):
        spec.load(path)
