"""What to say about an unknown field in a YAML config: the close name that is valid *at that place*.

Suggesting from every model's fields told a user who wrote `key:` in a rule's side "unknown field
'key' (did you mean 'key'?)", because a workflow step has a `key`. So the suggestion comes from the
models a mapping at that path can be, found by walking the root model's annotations.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["fields_at", "unknown_field"]

_SHOWN = 12  # past this many, listing the valid fields is noise


def fields_at(roots: Iterable[Any], path: Sequence[str | int]) -> list[str]:
    """The fields a mapping at `path` below one of `roots` may hold, in declaration order; empty
    when the walk meets something that is not a model (a free-form mapping, an unknown key)."""
    here: list[Any] = [t for root in roots for t in _concrete(root)]
    for part in path:
        here = [inner for t in here for inner in _step(t, part)]
    return list(dict.fromkeys(name for t in here if _is_model(t) for name in t.model_fields))


def unknown_field(name: str, allowed: Sequence[str]) -> str:
    """`unknown field 'x'`, with the closest valid name, or the valid names when few and none is close."""
    message = f"unknown field {name!r}"
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    if allowed and len(allowed) <= _SHOWN:
        return f"{message} (valid here: {', '.join(allowed)})"
    return message


def _step(typ: Any, part: str | int) -> Iterator[Any]:
    if _is_model(typ):
        if isinstance(part, str) and part in typ.model_fields:
            yield from _concrete(typ.model_fields[part].annotation)
        return
    origin, args = get_origin(typ), get_args(typ)
    if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
        yield from _concrete(args[0])
    elif origin is dict and isinstance(part, str) and len(args) == 2:
        yield from _concrete(args[1])


def _concrete(typ: Any) -> Iterator[Any]:
    """The types a value annotated `typ` can be: through Annotated, unions and Optional."""
    origin = get_origin(typ)
    if origin is Annotated:
        yield from _concrete(get_args(typ)[0])
    elif origin is Union or origin is types.UnionType:
        for arg in get_args(typ):
            yield from _concrete(arg)
    else:
        yield typ


def _is_model(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, BaseModel)
