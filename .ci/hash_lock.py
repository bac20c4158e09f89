"""Add the sha256 of every published file of each pin in requirements.lock (pip's hash mode).

    python .ci/hash_lock.py requirements.lock

Each ``name==version`` line gets one ``--hash=sha256:...`` per file the index lists for that
release (every wheel and the sdist; read from the simple index, PEP 503, whose links carry
``#sha256=``), so ``pip install --require-hashes -r requirements.lock``
works on any platform the release supports, and a file swapped on the index is refused.
Hashes already present are replaced; comments and order are kept.
"""

import re
import sys
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/simple/{name}/"
LINK = re.compile(r'([^/"#]+)#sha256=([0-9a-f]{64})')


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def file_version(filename: str) -> str | None:
    """The release a distribution file belongs to (wheel or sdist), as its name says."""
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return parts[1] if len(parts) >= 5 else None
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)].rsplit("-", 1)[-1]
    return None


def hashes(name: str, version: str) -> list[str]:
    with urllib.request.urlopen(INDEX.format(name=normal(name)), timeout=30) as answer:
        page = answer.read().decode()
    found = {digest for filename, digest in LINK.findall(page) if file_version(filename) == version}
    if not found:
        raise SystemExit(f"{name}=={version}: no file of that release on the index")
    return sorted(found)


def main(path: str) -> int:
    lock = Path(path)
    out = []
    for raw in lock.read_text().splitlines():
        line = raw.split("\\")[0].strip()
        if raw.startswith("    --hash=") or not line:
            continue
        if line.startswith("#") or "==" not in line:
            out.append(raw)
            continue
        name, version = line.split("==", 1)
        version = version.split(";")[0].strip()
        digests = hashes(name, version)
        out.append(f"{line} \\")
        out.extend(f"    --hash=sha256:{d}" + (" \\" if i < len(digests) - 1 else "")
                   for i, d in enumerate(digests))  # fmt: skip
    lock.write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
