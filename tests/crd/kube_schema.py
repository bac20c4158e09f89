"""An offline stand-in for what kube-apiserver does with our CRDs and with the objects users write.

Why: there is no API server on the machines that run these tests, yet the CRD is the first (and
for most users the only) validation a spec meets, and the operator's Python checks promise to
agree with it. This module restates, as closely as was cheap, two things the server does:

* accepting a CRD: the apiextensions.k8s.io/v1 structural-schema rules, list types, defaults,
  CEL rules that must compile and stay inside the cost budget (:func:`structural_errors`);
* accepting an object (a create): drop status when the status subresource is on, prune,
  default, OpenAPI validation, list-type invariants, then the CEL rules unless a "blocking"
  error came first (:func:`validate`).

Messages imitate the server's wording ("Required value", "should be less than or equal to",
"Duplicate value", the CEL rule's message) so expectations read like real kubectl output.

Known differences from the real server, kept on purpose because they are costly to close:

* CEL is interpreted by cel-python: no type checking at CRD creation (only parsing and a check
  that every called function exists in Kubernetes' CEL environment), and no real cost
  estimation; :func:`structural_errors` approximates the cost budget by demanding maxItems,
  maxProperties and maxLength on everything a rule's ``self`` can reach.
* Regular expressions run on Python ``re`` (ASCII classes, ``$`` anchored at the very end as in
  RE2), not RE2 itself; constructs RE2 lacks (look-arounds, back-references) are not rejected.
* OpenAPI validation is jsonschema's Draft 4 with the server's messages grafted on; integral
  floats such as ``5.0`` are rejected for ``type: integer`` (the server accepts them).
* Unknown fields are reported as errors: the server prunes them silently (or rejects them when
  the client asks for strict field validation, as kubectl does by default).
* ``metadata`` is checked only for a name; ownerReferences, labels and the rest are not.
"""

import copy
import functools
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from jsonschema import Draft4Validator, ValidationError, validators

JSON = dict[str, Any]

SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
TYPES = SCALAR_TYPES | {"object", "array"}

# fmt: off
# Every field of apiextensions.k8s.io/v1 JSONSchemaProps: anything else is an unknown field.
SCHEMA_KEYWORDS = frozenset({
    "id", "$schema", "$ref", "description", "type", "format", "title", "default", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties", "minProperties",
    "required", "items", "allOf", "oneOf", "anyOf", "not", "properties", "additionalProperties",
    "patternProperties", "dependencies", "additionalItems", "definitions", "externalDocs",
    "example", "nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
    "x-kubernetes-map-type", "x-kubernetes-validations",
})
# Fields JSONSchemaProps has but a CRD may not use.
UNSUPPORTED_KEYWORDS = {
    key: f"{key} is not supported"
    for key in (
        "$ref", "id", "$schema", "definitions", "dependencies", "patternProperties",
        "additionalItems",
    )
}
# Not allowed inside anyOf/allOf/oneOf/not (the server allows properties/items there when they
# mirror the structural part; this project does not use them, so they are refused outright).
VALUE_VALIDATION_FORBIDDEN = frozenset({
    "type", "properties", "additionalProperties", "items", "default", "description", "nullable",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-validations",
})
# The formats the API server knows (kube-openapi's registry plus the OpenAPI number formats).
FORMATS = frozenset({
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3",
    "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor",
    "byte", "password", "date", "duration", "datetime", "date-time", "int32", "int64", "float",
    "double",
})
# String formats whose length the CEL cost estimator knows without a maxLength.
BOUNDED_FORMATS = frozenset({
    "date", "date-time", "datetime", "duration", "uuid", "uuid3", "uuid4", "uuid5", "int32",
    "int64",
})
RULE_KEYS = frozenset({
    "rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf",
})
RULE_REASONS = frozenset({
    "FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate",
})
# Functions and macros of Kubernetes' CEL environment (cel-go standard library, extended
# strings, and the Kubernetes list, regex, URL, IP, quantity and format libraries).
CEL_FUNCTIONS = frozenset({
    "has", "all", "exists", "exists_one", "map", "filter", "size", "matches", "startsWith",
    "endsWith", "contains", "int", "uint", "double", "string", "bytes", "bool", "duration",
    "timestamp", "type", "dyn", "getFullYear", "getMonth", "getDate", "getDayOfMonth",
    "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    "charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii", "replace", "split", "substring",
    "trim", "join", "quote", "reverse", "format", "isSorted", "sum", "min", "max", "find",
    "findAll", "url", "isURL", "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath",
    "getQuery", "ip", "isIP", "cidr", "isCIDR", "quantity", "isQuantity", "orValue", "hasValue",
    "value", "of", "none", "optMap", "optFlatMap",
})
# fmt: on
# Server error types that stop the CEL rules from running (hasBlockingErr in the server).
BLOCKING_KINDS = frozenset({"Required", "NotSupported", "TooLong", "TooMany", "TypeInvalid"})
CEL_SKIPPED = (
    '<nil>: Invalid value: "null": some validation rules were not checked because the object '
    "was invalid; correct the existing errors to complete validation"
)


