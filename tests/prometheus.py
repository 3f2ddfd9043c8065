"""Reading ``GET /metrics`` in tests, with prometheus-client's own parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    families: dict[str, Metric]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls({family.name: family for family in text_string_to_metric_families(text)})

    def family(self, name: str) -> Metric:
        assert name in self.families, f"no family {name!r}; got {sorted(self.families)}"
        return self.families[name]

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named ``sample`` whose labels include ``labels`` (0 if none)."""
        return sum(
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    def labels(self, sample: str, label: str) -> set[str]:
        """The values ``label`` takes among the samples named ``sample``."""
        return {
            s.labels[label]
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and label in s.labels
        }


async def scrape(client: httpx.AsyncClient, headers: dict[str, str], **options: Any) -> Scrape:
    response = await client.get("/metrics", headers=headers, **options)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape.parse(response.text)
