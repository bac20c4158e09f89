"""A PromptRelease's versions as apps will see them: templates resolved from their ConfigMaps.

A version's template is inline or in a ConfigMap key (``templateFrom``). The published document
carries the text itself, so apps need one file; the version's revision hashes the resolved
content, so editing a template in its ConfigMap is a new revision like editing it inline.
"""

from tollgate.adapters.kube.client import KubeClient, KubeError, NotFoundError
from tollgate.adapters.kube.resources import CONFIGMAPS
from tollgate.api.promptrelease import PromptVersion
from tollgate.sdk.published import PublishedVersion


class TemplateNotFoundError(Exception):
    """A version's templateFrom names a ConfigMap or key that does not exist."""


async def resolve(kube: KubeClient, namespace: str, version: PromptVersion) -> PublishedVersion:
    """The version with its template text; TemplateNotFoundError names what is missing."""
    template = version.template
    if template is None:
        ref = version.template_from
        assert ref is not None  # the schema requires exactly one of the two
        try:
            config_map = await kube.get(CONFIGMAPS, namespace, ref.name)
        except NotFoundError as exc:
            raise TemplateNotFoundError(
                f"version {version.name}: ConfigMap {namespace}/{ref.name} not found"
            ) from exc
        except KubeError as exc:  # unreadable (RBAC, an API error) is unusable too, not a crash
            raise TemplateNotFoundError(
                f"version {version.name}: ConfigMap {namespace}/{ref.name} cannot be read: {exc}"
            ) from exc
        template = (config_map.get("data") or {}).get(ref.key)
        if not template:
            raise TemplateNotFoundError(
                f"version {version.name}: ConfigMap {namespace}/{ref.name} has no key {ref.key}"
            )
    return PublishedVersion(version.name, template, version.model, dict(version.parameters or {}))
