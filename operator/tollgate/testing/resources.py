"""The resource catalogue of the test API server: which kinds exist, where, and how they behave.

A real API server learns its resources from built-in types and from CRDs; kopf discovers them
through ``/api`` and ``/apis`` and silently waits forever for any resource it cannot discover
(``v1/namespaces`` above all). So the catalogue is explicit: a fixed list of the built-ins the
operator and kopf touch, plus every CRD found in a directory (by default the repo's ``crds/``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

#: Every verb a client may use; kopf filters discovered resources by list, watch and patch.
ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)

#: Where the repo keeps its generated CRDs (operator/tollgate/testing/ -> repo root -> crds/).
DEFAULT_CRDS_DIR: Path = Path(__file__).resolve().parents[3] / "crds"


@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    """One served group/version/plural with the facts discovery and storage need."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Subresources announced in discovery; only ``status`` is actually served.
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        """Whether status is only writable through ``/status`` (and spec only without it)."""
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        """``plural.group`` as kubectl spells it (just ``plural`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def __str__(self) -> str:
        return f"{self.api_version}/{self.plural}"


def _core(plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceSpec:
    return ResourceSpec("", "v1", plural, kind, namespaced, singular=kind.lower(), **kw)


#: The built-ins the operator, kopf and the demo touch. Anything else comes from CRD files.
BUILTIN_RESOURCES: tuple[ResourceSpec, ...] = (
    _core(
        "namespaces", "Namespace", False, short_names=("ns",), subresources=frozenset({"status"})
    ),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core("services", "Service", short_names=("svc",), subresources=frozenset({"status"})),
    _core("events", "Event", short_names=("ev",)),
    ResourceSpec(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        singular="deployment",
        short_names=("deploy",),
        categories=("all",),
        subresources=frozenset({"status"}),
    ),
    ResourceSpec(
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        "HTTPRoute",
        True,
        singular="httproute",
        categories=("gateway-api",),
        subresources=frozenset({"status"}),
    ),
    ResourceSpec("coordination.k8s.io", "v1", "leases", "Lease", True, singular="lease"),
    ResourceSpec("events.k8s.io", "v1", "events", "Event", True, singular="event"),
    ResourceSpec(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        singular="customresourcedefinition",
        short_names=("crd", "crds"),
        subresources=frozenset({"status"}),
    ),
    # kopf's peering objects: without them discoverable, only `standalone` peering works.
    ResourceSpec(
        "kopf.dev",
        "v1",
        "clusterkopfpeerings",
        "ClusterKopfPeering",
        False,
        singular="clusterkopfpeering",
    ),
    ResourceSpec("kopf.dev", "v1", "kopfpeerings", "KopfPeering", True, singular="kopfpeering"),
)

CRD_SPEC = next(spec for spec in BUILTIN_RESOURCES if spec.plural == "customresourcedefinitions")


def specs_from_crd(crd: Mapping[str, Any]) -> list[ResourceSpec]:
    """Turn one CustomResourceDefinition body into a spec per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec["group"])
    result: list[ResourceSpec] = []
    for version in spec.get("versions") or []:
        if version.get("served", True) is False:
            continue
        result.append(
            ResourceSpec(
                group=group,
                version=str(version["name"]),
                plural=str(names["plural"]),
                kind=str(names["kind"]),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=str(names.get("singular") or names["kind"].lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset((version.get("subresources") or {}).keys()),
            )
        )
    return result


#: libyaml's loader when present: the repo's CRDs take 0.3 s to parse in pure Python.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=32)
def _parse_crd_file(path: Path, mtime_ns: int) -> tuple[dict[str, Any], ...]:
    text = path.read_text(encoding="utf-8")
    return tuple(
        doc
        for doc in yaml.load_all(text, Loader=_YAML_LOADER)
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    )


def load_crd_documents(directory: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``*.yaml``/``*.yml`` of a directory (fresh copies;
    parsed files are cached until they change, since every test server loads them)."""
    docs: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        docs.extend(copy.deepcopy(_parse_crd_file(path, path.stat().st_mtime_ns)))
    return docs


class ResourceCatalogue:
    """The resources a server serves, addressable the many ways tests and kubectl spell them."""

    def __init__(self, specs: Iterable[ResourceSpec] = ()) -> None:
        self._specs: dict[tuple[str, str, str], ResourceSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ResourceSpec) -> None:
        self._specs[spec.key] = spec

    def remove(self, spec: ResourceSpec) -> None:
        self._specs.pop(spec.key, None)

    def __iter__(self) -> Iterator[ResourceSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, group: str, version: str, plural: str) -> ResourceSpec | None:
        return self._specs.get((group, version, plural))

    def resolve(self, ref: str | ResourceSpec) -> ResourceSpec:
        """Find a spec by ``plural``, ``plural.group``, ``group/version/plural``, ``v1/plural``,
        a kind or a short name. The core group wins ties (``events`` is ``v1/events``)."""
        if isinstance(ref, ResourceSpec):
            return ref
        parts = ref.split("/")
        candidates: list[ResourceSpec]
        if len(parts) == 3:
            candidates = [s for s in self._specs.values() if s.key == tuple(parts)]
        elif len(parts) == 2:
            group, plural = ("", parts[1]) if parts[0] == "v1" else (parts[0], parts[1])
            candidates = [
                s
                for s in self._specs.values()
                if s.plural == plural and (s.group == group or s.api_version == parts[0])
            ]
        else:
            name = ref.lower()
            candidates = [
                s
                for s in self._specs.values()
                if name in (s.plural, s.qualified, s.singular, s.kind.lower(), *s.short_names)
            ]
        if not candidates:
            raise KeyError(f"unknown resource: {ref!r}")
        candidates.sort(key=lambda s: (s.group != "", s.group, s.version))
        return candidates[0]
