"""The source root ``operator/`` must never shadow the standard library's ``operator`` module,
and the engine must never read a clock (``now`` is an argument)."""

import operator
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_operator_is_the_standard_library_module() -> None:
    assert operator.itemgetter(1)([0, 7]) == 7
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert Path(operator.__file__ or "").name in ("operator.py", "operator.pyc")


def test_engine_and_api_never_read_a_clock_or_randomness() -> None:
    forbidden = re.compile(
        r"\b(datetime\.now|datetime\.utcnow|date\.today|time\.time|\.now\(\)|"
        r"utcnow\(|random\.|uuid\.uuid)"
    )
    offenders = []
    for layer in ("engine", "api"):
        for path in (ROOT / "operator" / "tollgate" / layer).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if forbidden.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
