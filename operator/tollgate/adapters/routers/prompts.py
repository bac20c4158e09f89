"""The prompt router: weights published in a ConfigMap that apps read through the SDK.

A PromptRelease's traffic router is one JSON document (``tollgate.sdk.published``) under a key
of a ConfigMap in its namespace. The document carries the stable version and, during a
rollout, the candidate, with their content and weights, so an app needs nothing else. Each
step is one write; a rollback is one write that drops the candidate; a promotion is one write
that makes the candidate the stable version. Every write carries the next revision number and
the resourceVersion of the ConfigMap read just before (a concurrent edit is a 409, after which
it is read again), and is read back.

The published stable version is the truth about what serves traffic: it changes only by a
promotion. ``spec.stable`` seeds the first publication. Other keys of the ConfigMap are left
alone, and the ConfigMap is not deleted with the PromptRelease, so apps keep their prompts.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tollgate.adapters.kube.client import ConflictError, KubeClient, NotFoundError
from tollgate.adapters.kube.resources import CONFIGMAPS
from tollgate.adapters.routers.base import RouterError
from tollgate.sdk.published import DocumentError, PublishedPrompt, PublishedVersion, parse, to_json

MANAGED_BY = {"app.kubernetes.io/managed-by": "tollgate"}
RELEASE_ANNOTATION = "tollgate.dev/prompt-release"
Build = Callable[[PublishedPrompt | None], PublishedPrompt]


def revision_of(version: PublishedVersion) -> str:
    """The revision a rollout is about: the version's name and a hash of its content."""
    return f"{version.name}@{version.fingerprint()}"


@dataclass(frozen=True)
class Publication:
    """What was read: the document (None when absent or unreadable) and why it is unreadable."""

    document: PublishedPrompt | None
    resource_version: str | None
    exists: bool
    problem: str | None = None
    foreign: bool = False  # published by another PromptRelease: never overwritten
    claimed_revision: int = 0  # the revision an unreadable document claims, to count on from


