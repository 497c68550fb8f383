"""Refuse query parameters a route does not take, on every /api/v1 route.

A misspelt or unsupported parameter was ignored: `/export/audit?limit=5&offset=-7` answered the
whole log, `/kpis/summary?bucket=year` the default. The findings routes already refused them
(their models forbid extras); `collector.api.access.require`, which every route's authorization
goes through, does it for all once the caller is authorized, from the route's own declaration.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from collector.errors import IngestHTTPError

__all__ = ["refuse_unknown_query"]


def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    unknown = sorted(set(request.query_params) - _names(route))
    if unknown:
        known = ", ".join(sorted(_names(route))) or "none"
        raise IngestHTTPError(400, "unknown_parameter", f"unknown query parameter(s) {', '.join(unknown)}; "
                              f"{request.method} {request.url.path} takes: {known}")


def _names(route: APIRoute) -> frozenset[str]:
    # kept on the route itself: routes are not hashable, and an id() may be reused by a later app's
    names: frozenset[str] | None = getattr(route, "_syncwatch_query_names", None)
    if names is None:
        names = frozenset(_walk(route.dependant))
        route._syncwatch_query_names = names  # type: ignore[attr-defined]
    return names


def _walk(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    for param in dependant.query_params:
        kind = param.field_info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):  # a model of query parameters
            names |= {f.alias or name for name, f in kind.model_fields.items()}
        else:
            names.add(param.alias)
    for sub in dependant.dependencies:
        names |= _walk(sub)
    return names
