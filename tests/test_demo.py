"""`tollgate demo` end to end: the real operator process, Prometheus and simulated traffic."""

import argparse
import io
import re

import pytest

from tollgate.cli import demo

pytestmark = pytest.mark.integration


def test_the_demo_promotes_the_good_release_and_rolls_back_the_bad_one() -> None:
    out = io.StringIO()
    assert demo.main(argparse.Namespace(), out) == 0
    text = out.getvalue()
    assert "Canary app: Succeeded, canary weight 0% on the route - Promoted" in text
    # the printer polls: a rollback may be seen already ended (RolledBack) or still ending
    rolled_back = [
        line
        for line in text.splitlines()
        if "RollingBack, canary weight 0%" in line or "RolledBack, canary weight 0%" in line
    ]
    assert rolled_back, text
    assert "AnalysisFailed" in rolled_back[0]
    assert "latency" in rolled_back[0]  # the check that saw it, in either form
    back = re.search(r"bad release back on stable ([0-9.]+)s after it first took traffic", text)
    assert back is not None, text
    assert float(back.group(1)) < 30
    assert "canary weight 30% on the route" in text  # the good one walked every step
