"""Write (or check) deploy/: charts/tollgate as kustomize files, for ``kubectl apply -k deploy/``.

    python .ci/deploy_manifests.py          # write them (make deploy)
    python .ci/deploy_manifests.py --check  # fail when they have drifted (make check)

The chart stays the one place the operator's objects are written; deploy/ is derived from it
so that the two cannot disagree. The source is the chart's golden renders in
tests/chart/golden/ (``helm template`` output that tests/chart/test_chart.py holds equal to the
chart), so the check needs no helm: ``make check`` runs before ``make tools`` builds it. After
a chart change: ``TOLLGATE_UPDATE_GOLDEN=1 pytest tests/chart``, then ``make deploy``.

- ``deploy/base``: the default render, one file per chart template, with the chart's comments
  and without the labels only Helm sets (``helm.sh/chart``, ``app.kubernetes.io/managed-by:
  Helm``); the Namespace ``helm install --create-namespace`` would create; the CRDs copied
  from crds/ (the render's are the same ones, with Helm's ``resource-policy`` annotation).
- ``deploy/overlays/namespaced``: the namespaced render, as what it changes in the base: the
  objects it drops (the component ``deploy/components/namespaced``), a Role and RoleBinding
  per watched namespace (``deploy/watched-namespace``, included once per namespace with
  ``namespace:`` set) and the arguments it adds to the Deployment. Any other difference stops
  the script with what it found.
"""

import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "chart" / "golden"
CRDS = ROOT / "crds"
# the directories whose every file this script writes (deploy/ holds others' files too)
OWNED = ["deploy/base", "deploy/components/namespaced", "deploy/watched-namespace",
         "deploy/overlays/namespaced"]  # fmt: skip
SCRIPT = "`make deploy` (.ci/deploy_manifests.py). Do not edit.\n"
HEADER = "# Generated from charts/tollgate by " + SCRIPT
HELM_LABEL = re.compile(r"^ +(helm\.sh/chart: .*|app\.kubernetes\.io/managed-by: Helm)\n", re.M)
KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
ARGS = "/spec/template/spec/containers/{index}/args"
Key = tuple[str, str, str]


class NotHandledError(SystemExit):
    """The chart renders something this script does not turn into kustomize files."""


@dataclass(frozen=True)
class Document:
    template: str  # the chart template it came from, e.g. rbac.yaml
    text: str  # as rendered, without Helm's labels and the `# Source:` line
    obj: dict[str, Any]

    @property
    def key(self) -> Key:
        meta = self.obj["metadata"]
        return self.obj["kind"], meta.get("namespace", ""), meta["name"]


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    labels = obj["metadata"].get("labels")
    if labels is None:
        return obj
    helm = ("app.kubernetes.io/managed-by", "Helm")
    kept = {k: v for k, v in labels.items() if k != "helm.sh/chart" and (k, v) != helm}
    return {**obj, "metadata": {**obj["metadata"], "labels": kept}}


def documents(render: str) -> list[Document]:
    """The render's documents with Helm's label lines cut from the text (its comments stay),
    checked against the same labels removed from the parsed object."""
    out = []
    for chunk in re.split(r"^---\n", render, flags=re.M):
        source, _, body = chunk.partition("\n")
        if not source.startswith("# Source: "):
            continue
        text = HELM_LABEL.sub("", body if body.endswith("\n") else body + "\n")
        obj = yaml.safe_load(text)
        if obj != without_helm_labels(yaml.safe_load(body)):
            raise NotHandledError(f"{source}: Helm's labels are not one a line in {obj['kind']}")
        out.append(Document(source.rsplit("/", 1)[1], text, obj))
    return out


def resources(items: list[str]) -> str:
    return "resources:\n" + "".join(f"  - {item}\n" for item in items)


def base(render: list[Document]) -> dict[str, str]:
    (namespace,) = {d.key[1] for d in render if d.key[1]}
    files = {
        "namespace.yaml": f"{HEADER}# The operator's namespace: what `helm install "
        f"--create-namespace` creates.\napiVersion: v1\nkind: Namespace\nmetadata:\n"
        f"  name: {namespace}\n"
    }
    crds = {yaml.safe_load(p.read_text())["metadata"]["name"]: p for p in CRDS.rglob("*.yaml")}
    for doc in render:
        if doc.obj["kind"] == "CustomResourceDefinition":
            source = crds[doc.key[2]]
            copied = f"# Copied from crds/ by {SCRIPT}{source.read_text()}"
            files[f"crds/{source.relative_to(CRDS)}"] = copied
    for doc in render:
        if doc.obj["kind"] != "CustomResourceDefinition":
            earlier = files.get(doc.template)
            files[doc.template] = f"{earlier}---\n{doc.text}" if earlier else HEADER + doc.text
    files["kustomization.yaml"] = (
        f"{HEADER}# The chart's defaults (cluster mode), as rendered by\n"
        f"#   helm template tollgate charts/tollgate --namespace {namespace}\n"
        f"{KUSTOMIZATION}{resources(list(files))}"
    )
    return files


def insertions(old: list[str], new: list[str]) -> list[tuple[int, str]]:
    """(index in ``new``, item) of each item ``new`` adds to ``old``, whose order it keeps."""
    added, kept = [], 0
    for index, item in enumerate(new):
        if kept < len(old) and old[kept] == item:
            kept += 1
        else:
            added.append((index, item))
    if kept != len(old):
        raise NotHandledError(f"namespaced mode drops Deployment arguments: {old} -> {new}")
    return added


