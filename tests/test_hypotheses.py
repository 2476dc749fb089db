"""The investigation's hypotheses table and decision, through the CLI against servers with planted
answers: a truly better prompt is H1 supported; a temperature that changes nothing over 40 items is H2
refuted (its interval within +-0.10); H3 is refuted or supported by the prompts' sizes against the
limit a context study found; hypotheses no step tests are `not tested`; the decision is viable,
inadequate or not decidable at 2 items, and --fail-on-verdict exits 3 unless it is viable."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Project, step_experiment
from runner.cli import main
from runner.testing.fakes import FakeLMStudio, ThreadedApp
from runner.testing.fault_server import FaultPlan, ScriptRule, ThreadedFaultServer

N = 40
ITEMS = [{"id": f"i{n}", "config": {"name": f"svc{n}", "port": 8000 + n}, "valid": n % 2 == 0} for n in range(N)]
BAD_RIGHT = {n for n in range(N) if n % 4 == 0}  # 10 of 40
GOOD_RIGHT = set(range(36))  # 36 of 40
FINAL_TOKENS = 32

# The final steps below take their prompt and temperature from picks made on the same items.
BONFERRONI = ("(step final; a 98.8% interval, Bonferroni over the 4 settings it was chosen among on these"
              " items: 2 prompt values of step prompts x 2 temperature values of step sweep)")


def _answer(n: int, right: bool) -> tuple[str, str]:
    label = ITEMS[n]["valid"]
    return json.dumps({"valid": label if right else not label}), "stop"


def _key(prefix: str, n: int) -> str:
    return f'{prefix} {{"name": "svc{n}",'


def _plan() -> FaultPlan:
    script = {_key("GOOD", n): _answer(n, n in GOOD_RIGHT) for n in range(N)}
    script |= {_key("BAD", n): _answer(n, n in BAD_RIGHT) for n in range(N)}
    # Temperature 0.7 swaps one right item for one wrong one: the same accuracy, 2 discordant items.
    rules = [ScriptRule(_answer(0, False), {"temperature": 0.7}, _key("GOOD", 0)),
             ScriptRule(_answer(36, True), {"temperature": 0.7}, _key("GOOD", 36))]
    return FaultPlan(script=script, rules=rules)


def _write(project: Project, name: str, data: dict[str, Any]) -> Path:
    path = project.root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _project(project: Project, url: str, filler: int = 0, context_url: str | None = None) -> Path:
    project.write_dataset(ITEMS)
    tail = " " + " ".join(["x"] * filler) if filler else ""
    variants = [{"name": "bad", "text": "BAD {{ config | tojson }}" + tail},
                {"name": "good", "text": "GOOD {{ config | tojson }}" + tail}]
    _write(project, "prompts.yaml", step_experiment(url, "prompts", variants, 16))
    own = [{"name": "own", "text": "OWN {{ config | tojson }}"}]
    _write(project, "sweep.yaml", step_experiment(url, "sweep", own, 24, temperature=[0.0, 0.7]))
    _write(project, "final.yaml", step_experiment(url, "final", own, FINAL_TOKENS, temperature=0.5))
    steps: list[dict[str, Any]] = [
        {"name": "prompts", "experiment": "prompts.yaml", "hypothesis": "H1"},
        {"name": "sweep", "experiment": "sweep.yaml", "hypothesis": "H2", "use": {"prompt": {"from": "prompts"}}},
        {"name": "final", "experiment": "final.yaml",
         "use": {"prompt": {"from": "prompts"}, "temperature": {"from": "sweep"}}},
    ]
    if context_url is not None:
        study = step_experiment(context_url, "context", own, 16)
        study["backend"] = {"kind": "lmstudio", "base_url": f"{context_url}/v1", "concurrency": 1}
        study["models"] = [{"name": "smollm2", "id": "smollm2-135m-instruct@q4_k_m"}]
        study["study"] = {"kind": "context_window"}
        del study["scorers"]
        _write(project, "context.yaml", study)
        steps.insert(0, {"name": "context", "experiment": "context.yaml", "hypothesis": "H3"})
    return _write(project, "inv.yaml", {"name": "planted", "question": "Is the model viable at 60%?",
                                        "threshold": {"metric": "accuracy", "min": 0.6}, "steps": steps})


def _report(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", str(path), "--format", "json", *args]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def _verdicts(data: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(h["id"], h["step"], h["verdict"]) for h in data["hypotheses"]]


def test_a_better_prompt_is_supported_a_temperature_that_changes_nothing_is_refuted_and_the_decision_viable(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        # The same table at the end of `runner run` (the steps resume: nothing is sent again).
        sent = server.stats()["requests"]
        capsys.readouterr()
        assert main(["run", str(path), "--quiet", "--fail-on-verdict"]) == 0
        assert server.stats()["requests"] == sent
    out = capsys.readouterr().out
    table = out[out.index("hypotheses:"):]
    assert table.splitlines()[2].split() == ["id", "hypothesis", "step", "tested", "effect", "[interval]", "p",
                                             "(Holm)", "n", "items", "verdict"]
    assert table.splitlines()[4].split()[:2] == ["H1", "prompt"] and table.splitlines()[4].split()[-1] == "supported"
    # Picked among 2 prompts x 2 temperatures on these 40 items: judged on a 98.75% interval, not 95%.
    assert table.endswith("decision:\n\n  viable: accuracy 0.90 [0.72, 0.97] >= 0.60 over 40 items " + BONFERRONI
                          + ": use prompt good, temperature 0.0\n")
    data = _report(path, capsys)
    assert _verdicts(data) == [("H1", "prompts", "supported"), ("H2", "sweep", "refuted"),
                               ("H3", None, "not tested"), ("H4", None, "not tested"),
                               ("H5", None, "not tested"), ("H6", None, "not tested")]
    h1, h2 = data["hypotheses"][:2]
    # good vs bad over 40 items: 27 items right only under good, 1 only under bad.
    assert (h1["effect"], h1["n_items"]) == (pytest.approx(26 / 40), 40)
    assert h1["interval"][0] > 0 and h1["p"] < 0.05
    assert h1["tested"] == "prompt: bad, good (baseline bad); effect good vs bad"
    assert (h2["effect"], h2["n_items"]) == (0.0, 40)
    assert -0.10 <= h2["interval"][0] < 0 < h2["interval"][1] <= 0.10
    assert h2["why"].startswith("every interval lies within +-0.10, the smallest effect that matters: ")
    assert data["decision"] == {
        "verdict": "viable", "step": "final", "n_items": 40, "interval": data["decision"]["interval"],
        "confidence": 0.9875,
        "metric": "accuracy", "min": 0.6,
        "sentence": "viable: accuracy 0.90 [0.72, 0.97] >= 0.60 over 40 items " + BONFERRONI
                    + ": use prompt good, temperature 0.0"}


def test_the_decision_is_inadequate_when_the_final_step_is_clearly_below_the_bar_and_fail_on_verdict_exits_3(
        project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Every prompt right on the same 8 of 40 items at every temperature: each candidate where it ran
    # is below the bar, and so is the one taken (the first declared of the tied ones).
    monkeypatch.setattr(sys.modules[__name__], "BAD_RIGHT", set(range(8)))
    monkeypatch.setattr(sys.modules[__name__], "GOOD_RIGHT", set(range(8)))
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        assert main(["run", str(path), "--quiet", "--no-report", "--fail-on-verdict"]) == 3
    data = _report(path, capsys)
    assert data["decision"]["verdict"] == "inadequate"
    assert data["decision"]["sentence"] == (
        "inadequate: accuracy 0.20 [0.10, 0.35] < 0.60 over 40 items (step final): pivot: the model is inadequate "
        "for the task at this bar")  # at 95%: choosing the best of the 4 can only have flattered it
    capsys.readouterr()
    assert main(["report", str(path), "--fail-on-verdict"]) == 3


def test_a_pick_taken_through_another_steps_pick_still_counts_the_candidates_it_was_chosen_among(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # The final step takes its prompt from the sweep, which ran only the prompt it took from `prompts`:
    # the choice among 2 prompts was made there, on these items.
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        inv = yaml.safe_load(path.read_text())
        inv["steps"][2]["use"]["prompt"] = {"from": "sweep"}
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    decision = _report(path, capsys)["decision"]
    assert (decision["verdict"], decision["confidence"]) == ("viable", 0.9875)
    assert BONFERRONI[:-1] in decision["sentence"]


def test_a_pick_whose_step_lost_its_store_still_counts_the_candidates_its_record_names(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    stores = list((project.root / "results" / "sweep").glob("results.sqlite*"))
    assert stores
    for store in stores:
        store.unlink()
    data = _report(path, capsys)
    assert [s["status"] for s in data["steps"]] == ["done", "not run", "done"]
    assert (data["decision"]["verdict"], data["decision"]["confidence"]) == ("viable", 0.9875)


def test_inadequate_is_not_claimed_while_a_more_accurate_candidate_than_the_one_picked_may_reach_the_bar(
        project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # good is right on 21 of 40 items, bad on 16: 5 discordant (McNemar p=0.06), so no best prompt and
    # the first declared, bad, is taken. bad's 0.40 is below the bar; good's 0.53 [0.37, 0.67] is not.
    bad = {n for n in range(N) if n % 5 < 2}
    monkeypatch.setattr(sys.modules[__name__], "BAD_RIGHT", bad)
    monkeypatch.setattr(sys.modules[__name__], "GOOD_RIGHT", bad | {2, 3, 4, 7, 8})
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    data = _report(path, capsys)
    assert [(p["step"], p["axis"], p["value"]) for p in data["picks"]][:1] == [("sweep", "prompt", "bad")]
    assert data["decision"]["verdict"] == "not decidable"
    assert data["decision"]["sentence"] == (
        "not decidable: accuracy 0.40 [0.26, 0.55] < 0.60 over 40 items (step final), but prompt good (accuracy 0.53 "
        "[0.37, 0.67] in step prompts, not below the picked prompt's) is not shown below the bar; more items in step "
        "prompts would tell")


def test_inadequate_on_recall_checks_the_candidates_by_recall_not_by_the_accuracy_the_pick_went_by(
        project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # good says valid to every item: recall 1.00, accuracy 0.50. bad is right on every invalid item and
    # 4 valid ones: accuracy 0.60, recall 0.20. Not separable by accuracy, so bad (the first declared)
    # is taken and its recall is below the bar; good's is not.
    monkeypatch.setattr(sys.modules[__name__], "GOOD_RIGHT", {n for n in range(N) if n % 2 == 0})
    monkeypatch.setattr(sys.modules[__name__], "BAD_RIGHT", {n for n in range(N) if n % 2} | {0, 2, 4, 6})
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        inv = yaml.safe_load(path.read_text())
        inv["threshold"] = {"metric": "recall", "min": 0.6}
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    data = _report(path, capsys)
    assert [(p["step"], p["axis"], p["value"]) for p in data["picks"]][:1] == [("sweep", "prompt", "bad")]
    assert data["decision"]["verdict"] == "not decidable"
    assert ", but prompt good (recall 1.00 [" in data["decision"]["sentence"]


def test_at_2_items_nothing_is_decided_and_the_table_says_what_would_decide(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _project(project, server.url)
        assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
        assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2", "--fail-on-verdict"]) == 3
    data = _report(path, capsys, "--limit", "2")
    # good is right on both items, bad on one: 1 discordant item, nothing to estimate from. The two
    # temperatures (with bad, the tied prompts' first) agree on both items: [0, 0] is no refutation, and
    # 35 items with none differing would be one.
    assert _verdicts(data)[:2] == [("H1", "prompts", "inconclusive"), ("H2", "sweep", "inconclusive")]
    h1, h2 = data["hypotheses"][:2]
    assert (h1["n_items"], h1["items_to_decide"]) == (2, None)
    assert "too few discordant pairs to estimate the items needed" in h1["why"]
    assert (h2["n_items"], h2["interval"], h2["items_to_decide"]) == (2, [0.0, 0.0], 35)
    assert h2["why"].startswith("neither shown (the interval lies within +-0.10 but over fewer than 35 items, too "
                                "few to refute an effect of 0.10 (0 of 2 items differing still allows 0.66)): ")
    decision = data["decision"]
    assert (decision["verdict"], decision["n_items"]) == ("not decidable", 2)
    # The final step ran bad (the prompts were tied at 2 items): right on 1 of 2.
    # Below the bar only "inadequate" can decide it, judged at 95%: no allowance for the picks.
    assert (decision["sentence"], decision["confidence"]) == (
        "not decidable at n=2 items: accuracy 0.50 [0.09, 0.91] straddles 0.60 over 2 items (step final); about 158 "
        "items would decide it (exact binomial test, 80% power)", 0.95)


@pytest.mark.parametrize(("filler", "verdict"), [(0, "refuted"), (880, "supported")])
def test_h3_compares_the_largest_prompt_with_the_limit_the_context_study_found(
        project: Project, capsys: pytest.CaptureFixture[str], filler: int, verdict: str) -> None:
    fake = FakeLMStudio(loaded_context=900)
    with ThreadedFaultServer(_plan()) as server, ThreadedApp(fake.app) as lms:
        path = _project(project, server.url, filler=filler, context_url=lms.url)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    data = _report(path, capsys)
    [h3] = [h for h in data["hypotheses"] if h["id"] == "H3"]
    assert (h3["step"], h3["verdict"]) == ("context", verdict)
    largest = 5 + filler  # the fault server counts words: BAD/GOOD, the config's 4 words, the filler
    shown = f"the closest prompt {largest} tokens of a 900-token limit"
    assert shown in h3["why"]
    # The fake LM Studio has no /tokenize: the tokenizer check says it could not be measured.
    assert h3["why"].endswith("; tokenizer check: not measured (smollm2: the server cannot tokenize text (no "
                              "/tokenize endpoint))")
    assert h3["tested"].endswith("; the tokenizer check")
    assert h3["effect"] == pytest.approx(largest / 900)
