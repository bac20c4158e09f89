"""The two verdicts on a Tollgate object, and the verdicts each rollout state must get.

Argo CD runs a health check in gopher-lua (Lua 5.1) with only the base, table, package and a
safe os library open, the object converted to Lua tables (JSON null becomes an absent key), and
reads ``hs.status`` and ``hs.message``; :func:`argo_health` does the same with lupa's Lua 5.1,
offering the script only base functions and ``table``, so a script that needs ``string`` or
``math`` fails here as it would in Argo CD. :func:`kstatus` asks cli-utils itself.
"""

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

from tollgate.testing.cluster import repo_root

HEALTH = repo_root() / "deploy" / "argocd" / "health" / "tollgate.dev"
KSTATUS = repo_root() / ".tools" / "bin" / "kstatus"
ARGO_HEALTH = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})
# what a health script sees of Lua's base library (gopher-lua's, less what loads files)
BASE = (
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
    "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall",
    "_VERSION", "table",
)  # fmt: skip
SANDBOXED = """
function(source, name, obj, names)
  local chunk, problem = loadstring(source, name)
  if chunk == nil then error(problem) end
  local env = {obj = obj}
  for _, n in ipairs(names) do env[n] = _G[n] end
  setfenv(chunk, env)
  return chunk()
end
"""


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str


@cache
def _runner() -> Any:
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    return runtime, runtime.eval(SANDBOXED)


def argo_health(obj: Mapping[str, Any], script: Path | None = None) -> Verdict:
    """What Argo CD's health check for the object's kind says of it."""
    path = script or HEALTH / obj["kind"] / "health.lua"
    runtime, run = _runner()
    hs = run(
        path.read_text(),
        f"={path.name}",
        runtime.table_from(obj, recursive=True),
        runtime.table_from(BASE),
    )
    verdict = Verdict(str(hs["status"]), str(hs["message"] or ""))
    assert verdict.status in ARGO_HEALTH, verdict
    return verdict


def kstatus(objects: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """cli-utils' kstatus verdict on each object, in order."""
    done = subprocess.run(
        [str(KSTATUS)],
        input="".join(json.dumps(o) + "\n" for o in objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(a["kind"], a["name"]) for a in answers] == [
        (o["kind"], o["metadata"]["name"]) for o in objects
    ]
    return [Verdict(a["status"], a["message"]) for a in answers]


@dataclass(frozen=True)
class Expected:
    """The verdicts of one rollout state, and the status text both must carry."""

    argo: str
    kstatus: str
    says: str  # the condition whose message Argo CD shows, or "status" for status.message
    kstatus_says: str | None = None  # the condition kstatus quotes (None: its own words)


# state -> verdicts; the objects are named <kind>-<state> (canary-progressing, ...)
EXPECTED = {
    "created": Expected("Progressing", "Current", "none"),  # kstatus: no status is Current
    "initialized": Expected("Healthy", "Current", "Ready"),
    "progressing": Expected("Progressing", "InProgress", "Reconciling", "Reconciling"),
    "promoted": Expected("Healthy", "Current", "Ready"),
    "stalled": Expected("Degraded", "Failed", "Stalled", "Stalled"),
    "suspended": Expected("Suspended", "InProgress", "status", "Reconciling"),
    "paused": Expected("Suspended", "InProgress", "Reconciling", "Reconciling"),
    "rolling-back": Expected("Degraded", "InProgress", "RolledBack", "Reconciling"),
    "rolled-back": Expected("Degraded", "Failed", "Stalled", "Stalled"),
    "unobserved": Expected("Progressing", "InProgress", "none"),
}
# states every recording must have, per kind (a rollback passes through RollingBack in one tick
# or a few, so a recording may not catch it)
REQUIRED = {
    "Canary": set(EXPECTED) - {"rolling-back"},
    "PromptRelease": set(EXPECTED) - {"rolling-back", "initialized"},
}


def state_of(name: str) -> str:
    return name.split("-", 1)[1]


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind]
    assert len(found) == 1, (kind, obj.get("status"))
    return dict(found[0])


def said(obj: Mapping[str, Any], source: str) -> str | None:
    """The text a verdict quotes: a condition's message, status.message, or None (own words)."""
    if source == "none":
        return None
    if source == "status":
        return str(obj["status"]["message"])
    return str(condition(obj, source)["message"])


def argo_mismatches(name: str, obj: Mapping[str, Any]) -> list[str]:
    """How Argo CD's verdict on the object named ``<kind>-<state>`` differs from its state's."""
    want, argo = EXPECTED[state_of(name)], argo_health(obj)
    if argo.status != want.argo:
        return [f"{name}: Argo CD says {argo}, not {want.argo}"]
    text = said(obj, want.says)
    if text is not None and argo.message != text:
        return [f"{name}: Argo CD says {argo.message!r}, not {text!r}"]
    return [] if argo.message else [f"{name}: Argo CD gives no message"]


def kstatus_mismatches(objects: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """How kstatus' verdicts on named objects differ from their states'."""
    names = sorted(objects)
    wrong = []
    for name, flux in zip(names, kstatus([objects[n] for n in names]), strict=True):
        want = EXPECTED[state_of(name)]
        quoted = None if want.kstatus_says is None else said(objects[name], want.kstatus_says)
        if flux.status != want.kstatus:
            wrong.append(f"{name}: kstatus says {flux}, not {want.kstatus}")
        elif quoted is not None and flux.message != quoted:
            wrong.append(f"{name}: kstatus says {flux.message!r}, not {quoted!r}")
    return wrong


def mismatches(objects: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every way the two checkers' verdicts differ from :data:`EXPECTED`."""
    argo = [m for name, obj in sorted(objects.items()) for m in argo_mismatches(name, obj)]
    return argo + kstatus_mismatches(objects)
