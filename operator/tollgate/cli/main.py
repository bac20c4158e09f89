"""Entry point of ``tollgate`` / ``kubectl tollgate``.

``crds`` (write or check the generated CRDs), ``validate`` (check Canary and PromptRelease
manifests offline with the operator's own rules, e.g. in a GitOps pipeline), ``analyze
--replay`` (a rollout's analysis against historical Prometheus data) and ``version``.
"""

import argparse
import math
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tollgate import __version__
from tollgate.api import API_VERSION, GROUP
from tollgate.api.canary import CanarySpec
from tollgate.api.crds import generated_files
from tollgate.api.promptrelease import PromptReleaseSpec
from tollgate.api.validation import SpecProblem, parse
from tollgate.cli import analyze, plugin
from tollgate.cli.manifests import ManifestError, load_documents
from tollgate.engine.evidence import resolutions

KINDS: dict[str, type[CanarySpec] | type[PromptReleaseSpec]] = {
    "Canary": CanarySpec,
    "PromptRelease": PromptReleaseSpec,
}


def _crds(args: argparse.Namespace) -> int:
    out = Path(args.out)
    files = generated_files()
    if args.check:
        drifted = [
            name
            for name, text in files.items()
            if not (out / name).exists() or (out / name).read_text() != text
        ]
        extra = (
            sorted(p.name for p in out.glob("*.yaml") if p.name not in files)
            if out.exists()
            else []
        )
        for name in drifted:
            print(f"{out / name}: differs from the models; run `make crds`", file=sys.stderr)
        for name in extra:
            print(f"{out / name}: not generated from the models", file=sys.stderr)
        return 1 if drifted or extra else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


def validate_document(
    doc: Any, rps: float | None = None
) -> tuple[str, list[SpecProblem], list[str]]:
    """Validate one manifest: a label for it, its problems, and warnings.

    With ``rps`` (the service's requests per second), a warning for every absolute limit the
    step plan cannot resolve at that traffic, with the smallest sample that can.
    """
    if not isinstance(doc, dict):
        return "document", [SpecProblem("", "not a Kubernetes object")], []
    kind, metadata = doc.get("kind"), doc.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, dict) else "?"
    label = f"{kind}/{name}" if isinstance(kind, str) else "document"
    ours = isinstance(doc.get("apiVersion"), str) and doc["apiVersion"].startswith(GROUP + "/")
    if not ours:
        return label, [], []  # not ours: other objects may share the file
    if doc.get("apiVersion") != API_VERSION:
        return label, [SpecProblem("apiVersion", f"must be {API_VERSION}")], []
    if not isinstance(kind, str) or kind not in KINDS:
        return label, [SpecProblem("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")], []
    problems: list[SpecProblem] = []
    if not isinstance(metadata, dict):
        problems.append(SpecProblem("metadata", "must be an object with a name"))
    spec, spec_problems = parse(KINDS[kind], doc.get("spec"))
    problems += spec_problems
    warnings: list[str] = []
    if spec is not None and rps is not None and not problems:
        for r in resolutions(spec, rps):
            if not r.enough:
                need = "no sample can" if math.isinf(r.needed) else f"{r.needed:,.0f} are needed"
                warnings.append(
                    f"{r.name}: at {rps:g} req/s the plan shows the canary about "
                    f"{r.reachable:,.0f} requests and {need} to resolve this limit "
                    f"(sequential.detect {spec.analysis.sequential.detect:g}, power "
                    f"{spec.analysis.sequential.power:g})"
                )
    return label, problems, warnings