def args_patch(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """JSON patch operations, one a line, that turn Deployment ``before`` into ``after``:
    arguments added to its containers, which must be all that differs."""
    ops, patched = [], copy.deepcopy(before)
    pairs = zip(
        *(d["spec"]["template"]["spec"]["containers"] for d in (patched, after)), strict=True
    )
    for index, (container, wanted) in enumerate(pairs):
        for at, item in insertions(container.get("args", []), wanted.get("args", [])):
            ops.append(f"{{op: add, path: {ARGS.format(index=index)}/{at}, value: {item}}}")
        if "args" in wanted:
            container["args"] = wanted["args"]
    if patched != after:
        raise NotHandledError("namespaced mode changes the Deployment beyond its arguments")
    return ops


def delete_patch(key: Key, api_version: str) -> str:
    kind, namespace, name = key
    meta = f"\n        namespace: {namespace}" if namespace else ""
    return (
        f"  - patch: |-\n      $patch: delete\n      apiVersion: {api_version}\n"
        f"      kind: {kind}\n      metadata:\n        name: {name}{meta}\n"
    )


def watched_namespace(added: list[Document]) -> tuple[list[str], str]:
    """The namespaces namespaced mode adds objects in, and the text of those objects without
    their namespace, which must be the same for each."""
    namespaces = list(dict.fromkeys(d.key[1] for d in added))
    units = set()
    for namespace in namespaces:
        docs = [d for d in added if d.key[1] == namespace]
        if not namespace or {d.obj["kind"] for d in docs} - {"Role", "RoleBinding"}:
            raise NotHandledError(f"namespaced mode adds {[d.key for d in docs]}: not RBAC")
        line = re.compile(rf"^  namespace: {re.escape(namespace)}\n", re.M)
        units.add("---\n".join(line.sub("", d.text, count=1) for d in docs))
    if len(units) != 1:
        raise NotHandledError(f"the watched namespaces {namespaces} differ in their objects")
    (unit,) = units
    if any("namespace" in doc["metadata"] for doc in yaml.safe_load_all(unit)):
        raise NotHandledError("a watched namespace's object keeps its namespace")
    return namespaces, unit


def namespaced(default: list[Document], render: list[Document]) -> dict[str, str]:
    """The files of namespaced mode: the component, the per-namespace unit, the overlay."""
    was, now = {d.key: d for d in default}, {d.key: d for d in render}
    namespaces, unit = watched_namespace([d for k, d in now.items() if k not in was])
    changed = [k for k in was if k in now and was[k].obj != now[k].obj]
    if [kind for kind, _, _ in changed] != ["Deployment"]:
        raise NotHandledError(f"namespaced mode changes {changed}: only a Deployment is handled")
    ops = args_patch(was[changed[0]].obj, now[changed[0]].obj)
    removed = [delete_patch(k, d.obj["apiVersion"]) for k, d in was.items() if k not in now]
    listed = ",".join(namespaces)
    files = {
        "components/namespaced/kustomization.yaml": f"{HEADER}# What namespaced mode removes "
        "from the base: the cluster-wide grant to Tollgate's workloads.\n"
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n"
        + "".join(removed),
        "watched-namespace/rbac.yaml": HEADER + unit,
        "watched-namespace/kustomization.yaml": f"{HEADER}# What Tollgate needs in a namespace "
        "it watches. Include it once per watched namespace,\n# with `namespace:` set "
        f"(deploy/overlays/namespaced/*/kustomization.yaml).\n{KUSTOMIZATION}"
        + resources(["rbac.yaml"]),
        "overlays/namespaced/kustomization.yaml": f"{HEADER}# Namespaced mode: the chart with "
        f"--set watch.namespaces={{{listed}}}. Tollgate acts\n# only in these namespaces "
        "(which must exist), with a Role in each instead of a ClusterRole.\n# Another list: "
        f'docs/install.md, "With kustomize".\n{KUSTOMIZATION}'
        + resources(["../../base", *namespaces])
        + "components:\n  - ../../components/namespaced\npatches:\n"
        + f"  - target: {{kind: Deployment, name: {changed[0][2]}}}\n    patch: |-\n"
        + "".join(f"      - {op}\n" for op in ops),
    }
    for ns in namespaces:
        files[f"overlays/namespaced/{ns}/kustomization.yaml"] = (
            f"{HEADER}{KUSTOMIZATION}namespace: {ns}\n{resources(['../../../watched-namespace'])}"
        )
    return files


def generated() -> dict[str, str]:
    """Path from the repository root -> content, for every file this script owns."""
    default = documents((GOLDEN / "default.yaml").read_text())
    files = {f"base/{p}": t for p, t in base(default).items()}
    files |= namespaced(default, documents((GOLDEN / "namespaced.yaml").read_text()))
    files["kustomization.yaml"] = (
        f"{HEADER}# `kubectl apply -k deploy/`: the chart's defaults.\n"
        f"{KUSTOMIZATION}{resources(['base'])}"
    )
    return {f"deploy/{p}": t for p, t in files.items()}


def stale(files: dict[str, str]) -> list[str]:
    """Files in the owned directories that this script does not write."""
    present = {str(p.relative_to(ROOT)) for d in OWNED for p in (ROOT / d).rglob("*")
               if p.is_file()}  # fmt: skip
    return sorted(present - set(files))


def main(argv: list[str]) -> int:
    files = generated()
    if "--check" in argv:
        drifted = [p for p, t in files.items()
                   if not (ROOT / p).is_file() or (ROOT / p).read_text() != t]  # fmt: skip
        extra = stale(files)
        for path in drifted:
            sys.stderr.write(f"{path} differs from charts/tollgate: run `make deploy`\n")
        for path in extra:
            sys.stderr.write(f"{path} is not generated: `make deploy` removes it\n")
        return 1 if drifted or extra else 0
    for path in stale(files):
        (ROOT / path).unlink()
        sys.stdout.write(f"removed {path}\n")
    for path, text in files.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
