"""A mounted ConfigMap file is reloaded while the app runs, and a bad one never replaces a good one.

``refresh()`` is the poll the background thread runs, called synchronously, so the tests need
no sleeping; one test lets the real thread find the change.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sdk.builders import PROMPT, corrupt, health, text
from tollgate.sdk import FileSource, PromptRouter, PromptUnavailable

SLOW = 3600.0  # a poll interval the background thread never reaches during a test


def write(path: Path, content: str) -> None:
    """Replace the file the way tools do: a new file renamed over the old one."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(content)
    os.replace(temp, path)


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "prompts.json"
    write(target, text(5, revision=1))
    return target


@pytest.fixture
def source(path: Path) -> Iterator[FileSource]:
    with FileSource(path, poll_interval=SLOW) as opened:
        yield opened


def test_the_file_is_read_at_once_and_reloaded_when_replaced(
    path: Path, source: FileSource
) -> None:
    router = PromptRouter(source)
    assert router.choose(PROMPT, "alice").revision == 1
    assert not source.refresh()  # unchanged: not even read

    write(path, text(100, revision=2))
    assert source.refresh()
    choice = router.choose(PROMPT, "alice")
    assert (choice.revision, choice.version) == (2, "v8")
    assert (source.errors, source.last_error) == (0, None)


def test_a_kubelet_symlink_swap_is_seen_even_with_the_same_size_and_time(tmp_path: Path) -> None:
    # The kubelet's layout: prompts.json -> ..data/prompts.json, ..data -> ..<timestamp>/
    first, second = tmp_path / "..2026_01_01", tmp_path / "..2026_01_02"
    first.mkdir()
    (first / "prompts.json").write_text(text(5, revision=1))
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "prompts.json").symlink_to("..data/prompts.json")

    with FileSource(tmp_path / "prompts.json", poll_interval=SLOW) as source:
        router = PromptRouter(source)
        assert router.choose(PROMPT).revision == 1

        second.mkdir()
        (second / "prompts.json").write_text(text(5, revision=2))
        stat = (first / "prompts.json").stat()
        os.utime(second / "prompts.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
        (tmp_path / "..data_tmp").symlink_to(second.name)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        for leftover in first.iterdir():
            leftover.unlink()
        first.rmdir()

        assert source.refresh()
        assert router.choose(PROMPT).revision == 2


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("json", "invalid document: not JSON: "),
        ("weights", "invalid document: weights must sum to 100"),
        ("template", "invalid document: versions.v8.template must be a non-empty string"),
    ],
)
def test_a_corrupt_file_keeps_the_last_good_document_until_a_good_one_comes(
    path: Path, source: FileSource, kind: str, error: str
) -> None:
    router = PromptRouter(source)
    write(path, corrupt(kind))
    assert not source.refresh()
    assert router.choose(PROMPT, "bob").revision == 1
    assert source.document is not None
    assert source.document.revision == 1
    assert source.last_error is not None
    assert source.last_error.startswith(error)
    assert source.errors == 1
    assert not source.refresh()
    assert source.errors == 1  # the same bad file is one error, not one per poll

    write(path, text(5, revision=3))
    assert source.refresh()
    assert router.choose(PROMPT, "bob").revision == 3
    assert health(source) == (1, None)


def test_each_distinct_problem_is_logged_once(
    path: Path, source: FileSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tollgate.sdk")
    for content in (corrupt("json"), corrupt("weights"), corrupt("weights") + " "):
        write(path, content)
        source.refresh()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[1] == (
        f"file {path}: invalid document: weights must sum to 100; keeping prompt "
        "'support-answer' revision 1 (stable v7, candidate v8 at 5%)"
    )
    assert source.errors == 3


def test_a_deleted_file_keeps_the_last_good_document(path: Path, source: FileSource) -> None:
    path.unlink()
    assert not source.refresh()
    assert source.last_error == "cannot read the file: No such file or directory"
    assert PromptRouter(source).choose(PROMPT).revision == 1
    write(path, text(5, revision=1))
    assert not source.refresh()  # the same document again: nothing new, but healthy
    assert source.last_error is None


def test_a_file_missing_at_start_makes_the_prompt_unavailable_until_it_appears(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "prompts.json"
    with FileSource(missing, poll_interval=SLOW, prompt=PROMPT) as source:
        router = PromptRouter(source)
        with pytest.raises(PromptUnavailable) as caught:
            router.choose(PROMPT, "carol")
        assert str(caught.value) == (
            f"prompt 'support-answer' is unavailable, no good document read yet: file {missing}:"
            " cannot read the file: No such file or directory"
        )
        write(missing, text(5))
        assert source.refresh()
        assert router.choose(PROMPT, "carol").prompt == PROMPT


def test_the_background_thread_picks_up_a_new_file(path: Path) -> None:
    with PromptRouter.from_file(path, poll_interval=0.02) as router:
        assert router.choose(PROMPT).revision == 1
        write(path, text(5, revision=2))
        wait_until(lambda: router.choose(PROMPT).revision == 2)
        write(path, corrupt("weights"))
        (source,) = router.sources
        wait_until(lambda: source.errors == 1)
        assert router.choose(PROMPT).revision == 2
    assert not [t for t in threading.enumerate() if t.name == f"tollgate-sdk file {path}"]


def test_a_document_nested_past_the_stack_is_a_config_error_not_a_crash(
    path: Path, source: FileSource
) -> None:
    write(path, "[" * 200_000 + "]" * 200_000)
    assert not source.refresh()
    assert source.last_error is not None
    assert "nested too deeply" in source.last_error
    assert source.errors == 1
    assert source.document is not None
    assert source.document.revision == 1


def test_a_deeply_nested_file_at_start_is_a_config_error(tmp_path: Path) -> None:
    target = tmp_path / "prompts.json"
    write(target, "[" * 200_000 + "]" * 200_000)
    with FileSource(target, poll_interval=SLOW) as opened:
        assert opened.document is None
        assert opened.last_error is not None
        assert "nested too deeply" in opened.last_error
