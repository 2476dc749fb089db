"""The order jobs go to the engine in, so that llama.cpp's prompt cache is used on purpose.

llama.cpp keeps each slot's last prompt in its KV cache (`cache_prompt`): a request that starts with
what its slot holds evaluates only the rest (`timings.prompt_n`). On a CPU, evaluating a prompt is
most of a short job (SmolLM2-135M on 2 cores: ~570 tokens in ~2 s, 32 answer tokens in ~0.4 s), and
two orders waste the cache:

- the repeats of one prompt sent side by side land on different slots, and each slot evaluates the
  whole prompt. So a prompt's jobs (the plan yields its repeats one after another) go to one worker
  as a bundle and are sent one after another: when the next is sent, the slot that answered the last
  is idle and holds the prompt, and llama.cpp gives a request the idle slot whose cache matches it best.
- N slots each evaluate the prompt the items share (system prompt, rules, few-shot examples) once.
  Where the backend can copy a slot (`Backend.share_prompt_cache`), the variant's first sent job runs
  alone and its slot is copied into the others before the rest go side by side (the executor does this).

A bundle holds at most `cap` jobs, so that a few prompts with many repeats still keep every worker
busy: then a prompt is evaluated once per bundle rather than once per repeat.

The embedded backend has one worker per slot (`LlamaCppBackend.workers`) and pins each to its slot
(llama.cpp's id_slot), so that no other prompt takes the slot between a bundle's jobs.
"""

from __future__ import annotations

from collections.abc import Iterator

from runner.plan.planner import Job


def bundle_cap(jobs: int, workers: int) -> int:
    """The largest bundle: half of each worker's share of `jobs`, so that what is left when the first
    workers run out of work is small (a tail on one slot while the others idle). A prompt's repeats split
    in two cost one more evaluation of its own tokens (after the slot copy, not of a shared prefix)."""
    return max(1, -(-jobs // (2 * max(1, workers))))


def bundles(jobs: Iterator[Job], cap: int) -> Iterator[list[Job]]:
    """Consecutive jobs with the same messages (a cell's repeats of one item), at most `cap` to a bundle."""
    bundle: list[Job] = []
    key: tuple[object, object, object] | None = None
    for job in jobs:
        # The messages are the cell's templates applied to the item: this names them without comparing text.
        this = (job.cell.system, job.cell.prompt, job.item.id)
        if bundle and (this != key or len(bundle) >= cap):
            yield bundle
            bundle = []
        key = this
        bundle.append(job)
    if bundle:
        yield bundle
