"""The planner: matrix size and order, include/exclude, stable job ids, templates, and streaming."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from conftest import ITEMS, Project, base_experiment
from runner import ConfigError, Plan, build_plan, load_experiment


def _plan(project: Project, exp: dict[str, Any], name: str = "exp.yaml") -> Plan:
    return build_plan(load_experiment(project.write(exp, name=name)))


def _ids(project: Project, exp: dict[str, Any], name: str = "exp.yaml") -> list[str]:
    return [j.job_id for j in _plan(project, exp, name).jobs()]


def _combos(plan: Plan, *axes: str) -> list[tuple[Any, ...]]:
    return [tuple(c.get(a) for a in axes) for c in plan.cells]


# matrix size and axes


def test_job_count_is_cells_times_items_times_repeats(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["top_p"] = [0.5, 0.9, 1.0]
    exp["repeats"] = 3
    plan = _plan(project, exp)
    assert len(plan.cells) == 2 * 2 * 3  # prompts x temperatures x top_p
    assert plan.count() == 12 * len(ITEMS) * 3
    jobs = list(plan.jobs())
    assert len(jobs) == plan.count()
    assert len({j.job_id for j in jobs}) == len(jobs)
    assert plan.count(limit_items=2) == 12 * 2 * 3 == len(list(plan.jobs(limit_items=2)))
    assert {j.item.id for j in plan.jobs(limit_items=2)} == {"i00", "i01"}


def test_axes_keep_declaration_order(project: Project) -> None:
    exp = base_experiment()
    exp["models"] = [{"name": "zeta", "quantizations": ["q8", "q4"]},
                     {"name": "alpha", "quantizations": ["q4", "f16"]}]
    exp["prompts"]["variants"] = [{"name": "z", "text": "Z {{ id }}"}, {"name": "a", "text": "A {{ id }}"}]
    exp["sampling"] = {"temperature": [0.7, 0.1, 0.4], "seed": [9, 3]}
    plan = _plan(project, exp)
    assert list(plan.axes) == ["model", "quantization", "system", "prompt", "temperature", "seed"]
    assert plan.axes["model"] == ["zeta", "alpha"]
    assert plan.axes["quantization"] == ["q8", "q4", "f16"]  # first-seen order over models
    assert plan.axes["prompt"] == ["z", "a"]
    assert plan.axes["temperature"] == [0.7, 0.1, 0.4]  # not sorted
    assert plan.axes["seed"] == [9, 3]
    assert plan.varying_axes() == ["model", "quantization", "prompt", "temperature", "seed"]


def test_fixed_sampling_values_are_params_not_axes(project: Project) -> None:
    plan = _plan(project, base_experiment())
    assert "seed" not in plan.axes and "max_tokens" not in plan.axes
    assert {(c.params["seed"], c.params["max_tokens"]) for c in plan.cells} == {(1, 16)}
    assert sorted(c.params["temperature"] for c in plan.cells) == [0.0, 0.0, 0.5, 0.5]


# matrix.exclude / matrix.include


def test_exclude_removes_exactly_the_matching_combinations(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["top_p"] = [0.5, 1.0]
    exp["matrix"] = {"exclude": [{"prompt": "b", "temperature": 0.5}]}
    plan = _plan(project, exp)
    combos = _combos(plan, "prompt", "temperature", "top_p")
    assert len(combos) == 8 - 2
    assert not [c for c in combos if c[:2] == ("b", 0.5)]
    assert ("b", 0.0, 0.5) in combos and ("a", 0.5, 1.0) in combos
    assert plan.count() == 6 * len(ITEMS) * 2


def test_exclude_everything_is_a_config_error(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"exclude": [{"model": "fake"}]}
    with pytest.raises(ConfigError, match=r"matrix\.exclude"):
        _plan(project, exp)


def test_exclude_with_unknown_key_is_a_config_error(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"exclude": [{"max_tokens": 16}]}  # a fixed param, not an axis
    with pytest.raises(ConfigError, match=r"matrix\.exclude\[0\]\.max_tokens"):
        _plan(project, exp)


def test_include_overrides_params_on_matching_combinations_only(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"include": [{"prompt": "a", "temperature": 0.5, "max_tokens": 64}]}
    plan = _plan(project, exp)
    assert len(plan.cells) == 4  # nothing added
    by_combo = {(c.get("prompt"), c.get("temperature")): c.params["max_tokens"] for c in plan.cells}
    assert by_combo == {("a", 0.0): 16, ("a", 0.5): 64, ("b", 0.0): 16, ("b", 0.5): 16}
    for job in plan.jobs():
        expected = 64 if (job.cell.get("prompt"), job.cell.get("temperature")) == ("a", 0.5) else 16
        assert job.params["max_tokens"] == expected


def test_include_matching_several_combinations_overrides_all_of_them(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"include": [{"prompt": "b", "top_k": 5}]}
    plan = _plan(project, exp)
    assert {c.get("prompt"): c.params.get("top_k") for c in plan.cells} == {"a": None, "b": 5}
    assert len(plan.cells) == 4


def test_include_that_matches_nothing_adds_a_new_combination(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"include": [{"prompt": "b", "temperature": 0.9, "max_tokens": 99}]}
    plan = _plan(project, exp)
    assert len(plan.cells) == 5
    added = [c for c in plan.cells if c.get("temperature") == 0.9]
    assert len(added) == 1
    assert added[0].get("prompt") == "b"
    assert added[0].params == {"seed": 1, "max_tokens": 99, "temperature": 0.9}
    assert plan.axes["temperature"] == [0.0, 0.5, 0.9]
    assert plan.count() == 5 * len(ITEMS) * 2


def test_include_new_combination_must_name_every_varying_axis(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"include": [{"temperature": 0.9}]}  # prompt varies too and is not named
    with pytest.raises(ConfigError, match="prompt"):
        _plan(project, exp)


def test_include_with_undeclared_prompt_is_a_config_error(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"include": [{"prompt": "nope", "temperature": 0.0}]}
    with pytest.raises(ConfigError, match="nope"):
        _plan(project, exp)


def test_exclude_then_include_re_adds_a_removed_combination(project: Project) -> None:
    exp = base_experiment()
    exp["matrix"] = {"exclude": [{"prompt": "b"}],
                     "include": [{"prompt": "b", "temperature": 0.5, "max_tokens": 8}]}
    plan = _plan(project, exp)
    assert sorted(_combos(plan, "prompt", "temperature")) == [("a", 0.0), ("a", 0.5), ("b", 0.5)]
    (b_cell,) = [c for c in plan.cells if c.get("prompt") == "b"]
    assert b_cell.params["max_tokens"] == 8


def test_include_can_add_a_new_stop_value(project: Project) -> None:
    exp = base_experiment()
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    exp["sampling"] = {"temperature": 0.0, "stop": [["\n"], ["###"]]}
    exp["matrix"] = {"include": [{"stop": ["END"]}]}
    plan = _plan(project, exp)
    assert plan.axes["stop"] == [["\n"], ["###"], ["END"]]
    assert [c.params["stop"] for c in plan.cells] == [["\n"], ["###"], ["END"]]


# job order


def _two_by_two(exp: dict[str, Any]) -> dict[str, Any]:
    exp["models"] = [{"name": "zeta", "id": "zeta-{quant}", "quantizations": ["q8", "q4"]},
                     {"name": "alpha", "id": "alpha-{quant}", "quantizations": ["q8", "q4"]}]
    return exp


def test_jobs_are_grouped_by_variant_in_model_declaration_order(project: Project) -> None:
    plan = _plan(project, _two_by_two(base_experiment()))
    variants = [(j.cell.variant.model, j.cell.variant.quantization) for j in plan.jobs()]
    runs = [key for key, _ in itertools.groupby(variants)]
    assert runs == [("zeta", "q8"), ("zeta", "q4"), ("alpha", "q8"), ("alpha", "q4")]
    assert len(variants) == 4 * 4 * len(ITEMS) * 2
    last_zeta = max(i for i, v in enumerate(variants) if v[0] == "zeta")
    first_alpha = min(i for i, v in enumerate(variants) if v[0] == "alpha")
    assert last_zeta < first_alpha
    assert [v.model_id for v in plan.variants()] == ["zeta-q8", "zeta-q4", "alpha-q8", "alpha-q4"]


def test_included_combination_joins_its_variant_group(project: Project) -> None:
    exp = _two_by_two(base_experiment())
    exp["matrix"] = {"include": [{"model": "zeta", "quantization": "q8", "prompt": "a", "temperature": 0.9}]}
    plan = _plan(project, exp)
    variants = [(j.cell.variant.model, j.cell.variant.quantization) for j in plan.jobs()]
    assert [key for key, _ in itertools.groupby(variants)] == [
        ("zeta", "q8"), ("zeta", "q4"), ("alpha", "q8"), ("alpha", "q4")]
    assert variants.count(("zeta", "q8")) == 5 * len(ITEMS) * 2


# job ids


def test_job_ids_are_stable_across_loads(project: Project) -> None:
    exp = base_experiment()
    first = _ids(project, exp, "one.yaml")
    assert first == _ids(project, exp, "one.yaml")
    assert first == _ids(project, exp, "two.yaml")  # the file name is not part of the identity
    assert len(set(first)) == len(first)


def test_job_ids_ignore_concurrency_timeout_and_retry_settings(project: Project) -> None:
    exp = base_experiment()
    before = _ids(project, exp)
    exp["backend"].update(concurrency=64, timeout_s=300, max_retries=0, retry_backoff_s=5)
    assert _ids(project, exp) == before


def test_job_id_changes_with_the_rendered_prompt(project: Project) -> None:
    exp = base_experiment()
    plan = _plan(project, exp)
    before = {(j.cell.get("prompt"), j.cell.get("temperature"), j.item.id, j.repeat): j.job_id
              for j in plan.jobs()}
    exp["prompts"]["variants"][1]["text"] = "B2 {{ config | tojson }}"
    after = {(j.cell.get("prompt"), j.cell.get("temperature"), j.item.id, j.repeat): j.job_id
             for j in _plan(project, exp).jobs()}
    assert before.keys() == after.keys()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {k for k in before if k[0] == "b"}


def test_job_id_changes_with_the_system_prompt(project: Project) -> None:
    exp = base_experiment()
    before = _ids(project, exp)
    exp["prompts"]["system"] = "You validate configs carefully."
    assert set(_ids(project, exp)).isdisjoint(before)


@pytest.mark.parametrize("key, value", [("max_tokens", 17), ("seed", 2), ("top_p", 0.9)])
def test_job_id_changes_with_a_sampling_param(project: Project, key: str, value: Any) -> None:
    exp = base_experiment()
    before = _ids(project, exp)
    exp["sampling"][key] = value
    assert set(_ids(project, exp)).isdisjoint(before)


def test_job_id_changes_with_the_repeat_index(project: Project) -> None:
    exp = base_experiment()
    exp["repeat_seeds"] = "same"  # identical params and messages: only the repeat index differs
    jobs = list(_plan(project, exp).jobs())
    pairs: dict[tuple[str, str], list[Any]] = {}
    for j in jobs:
        pairs.setdefault((j.cell.key(), j.item.id), []).append(j)
    for r0, r1 in pairs.values():
        assert (r0.repeat, r1.repeat) == (0, 1)
        assert r0.messages == r1.messages and r0.params == r1.params
        assert r0.job_id != r1.job_id


def test_job_id_changes_with_the_model(project: Project) -> None:
    exp = base_experiment()
    before = _ids(project, exp)
    exp["models"][0]["id"] = "other-model"
    assert set(_ids(project, exp)).isdisjoint(before)


def test_job_id_changes_with_the_backend_base_url(project: Project) -> None:
    exp = base_experiment("http://127.0.0.1:9/v1")
    before = _ids(project, exp)
    assert _ids(project, base_experiment("http://127.0.0.1:9/v1/")) == before  # same server
    assert set(_ids(project, base_experiment("http://127.0.0.1:10/v1"))).isdisjoint(before)


def test_job_id_does_not_depend_on_other_items(project: Project) -> None:
    exp = base_experiment()
    before = {(j.cell.key(), j.item.id, j.repeat): j.job_id for j in _plan(project, exp).jobs()}
    project.write_dataset([*ITEMS, {"id": "extra", "config": {}, "valid": True}])
    after = {(j.cell.key(), j.item.id, j.repeat): j.job_id for j in _plan(project, exp).jobs()}
    assert {k: v for k, v in after.items() if k[1] != "extra"} == before
    assert len(after) == len(before) + 4 * 2



# Job ids of experiments without named values, computed before named values existed (commit b789c5c):
# existing stores keep their results. A fixed base_url, since the backend's identity is in the hash.
UNNAMED_SCHEMA = {"type": "json_schema", "json_schema": {
    "name": "v", "schema": {"type": "object", "properties": {"valid": {"type": "boolean"}}}}}


def _pinned_case(case: str) -> dict[str, Any]:
    exp = base_experiment("http://127.0.0.1:9/v1")
    if case == "axes":
        exp["sampling"].update(stop=[["\n"], ["###"]], response_format=[{"type": "json_object"}, UNNAMED_SCHEMA])
        exp["matrix"] = {"include": [{"prompt": "a", "max_tokens": 8}], "exclude": [{"prompt": "b", "stop": ["###"]}]}
    elif case == "fixed":
        exp["sampling"].update(stop=["END"], response_format=UNNAMED_SCHEMA)
    return exp


@pytest.mark.parametrize("case, count, first, digest", [
    ("base", 48, "3c3f6fd37630b62ffbe9801a827f83c6", "fcbc887a781cc5a8"),
    ("axes", 144, "f0118d56470edbe8067b3c922a901e49", "a1e0919f99ba7ca4"),
    ("fixed", 48, "326df383da9e3136f392983a7d3a224d", "df4abae5a0b9bbee"),
])
def test_job_ids_of_unnamed_values_are_pinned(project: Project, case: str, count: int, first: str,
                                              digest: str) -> None:
    ids = _ids(project, _pinned_case(case))
    assert (len(ids), ids[0], hashlib.sha256("".join(ids).encode()).hexdigest()[:16]) == (count, first, digest)


# named axis values


SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}}}
NAMED_FORMATS = [{"name": "free", "value": None}, {"name": "schema", "value": SCHEMA}]


def test_named_values_show_their_names_and_send_their_values(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["response_format"] = NAMED_FORMATS
    plan = _plan(project, exp)
    assert plan.axes["response_format"] == ["free", "schema"]
    assert "response_format" in plan.varying_axes()
    by_name = {c.get("response_format"): c for c in plan.cells}
    assert "response_format" not in by_name["free"].params  # null: not sent, not sent as null
    assert by_name["schema"].params["response_format"] == SCHEMA
    assert json.loads(by_name["schema"].key())[-1] == ["response_format", "schema"]


def test_naming_values_keeps_the_job_ids(project: Project) -> None:
    """The name is for people; the hash is of what is sent, so naming (or renaming) keeps the results."""
    exp = base_experiment()
    unnamed = _ids(project, exp)
    exp["sampling"]["temperature"] = [{"name": "greedy", "value": 0.0}, {"name": "warm", "value": 0.5}]
    assert _ids(project, exp) == unnamed
    exp["sampling"]["temperature"] = [{"name": "cold", "value": 0.0}, {"name": "hot", "value": 0.5}]
    assert _ids(project, exp) == unnamed

    exp = base_experiment()
    without = set(_ids(project, exp))
    exp["sampling"]["response_format"] = SCHEMA
    fixed = set(_ids(project, exp))
    exp["sampling"]["response_format"] = NAMED_FORMATS
    assert set(_ids(project, exp)) == without | fixed


def test_matrix_entries_match_named_values_by_name(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["response_format"] = NAMED_FORMATS
    exp["matrix"] = {"exclude": [{"prompt": "b", "response_format": "free"}],
                     "include": [{"response_format": "schema", "max_tokens": 64}]}
    plan = _plan(project, exp)
    assert sorted(set(_combos(plan, "prompt", "response_format"))) == [("a", "free"), ("a", "schema"),
                                                                       ("b", "schema")]
    assert {c.get("response_format"): c.params["max_tokens"] for c in plan.cells} == {"free": 16, "schema": 64}


def test_include_adds_a_combination_of_named_values(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["temperature"] = [{"name": "greedy", "value": 0.0}, {"name": "warm", "value": 0.5}]
    exp["matrix"] = {"exclude": [{"prompt": "b"}], "include": [{"prompt": "b", "temperature": "warm"}]}
    plan = _plan(project, exp)
    assert sorted(_combos(plan, "prompt", "temperature")) == [("a", "greedy"), ("a", "warm"), ("b", "warm")]
    (added,) = [c for c in plan.cells if c.get("prompt") == "b"]
    assert added.params["temperature"] == 0.5


def test_a_named_null_stop_is_not_sent(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["stop"] = [{"name": "none", "value": None}, {"name": "newline", "value": ["\n"]}]
    plan = _plan(project, exp)
    assert plan.axes["stop"] == ["none", "newline"]
    assert {c.get("stop"): c.params.get("stop", "not sent") for c in plan.cells} == {
        "none": "not sent", "newline": ["\n"]}


# seeds across repeats


def test_repeat_seeds_offset_adds_the_repeat_index(project: Project) -> None:
    exp = base_experiment()
    exp["repeats"] = 3
    seeds = {(j.repeat, j.params["seed"]) for j in _plan(project, exp).jobs()}
    assert seeds == {(0, 1), (1, 2), (2, 3)}


def test_repeat_seeds_same_keeps_the_seed(project: Project) -> None:
    exp = base_experiment()
    exp["repeats"] = 3
    exp["repeat_seeds"] = "same"
    seeds = {(j.repeat, j.params["seed"]) for j in _plan(project, exp).jobs()}
    assert seeds == {(0, 1), (1, 1), (2, 1)}


def test_no_seed_means_no_seed_param_in_any_repeat(project: Project) -> None:
    exp = base_experiment()
    del exp["sampling"]["seed"]
    assert all("seed" not in j.params for j in _plan(project, exp).jobs())


# templates


def test_an_empty_system_prompt_is_sent_empty_and_none_sends_no_system_message(project: Project) -> None:
    # Changed by the issue "What the model actually receives": an empty system prompt used to mean "none".
    exp = base_experiment()
    exp["prompts"]["system"] = "{% if false %}never{% endif %}   "
    jobs = list(_plan(project, exp).jobs())
    assert jobs and all(j.messages[0] == {"role": "system", "content": ""} for j in jobs)
    exp["prompts"]["system"] = ""
    assert all(j.messages[0] == {"role": "system", "content": ""} for j in _plan(project, exp).jobs())
    del exp["prompts"]["system"]
    exp["prompts"]["systems"] = [{"name": "none"}, {"name": "empty", "text": ""}]
    by_system = {j.cell.get("system"): [m["role"] for m in j.messages] for j in _plan(project, exp).jobs()}
    assert by_system == {"none": ["user"], "empty": ["system", "user"]}


def test_absent_system_means_no_system_message(project: Project) -> None:
    exp = base_experiment()
    del exp["prompts"]["system"]
    assert all([m["role"] for m in j.messages] == ["user"] for j in _plan(project, exp).jobs())


def test_non_empty_system_comes_first(project: Project) -> None:
    job = next(_plan(project, base_experiment()).jobs())
    assert job.messages[0] == {"role": "system", "content": "You validate configs."}
    assert job.messages[1]["role"] == "user"


def test_systems_list_is_an_axis(project: Project) -> None:
    exp = base_experiment()
    del exp["prompts"]["system"]
    exp["prompts"]["systems"] = [{"name": "terse", "text": "Be terse."}, {"name": "none"}]
    plan = _plan(project, exp)
    assert plan.axes["system"] == ["terse", "none"]
    for job in plan.jobs():
        roles = [m["role"] for m in job.messages]
        assert roles == (["system", "user"] if job.cell.get("system") == "terse" else ["user"])


def test_template_context_has_fields_item_and_context_files(project: Project) -> None:
    project.write_dataset([{"id": "x1", "config": {"name": "svc", "port": 81}, "valid": True}])
    examples = project.root / "examples.jsonl"
    examples.write_text("".join(json.dumps(r) + "\n" for r in [{"q": "one", "a": 1}, {"q": "two", "a": 2}]))
    exp = base_experiment()
    exp["prompts"]["variants"] = [{
        "name": "ctx",
        "text": "{% for e in examples %}{{ e.q }}={{ e.a }};{% endfor %}"
                " name={{ config.name }} id={{ item.id }} port={{ item['config']['port'] }} valid={{ valid }}",
    }]
    exp["prompts"]["context"] = {"examples": "examples.jsonl"}
    exp["sampling"] = {"temperature": 0.0}
    exp["repeats"] = 1
    (job,) = list(_plan(project, exp).jobs())
    assert job.messages[-1] == {"role": "user", "content": "one=1;two=2; name=svc id=x1 port=81 valid=True"}


def test_template_with_undefined_variable_is_a_config_error(project: Project) -> None:
    exp = base_experiment()
    exp["prompts"]["variants"] = [{"name": "bad", "text": "{{ no_such_field }}"}]
    plan = _plan(project, exp)
    with pytest.raises(ConfigError, match="no_such_field"):
        plan.check_templates()


# streaming


def test_a_million_job_plan_streams_without_materializing(project: Project) -> None:
    project.write_dataset([{"id": f"r{n:04d}", "config": {"port": n}, "valid": n % 2 == 0} for n in range(1000)])
    exp = copy.deepcopy(base_experiment())
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    exp["sampling"] = {"temperature": [n / 10 for n in range(10)], "top_p": [(n + 1) / 10 for n in range(10)],
                       "seed": list(range(10)), "max_tokens": 16}
    exp["repeats"] = 1
    path = project.write(exp)

    tracemalloc.start()
    try:
        plan = build_plan(load_experiment(path))
        started = time.perf_counter()
        total = plan.count()
        elapsed = time.perf_counter() - started
        first = list(itertools.islice(plan.jobs(), 100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total == 1_000_000
    assert len(plan.cells) == 1000 and len(plan.items) == 1000
    assert elapsed < 0.5, f"count() took {elapsed:.2f} s: it must not walk the jobs"
    assert peak < 20 * 2**20, f"planning took {peak / 2**20:.1f} MiB: jobs must be streamed"
    assert len(first) == 100 and len({j.job_id for j in first}) == 100
    assert all(j.cell == plan.cells[0] for j in first)
    assert [j.item.id for j in first] == [f"r{n:04d}" for n in range(100)]


def test_plan_reads_dataset_relative_to_the_experiment_file(project: Project, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = project.write(base_experiment())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert build_plan(load_experiment(path)).count() == 4 * len(ITEMS) * 2
