"""Edges of the API that fuzzing found: numbers in paths that no id column can hold."""

from __future__ import annotations

import re

import pytest

OUT_OF_RANGE = [2**31, -(2**31) - 5, 2**63, 943685942767378314407153294639104]


def _int_routes(helpdesk):
    for route in helpdesk.registrations.routes:
        if ":int" not in route.template:
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(route.resource, f"on_{method}" + (f"_{route.suffix}" if route.suffix else "")):
                yield method.upper(), route.template


@pytest.mark.parametrize("number", OUT_OF_RANGE)
def test_ids_too_large_for_the_database_are_not_found_rather_than_a_server_error(client, helpdesk, auth, number):
    routes = list(_int_routes(helpdesk))
    assert any("/wazzup24/" in t for _, t in routes), "the plugin's id routes are missing"
    for method, template in routes:
        path = re.sub(r"\{[^}]+:int[^}]*\}", str(number), template)
        result = client.simulate_request(method, path, headers=auth, json={"text": "hi"})
        assert result.status_code == 404, f"{method} {path}: {result.status} {result.text[:200]}"
        assert result.json["code"]