@dataclass(frozen=True)
class Finding:
    """One validation error: where, the server's error type, and the text after the path."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.detail}"


# --------------------------------------------------------------------------------------------
# CEL


def _as_list(value: Any) -> list[Any]:
    return list(value)


def _is_sorted(values: Any) -> celtypes.BoolType:
    items = _as_list(values)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def _sum(values: Any) -> Any:
    items = _as_list(values)
    if not items:
        return celtypes.IntType(0)
    return functools.reduce(operator.add, items)


def _min(values: Any) -> Any:
    items = _as_list(values)
    if not items:
        raise ValueError("min called on empty list")
    return functools.reduce(lambda a, b: b if b < a else a, items)


def _max(values: Any) -> Any:
    items = _as_list(values)
    if not items:
        raise ValueError("max called on empty list")
    return functools.reduce(lambda a, b: b if b > a else a, items)


def _index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.find(item))
    items = _as_list(container)
    return celtypes.IntType(items.index(item) if item in items else -1)


def _last_index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.rfind(item))
    items = _as_list(container)
    hits = [i for i, value in enumerate(items) if value == item]
    return celtypes.IntType(hits[-1] if hits else -1)


# The Kubernetes list library (and indexOf of the strings library) on top of cel-python's own.
K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
}


@functools.cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=K8S_FUNCTIONS)


_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_SELF_PATH = re.compile(r"\b(?:self|oldSelf)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\s*\()?")


def _undefined_field(rule: str, schema: JSON) -> str | None:
    """A ``self.a.b`` in the rule that names no declared field of the schema it sits on."""
    for match in _SELF_PATH.finditer(_STRING_LITERAL.sub("''", rule)):
        names = match.group(1).split(".")[1:]
        if match.group(2):
            names = names[:-1]  # the last name is a method: self.items.all(...)
        node = schema
        for name in names:
            props = node.get("properties")
            if node.get("type") != "object" or not props:
                break  # maps, lists and opaque objects are not followed
            if name not in props:
                return f"undefined field '{name}'"
            node = props[name]
    return None


def cel_compile_error(rule: str, schema: JSON | None = None) -> str | None:
    """Why the API server would refuse this rule at CRD creation, or None.

    cel-python has no type checker, so only three things are caught: syntax errors, functions
    Kubernetes' CEL environment does not declare, and (given the schema the rule sits on)
    ``self.field`` chains naming undeclared fields.
    """
    try:
        tree = celpy.Environment().compile(rule)
    except Exception as exc:  # celpy raises lark and its own errors alike
        return f"compilation failed: {exc}"
    for node in tree.iter_subtrees():
        if node.data in ("ident_arg", "dot_ident_arg", "member_dot_arg"):
            name = next(str(c) for c in node.children if not hasattr(c, "data"))
            if name not in CEL_FUNCTIONS:
                return f"undeclared reference to '{name}'"
    return _undefined_field(rule, schema) if schema is not None else None


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string"


def _opaque(node: JSON) -> bool:
    """A preserve-unknown-fields node without declared fields: CEL sees nothing typed in it."""
    return bool(node.get("x-kubernetes-preserve-unknown-fields")) and not (
        node.get("properties") or isinstance(node.get("additionalProperties"), dict)
    )


def to_cel(node: JSON, value: Any) -> Any:
    """A value as the server hands it to CEL: typed by the schema, not by its JSON form."""
    try:
        return _to_cel(node, value)
    except (TypeError, ValueError):
        return json_to_cel(value)


def _to_cel(node: JSON, value: Any) -> Any:
    if value is None:
        return None
    if _opaque(node):
        return json_to_cel(value)
    if node.get("x-kubernetes-int-or-string"):
        return celtypes.IntType(value) if isinstance(value, int) else celtypes.StringType(value)
    kind = node.get("type")
    if kind == "object" and isinstance(value, dict):
        props: JSON = node.get("properties") or {}
        extra = node.get("additionalProperties")
        if props:
            return celtypes.MapType(
                {
                    celtypes.StringType(k): to_cel(props[k], v)
                    for k, v in value.items()
                    if k in props
                }
            )
        if isinstance(extra, dict):
            return celtypes.MapType(
                {celtypes.StringType(k): to_cel(extra, v) for k, v in value.items()}
            )
        return celtypes.MapType({})
    if kind == "array" and isinstance(value, list):
        items = node.get("items") or {}
        return celtypes.ListType([to_cel(items, v) for v in value])
    if kind == "string" and isinstance(value, str):
        fmt = node.get("format")
        if fmt in ("date-time", "datetime"):
            return celtypes.TimestampType(value)
        if fmt == "duration":
            return celtypes.DurationType(value)
        return celtypes.StringType(value)
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return celtypes.IntType(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "boolean" and isinstance(value, bool):
        return celtypes.BoolType(value)
    return json_to_cel(value)


def _uses_old_self(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


def _evaluate(entry: JSON, node: JSON, value: Any, old: Any, path: str) -> Iterator[Finding]:
    rule = str(entry.get("rule", ""))
    transition = _uses_old_self(rule)
    if transition and old is None and not entry.get("optionalOldSelf"):
        return  # transition rules do not run on create
    activation = {"self": to_cel(node, value)}
    if transition:
        activation["oldSelf"] = to_cel(node, old) if old is not None else None
    where = path + str(entry.get("fieldPath", ""))
    # the server's words for a rule that fails to evaluate (a duration that overflows, a
    # missing key): '<path>: Invalid value: "<type>": <error> evaluating rule: <message>'
    failed = f'Invalid value: "{_json_type(value)}": rule {rule!r} could not be evaluated'
    said = f"evaluating rule: {entry.get('message') or rule}"
    try:
        result = _program(rule).evaluate(activation)
    except Exception as exc:  # any failure of the rule is the rule's error
        yield Finding(where, "Invalid", f"{failed} ({exc}) {said}")
        return
    if isinstance(result, Exception):
        yield Finding(where, "Invalid", f"{failed} ({result}) {said}")
        return
    if not isinstance(result, celtypes.BoolType):
        yield Finding(where, "Invalid", f"rule {rule!r} returned {result!r}, not a bool")
        return
    if bool(result):
        return
    message = str(entry.get("message") or f"failed rule: {rule}")
    if entry.get("messageExpression"):
        try:
            message = str(_program(str(entry["messageExpression"])).evaluate(activation))
        except Exception as exc:  # the server falls back to the rule text and logs
            message = f"failed rule: {rule} (messageExpression failed: {exc})"
    kind = {
        "FieldValueRequired": "Required",
        "FieldValueForbidden": "Forbidden",
        "FieldValueDuplicate": "Duplicate",
    }.get(str(entry.get("reason")), "Invalid")
    # the server shows a scalar's value, and no value for an object or a list
    shown = "" if isinstance(value, (dict, list)) else f"{_compact(value)}: "
    yield Finding(where, kind, f"Invalid value: {shown}{message}")


def _cel_findings(node: JSON, value: Any, old: Any, path: str) -> Iterator[Finding]:
    if value is None or _opaque(node):
        return  # absent fields are not validated; opaque content has no rules
    for entry in node.get("x-kubernetes-validations") or []:
        yield from _evaluate(entry, node, value, old, path)
    kind = node.get("type")
    if kind == "object" and isinstance(value, dict):
        props: JSON = node.get("properties") or {}
        extra = node.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            if key in props:
                yield from _cel_findings(props[key], child, old_map.get(key), _join(path, key))
            elif isinstance(extra, dict):
                yield from _cel_findings(extra, child, old_map.get(key), f"{path}[{key}]")
    elif kind == "array" and isinstance(value, list) and isinstance(node.get("items"), dict):
        items: JSON = node["items"]
        for i, item in enumerate(value):
            old_item = _correlate(node, item, old)
            yield from _cel_findings(items, item, old_item, f"{path}[{i}]")


def _correlate(node: JSON, item: Any, old: Any) -> Any:
    """The old element of a map list with the same keys (the server correlates nothing else)."""
    if node.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return None
    keys = node.get("x-kubernetes-list-map-keys") or []
    if not isinstance(item, dict):
        return None
    for candidate in old:
        if isinstance(candidate, dict) and all(candidate.get(k) == item.get(k) for k in keys):
            return candidate
    return None


def cel_errors(schema: JSON, obj: Any, old: Any = None) -> list[str]:
    """Every failed (or failing) x-kubernetes-validations rule, evaluated where it is declared.

    Rules of absent fields are not run, transition rules (``oldSelf``) only when ``old`` is
    given, and a rule that cannot be evaluated is an error naming the rule.
    """
    return [str(f) for f in _cel_findings(schema, obj, old, "")]


# --------------------------------------------------------------------------------------------
# Defaulting


def apply_defaults(schema: JSON, obj: Any) -> Any:
    """A copy of ``obj`` defaulted as the server does it.

    A missing field with a default gets a copy of it, and the copy is defaulted in turn (so
    ``default: {}`` fills the nested defaults). A null non-nullable field takes its default,
    or is dropped when it has none (the server prunes such nulls).
    """
    value = copy.deepcopy(obj)
    _default(schema, value)
    return value


def _default(node: JSON, value: Any) -> None:
    if isinstance(value, dict):
        props: JSON = node.get("properties") or {}
        for name, child in props.items():
            if name in value and value[name] is None and not child.get("nullable"):
                if "default" in child:
                    value[name] = copy.deepcopy(child["default"])
                else:
                    del value[name]
            elif name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default(child, value[name])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key, child_value in value.items():
                if key not in props:
                    _default(extra, child_value)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _default(node["items"], item)


# --------------------------------------------------------------------------------------------
# OpenAPI validation


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _data_path(parts: Iterable[str | int]) -> str:
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    return path


@functools.cache
def _go_regex(pattern: str) -> re.Pattern[str]:
    """RE2 semantics where cheap: ASCII classes, and ``$`` only at the very end of the text."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern), re.ASCII)


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: JSON
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _go_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _required(
    validator: Any, required: list[str], instance: Any, schema: JSON
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "object"):
        for name in required:
            if name not in instance:
                yield ValidationError(name)  # the message is the field, see _translate


