"""The study's table from its rows: means over seeds, and pre-training minutes only where every seed's is known."""

from vitssl.study.results import summarise


def _row(seed: int, accuracy: float, minutes: float | None) -> dict:
    return {"entry": "sit", "dataset": "d", "seed": seed, "protocol": "knn", "accuracy": accuracy,
            "features": "block 6", "pool": "cls", "pretrain_epoch": 5, "final": True,
            "pretrain_steps": 390, "pretrain_minutes": minutes}


def test_means_over_seeds_with_their_spread():
    (item,) = summarise([_row(0, 30.0, 10.0), _row(1, 32.0, 12.0)])
    assert (item["mean"], item["std"], item["seeds"]) == (31.0, 1.41, [0, 1])
    assert (item["pretrain_steps"], item["pretrain_minutes"], item["read"]) == (390, 11.0, "block 6, cls")


def test_minutes_are_left_out_when_a_seeds_time_is_unknown():
    """A run resumed from a checkpoint that did not record its time knows only its last part's minutes."""
    (item,) = summarise([_row(0, 30.0, 10.0), _row(1, 32.0, None)])
    assert "pretrain_minutes" not in item and item["pretrain_steps"] == 390
