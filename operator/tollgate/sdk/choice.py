"""The version a request was given: what the app renders, sends and labels its metrics with.

A Choice is built once per published document and version, not per request, so handing one out
costs nothing; it is frozen because every request of that revision shares it. For the same
reason its template is parsed once: ``str.format_map`` parses the text on every call, which for
a prompt of a kilobyte or more costs several times what joining the pre-split pieces does.
"""

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["stable", "candidate"]

#: The template as (literal text, field name or None) pieces; None when it has anything but
#: plain ``{name}`` fields (format specs, conversions, indexing, or a syntax error), which is
#: then left to ``str.format_map``.
Pieces = tuple[tuple[str, str | None], ...] | None


def split_template(template: str) -> Pieces:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or not name.isidentifier()):
            return None
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
        if pieces is not None:
            out: list[str] = []
            for literal, name in pieces:
                out.append(literal)
                if name is not None:
                    try:
                        value = mapping[name]
                    except KeyError:
                        raise MissingVariableError(name, self.version, self.prompt) from None
                    out.append(value if type(value) is str else format(value, ""))
            return "".join(out)
        try:
            return self.template.format_map(mapping)
        except KeyError as exc:
            raise MissingVariableError(str(exc.args[0]), self.version, self.prompt) from None
        except (ValueError, IndexError) as exc:
            raise TemplateError(
                f"the template of prompt {self.prompt!r} version {self.version!r} cannot be "
                f"formatted: {exc}"
            ) from exc

    @property
    def is_candidate(self) -> bool:
        return self.role == "candidate"
