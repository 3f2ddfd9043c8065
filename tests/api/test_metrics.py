"""``GET /metrics``: who may read it, and the HTTP request families (docs/operations.md).

The realtime families are driven by real sockets in ``tests/realtime/test_metrics.py``;
every worker's figures under ``serve --workers 2`` in ``tests/cluster/test_operations.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from livebase import metrics
from tests.helpers import Api, bearer
from tests.prometheus import scrape

METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
with_token = pytest.mark.parametrize("settings_overrides", [{"METRICS_TOKEN": METRICS_TOKEN}])
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"


async def _status(api: Api, headers: dict[str, str]) -> tuple[int, Any]:
    response = await api.client.get("/metrics", headers=headers)
    body = response.json() if response.status_code != 200 else None
    return response.status_code, body


@with_token
@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("nobody", 401),
        ("user", 403),
        ("administrator", 200),
        ("metrics token", 200),
        ("wrong metrics token", 401),
        ("metrics token, not bearer", 401),
    ],
)
async def test_who_may_read_the_metrics(api: Api, who: str, expected: int) -> None:
    user_token, _ = await api.user("ann@example.com")
    headers = {
        "nobody": {},
        "user": bearer(user_token),
        "administrator": api.admin,
        "metrics token": bearer(METRICS_TOKEN),
        "wrong metrics token": bearer(METRICS_TOKEN[:-1] + "x"),
        "metrics token, not bearer": {"Authorization": f"Token {METRICS_TOKEN}"},
    }[who]
    status, body = await _status(api, headers)
    assert status == expected, body
    if status != 200:
        assert set(body["error"]) >= {"message", "code"}


async def test_without_the_setting_no_token_but_an_administrators_opens_them(api: Api) -> None:
    status, _ = await _status(api, bearer(METRICS_TOKEN))
    assert status == 401
    assert (await _status(api, api.admin))[0] == 200


@with_token
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/stats/realtime"), ("GET", "/auth/me"), ("GET", "/schemas"), ("GET", "/permissions")],
)
async def test_the_metrics_token_opens_nothing_else(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path, headers=bearer(METRICS_TOKEN))
    assert response.status_code == 401, response.text


async def test_http_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    await api.collection("notes", {"text": {"type": "String"}})
    before = await scrape(api.client, api.admin)
    created = await api.ok("POST", "/items/notes", 201, headers=api.admin, json={"text": "a"})
    item = created["data"]["id"]
    await api.ok("GET", f"/items/notes/{item}", headers=api.admin)
    await api.ok("GET", "/items/notes/00000000-0000-4000-8000-000000000000", 404, headers=api.admin)
    await api.ok("GET", "/nowhere/at/all", 404)
    # Refused before routing (not JSON): still counted under its route.
    await api.ok(
        "PATCH",
        f"/items/notes/{item}",
        400,
        headers={**api.admin, "Content-Type": "application/json"},
        content=b"{not json",
    )
    after = await scrape(api.client, api.admin)

    def moved(sample: str, **labels: str) -> float:
        return after.value(sample, **labels) - before.value(sample, **labels)

    total = "livebase_http_requests_total"
    # POST /items/{c} is answered by the fast path, outside FastAPI's routing.
    assert moved(total, method="POST", route="/items/{collection}", status="201") == 1
    assert moved(total, method="GET", route="/items/{collection}/{item_id}", status="200") == 1
    assert moved(total, method="GET", route="/items/{collection}/{item_id}", status="404") == 1
    assert moved(total, method="GET", route="unmatched", status="404") == 1
    assert moved(total, method="PATCH", route="/items/{collection}/{item_id}", status="400") == 1
    # No path of an item anywhere: templates only.
    assert not any(item in route for route in after.labels(total, "route"))
    durations = "livebase_http_request_duration_seconds_count"
    assert moved(durations, method="POST", route="/items/{collection}") == 1
    assert after.family("livebase_http_request_duration_seconds").type == "histogram"


async def test_every_family_the_documentation_lists_is_exported(api: Api) -> None:
    exported = (await scrape(api.client, api.admin)).families
    documented = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for family in _our_families():
        assert family in exported, family
        assert f"`{family}" in documented, f"docs/operations.md does not describe {family}"


def test_the_grafana_dashboard_names_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions
    named = {word for expr in expressions for word in _metric_names(expr)}
    exported = {
        f"{family}{suffix}"
        for family, kind in _our_families().items()
        for suffix in _SUFFIXES[kind]
    }
    assert named and named <= exported, named - exported


_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


def _our_families() -> dict[str, str]:
    """livebase's families and their types, as the metrics module declares them."""
    found = {}
    for name in metrics.__all__:
        metric = getattr(metrics, name)
        described = getattr(metric, "describe", None)
        if described is not None:
            (family,) = described()
            found[family.name] = family.type
    return found


def _metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\blivebase_[a-z_]+", expression))
