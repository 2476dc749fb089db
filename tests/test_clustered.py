"""Intervals with the item as the unit: checked by hand, against statsmodels, and through `runner run`."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

import runner
from conftest import Project, base_experiment
from runner.analysis.clustered import (
    MIN_BOOTSTRAP_ITEMS,
    cluster_variance,
    clustered_rate,
    f1_of,
    item_bootstrap,
    items_to_decide,
    kappa_of,
    mean_of,
)
from runner.analysis.stats import wilson_interval
from runner.testing.fault_server import ThreadedFaultServer


def test_identical_repeats_carry_the_evidence_of_one_answer_hand_worked() -> None:
    # 20 items, 8 right, each asked 20 times with the same answer. r = 0.4;
    # sum (a_i - r b_i)^2 = 8 * (20 - 8)^2 + 12 * (0 - 8)^2 = 1920; V = 20/19 * 1920 / 400^2 = 0.0126316;
    # n_eff = 0.24 / V = 19.0: the 400 answers are worth 19 independent ones (20 items, less CR1's G/(G-1)).
    a, b = [20] * 8 + [0] * 12, [20] * 20
    assert cluster_variance(a, b) == pytest.approx(20 / 19 * 1920 / 400**2)
    rate = clustered_rate(a, b)
    assert (rate.value, rate.n_items, rate.n_jobs, rate.method) == (0.4, 20, 400, "cluster")
    assert rate.n_eff == pytest.approx(19.0)
    once = wilson_interval(8, 20)
    assert rate.high - rate.low >= once[1] - once[0]
    # Wilson at n = 19 and p = 0.4, by its formula.
    z = 1.959963984540054
    center = (0.4 + z * z / 38) / (1 + z * z / 19)
    half = z * math.sqrt(0.4 * 0.6 / 19 + z * z / (4 * 19 * 19)) / (1 + z * z / 19)
    assert (rate.low, rate.high) == pytest.approx((center - half, center + half))


def test_each_item_once_is_the_plain_wilson_interval() -> None:
    rate = clustered_rate([1] * 8 + [0] * 12, [1] * 20)
    assert rate.method == "wilson" and (rate.low, rate.high) == wilson_interval(8, 20)


def test_all_right_with_repeats_counts_items() -> None:
    rate = clustered_rate([3] * 10, [3] * 10)
    assert (rate.value, rate.n_eff, rate.method, rate.high) == (1.0, 10.0, "items", 1.0)
    assert rate.low == pytest.approx(wilson_interval(10, 10)[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cluster_variance_matches_statsmodels_cluster_robust_standard_errors(seed: int) -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(seed)
    items = 15
    sizes = rng.integers(1, 6, size=items)
    p_item = rng.uniform(0.1, 0.9, size=items)
    y = np.concatenate([rng.binomial(1, p, size=m) for p, m in zip(p_item, sizes, strict=True)]).astype(float)
    groups = np.repeat(np.arange(items), sizes)
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    a = [float(y[groups == g].sum()) for g in range(items)]
    assert math.sqrt(cluster_variance(a, [float(m) for m in sizes])) == pytest.approx(float(fit.bse[0]), rel=1e-9)


def test_item_bootstrap_is_seeded_and_pinned() -> None:
    rows = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0], [2, 1, 0, 0]] * 2, float)
    first = item_bootstrap(rows, f1_of)
    assert first == item_bootstrap(rows, f1_of)
    assert first == pytest.approx((0.5833333333333334, 0.8108530405405403))
    counts = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0], [1, 0, 1, 0]] * 2, float)
    low, high = item_bootstrap(counts, kappa_of)
    assert -1 <= low <= high <= 1


def test_item_bootstrap_gives_no_interval_under_ten_items() -> None:
    # Two items at 0.5 and 0.6: every resample's mean is 0.5, 0.55 or 0.6, so the percentile interval would be
    # exactly [0.50, 0.60] however little two items say.
    assert MIN_BOOTSTRAP_ITEMS == 10
    values = np.array([[0.5, 1], [0.6, 1]], float)
    assert all(math.isnan(x) for x in item_bootstrap(values, mean_of))
    nine = np.array([[0.5, 1], [0.6, 1]] * 4 + [[0.7, 1]], float)
    assert all(math.isnan(x) for x in item_bootstrap(nine, mean_of))
    low, high = item_bootstrap(np.vstack([nine, [[0.4, 1]]]), mean_of)
    assert low < 0.55 < high


def test_items_to_decide_is_the_smallest_n_with_80_percent_power() -> None:
    # At 0.4 against 0.6 the normal approximation asks for about 40; the exact test is checked by brute force.
    from runner.analysis.clustered import _power

    n = items_to_decide(0.4, 0.6)
    assert n is not None and 30 <= n <= 60
    assert _power(n, 0.6, 0.4, 0.05) >= 0.8
    assert all(_power(m, 0.6, 0.4, 0.05) < 0.8 for m in range(1, n))
    assert items_to_decide(0.6, 0.6) is None
    assert items_to_decide(0.59, 0.6) is None  # about 15,000: past the 10,000 limit


def _answers(store: str) -> dict[str, bool]:
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT item_id, text FROM jobs WHERE status='ok'").fetchall()
    return {item: json.loads(text)["valid"] for item, text in rows}


def test_twenty_identical_repeats_are_no_narrower_than_one_and_not_called_not_viable(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    # The case: 20 items, 8 right, answers identical across 20 repeats. The fault server's answer
    # is a function of the request, and repeat_seeds: same sends every repeat the same request.
    project.write_dataset([{"id": f"q{n:02d}", "config": {"port": n}, "valid": True} for n in range(20)])
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["prompts"] = {"variants": [{"name": "only", "text": "Validate: {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 16}
    exp["repeat_seeds"] = "same"
    exp["report"] = {"threshold": {"metric": "accuracy", "min": 0.6}}
    once, many = project.write({**exp, "repeats": 1}, name="once.yaml"), project.write({**exp, "repeats": 20},
                                                                                        name="many.yaml")
    runner.run(once)
    said = _answers(str(project.store_path("once")))
    # Label the first 8 items as the server answers them and the other 12 the other way: 8 of 20 right.
    project.write_dataset([{"id": item, "config": {"port": int(item[1:])}, "valid": said[item] if i < 8
                            else not said[item]} for i, item in enumerate(sorted(said))])
    runner.run(many)
    assert _answers(str(project.store_path("many"))) == said  # the same answer in every repeat
    reports = [runner.report(path) for path in (once, many)]
    (v1,), (v20,) = (r.verdicts for r in reports if isinstance(r, runner.Report))
    assert (v1.value, v1.n_items, v1.n_jobs) == (0.4, 20, 20)
    assert (v20.value, v20.n_items, v20.n_jobs) == (0.4, 20, 400)
    assert v20.high - v20.low >= (v1.high - v1.low) - 0.01  # not narrower: 400 copies are 20 answers
    assert v1.status == v20.status == "not shown viable"
    assert v20.text == ("model=fake: not shown viable at n=20 items x 20 repeats: accuracy 0.40 [0.22, 0.62] "
                        f"straddles 0.60; accuracy 0.40 cannot separate 40% from 60%; about {v20.items_needed} items "
                        "would (exact binomial test, 80% power, alpha=0.05)")
    assert v1.text == ("model=fake: not shown viable at n=20 items: accuracy 0.40 [0.22, 0.61] straddles 0.60; "
                       f"8 of 20 right cannot separate 40% from 60%; about {v1.items_needed} items would (exact "
                       "binomial test, 80% power, alpha=0.05)")
    assert v1.items_needed is not None and v20.items_needed is not None and v1.items_needed >= 30


def test_a_rate_carried_by_fewer_than_five_items_counts_items_not_answers() -> None:
    # One success in 400 answers, all in one item: the cluster variance would call the answers
    # independent (n_eff 399) and give [0.00, 0.01]; with one item carrying it, n_eff is the 20 items.
    rate = clustered_rate([1] + [0] * 19, [20] * 20)
    assert (rate.method, rate.n_eff) == ("items", 20.0)
    assert rate.high > 0.15
    assert clustered_rate([0] * 20, [20] * 20).high == pytest.approx(rate.high, abs=0.01)  # no jump at one success


def test_the_few_carriers_fallback_never_claims_more_than_the_variance_allows() -> None:
    # 3 items right in all 30 of their repeats, 97 items asked once and wrong: counting items (100) would
    # give [0.39, 0.58]-like narrowness; the cluster variance says the answers are worth far fewer.
    rate = clustered_rate([30] * 3 + [0] * 97, [30] * 3 + [1] * 97)
    assert rate.method == "items" and rate.n_eff < 20
    assert rate.high - rate.low > 0.3


def test_items_to_decide_counts_a_tail_of_exactly_alpha_as_rejecting() -> None:
    # At threshold 0.05 one trial that succeeds has tail P(X >= 1) = 0.05: it rejects, and at 0.9 it has
    # power 0.9, so one item suffices.
    assert items_to_decide(0.9, 0.05) == 1


def test_items_to_decide_walks_back_past_the_coarse_steps() -> None:
    from runner.analysis.clustered import _power

    n = items_to_decide(0.5, 0.55)
    assert n is not None and n > 200
    assert _power(n, 0.55, 0.5, 0.05) >= 0.8 > _power(n - 1, 0.55, 0.5, 0.05)
