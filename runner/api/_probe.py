"""probe: what the server honours for each variant, stored for warnings before later runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.api._prepare import prepare

if TYPE_CHECKING:
    from runner.backends.base import VariantInfo
    from runner.capabilities.probe import ProbeResult


# probe


@dataclass
class VariantProbe:
    variant: str
    backend: str
    details: dict[str, Any]
    results: list[ProbeResult]
    warnings: list[str]


def probe(path: str | Path) -> list[VariantProbe]:
    """Measure what the server honours for each variant (seed, JSON schema, token counts, context,
    tokenizer parity on the experiment's own prompts);
    the results are stored, and later runs warn when the experiment relies on what was not."""
    import asyncio

    return asyncio.run(probe_async(path))


async def probe_async(path: str | Path) -> list[VariantProbe]:
    from runner.capabilities.probe import probe_variant, warnings_for
    from runner.capabilities.reference_tokenizer import configured_references, served_reference
    from runner.capabilities.tokenizer_parity import probe_tokenizer, sample_prompts
    from runner.store import Store

    p = prepare(path)
    references = configured_references(p.experiment)  # a broken tokenizer file stops here, before any model
    await p.backend.start()
    identity = json.dumps(p.experiment.backend.identity(), sort_keys=True)
    out = []
    try:
        store = Store.open(p.store_path)
        try:
            for variant in p.plan.variants():
                info: VariantInfo
                async with p.backend.serve(variant) as info:
                    found = await probe_variant(p.backend, variant)
                    reference = references.get(variant.model) or served_reference(
                        p.experiment, variant.model, info.details.get("file"))
                    found.append(await probe_tokenizer(p.backend, sample_prompts(p.plan, variant), reference))
                stored = [r.to_dict() for r in found]
                store.save_probe(identity, variant.identity, stored)
                out.append(VariantProbe(variant.label, p.experiment.backend.kind, dict(info.details), found,
                                        warnings_for(p.experiment, stored, variant)))
        finally:
            store.close()
    finally:
        await p.backend.close()
    return out
