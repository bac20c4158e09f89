"""Where the published document comes from, reloaded while the app runs.

A source must never take the app down: a file that is missing, half-written or invalid, or an
API server that is away, leaves the last good document in place and is reported through
``last_error``, ``errors`` and one log line per distinct problem. The document is an immutable
object swapped by reference, so readers need no lock.
"""

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from tollgate.sdk.published import DocumentError, PublishedPrompt, parse, to_json

log = logging.getLogger("tollgate.sdk")

Listener = Callable[[PublishedPrompt], None]


def describe(doc: PublishedPrompt | None) -> str:
    if doc is None:
        return "no document yet"
    split = f", candidate {doc.candidate} at {doc.candidate_weight}%" if doc.candidate else ""
    return f"prompt {doc.prompt!r} revision {doc.revision} (stable {doc.stable}{split})"


class Closing:
    """``with`` support for anything that has ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Source(Closing):
    """The last good document of one prompt, and what went wrong since.

    ``prompt``, when given, is the prompt this source must publish; otherwise the first good
    document pins it. A document for another prompt is an error like any other, so a prompt
    that has been served once stays served.
    """

    description = "source"

    def __init__(self, prompt: str | None = None) -> None:
        self.prompt = prompt
        self.document: PublishedPrompt | None = None
        self.last_error: str | None = None
        self.errors = 0
        self._text: str | bytes | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()

    def refresh(self) -> bool:
        """Read the document once, now; True when a new document was taken."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop watching; the last good document stays readable."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(document)`` after each new document; returns the unsubscriber."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _take(self, text: str | bytes) -> bool:
        """Parse ``text`` and keep it if it is good; True when the document changed."""
        with self._lock:
            if text == self._text:
                self.last_error = None
                return False
            try:
                doc = parse(text)
            except DocumentError as exc:
                self._fail(f"invalid document: {exc}")
                return False
            expected = self.prompt or (self.document.prompt if self.document else None)
            if expected is not None and doc.prompt != expected:
                self._fail(f"the document is for prompt {doc.prompt!r}, expected {expected!r}")
                return False
            self._text = text
            self.document = doc
            self.last_error = None
            log.info("%s: serving %s", self.description, describe(doc))
            for listener in list(self._listeners):
                try:
                    listener(doc)
                except Exception:
                    log.exception("%s: a listener failed", self.description)
            return True

    def _fail(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            if message != self.last_error:
                log.warning(
                    "%s: %s; keeping %s", self.description, message, describe(self.document)
                )
            self.last_error = message


Signature = tuple[str, int, int, int, int]


class FileSource(Source):
    """A document in a file, typically a mounted ConfigMap key, polled for changes.

    The kubelet updates a mounted ConfigMap by pointing a ``..data`` symlink at a new directory,
    so the file's own path never changes: a change is seen in the resolved path, the inode, the
    size or the modification time. ``poll_interval`` is in seconds.
    """

    def __init__(
        self, path: str | os.PathLike[str], poll_interval: float = 1.0, *, prompt: str | None = None
    ) -> None:
        super().__init__(prompt)
        self.path = Path(path)
        self.poll_interval = poll_interval
        self.description = f"file {self.path}"
        self._signature: Signature | str | None = None
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(
            target=self._run, name=f"tollgate-sdk {self.description}", daemon=True
        )
        self._thread.start()

    def refresh(self) -> bool:
        with self._lock:
            try:
                real = os.path.realpath(self.path)
                st = os.stat(real)
                signature: Signature | str = (
                    real,
                    st.st_dev,
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                )
            except OSError as exc:
                signature = f"cannot read the file: {exc.strerror or exc}"
            if signature == self._signature:
                return False
            self._signature = signature
            if isinstance(signature, str):
                self._fail(signature)
                return False
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                self._signature = None  # replaced between stat and read: look again next time
                self._fail(f"cannot read the file: {exc.strerror or exc}")
                return False
            return self._take(data)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self.poll_interval + 1.0)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # a bug here must not end the polling
                log.exception("%s: polling failed", self.description)


class StaticSource(Source):
    """A document given in code, for an app's tests and local runs; :meth:`publish` replaces
    it the way the operator would, bad documents included."""

    description = "static document"

    def __init__(
        self, document: PublishedPrompt | str | bytes | None = None, *, prompt: str | None = None
    ) -> None:
        super().__init__(prompt)
        if document is not None:
            self.publish(document)

    def publish(self, document: PublishedPrompt | str | bytes) -> bool:
        """Take ``document`` as if just published; True when it became the one in use."""
        return self._take(to_json(document) if isinstance(document, PublishedPrompt) else document)

    def refresh(self) -> bool:
        return False
