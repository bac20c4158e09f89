"""The step plan, table-driven."""

import pytest

from tests.engine.sim import make_spec
from tollgate.engine.plan import plan_for


@pytest.mark.parametrize(
    ("analysis", "weights", "pauses"),
    [
        ({"stepWeight": 5, "maxWeight": 20}, (5, 10, 15, 20), {}),
        ({"stepWeight": 5, "maxWeight": None}, tuple(range(5, 51, 5)), {}),
        ({"stepWeight": 30, "maxWeight": 50}, (30, 50), {}),
        ({"stepWeight": 50, "maxWeight": 50}, (50,), {}),
        ({"stepWeight": 1, "maxWeight": 3}, (1, 2, 3), {}),
        (
            {"stepWeight": 7, "maxWeight": 100},
            (7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98, 100),
            {},
        ),
        ({"stepWeights": [1, 5, 25, 50], "maxWeight": None}, (1, 5, 25, 50), {}),
        ({"stepWeights": [10, 100], "maxWeight": 100}, (10, 100), {}),
        (
            {
                "stepWeight": 5,
                "maxWeight": 20,
                "pauses": [{"weight": 10}, {"weight": 15, "duration": "1m30s"}],
            },
            (5, 10, 15, 20),
            {10: None, 15: 90.0},
        ),
    ],
)
def test_plan(
    analysis: dict[str, object], weights: tuple[int, ...], pauses: dict[int, float | None]
) -> None:
    plan = plan_for(make_spec(analysis=analysis).analysis)
    assert plan.weights == weights
    assert plan.pauses == pauses
    assert plan.weight_at(0) == 0
    assert plan.weight_at(1) == weights[0]
    assert plan.weight_at(len(weights)) == weights[-1]
    assert plan.max_weight == weights[-1]
