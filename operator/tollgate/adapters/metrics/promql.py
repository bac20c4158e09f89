"""PromQL building blocks with safe escaping of every value that comes from users or objects.

Label values are written as double-quoted PromQL strings, so backslashes, quotes and newlines
are escaped; values used inside a regex matcher are also RE2-escaped. Nothing a user writes can
close a string or add a matcher.
"""

import re
from collections.abc import Iterable, Mapping

_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding ``value`` exactly."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_escape(value: str) -> str:
    """``value`` as an RE2 pattern that matches only itself."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


def any_of(values: Iterable[str]) -> str:
    """A regex matcher value matching exactly one of ``values`` (a quoted PromQL string)."""
    return quote("|".join(regex_escape(v) for v in sorted(set(values))))


def pods_of(workloads: Iterable[str], suffix: str) -> str:
    """A quoted regex matching pod names ``<workload><suffix>`` of any of ``workloads``.

    Workload names may hold dots (Kubernetes names are DNS subdomains): RE2-escaped, then
    quoted, since PromQL strings reject escapes like ``\\.`` that they do not know.
    """
    names = "|".join(regex_escape(w) for w in sorted(set(workloads)))
    return quote(f"({names}){suffix}")


def matchers(equal: Mapping[str, str], extra: Iterable[str] = ()) -> str:
    """Label matchers inside braces, deterministic order: equality first, then ``extra``."""
    parts = [f"{name}={quote(value)}" for name, value in sorted(equal.items())]
    parts.extend(extra)
    return ",".join(parts)


def duration(seconds: float) -> str:
    """A PromQL range duration for a window in seconds (whole seconds, at least 1s)."""
    return f"{max(1, round(seconds))}s"
