"""``kubectl tollgate``: follow and steer Canary and PromptRelease rollouts from a terminal or CI.

Installed as the ``kubectl-tollgate`` executable, which kubectl runs as its ``tollgate``
plugin. It reads what the operator recorded and acts only through the request annotation
(``tollgate.dev/request``), never on the spec GitOps owns; every action waits until the
operator acknowledged it in ``status.lastIntent``. Exit codes for pipelines (``status``):
0 promoted, 1 rolled back, 3 stalled (an invalid spec or a claimed target), 4 timed out,
5 not found or unreachable, 2 usage.
"""

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import yaml

from tollgate.api import GROUP, VERSION
from tollgate.api.intents import REQUEST_ANNOTATION, IntentKind
from tollgate.api.status import Phase, RolloutStatus
from tollgate.cli import rollout_view

JSON = dict[str, Any]
KINDS = {"canary": ("canaries", "Canary"), "promptrelease": ("promptreleases", "PromptRelease")}
ALIASES = {"canaries": "canary", "tgc": "canary", "promptreleases": "promptrelease",
           "tgpr": "promptrelease", "prompt": "promptrelease"}  # fmt: skip
PROMOTED, ROLLED_BACK, USAGE, STALLED, TIMED_OUT, UNREACHABLE = 0, 1, 2, 3, 4, 5
SPEC_PROBLEMS = {"InvalidSpec", "TargetClaimed"}  # Stalled reasons only the user can end


class PluginError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int = UNREACHABLE) -> None:
        super().__init__(message)
        self.code = code


