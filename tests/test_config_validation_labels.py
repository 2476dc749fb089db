"""The config-validation dataset's labels follow its rules (datasets/config_validation.rules.md):
each valid item breaks no rule, each invalid item breaks exactly the one its `rule` names. The rules
are re-implemented here from the rules file, independently of any scorer, so a mislabelled item
added to the dataset fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATASET = Path(__file__).resolve().parent.parent / "datasets" / "config_validation.jsonl"
ITEMS = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _integer(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def broken_rules(config: dict[str, Any]) -> set[str]:
    out: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, x in value.items():
                if (key == "port" or key.endswith("_port")) and not (_integer(x) and 1 <= x <= 65535):
                    out.add("port_range")
                if key.endswith("timeout_s") and not (_number(x) and x > 0):
                    out.add("timeout_positive")
                if key in ("retries", "max_retries") and not (_integer(x) and 0 <= x <= 10):
                    out.add("retries_range")
                if (key == "url" or key.endswith("_url")) and not (isinstance(x, str) and x.startswith("https://")):
                    out.add("url_https")
                if key.endswith("_threshold") and not (_number(x) and 0 <= x <= 1):
                    out.add("threshold_fraction")
                walk(x)
        elif isinstance(value, list):
            for x in value:
                walk(x)

    walk(config)
    if not (isinstance(config.get("name"), str) and config["name"]):
        out.add("required_name")
    return out


@pytest.mark.parametrize("item", ITEMS, ids=[i["id"] for i in ITEMS])
def test_the_label_follows_the_rules(item: dict[str, Any]) -> None:
    expected = set() if item["valid"] else {item["rule"]}
    assert broken_rules(item["config"]) == expected
    assert (item["reason"] is None) == item["valid"]


def test_the_ids_are_unique_and_both_classes_are_there() -> None:
    ids = [i["id"] for i in ITEMS]
    assert len(ids) == len(set(ids)) == 36
    assert sum(i["valid"] for i in ITEMS) == 17
