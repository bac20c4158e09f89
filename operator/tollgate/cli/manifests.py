"""Reading manifest files the way a careful tool does: bounded, and never a traceback.

``tollgate validate`` and ``tollgate analyze`` read files a user points them at, which may be
anything: binary, huge, or a 570-byte YAML "billion laughs" whose aliases expand to billions of
nodes (it cost 44 s and 5 GB). Files are read up to a size, must be UTF-8 text, and a document
whose aliases expand past a node budget is refused before it is built.
"""

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 4 * 1024 * 1024  # far above any manifest
MAX_NODES = 200_000  # nodes after alias expansion, per document


class ManifestError(ValueError):
    """A file that cannot be read as manifests; the message says why, for people."""


def _expanded_size(root: Node, budget: int) -> int:
    """Nodes of ``root`` with every alias expanded, counted without expanding (memoised)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(c), 1) for c in children)
        sizes[id(node)] = min(size, budget + 1)
    return sizes[id(root)]


def load_documents(path: Path) -> list[Any]:
    """Every YAML document of one file; ManifestError when it is not readable as manifests."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_BYTES:
        raise ManifestError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB: not a manifest")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text (binary?): byte {exc.start}") from exc
    if "\x00" in text:
        raise ManifestError("not text: it contains NUL bytes")
    documents: list[Any] = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                if _expanded_size(node, MAX_NODES) > MAX_NODES:
                    raise ManifestError(
                        f"a document expands to more than {MAX_NODES:,} YAML nodes through "
                        "its aliases: refused"
                    )
                documents.append(loader.construct_document(node))
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ManifestError(f"not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ManifestError("nested too deeply to be a manifest") from exc
    return documents
