"""The version a request was given: what the app renders, sends and labels its metrics with.

A Choice is built once per published document and version, not per request, so handing one out
costs nothing; it is frozen because every request of that revision shares it. For the same
reason its template is parsed once, into literal text and fields.

Templates come from a cluster's ConfigMap, so they are data, not code: only plain ``{name}``
fields are filled (``{{`` and ``}}`` for braces). ``str.format`` semantics would let a template
read attributes of the values (``{user.__init__.__globals__}`` reaches the app's globals and
secrets) or build huge strings from a format spec (``{question:>200000000}`` is 200 MB per
request); such fields are a TemplateError, and a rendered prompt is capped in size.
"""

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["stable", "candidate"]

#: The template as (literal text, field name or None) pieces, or why it cannot be rendered
#: (anything but plain ``{name}`` fields: format specs, conversions, attributes, indexing,
#: positional fields, a stray brace).
Pieces = tuple[tuple[str, str | None], ...] | str
MAX_RENDERED_CHARS = 1_000_000


def split_template(template: str) -> Pieces:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a template: {exc}"
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or not name.isidentifier()):
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return f"only plain {{name}} fields are filled, not {{{shown[:60]}}}"
        pieces.append((literal, name))
    return tuple(pieces)


class MissingVariableError(KeyError):
    """The template has a ``{field}`` the caller did not provide."""

    def __init__(self, field: str, version: str, prompt: str) -> None:
        super().__init__(field)
        self.field = field
        self.version = version
        self.prompt = prompt

    def __str__(self) -> str:
        return (
            f"the template of prompt {self.prompt!r} version {self.version!r} needs the "
            f"variable {self.field!r}, which was not given"
        )


class TemplateError(ValueError):
    """The template text itself cannot be formatted (a stray brace, a positional field)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """One prompt version chosen for one request.

    ``weight`` is the percent of requests this version serves under ``revision``.
    """

    prompt: str
    version: str
    role: Role
    template: str
    model: str | None
    parameters: Mapping[str, Any] = field(hash=False)
    revision: int
    weight: int
    _pieces: Pieces = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pieces", split_template(self.template))

    def render(self, /, **variables: Any) -> str:
        """The template with its ``{name}`` fields filled from ``variables``."""
        return self.render_map(variables)

    def render_map(self, mapping: Mapping[str, Any]) -> str:
        """The template with its ``{name}`` fields filled from ``mapping``."""
        pieces = self._pieces
        if isinstance(pieces, str):
            raise TemplateError(
                f"the template of prompt {self.prompt!r} version {self.version!r} cannot be "
                f"rendered: {pieces}"
            )
        out: list[str] = []
        size = 0
        for literal, name in pieces:
            out.append(literal)
            size += len(literal)
            if name is not None:
                try:
                    value = mapping[name]
                except KeyError:
                    raise MissingVariableError(name, self.version, self.prompt) from None
                text = value if type(value) is str else str(value)
                out.append(text)
                size += len(text)
            if size > MAX_RENDERED_CHARS:
                raise TemplateError(
                    f"the prompt {self.prompt!r} version {self.version!r} rendered to more "
                    f"than {MAX_RENDERED_CHARS:,} characters"
                )
        return "".join(out)

    @property
    def is_candidate(self) -> bool:
        return self.role == "candidate"
