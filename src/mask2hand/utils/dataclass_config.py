"""Building dataclasses from nested dicts (YAML recipes) with clear errors, and
command-line overrides of the form `section.key=value`."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import yaml

from mask2hand.errors import Mask2HandError


SHOWN_CHARACTERS = 60
"""The most characters of a value an error message shows."""


def shown(value: Any) -> str:
    """A user's value as an error message shows it: a list or mapping by its type and length only
    (its repr would expand every YAML alias in it: a "billion laughs" of a few hundred bytes
    becomes gigabytes), a huge integer by its number of digits, anything else by its repr cut
    at SHOWN_CHARACTERS."""
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} keys"
    if isinstance(value, int) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "..."


def dataclass_from_dict(cls: type, values: dict | None, where: str = "config") -> Any:
    """Instantiate dataclass `cls` from `values`, recursing into dataclass-typed fields.

    Unknown keys and values of the wrong type raise Mask2HandError naming the key.
    """
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise Mask2HandError(f"{where} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise Mask2HandError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise Mask2HandError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return dataclass_from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except Mask2HandError as exc:
                errors.append(str(exc))
        raise Mask2HandError(errors[0] if errors else f"{where}: invalid value {shown(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise Mask2HandError(f"{where} must be a list, got {shown(value)}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise Mask2HandError(f"{where} must be one of {list(typing.get_args(hint))}, got {shown(value)}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise Mask2HandError(f"{where} must be a mapping, got {shown(value)}")
        value_hint = typing.get_args(hint)[1]
        return {k: _coerce(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any or hint is dict:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads "3e-4" (no dot) as a string; accept it as the number it means
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise Mask2HandError(f"{where} must be {hint.__name__}, got {shown(value)}")
    return value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Set nested keys from strings like `train.lr=3e-4` (the value is parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise Mask2HandError(f"override '{item[:80]}' must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key[:80]
        target = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise Mask2HandError(f"override '{item}': '{part}' is not a section")
        try:
            target[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            reason = " ".join(str(exc).split())[:200]  # one line
            raise Mask2HandError(f"override '{key}': its value is not valid YAML ({reason})") from None
        except RecursionError:  # the YAML parser recurses per level of nesting
            raise Mask2HandError(f"override '{key}': its value is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise Mask2HandError(f"override '{key}': its value cannot be read "
                                 f"({' '.join(str(exc).split())[:120]})") from None
    return values


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list form of a dataclass (for YAML/JSON)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj
