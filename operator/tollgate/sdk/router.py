"""Which version serves a request: consistent hashing on a stickiness key.

For a key, ``u = blake2b(prompt NUL candidate NUL key) mod 10000`` and the candidate serves iff
``u < candidate_weight * 100``. So a user keeps their version across requests, processes and
reloads with the same weights; when the weight grows from w1 to w2 only the users with ``u`` in
``[w1*100, w2*100)`` move, all of them to the candidate, which is the least movement any split
can make; and since the candidate's name salts the hash, each new candidate is tried on a
different slice of users. Without a key the draw is random.

The hot path reads one dict reference, which sources' listeners replace whole on every new
document, and returns a Choice built with that document: no lock, no allocation but the hash.
"""

import hashlib
import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tollgate.sdk.choice import Choice, Role
from tollgate.sdk.configmap import ConfigMapSource
from tollgate.sdk.published import PublishedPrompt, PublishedVersion
from tollgate.sdk.sources import Closing, FileSource, Source

log = logging.getLogger("tollgate.sdk")

BUCKETS = 10_000


def bucket(prompt: str, candidate: str, key: object) -> int:
    """The key's position in ``[0, 10000)`` for this prompt and candidate."""
    digest = hashlib.blake2b(f"{prompt}\0{candidate}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


class PromptUnavailable(LookupError):  # noqa: N818 (the name the apps catch)
    """No good document has been read yet for the prompt (or no source publishes it).

    ``pending`` lists the sources that may still bring it, with their ``last_error``.
    """

    def __init__(self, prompt: str, message: str, pending: tuple[Source, ...] = ()) -> None:
        super().__init__(message)
        self.prompt = prompt
        self.pending = pending


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything ``choose`` needs for one prompt, built once per document."""

    document: PublishedPrompt
    source: Source
    salted: hashlib.blake2b  # fed with prompt NUL candidate NUL: copied, then fed the key
    threshold: int
    stable: Choice
    candidate: Choice


def _choice(doc: PublishedPrompt, version: PublishedVersion, role: Role, weight: int) -> Choice:
    return Choice(
        prompt=doc.prompt,
        version=version.name,
        role=role,
        template=version.template,
        model=version.model,
        parameters=MappingProxyType(dict(version.parameters)),
        revision=doc.revision,
        weight=weight,
    )


def _plan(doc: PublishedPrompt, source: Source) -> _Plan:
    weight = doc.candidate_weight
    stable = _choice(doc, doc.versions[doc.stable], "stable", 100 - weight)
    candidate = stable
    if doc.candidate is not None:
        candidate = _choice(doc, doc.versions[doc.candidate], "candidate", weight)
    return _Plan(
        document=doc,
        source=source,
        salted=hashlib.blake2b(f"{doc.prompt}\0{doc.candidate or ''}\0".encode(), digest_size=8),
        threshold=weight * (BUCKETS // 100),
        stable=stable,
        candidate=candidate,
    )


def _pending_text(sources: tuple[Source, ...]) -> str:
    return "; ".join(
        f"{source.description}: {source.last_error or 'not read yet'}" for source in sources
    )


class PromptRouter(Closing):
    """Chooses prompt versions for requests, from one source per prompt.

    ``rng`` draws for requests without a key (seed one for tests). The router owns its sources:
    :meth:`close` closes them.
    """

    def __init__(self, *sources: Source, rng: random.Random | None = None) -> None:
        self.sources = sources
        self._rng = rng or random.Random()
        self._plans: Mapping[str, _Plan] = {}
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[tuple[str, ...]], None]] = []
        self._conflicts: set[tuple[str, str]] = set()
        self._unsubscribers = [source.subscribe(self._changed) for source in sources]
        self._rebuild()

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        poll_interval: float = 1.0,
        *,
        prompt: str | None = None,
        rng: random.Random | None = None,
    ) -> "PromptRouter":
        """A router on one mounted ConfigMap file."""
        return cls(FileSource(path, poll_interval, prompt=prompt), rng=rng)

    @classmethod
    def from_configmap(
        cls,
        namespace: str,
        name: str,
        key: str = "prompts.json",
        *,
        server: str | None = None,
        token: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        prompt: str | None = None,
        startup_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> "PromptRouter":
        """A router on one ConfigMap key watched through the API server."""
        source = ConfigMapSource(
            namespace,
            name,
            key,
            server,
            token,
            ca_file,
            prompt=prompt,
            startup_timeout=startup_timeout,
        )
        return cls(source, rng=rng)

    # -- the hot path ---------------------------------------------------------------------------

    def choose(self, prompt: str, key: str | None = None) -> Choice:
        """The version to serve this request; the same for the same ``key`` while the weights
        stay. Raises :class:`PromptUnavailable` only until a first good document is read."""
        plan = self._plans.get(prompt)
        if plan is None:
            raise self._unavailable(prompt)
        threshold = plan.threshold
        if threshold == 0:
            return plan.stable
        if threshold >= BUCKETS:
            return plan.candidate
        if key is None:
            u = int(self._rng.random() * BUCKETS)
        else:
            hasher = plan.salted.copy()
            hasher.update(f"{key}".encode())
            u = int.from_bytes(hasher.digest(), "big") % BUCKETS
        return plan.candidate if u < threshold else plan.stable

    # -- state ----------------------------------------------------------------------------------

    def prompts(self) -> tuple[str, ...]:
        """The prompts with a good document, in source order."""
        return tuple(self._plans)

    def document(self, prompt: str) -> PublishedPrompt | None:
        """The document in use for ``prompt``, if any."""
        plan = self._plans.get(prompt)
        return None if plan is None else plan.document

    def subscribe(self, callback: Callable[[tuple[str, ...]], None]) -> Callable[[], None]:
        """Call ``callback(prompts)`` with the prompts whose document changed; returns the
        unsubscriber. It runs on the thread that read the document: keep it short."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def close(self) -> None:
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        for source in self.sources:
            source.close()

    # -- internals ------------------------------------------------------------------------------

    def _changed(self, _doc: PublishedPrompt) -> None:
        changed = self._rebuild()
        if not changed:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(changed)
            except Exception:
                log.exception("a prompt router subscriber failed")

    def _rebuild(self) -> tuple[str, ...]:
        """Replace the plans from the sources' current documents; returns the changed prompts."""
        with self._lock:
            old = self._plans
            plans: dict[str, _Plan] = {}
            for source in self.sources:
                doc = source.document
                if doc is None:
                    continue
                taken = plans.get(doc.prompt)
                if taken is not None:
                    conflict = (doc.prompt, source.description)
                    if conflict not in self._conflicts:
                        self._conflicts.add(conflict)
                        log.warning(
                            "%s publishes prompt %r, already served from %s: ignored",
                            source.description,
                            doc.prompt,
                            taken.source.description,
                        )
                    continue
                previous = old.get(doc.prompt)
                if previous is not None and previous.document is doc:
                    plans[doc.prompt] = previous
                else:
                    plans[doc.prompt] = _plan(doc, source)
            self._plans = plans
            return tuple(
                prompt
                for prompt in dict.fromkeys([*old, *plans])
                if old.get(prompt) is not plans.get(prompt)
            )

    def _unavailable(self, prompt: str) -> PromptUnavailable:
        unread = tuple(s for s in self.sources if s.document is None)
        pinned = tuple(s for s in unread if s.prompt == prompt)
        if pinned:
            return PromptUnavailable(
                prompt,
                f"prompt {prompt!r} is unavailable, no good document read yet: "
                f"{_pending_text(pinned)}",
                pinned,
            )
        pending = tuple(s for s in unread if s.prompt is None)
        if pending:
            return PromptUnavailable(
                prompt,
                f"prompt {prompt!r} is unavailable: no source publishes it, and these have no "
                f"good document yet: {_pending_text(pending)}",
                pending,
            )
        known = ", ".join(repr(p) for p in self._plans) or "none"
        if not self.sources:
            known = "none: the router has no source"
        return PromptUnavailable(
            prompt, f"prompt {prompt!r} is unavailable: no source publishes it (known: {known})"
        )
