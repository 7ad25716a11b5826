"""The gate's rules and the rollback stack, without services."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from chimp.shared.schemas.continual import HistoryEntry, MoveKind, PromotionPolicy
from chimp.training.evaluation import EvaluationItem, EvaluationSet
from chimp.training.gate import Scores, decide
from chimp.training.policy import check_policy, effective_min_value
from chimp.training.rollback import champion_stack
from chimp.training.splits import image_hash, is_held_out

POLICY = PromotionPolicy()


def test_a_better_candidate_is_promoted_and_the_reason_names_both_metrics() -> None:
    verdict, reason, compared = decide(
        POLICY, 0.26, Scores({"accuracy": 0.93}, {"accuracy": 0.71}), "faces-eval"
    )
    assert verdict == "promoted"
    assert reason == "accuracy 0.93 vs 0.71 on faces-eval: 0.22 better"
    assert compared["accuracy"].baseline == 0.71


@pytest.mark.parametrize(
    ("candidate", "words"),
    [(0.71, "0.22 worse"), (0.93, "not better (equal)"), (0.935, "0.005 better, needs 0.01")],
)
def test_worse_equal_or_barely_better_candidates_are_rejected(candidate: float, words: str) -> None:
    verdict, reason, _ = decide(
        POLICY, 0.26, Scores({"accuracy": candidate}, {"accuracy": 0.93}), "faces-eval"
    )
    assert verdict == "rejected"
    assert words in reason
    assert "vs 0.93 on faces-eval" in reason


def test_equality_never_promotes_even_with_no_margin() -> None:
    policy = PromotionPolicy(min_improvement=0)
    verdict, _, _ = decide(policy, None, Scores({"accuracy": 0.5}, {"accuracy": 0.5}), "x")
    assert verdict == "rejected"


def test_a_first_version_must_beat_chance_by_the_margin() -> None:
    floor = effective_min_value(POLICY, ["a", "b", "c", "d"])
    assert floor == 0.26
    assert decide(POLICY, floor, Scores({"accuracy": 0.3}, None), "x")[0] == "first"
    verdict, reason, _ = decide(POLICY, floor, Scores({"accuracy": 0.25}, None), "x")
    assert verdict == "rejected"
    assert "below the floor 0.26" in reason


def test_a_label_recall_floor_rejects_a_model_blind_to_one_label() -> None:
    policy = PromotionPolicy(min_label_recall=0.5)
    scores = Scores(
        {"accuracy": 0.9, "recall_happy": 1.0, "recall_sad": 0.1},
        {"accuracy": 0.5, "recall_happy": 0.5, "recall_sad": 0.5},
    )
    verdict, reason, compared = decide(policy, None, scores, "x")
    assert verdict == "rejected"
    assert "recall_sad 0.1 is below the floor 0.5" in reason
    assert set(compared) == {"accuracy", "recall_happy", "recall_sad"}


def test_policy_names_an_unknown_metric() -> None:
    from chimp.shared.errors import ValidationFailedError

    with pytest.raises(ValidationFailedError, match="recall_bored"):
        check_policy(
            PromotionPolicy(metric="recall_bored"), labels=["happy"], stored_datasets=set()
        )
    check_policy(PromotionPolicy(metric="recall_happy"), labels=["happy"], stored_datasets=set())


def _move(kind: MoveKind, to: str | None, alias: str = "production") -> HistoryEntry:
    return HistoryEntry(
        id=f"{kind}-{to}",
        model="m",
        alias=alias,
        to_version=to,
        kind=kind,
        actor="gate",
        reason="r",
        at=datetime.now(UTC),
    )


def test_the_rollback_stack_follows_the_history_not_version_numbers() -> None:
    entries = [
        _move("gate", "1"),
        _move("gate", "4", alias="staging"),
        _move("gate", "3"),
        _move("forced", "2"),
    ]
    assert champion_stack(entries) == ["1", "3", "2"]
    entries.append(_move("rollback", "3"))
    assert champion_stack(entries) == ["1", "3"]
    entries.append(_move("rollback", "1"))
    assert champion_stack(entries) == ["1"]
    entries.append(_move("external", "4"))
    assert champion_stack(entries) == ["1", "4"]


def test_an_image_is_held_out_by_its_content_in_every_run() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(400)]
    hashes = [image_hash(image) for image in images]
    assert hashes == [image_hash(image.copy()) for image in images]
    held = [h for h in hashes if is_held_out(h, 0.2)]
    assert 40 < len(held) < 120
    # A larger fraction holds out a superset: what 0.2 held out, 0.3 held out too.
    assert set(held) <= {h for h in hashes if is_held_out(h, 0.3)}


def test_a_recorded_set_keeps_its_own_labels_when_merged() -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    mine = EvaluationSet("a", [EvaluationItem(image_hash(image), "happy", image)])
    other = EvaluationSet("b", [EvaluationItem(image_hash(image), "sad", image)])
    merged = mine.merged(other, "c")
    assert [i.label for i in merged.items] == ["happy"]
    assert merged.content_hash == mine.content_hash
