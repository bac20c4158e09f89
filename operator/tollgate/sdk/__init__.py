"""The in-app prompt router: apps import this to pick, render and measure prompt versions.

The operator rolls a prompt version out by publishing weights; it is this library, inside the
app, that turns them into one version per request, keeps serving the last good publication when
a new one is broken, and labels each request's metrics with the version that served it, which
is what the operator judges the rollout on. It stands alone: the standard library only, with
``metrics`` (prometheus_client), ``tracing`` (opentelemetry-api) and ``openfeature``
(openfeature-sdk) as optional modules.

    router = PromptRouter.from_file("/etc/prompts/prompts.json")
    choice = router.choose("support-answer", key=user_id)
    text = choice.render(product="Acme", question=question)
"""

from tollgate.sdk.choice import Choice, MissingVariableError, TemplateError
from tollgate.sdk.configmap import ConfigMapSource
from tollgate.sdk.published import DocumentError, PublishedPrompt, PublishedVersion, parse
from tollgate.sdk.router import PromptRouter, PromptUnavailable, bucket
from tollgate.sdk.sources import FileSource, Source, StaticSource

__all__ = [
    "Choice",
    "ConfigMapSource",
    "DocumentError",
    "FileSource",
    "MissingVariableError",
    "PromptRouter",
    "PromptUnavailable",
    "PublishedPrompt",
    "PublishedVersion",
    "Source",
    "StaticSource",
    "TemplateError",
    "bucket",
    "parse",
]
