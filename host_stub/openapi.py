"""The OpenAPI 3 document, built from the registered routes and their marshmallow schemas."""

from __future__ import annotations

import copy
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from host_stub.schemas import ErrorSchema

_PARAM = re.compile(r"{(\w+)(?::(\w+))?[^}]*}")
_METHODS = ("get", "post", "put", "patch", "delete")


def build_openapi(routes, components: dict, title: str, version: str) -> dict:
    spec = APISpec(title=title, version=version, openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    for name, schema in components.items():
        spec.components.schema(name, schema=schema)
    for route in routes:
        path, path_params = _openapi_path(route.template)
        declared = getattr(route.resource, "openapi", {}) or {}
        operations = {}
        for method in _METHODS:
            responder = f"on_{method}" + (f"_{route.suffix}" if route.suffix else "")
            if not hasattr(route.resource, responder):
                continue
            op = _resolve_refs(copy.deepcopy(declared.get(method if not route.suffix else f"{method}_{route.suffix}",
                                                          declared.get(method, {}))))
            op.setdefault("summary", responder)
            op.setdefault("responses", {"200": {"description": "OK"}})
            if route.public:
                op["security"] = []
            else:
                op.setdefault("security", [{"bearerAuth": []}])
                op["responses"].setdefault("401", {"description": "authentication required",
                                                   "content": {"application/json": {"schema": "Error"}}})
                op["responses"]["401"] = _resolve_refs(op["responses"]["401"])
            params = list(op.get("parameters", []))
            params[:0] = path_params
            if params:
                op["parameters"] = params
            op.setdefault("tags", [route.plugin or "host"])
            operations[method] = op
        if operations:
            spec.path(path=path, operations=operations)
    return spec.to_dict()


def _openapi_path(template: str):
    params = []

    def repl(match):
        name, converter = match.group(1), match.group(2)
        schema = {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string"}
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
        return "{" + name + "}"

    return _PARAM.sub(repl, template), params


def _resolve_refs(node):
    """``"schema": "Chat"`` names a component; everything else passes through."""
    if isinstance(node, dict):
        return {k: ({"$ref": f"#/components/schemas/{v}"} if k == "schema" and isinstance(v, str)
                    else _resolve_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v) for v in node]
    return node
