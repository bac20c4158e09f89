"""Invalid objects are refused by whoever should refuse them, and never accepted by the runtime.

Why: the CRD (schema and CEL) and the operator's parse() state the same contract twice. Each
case in invalid_objects.yaml says which layer must refuse it; for the API server's layers the
operator must refuse it as well (parity), and for the operator-only rules the API server must
let it through (or the rule belongs in the CRD and the case is mislabelled).
"""

from collections import Counter

import pytest
from tests.crd.corpus import Case, crd_for, load_cases, parse_problems
from tests.crd.kube_schema import (
    apply_defaults,
    cel_errors,
    openapi_schema,
    schema_errors,
    validate,
)

CASES = load_cases()


def test_case_file_is_big_enough_and_names_are_unique() -> None:
    names = Counter(case.name for case in CASES)
    assert len(CASES) >= 25
    assert [n for n, count in names.items() if count > 1] == []
    assert {case.rejected_by for case in CASES} == {"schema", "cel", "code"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_invalid_object(case: Case) -> None:
    obj = case.edit.build()
    crd = crd_for(obj["kind"])
    errors = validate(crd, obj)
    problems = [str(p) for p in parse_problems(obj)]

    if case.rejected_by == "code":
        assert errors == [], f"the API server refuses it: move the case to schema/cel: {errors}"
        assert any(case.expect in p for p in problems), (
            f"parse() should report {case.expect!r}; it reported {problems}"
        )
        return

    assert any(case.expect in e for e in errors), (
        f"the API server should report {case.expect!r}; it reported {errors}"
    )
    assert problems, "parity: the API server refuses this object but parse() accepts it"

    schema = openapi_schema(crd)
    defaulted = apply_defaults(schema, obj)
    from_schema = [e for e in schema_errors(schema, defaulted) if case.expect in e]
    from_cel = [e for e in cel_errors(schema, defaulted) if case.expect in e]
    if case.rejected_by == "schema":
        assert from_schema, f"{case.expect!r} does not come from the OpenAPI schema: {errors}"
    else:
        assert from_cel, f"{case.expect!r} does not come from a CEL rule: {errors}"
        assert not from_schema, f"{case.expect!r} comes from the OpenAPI schema: {errors}"