class PromptPublisher:
    """Reads and writes one PromptRelease's published document."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        config_map: str,
        key: str,
        *,
        prompt: str,
        release: str,
        stable: PublishedVersion | None,
        candidate: PublishedVersion | None,
        missing: str | None = None,
        retries: int = 3,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.config_map = config_map
        self.key = key
        self.prompt = prompt
        self.release = release
        self.stable = stable
        self.candidate = candidate
        self.missing = missing  # why a version could not be resolved, if one could not
        self.retries = retries
        self.writes = 0

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.config_map} key {self.key}"

    async def read(self) -> Publication:
        try:
            body = await self.kube.get(CONFIGMAPS, self.namespace, self.config_map)
        except NotFoundError:
            return Publication(None, None, exists=False)
        version = body.get("metadata", {}).get("resourceVersion")
        text = (body.get("data") or {}).get(self.key)
        if text is None:
            return Publication(None, version, exists=True)
        try:
            doc = parse(text)
        except DocumentError as exc:
            return Publication(
                None, version, True, f"{self.where}: {exc}", claimed_revision=_claimed(text)
            )
        if doc.release != self.release:
            problem = f"{self.where} is published by {doc.release}, not {self.release}"
            return Publication(None, version, True, problem, foreign=True)
        return Publication(doc, version, exists=True)

    async def current(self) -> PublishedPrompt:
        """The published document; RouterError when there is none (ensure() publishes it)."""
        found = await self.read()
        if found.document is None:
            reason = "PublicationNotFound"
            if found.problem is not None:
                reason = "PublicationConflict" if found.foreign else "PublicationUnreadable"
            raise RouterError(reason, found.problem or f"{self.where} has no published prompt yet")
        return found.document

    # -- what the engine sees --------------------------------------------------------------

    def weight_of(self, doc: PublishedPrompt) -> int:
        """The share of the spec's candidate (same name and content) in a document."""
        if self.candidate is None:
            return 0
        published = doc.versions.get(self.candidate.name)
        if doc.candidate != self.candidate.name or published != self.candidate:
            return 0
        return doc.candidate_weight

    async def get_weight(self) -> int:
        return self.weight_of(await self.current())

    async def stable_revision(self) -> str | None:
        found = await self.read()
        if found.document is None:
            return None
        doc = found.document
        return revision_of(doc.versions[doc.stable])

    # -- writes -----------------------------------------------------------------------------

    def with_weight(self, doc: PublishedPrompt | None, weight: int) -> PublishedPrompt:
        """The document with ``weight`` percent on the candidate and the rest on stable."""
        stable = doc.versions[doc.stable] if doc is not None else self._resolved(self.stable)
        if weight == 0 or stable == self.candidate:
            return self._document({stable.name: 100}, stable, None)
        candidate = self._resolved(self.candidate)
        weights = {stable.name: 100 - weight, candidate.name: weight}
        return self._document(weights, stable, candidate)

    def _resolved(self, version: PublishedVersion | None) -> PublishedVersion:
        if version is None:
            raise RouterError("TemplateNotFound", self.missing or "a version is not resolved")
        return version

    def promoted(self) -> PublishedPrompt:
        """The candidate as the stable version, with all the traffic."""
        candidate = self._resolved(self.candidate)
        return self._document({candidate.name: 100}, candidate, None)

    def _document(
        self,
        weights: Mapping[str, int],
        stable: PublishedVersion,
        candidate: PublishedVersion | None,
    ) -> PublishedPrompt:
        versions = {stable.name: stable}
        if candidate is not None:
            versions[candidate.name] = candidate
        return PublishedPrompt(
            prompt=self.prompt,
            release=self.release,
            revision=1,
            stable=stable.name,
            candidate=candidate.name if candidate is not None else None,
            weights=dict(weights),
            versions=versions,
        )

    async def ensure(self) -> PublishedPrompt:
        """Publish ``spec.stable`` with all the traffic when nothing readable is published."""
        found = await self.read()
        if found.document is not None:
            return found.document
        return await self._publish(lambda _: self.with_weight(None, 0))

    async def set_weight(self, weight: int) -> int:
        if not 0 <= weight <= 100:
            raise ValueError(f"weight {weight} out of range")
        doc = await self._publish(lambda current: self.with_weight(current, weight))
        seen = self.weight_of(doc)
        if seen != weight:
            raise RouterError("VerifyFailed", f"published weight {weight}% but read back {seen}")
        return seen

    async def promote(self) -> PublishedPrompt:
        """Flip the stable pointer to the candidate: one write."""
        return await self._publish(lambda _: self.promoted())

    async def _publish(self, build: Build) -> PublishedPrompt:
        """Write build(current) unless it is already published; verified by reading back."""
        for _ in range(self.retries + 1):
            found = await self.read()
            if found.foreign:
                raise RouterError("PublicationConflict", found.problem or self.where)
            wanted = build(found.document)
            if found.document is not None and found.document.same_content(wanted):
                return found.document
            last = found.document.revision if found.document else found.claimed_revision
            text = to_json(wanted, revision=last + 1)
            try:
                self.writes += 1
                await self._write(found, text)
            except ConflictError:
                continue
            check = await self.read()
            if check.document is None or not check.document.same_content(wanted):
                raise RouterError(
                    "VerifyFailed", f"{self.where} does not hold what was just published"
                )
            return check.document
        raise RouterError("Conflict", f"{self.where} changed under every one of the writes")

    async def _write(self, found: Publication, text: str) -> None:
        if not found.exists:
            await self.kube.create(
                CONFIGMAPS,
                self.namespace,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": self.config_map,
                        "namespace": self.namespace,
                        "labels": dict(MANAGED_BY),
                        "annotations": {RELEASE_ANNOTATION: self.release},
                    },
                    "data": {self.key: text},
                },
            )
            return
        await self.kube.patch(
            CONFIGMAPS,
            self.namespace,
            self.config_map,
            {
                "metadata": {
                    "resourceVersion": found.resource_version,
                    "annotations": {RELEASE_ANNOTATION: self.release},
                },
                "data": {self.key: text},
            },
        )


def _claimed(text: str) -> int:
    """The revision an unreadable document claims, if any (publishing counts on from it)."""
    try:
        claimed = json.loads(text).get("revision")
    except (ValueError, AttributeError):
        return 0
    if isinstance(claimed, int) and not isinstance(claimed, bool):
        return max(claimed, 0)
    return 0