def _validate(args: argparse.Namespace) -> int:
    """Exit 0: every Tollgate object valid; 1: some invalid or unreadable; 2: none found."""
    failed = 0
    checked = 0
    for file in args.files:
        try:
            docs = load_documents(Path(file))
        except ManifestError as exc:
            print(f"{file}: {exc}", file=sys.stderr)
            failed += 1
            continue
        for doc in docs:
            if doc is None:
                continue
            label, problems, warnings = validate_document(doc, args.rps)
            api_version = doc.get("apiVersion") if isinstance(doc, dict) else None
            if isinstance(api_version, str) and api_version.startswith(GROUP + "/"):
                checked += 1
            for problem in problems:
                print(f"{file}: {label}: {problem}", file=sys.stderr)
            for warning in warnings:
                print(f"{file}: {label}: warning: {warning}")
            failed += bool(problems)
    print(f"{checked} Tollgate object(s) checked, {failed} invalid")
    if failed:
        return 1
    if not checked:
        print(f"no Canary or PromptRelease ({API_VERSION}) found", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    # The demo runs the test harness, which an operator image need not carry.
    from tollgate.cli import demo

    return demo.main(args)


def _run(args: argparse.Namespace) -> NoReturn:
    """The operator: kopf's runtime with Tollgate's handlers, and kopf's probe endpoint (an
    event loop that stops answering fails it)."""
    command = [sys.executable, "-m", "kopf", "run", "-m", "tollgate.runtime.handlers"]
    command.append(f"--liveness=http://{args.probes}/healthz")
    if args.namespace:
        command += [f"--namespace={namespace}" for namespace in args.namespace]
    else:
        command.append("--all-namespaces")
    from tollgate.runtime.peering import seniority_priority  # the operator's, not the CLI's

    if args.peering:  # one of several replicas: the longest-running one acts
        command += [f"--peering={args.peering}", f"--priority={seniority_priority()}"]
    else:
        command.append("--standalone")
    if args.verbose:
        command.append("--verbose")
    env = operator_environment(dict(os.environ), os.getuid())
    if args.metrics:
        env["TOLLGATE_METRICS_ADDRESS"] = args.metrics
    if args.namespace:  # the settings and the peering objects follow the flags
        env["TOLLGATE_NAMESPACES"] = ",".join(args.namespace)
    sys.stdout.flush()
    os.execve(sys.executable, command, env)


def operator_environment(env: dict[str, str], uid: int) -> dict[str, str]:
    """kopf names itself after the user (``getpass.getuser``), which raises for a numeric user
    with no passwd entry, as an image's ``USER 65532`` is: give it a name then."""
    if any(env.get(k) for k in ("POD_ID", "LOGNAME", "USER", "LNAME", "USERNAME")):
        return env
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return {**env, "USER": f"uid{uid}"}
    return env


def _version(_: argparse.Namespace) -> int:
    print(f"tollgate {__version__} ({API_VERSION})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="tollgate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--out", default="crds", help="directory (default: crds)")
    crds.add_argument("--check", action="store_true", help="fail if the directory has drifted")
    crds.set_defaults(func=_crds)
    validate = sub.add_parser("validate", help="check Canary/PromptRelease manifests offline")
    validate.add_argument("files", nargs="+", help="YAML files (multi-document allowed)")
    validate.add_argument(
        "--rps",
        type=float,
        metavar="N",
        help="the service's requests per second: warn when the plan cannot resolve a limit",
    )
    validate.set_defaults(func=_validate)
    analyze.add_parser(sub)
    demo_cmd = sub.add_parser(
        "demo", help="a healthy and a bad release on a local control plane (make tools builds it)"
    )
    demo_cmd.set_defaults(func=_demo)
    run = sub.add_parser("run", help="run the operator (kopf) with its probe endpoint")
    run.add_argument(
        "--namespace", action="append", metavar="NS", help="watch only NS (repeatable)"
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas agreeing in kopf peering object NAME (one acts)",
    )
    run.add_argument(
        "--probes", default="0.0.0.0:8080", metavar="HOST:PORT", help="liveness endpoint"
    )
    run.add_argument(
        "--metrics",
        default="0.0.0.0:8081",
        metavar="HOST:PORT",
        help="the operator's /metrics (empty: none)",
    )
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=_run)
    plugin.add_commands(sub)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