def _bound(upper: bool) -> Callable[[Any, Any, Any, JSON], Iterator[ValidationError]]:
    """minimum or maximum as kube-openapi checks them: an integer value (JSON ``0``, not
    ``0.0``) is compared with the bound truncated to an integer, so ``0`` passes
    ``minimum: 0.5``; the message shows the truncated bound. A CEL rule must back such bounds.
    """

    def check(validator: Any, limit: Any, instance: Any, schema: JSON) -> Iterator[ValidationError]:
        if not validator.is_type(instance, "number"):
            return
        if isinstance(instance, int) and not isinstance(instance, bool):
            limit = int(limit)
        exclusive = schema.get("exclusiveMaximum" if upper else "exclusiveMinimum") is True
        if upper:
            failed = instance >= limit if exclusive else instance > limit
        else:
            failed = instance <= limit if exclusive else instance < limit
        if failed:
            yield ValidationError(f"{instance} is out of bounds", validator_value=limit)

    return check


# jsonschema types extend() loosely; the result is a Draft 4 validator class.
KubeValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft4Validator,
    {
        "pattern": _pattern,
        "required": _required,
        "minimum": _bound(upper=False),
        "maximum": _bound(upper=True),
    },
)


def _for_jsonschema(node: Any) -> Any:
    """The schema as Draft 4 understands it: no Kubernetes extensions, nullable as a type."""
    if isinstance(node, list):
        return [_for_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: JSON = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("default", "nullable", "example"):
            continue
        if key in UNSUPPORTED_KEYWORDS:
            continue  # refused by structural_errors; jsonschema would try to resolve them
        if key == "properties":
            out[key] = {name: _for_jsonschema(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _for_jsonschema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _compact(value: Any) -> str:
    """A value as Go's encoding/json writes it (the server's Duplicate value messages)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _translate(error: ValidationError) -> Finding:
    """A jsonschema error in the API server's words."""
    path = _data_path(error.absolute_path)
    keyword = str(error.validator)
    limit: Any = error.validator_value
    value: Any = error.instance
    shown = _show(value)
    schema = error.schema if isinstance(error.schema, dict) else {}
    where = path or "<root>"
    if keyword == "required":
        return Finding(_join(path, error.message), "Required", "Required value")
    if keyword == "type":
        got = _json_type(value)
        return Finding(
            path,
            "TypeInvalid",
            f'Invalid value: "{got}": {where} in body must be of type {limit}: "{got}"',
        )
    if keyword == "enum":
        allowed = ", ".join(_show(v) for v in limit)
        return Finding(
            path, "NotSupported", f"Unsupported value: {shown}: supported values: {allowed}"
        )
    if keyword == "pattern":
        return Finding(
            path, "Invalid", f"Invalid value: {shown}: {where} in body should match '{limit}'"
        )
    if keyword == "format":
        return Finding(
            path,
            "Invalid",
            f"Invalid value: {shown}: {where} in body must be of type {limit}: {shown}",
        )
    if keyword == "maximum":
        bound = "less than" if schema.get("exclusiveMaximum") is True else "less than or equal to"
        return Finding(
            path, "Invalid", f"Invalid value: {shown}: {where} in body should be {bound} {limit}"
        )
    if keyword == "minimum":
        bound = (
            "greater than" if schema.get("exclusiveMinimum") is True else "greater than or equal to"
        )
        return Finding(
            path, "Invalid", f"Invalid value: {shown}: {where} in body should be {bound} {limit}"
        )
    if keyword == "maxLength":
        return Finding(path, "TooLong", f"Too long: may not be more than {limit} bytes")
    if keyword == "minLength":
        return Finding(
            path,
            "Invalid",
            f"Invalid value: {shown}: {where} in body should be at least {limit} chars long",
        )
    if keyword in ("maxItems", "maxProperties"):
        return Finding(path, "TooMany", f"Too many: {len(value)}: must have at most {limit} items")
    if keyword == "minItems":
        return Finding(
            path,
            "Invalid",
            f"Invalid value: {len(value)}: {where} in body should have at least {limit} items",
        )
    if keyword == "minProperties":
        return Finding(
            path,
            "Invalid",
            f"Invalid value: {len(value)}: {where} in body should have at least {limit} properties",
        )
    if keyword == "multipleOf":
        return Finding(
            path,
            "Invalid",
            f"Invalid value: {shown}: {where} in body should be a multiple of {limit}",
        )
    return Finding(path, "Invalid", f"Invalid value: {shown}: {error.message}")


def _unknown_fields(node: JSON, value: Any, path: str) -> Iterator[Finding]:
    """Fields the server would prune, reported instead of dropped."""
    if isinstance(value, dict) and (node.get("type") == "object" or _opaque(node)):
        props: JSON = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key, child in value.items():
            child_path = _join(path, key)
            if key in props:
                if not (path == "" and key == "metadata"):
                    yield from _unknown_fields(props[key], child, child_path)
            elif isinstance(extra, dict):
                yield from _unknown_fields(extra, child, f"{path}[{key}]")
            elif not node.get("x-kubernetes-preserve-unknown-fields"):
                yield Finding(child_path, "Unknown", f'unknown field "{child_path}"')
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            yield from _unknown_fields(node["items"], item, f"{path}[{i}]")


def _list_type_findings(node: JSON, value: Any, path: str) -> Iterator[Finding]:
    """The set and map list invariants: no duplicate values, no duplicate keys."""
    if isinstance(value, list):
        list_type = node.get("x-kubernetes-list-type")
        keys: list[str] = node.get("x-kubernetes-list-map-keys") or []
        seen: set[str] = set()
        for i, item in enumerate(value):
            if list_type == "set":
                ident = _compact(item)
            elif list_type == "map" and isinstance(item, dict):
                ident = _compact({k: item.get(k) for k in keys})
            else:
                continue
            if ident in seen:
                yield Finding(f"{path}[{i}]", "Duplicate", f"Duplicate value: {ident}")
            seen.add(ident)
        if isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                yield from _list_type_findings(node["items"], item, f"{path}[{i}]")
    elif isinstance(value, dict):
        props: JSON = node.get("properties") or {}
        extra = node.get("additionalProperties")
        for key, child in value.items():
            if key in props:
                yield from _list_type_findings(props[key], child, _join(path, key))
            elif isinstance(extra, dict):
                yield from _list_type_findings(extra, child, f"{path}[{key}]")


def schema_findings(schema: JSON, obj: Any, path: str = "") -> list[Finding]:
    """OpenAPI errors, unknown fields and list-type errors of ``obj`` (already defaulted)."""
    validator = KubeValidator(
        _for_jsonschema(schema), format_checker=Draft4Validator.FORMAT_CHECKER
    )
    findings = [_translate(e) for e in validator.iter_errors(obj)]
    if path:
        findings = [
            Finding(_join(path, f.path) if f.path else path, f.kind, f.detail) for f in findings
        ]
    findings.extend(_unknown_fields(schema, obj, path))
    findings.extend(_list_type_findings(schema, obj, path))
    return sorted(findings, key=lambda f: (f.path, f.detail))


def schema_errors(schema: JSON, obj: Any) -> list[str]:
    """OpenAPI v3 validation as the server does it (Draft 4 bounds), plus unknown fields and
    the set/map list-type invariants. Kubernetes extensions other than list types are ignored.
    """
    return [str(f) for f in schema_findings(schema, obj)]


# --------------------------------------------------------------------------------------------
# A create request


def openapi_schema(crd: JSON, api_version: str | None = None) -> JSON:
    """The openAPIV3Schema of the version serving ``api_version`` (the storage one by default)."""
    versions: list[JSON] = crd["spec"]["versions"]
    for version in versions:
        name = f"{crd['spec']['group']}/{version['name']}"
        if name == api_version or (api_version is None and version.get("storage")):
            schema: JSON = version["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"{crd['metadata']['name']} serves no version {api_version}")


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")


def validate(crd: JSON, obj: Any) -> list[str]:
    """What a create of ``obj`` would be refused for: [] when the server would store it."""
    if not isinstance(obj, dict):
        return ["<root>: Invalid value: must be a JSON object"]
    spec = crd["spec"]
    api_version = obj.get("apiVersion")
    served = {f"{spec['group']}/{v['name']}": v for v in spec["versions"] if v.get("served")}
    if api_version not in served or obj.get("kind") != spec["names"]["kind"]:
        return [f"<root>: no {spec['names']['kind']} served as {api_version} / {obj.get('kind')}"]
    version = served[str(api_version)]
    schema: JSON = version["schema"]["openAPIV3Schema"]
    obj = copy.deepcopy(obj)
    if "status" in (version.get("subresources") or {}):
        obj.pop("status", None)  # a create through the main resource ignores status
    errors: list[str] = []
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        errors.append("metadata.name: Required value: name or generateName is required")
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        errors.append(f"metadata.name: Invalid value: {name!r}: must be a DNS-1123 subdomain")
    value = apply_defaults(schema, obj)
    findings = schema_findings(schema, value)
    errors.extend(str(f) for f in findings)
    if any(f.kind in BLOCKING_KINDS for f in findings):
        errors.append(CEL_SKIPPED)
    else:
        errors.extend(cel_errors(schema, value))
    return errors


# --------------------------------------------------------------------------------------------
# Accepting a CRD


def structural_errors(schema: JSON) -> list[str]:
    """Why the server would refuse this openAPIV3Schema (plus this project's own rules).

    Structural-schema rules, supported keywords and formats, list and map types, valid and
    unpruned defaults (none under status: a project rule), descriptions on every property (a
    project rule), CEL rules that compile, and the CEL cost budget approximated as bounds on
    everything a rule's ``self`` reaches.
    """
    errors: list[str] = []
    _check_node(schema, "", errors, root=True, status=False)
    for path, node in _walk(schema, ""):
        if node.get("x-kubernetes-validations"):
            in_collection = node.get("type") == "string"
            errors.extend(_unbounded(node, path, in_collection))
    return list(dict.fromkeys(errors))


def _walk(node: JSON, path: str) -> Iterator[tuple[str, JSON]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        if isinstance(child, dict):
            yield from _walk(child, _join(path, name))
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")


def _unbounded(node: JSON, path: str, in_collection: bool) -> Iterator[str]:
    where = path or "<root>"
    if _opaque(node):
        return
    kind = node.get("type")
    if kind == "array":
        if "maxItems" not in node:
            yield f"{where}: list reachable by a CEL rule has no maxItems (cost budget)"
        if isinstance(node.get("items"), dict):
            yield from _unbounded(node["items"], f"{path}[*]", True)
    elif kind == "object":
        for name, child in (node.get("properties") or {}).items():
            if isinstance(child, dict):
                yield from _unbounded(child, _join(path, name), in_collection)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in node:
                yield f"{where}: map reachable by a CEL rule has no maxProperties (cost budget)"
            yield from _unbounded(extra, f"{path}[*]", True)
    elif kind == "string" or node.get("x-kubernetes-int-or-string"):
        bounded = "maxLength" in node or "enum" in node or node.get("format") in BOUNDED_FORMATS
        if in_collection and not bounded:
            yield (
                f"{where}: string in a list or map reachable by a CEL rule has no maxLength "
                "(cost budget)"
            )


def _check_node(node: Any, path: str, errors: list[str], *, root: bool, status: bool) -> None:
    where = path or "<root>"
    if not isinstance(node, dict):
        errors.append(f"{where}: schema must be an object")
        return
    for key in sorted(set(node) - SCHEMA_KEYWORDS):
        errors.append(f"{where}: unknown field {key!r} in a JSONSchemaProps")
    for key, why in UNSUPPORTED_KEYWORDS.items():
        if key in node:
            errors.append(f"{where}.{key}: Forbidden: {why}")
    if node.get("uniqueItems") is True:
        errors.append(f"{where}.uniqueItems: Forbidden: uniqueItems cannot be set to true")
    for flag in (
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    ):
        if flag in node and node[flag] is not True:
            errors.append(f"{where}.{flag}: Invalid value: must be true or undefined")
    opaque = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    int_or_string = bool(node.get("x-kubernetes-int-or-string"))
    kind = node.get("type")
    if kind is None and not (opaque or int_or_string):
        errors.append(f"{where}.type: Required value: must not be empty for specified fields")
    elif kind is not None and kind not in TYPES:
        errors.append(f"{where}.type: Unsupported value: {kind!r}")
    if kind is not None and int_or_string:
        errors.append(
            f"{where}.type: Forbidden: must be empty if x-kubernetes-int-or-string is true"
        )
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key) or []):
            _check_value_validation(sub, f"{where}.{key}[{i}]", errors)
    if "not" in node:
        _check_value_validation(node["not"], f"{where}.not", errors)
    props = node.get("properties")
    extra = node.get("additionalProperties")
    if props and extra is not None:
        errors.append(
            f"{where}: Forbidden: properties and additionalProperties are mutually exclusive"
        )
    if extra is False:
        errors.append(f"{where}.additionalProperties: Forbidden: must not be false")
    if props and kind != "object":
        errors.append(f"{where}.properties: Forbidden: only allowed for type object")
    if kind == "array":
        if not isinstance(node.get("items"), dict):
            errors.append(f"{where}.items: Required value: must be a schema for type array")
        else:
            _check_node(node["items"], f"{path}[*]", errors, root=False, status=status)
    elif "items" in node:
        errors.append(f"{where}.items: Forbidden: only allowed for type array")
    for name, child in (props or {}).items():
        child_path = _join(path, name)
        if root and name == "metadata":
            _check_root_metadata(child, errors)
            continue
        if not isinstance(child, dict) or not str(child.get("description", "")).strip():
            errors.append(f"{child_path}: property has no description (project rule)")
        _check_node(
            child, child_path, errors, root=False, status=status or (root and name == "status")
        )
    if isinstance(extra, dict):
        _check_node(extra, f"{path}[*]", errors, root=False, status=status)
    for name in node.get("required") or []:
        if name not in (props or {}) and not opaque:
            errors.append(f"{where}.required: Invalid value: {name!r} is not a property")
    if "format" in node and node["format"] not in FORMATS:
        errors.append(f"{where}.format: Unsupported value: {node['format']!r}")
    _check_list_type(node, where, errors)
    map_type = node.get("x-kubernetes-map-type")
    if map_type is not None and map_type not in ("granular", "atomic"):
        errors.append(f"{where}.x-kubernetes-map-type: Unsupported value: {map_type!r}")
    _check_rules(node, where, errors)
    if "default" in node:
        _check_default(node, path, errors, status=status)
    if root and kind != "object":
        errors.append("<root>.type: Invalid value: the root must be of type object")


def _check_root_metadata(node: Any, errors: list[str]) -> None:
    if node != {"type": "object"}:
        errors.append("metadata: Forbidden: at the root, metadata may only be {type: object}")


def _check_value_validation(node: Any, where: str, errors: list[str]) -> None:
    if not isinstance(node, dict):
        errors.append(f"{where}: schema must be an object")
        return
    for key in VALUE_VALIDATION_FORBIDDEN:
        if key in node:
            errors.append(f"{where}.{key}: Forbidden: must not be set in a value validation")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key) or []):
            _check_value_validation(sub, f"{where}.{key}[{i}]", errors)
    if "not" in node:
        _check_value_validation(node["not"], f"{where}.not", errors)


def _check_list_type(node: JSON, where: str, errors: list[str]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if list_type is None:
        if keys is not None:
            errors.append(f"{where}.x-kubernetes-list-map-keys: Forbidden: needs list-type map")
        return
    if node.get("type") != "array":
        errors.append(f"{where}.x-kubernetes-list-type: Forbidden: only allowed for arrays")
        return
    items: JSON = node["items"] if isinstance(node.get("items"), dict) else {}
    if list_type == "set":
        scalar = items.get("type") in SCALAR_TYPES or items.get("x-kubernetes-int-or-string")
        atomic = items.get("x-kubernetes-map-type") == "atomic" or (
            items.get("type") == "array" and items.get("x-kubernetes-list-type") == "atomic"
        )
        if not (scalar or atomic):
            errors.append(f"{where}.items: Invalid value: set lists need scalar or atomic items")
        if keys is not None:
            errors.append(f"{where}.x-kubernetes-list-map-keys: Forbidden: only for list-type map")
    elif list_type == "map":
        if items.get("type") != "object":
            errors.append(f"{where}.items.type: Invalid value: map lists need object items")
        if not keys:
            errors.append(
                f"{where}.x-kubernetes-list-map-keys: Required value: map lists need keys"
            )
        item_props: JSON = items.get("properties") or {}
        required = set(items.get("required") or [])
        for key in keys or []:
            prop = item_props.get(key)
            if not isinstance(prop, dict):
                errors.append(
                    f"{where}.x-kubernetes-list-map-keys: Invalid value: {key!r} is not a "
                    "property of the items"
                )
                continue
            if prop.get("type") not in SCALAR_TYPES:
                errors.append(
                    f"{where}.x-kubernetes-list-map-keys: Invalid value: {key!r} must be a scalar"
                )
            if key not in required and "default" not in prop:
                errors.append(
                    f"{where}.x-kubernetes-list-map-keys: Invalid value: {key!r} must be "
                    "required or defaulted"
                )
    elif list_type != "atomic":
        errors.append(f"{where}.x-kubernetes-list-type: Unsupported value: {list_type!r}")


def _check_rules(node: JSON, where: str, errors: list[str]) -> None:
    rules = node.get("x-kubernetes-validations")
    if rules is None:
        return
    if not isinstance(rules, list):
        errors.append(f"{where}.x-kubernetes-validations: Invalid value: must be a list")
        return
    for i, entry in enumerate(rules):
        at = f"{where}.x-kubernetes-validations[{i}]"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("rule"), str)
            or not entry["rule"]
        ):
            errors.append(f"{at}.rule: Required value")
            continue
        for key in sorted(set(entry) - RULE_KEYS):
            errors.append(f"{at}: unknown field {key!r}")
        message = entry.get("message")
        if message is not None and (not str(message).strip() or "\n" in str(message)):
            errors.append(f"{at}.message: Invalid value: must be non-empty and on one line")
        if "reason" in entry and entry["reason"] not in RULE_REASONS:
            errors.append(f"{at}.reason: Unsupported value: {entry['reason']!r}")
        for key in ("rule", "messageExpression"):
            if key in entry:
                problem = cel_compile_error(str(entry[key]), node)
                if problem:
                    errors.append(f"{at}.{key}: Invalid value: {entry[key]!r}: {problem}")


def _check_default(node: JSON, path: str, errors: list[str], *, status: bool) -> None:
    where = path or "<root>"
    if status:
        errors.append(f"{where}.default: Forbidden: no defaults under status (project rule)")
        return
    default = node["default"]
    if default is None and not node.get("nullable"):
        errors.append(f"{where}.default: Invalid value: null default of a non-nullable field")
        return
    found = len(errors)
    # The server validates a default as written, without filling the defaults nested in it
    # (apiextensions-apiserver, schema/defaulting/validation.go): so must every rule.
    for finding in schema_findings(node, default, path):
        errors.append(f"{where}.default: Invalid value: {finding}")
    for problem in cel_errors(node, default):
        errors.append(f"{where}.default: Invalid value: {problem}")
    if len(errors) > found:
        return
    # Project rule: filled in, the default is an object the server admits (so a spec that
    # leaves the section out is accepted), which the server does not check by itself.
    filled = apply_defaults(node, default)
    for finding in schema_findings(node, filled, path):
        errors.append(f"{where}.default (filled in): Invalid value: {finding}")
    for problem in cel_errors(node, filled):
        errors.append(f"{where}.default (filled in): Invalid value: {problem}")
