"""The published document: what parse accepts is exactly what the router can serve, and the SDK
imports nothing of the operator."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.sdk.builders import PROMPT, document, text
from tollgate.sdk import Choice, DocumentError, PromptRouter, StaticSource, parse
from tollgate.sdk.published import to_json

ROOT = Path(__file__).resolve().parents[2]


def test_a_document_survives_the_round_trip() -> None:
    doc = document(25, revision=3)
    assert parse(to_json(doc)) == doc
    assert parse(to_json(doc).encode()) == doc


def test_weights_may_name_only_the_stable_and_the_candidate_version() -> None:
    body = json.loads(text(10))
    body["versions"]["v6"] = {"template": "old", "model": None, "parameters": {}}
    body["weights"] = {"v6": 0, "v7": 90, "v8": 10}
    assert parse(json.dumps(body)).candidate_weight == 10  # a zero weight is harmless

    body["weights"] = {"v6": 5, "v7": 85, "v8": 10}  # 5% the router could never serve
    with pytest.raises(DocumentError, match=r"weights\.v6: only the stable and the candidate"):
        parse(json.dumps(body))

    body["candidate"] = None
    body["weights"] = {"v7": 50, "v8": 50}
    with pytest.raises(DocumentError, match=r"weights\.v8:"):
        parse(json.dumps(body))


def test_choosing_while_documents_are_swapped_always_gives_a_whole_choice() -> None:
    source = StaticSource(document(50, revision=1))
    router = PromptRouter(source)
    seen: list[Choice] = []
    stop = threading.Event()

    def choose() -> None:
        n = 0
        while not stop.is_set():
            seen.append(router.choose(PROMPT, f"user-{n}"))
            n += 1

    readers = [threading.Thread(target=choose) for _ in range(4)]
    for reader in readers:
        reader.start()
    for revision in range(2, 200):
        source.publish(document(revision % 101, revision=revision, stable_template=f"r{revision}"))
    stop.set()
    for reader in readers:
        reader.join()
    for choice in seen:
        if choice.role == "stable" and choice.revision > 1:
            assert choice.template == f"r{choice.revision}"


def test_the_sdk_imports_none_of_the_operators_dependencies() -> None:
    code = (
        "import sys, tollgate.sdk, tollgate.sdk.metrics, tollgate.sdk.tracing, "
        "tollgate.sdk.openfeature\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "operator")},
    ).stdout.split()
    assert not {"pydantic", "httpx", "kubernetes", "kopf", "yaml", "aiohttp"} & set(loaded)
    operator = [m for m in loaded if m.startswith("tollgate.") and not m.startswith("tollgate.sdk")]
    assert operator == []