class Cluster:
    """The few API calls the plugin makes, through the kubernetes client library."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        import kubernetes
        from kubernetes.config.config_exception import ConfigException

        k8s: Any = kubernetes  # the client library is untyped
        client, config = k8s.client, k8s.config

        try:
            if kubeconfig is None and context is None:
                try:
                    config.load_incluster_config()
                except ConfigException:
                    config.load_kube_config()
            else:
                config.load_kube_config(config_file=kubeconfig, context=context)
        except (ConfigException, OSError) as exc:
            raise PluginError(f"no cluster to talk to: {exc}") from exc
        self.objects = client.CustomObjectsApi()
        self.core = client.CoreV1Api()
        self.apps = client.AppsV1Api()
        _, active = (
            config.list_kube_config_contexts(config_file=kubeconfig)
            if _has_file(kubeconfig)
            else (None, None)
        )
        self.default_namespace = ((active or {}).get("context") or {}).get("namespace") or "default"

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs, _request_timeout=30)
        except ApiException as exc:
            if exc.status == 404:
                raise PluginError(f"{what}: not found") from exc
            reason = _api_message(exc)
            raise PluginError(f"{what}: {exc.status} {reason}") from exc
        except (HTTPError, OSError) as exc:
            raise PluginError(f"{what}: the API server is unreachable ({exc})") from exc

    def get(self, kind: str, namespace: str, name: str) -> JSON:
        plural = KINDS[kind][0]
        found: JSON = self.call(f"{kind} {namespace}/{name}",
                                self.objects.get_namespaced_custom_object,
                                GROUP, VERSION, namespace, plural, name)  # fmt: skip
        return found

    def list_all(self, kind: str, namespace: str | None) -> list[JSON]:
        plural = KINDS[kind][0]
        if namespace is None:
            listed = self.call(f"{plural}", self.objects.list_cluster_custom_object,
                               GROUP, VERSION, plural)  # fmt: skip
        else:
            listed = self.call(f"{plural} in {namespace}",
                               self.objects.list_namespaced_custom_object,
                               GROUP, VERSION, namespace, plural)  # fmt: skip
        items: list[JSON] = listed.get("items") or []
        for item in items:
            item.setdefault("kind", KINDS[kind][1])
        return items

    def events(self, obj: JSON) -> list[JSON]:
        meta = obj["metadata"]
        selector = f"involvedObject.uid={meta['uid']}"
        listed = self.call("events", self.core.list_namespaced_event, meta["namespace"],
                           field_selector=selector)  # fmt: skip
        return [self.core.api_client.sanitize_for_serialization(e) for e in listed.items]

    def request(self, kind: str, namespace: str, name: str, value: str) -> None:
        patch = {"metadata": {"annotations": {REQUEST_ANNOTATION: value}}}
        self.call(f"{kind} {namespace}/{name}", self.objects.patch_namespaced_custom_object,
                  GROUP, VERSION, namespace, KINDS[kind][0], name, patch)  # fmt: skip

    def watch(self, kind: str, namespace: str, name: str, timeout: float) -> Iterator[JSON]:
        """The object each time it changes, for up to ``timeout`` seconds."""
        import kubernetes

        k8s: Any = kubernetes
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            stream = k8s.watch.Watch().stream(
                self.objects.list_namespaced_custom_object, GROUP, VERSION, namespace,
                KINDS[kind][0], field_selector=f"metadata.name={name}",
                timeout_seconds=max(1, int(min(left, 60))),
            )  # fmt: skip
            try:
                for event in stream:
                    yield event["object"]
            except Exception as exc:  # a dropped stream: open another until the deadline
                if time.monotonic() >= deadline:
                    raise PluginError(f"watching {kind} {namespace}/{name}: {exc}") from exc


def _has_file(kubeconfig: str | None) -> bool:

    from kubernetes.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION

    path = kubeconfig or os.environ.get("KUBECONFIG", KUBE_CONFIG_DEFAULT_LOCATION)
    return os.path.isfile(os.path.expanduser(path.split(os.pathsep)[0]))


def _api_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


def resolve(cluster: Cluster, target: str, namespace: str) -> tuple[str, JSON]:
    """``NAME``, ``canary/NAME`` or ``promptrelease/NAME``: its kind and the object."""
    kind, _, name = target.rpartition("/")
    if kind:
        kind = ALIASES.get(kind.lower(), kind.lower())
        if kind not in KINDS:
            raise PluginError(f"{target}: the kind is canary or promptrelease", USAGE)
        return kind, cluster.get(kind, namespace, name)
    for candidate in KINDS:
        try:
            return candidate, cluster.get(candidate, namespace, name)
        except PluginError as exc:
            if "not found" not in str(exc):
                raise
    raise PluginError(f"no Canary or PromptRelease {name} in namespace {namespace}")


def outcome(kind: str, obj: JSON, cluster: Cluster | None = None) -> int | None:
    """Where a rollout ended for a pipeline: an exit code, or None while it still runs."""
    status = rollout_view.status_of(obj)
    meta = obj.get("metadata") or {}
    if status.observed_generation != meta.get("generation"):
        return None  # the operator has not seen the latest spec yet
    stalled = {c.reason for c in status.conditions if c.type == "Stalled" and c.status == "True"}
    if stalled & SPEC_PROBLEMS:
        return STALLED  # whatever the phase: nothing moves until the spec is put right
    if status.phase is Phase.ROLLED_BACK:
        return ROLLED_BACK  # (kstatus-wise Stalled too: the release will not go on by itself)
    if stalled:
        return STALLED
    if status.phase is not Phase.SUCCEEDED:
        return None
    return PROMOTED if _current(kind, obj, status, cluster) else None


def _current(kind: str, obj: JSON, status: RolloutStatus, cluster: Cluster | None) -> bool:
    """Succeeded on the version the user asked for (not the previous one, before the
    operator noticed a release)."""
    spec = obj.get("spec") or {}
    if kind == "promptrelease":
        candidate = spec.get("candidate")
        return bool(status.stable_revision and status.stable_revision.split("@")[0] == candidate)
    if cluster is None:
        return status.revision == status.stable_revision
    from tollgate.adapters.workloads.deployment import template_revision

    target = (spec.get("targetRef") or {}).get("name")
    namespace = obj["metadata"]["namespace"]
    read = cluster.apps.read_namespaced_deployment
    answer = cluster.call(f"deployment {namespace}/{target}", read, target, namespace,
                          _preload_content=False)  # fmt: skip
    deployment = json.loads(answer.data)  # as the operator hashes it: the API's own JSON
    return template_revision(deployment["spec"]["template"]) == status.stable_revision


def emit(obj: Any, output: str | None, out: TextIO, text: Callable[[], str]) -> None:
    if output == "json":
        out.write(json.dumps(obj, indent=2) + "\n")
    elif output == "yaml":
        out.write(yaml.safe_dump(obj, sort_keys=False))
    else:
        out.write(text())


# -- commands --------------------------------------------------------------------------------


def cmd_get(args: argparse.Namespace, cluster: Cluster, out: TextIO) -> int:
    kind, obj = resolve(cluster, args.name, args.namespace)
    colour = args.colour

    def draw(current: JSON) -> None:
        if args.watch and colour:
            out.write("\033[2J\033[H")
        emit(current, args.output, out,
             lambda: rollout_view.tree(current, cluster.events(current), colour))  # fmt: skip
        out.flush()

    draw(obj)
    if args.watch:
        version = obj["metadata"].get("resourceVersion")
        for current in cluster.watch(kind, args.namespace, obj["metadata"]["name"], args.timeout):
            if current["metadata"].get("resourceVersion") != version:
                version = current["metadata"].get("resourceVersion")
                current.setdefault("kind", KINDS[kind][1])
                draw(current)
    return 0


def cmd_list(args: argparse.Namespace, cluster: Cluster, out: TextIO) -> int:
    namespace = None if args.all_namespaces else args.namespace
    objects = [o for kind in KINDS for o in cluster.list_all(kind, namespace)]
    objects.sort(key=lambda o: (o["metadata"]["namespace"], o["kind"], o["metadata"]["name"]))
    if args.output:
        emit({"apiVersion": "v1", "kind": "List", "items": objects}, args.output, out, str)
    elif not objects:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        out.write(f"no Canary or PromptRelease in {where}\n")
    else:
        out.write(rollout_view.table(objects, namespace is None))
    return 0


def cmd_history(args: argparse.Namespace, cluster: Cluster, out: TextIO) -> int:
    _, obj = resolve(cluster, args.name, args.namespace)
    history = (obj.get("status") or {}).get("history") or []
    emit(history, args.output, out, lambda: rollout_view.history(obj))
    return 0


def cmd_explain(args: argparse.Namespace, cluster: Cluster, out: TextIO) -> int:
    _, obj = resolve(cluster, args.name, args.namespace)
    out.write(rollout_view.explain(obj))
    return 0


def cmd_status(args: argparse.Namespace, cluster: Cluster, out: TextIO) -> int:
    kind, obj = resolve(cluster, args.name, args.namespace)
    name = obj["metadata"]["name"]
    deadline = time.monotonic() + args.timeout
    code = outcome(kind, obj, cluster)
    if code is None:
        for current in cluster.watch(kind, args.namespace, name, args.timeout):
            obj = current
            code = outcome(kind, obj, cluster)
            if code is not None or time.monotonic() >= deadline:
                break
    status = rollout_view.status_of(obj)
    summary = f"{KINDS[kind][1]} {args.namespace}/{name}: {status.phase or 'Pending'}"
    summary += f" ({status.reason}): {status.message or ''}".rstrip(": ")
    if code is None:
        out.write(f"timed out after {args.timeout:g}s; {summary}\n")
        return TIMED_OUT
    out.write(summary + "\n")
    return code


def act(intent: IntentKind) -> Callable[[argparse.Namespace, Cluster, TextIO], int]:
    def run(args: argparse.Namespace, cluster: Cluster, out: TextIO) -> int:
        kind, obj = resolve(cluster, args.name, args.namespace)
        name = obj["metadata"]["name"]
        wanted = intent
        if intent is IntentKind.PROMOTE and not args.full:
            if rollout_view.status_of(obj).phase is not Phase.PAUSED:
                raise PluginError(f"{name} is not paused: `promote --full` promotes it now, "
                                  "skipping the steps left", USAGE)  # fmt: skip
            wanted = IntentKind.RESUME  # past the pause, on to the next step
        value = f"{wanted.value}@{int(time.time())}-{secrets.token_hex(3)}"
        cluster.request(kind, args.namespace, name, value)
        deadline = time.monotonic() + args.timeout
        for current in cluster.watch(kind, args.namespace, name, args.timeout):
            if (current.get("status") or {}).get("lastIntent") != value:
                if time.monotonic() >= deadline:
                    break
            else:
                status = rollout_view.status_of(current)
                out.write(f"{wanted.value}: acknowledged; {status.phase or 'Pending'}"
                          f" ({status.reason}): {status.message or ''}\n")  # fmt: skip
                return 0
        raise PluginError(f"{wanted.value} asked ({REQUEST_ANNOTATION}={value}) but not "
                          f"acknowledged within {args.timeout:g}s: is the operator running?",
                          TIMED_OUT)  # fmt: skip

    return run


def add_commands(sub: Any) -> None:
    """The plugin's subcommands, on the ``tollgate`` parser (``kubectl tollgate`` is it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument("--kubeconfig", help="kubeconfig file")
    common.add_argument("-o", "--output", choices=["json", "yaml"], help="machine output")
    common.add_argument("--colour", "--color", choices=["auto", "always", "never"],
                        default="auto", help="colour (default: on a terminal)")  # fmt: skip

    def add(name: str, helptext: str, fn: Any, target: bool = True) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = sub.add_parser(name, help=helptext, parents=[common])
        if target:
            command.add_argument("name", help="NAME, canary/NAME or promptrelease/NAME")
        command.set_defaults(func=run, command_func=fn)
        return command

    get = add("get", "a rollout as a tree: phase, plan, checks, evidence, events", cmd_get)
    get.add_argument("-w", "--watch", action="store_true", help="redraw on every change")
    get.add_argument("--timeout", type=_duration, default=3600.0, help="stop watching after")
    listing = add("list", "every rollout in the namespace", cmd_list, target=False)
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    add("history", "every decision a rollout kept", cmd_history)
    add("explain", "why the last decision, with the PromQL behind it", cmd_explain)
    status = add("status", "wait for a rollout's end: exit 0 promoted, 1 rolled back, "
                 "3 stalled, 4 timed out", cmd_status)  # fmt: skip
    status.add_argument("--timeout", type=_duration, default=600.0, help="e.g. 90s, 10m")
    for intent, helptext in (
        (IntentKind.PROMOTE, "past a pause (--full: promote now, skipping the steps left)"),
        (IntentKind.ABORT, "roll back now"),
        (IntentKind.RETRY, "start a rolled-back revision again"),
        (IntentKind.PAUSE, "hold at the current step"),
        (IntentKind.RESUME, "carry on after a pause"),
    ):
        command = add(intent.value, helptext, act(intent))
        command.add_argument("--timeout", type=_duration, default=60.0,
                             help="wait this long for the operator's acknowledgement")  # fmt: skip
        if intent is IntentKind.PROMOTE:
            command.add_argument("--full", action="store_true")
        else:
            command.set_defaults(full=False)
    completion = sub.add_parser("completion", help="a bash completion script: "
                                "source <(kubectl tollgate completion bash)")  # fmt: skip
    completion.add_argument("shell", choices=["bash"])
    completion.set_defaults(func=lambda args: _completion(sub))


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 10m)") from None


def _completion(sub: Any) -> int:
    commands = " ".join(sorted(sub.choices))
    sys.stdout.write(
        "_kubectl_tollgate() {\n"
        '  local cur="${COMP_WORDS[COMP_CWORD]}"\n'
        f'  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=($(compgen -W "{commands}" -- "$cur"));\n'
        '  else COMPREPLY=($(compgen -W "$(kubectl get canaries,promptreleases '
        '-o name 2>/dev/null | sed \'s|\\.tollgate\\.dev||\')" -- "$cur")); fi\n'
        "}\ncomplete -F _kubectl_tollgate kubectl-tollgate tollgate\n"
    )
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one plugin command; errors are one line on stderr and an exit code."""
    out = out or sys.stdout
    args.colour = args.colour == "always" or (args.colour == "auto" and out.isatty())
    try:
        cluster = Cluster(args.kubeconfig, args.context)
        args.namespace = args.namespace or cluster.default_namespace
        code: int = args.command_func(args, cluster, out)
        return code
    except PluginError as exc:
        print(f"kubectl tollgate: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
