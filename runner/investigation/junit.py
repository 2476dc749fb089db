"""JUnit XML of an investigation, for CI: the decision is the test that passes or fails.

- `decision: accuracy >= 0.60`: passes when the decision is viable; inadequate or not decidable is a
  failure whose message is the verdict and whose text is the decision's sentence (what
  `--fail-on-verdict` exits 3 for).
- one case per hypothesis (H1-H6): supported or refuted is an answer, so it passes with its reason;
  inconclusive or not tested is skipped with its reason (what would decide it). A hypothesis is a
  finding, not a bar to clear, so none of them fails the build.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from runner.investigation.report import InvestigationReport

ANSWERED = ("supported", "refuted")


def investigation_junit_xml(report: InvestigationReport) -> str:
    decision = report.decision
    failed = decision is None or decision.verdict != "viable"
    skipped = sum(1 for h in report.hypotheses if h.verdict not in ANSWERED)
    tests = 1 + len(report.hypotheses)
    suites = ET.Element("testsuites", name="runner", tests=str(tests), failures=str(int(failed)))
    suite = ET.SubElement(suites, "testsuite", name=report.name, tests=str(tests), failures=str(int(failed)),
                          errors="0", skipped=str(skipped))
    threshold = report.threshold
    case = ET.SubElement(suite, "testcase", classname=report.name,
                         name=f"decision: {threshold.metric} >= {threshold.min:g}")
    if decision is None:
        ET.SubElement(case, "failure", message="not decidable", type="not_decidable").text = (
            "no decision: no step has results yet; run the investigation first")
    elif failed:
        ET.SubElement(case, "failure", message=decision.verdict,
                      type=decision.verdict.replace(" ", "_")).text = decision.sentence
    else:
        ET.SubElement(case, "system-out").text = decision.sentence
    for h in report.hypotheses:
        case = ET.SubElement(suite, "testcase", classname=report.name, name=f"{h.id} {h.name}")
        if h.verdict in ANSWERED:
            ET.SubElement(case, "system-out").text = f"{h.verdict}: {h.why}"
        else:
            ET.SubElement(case, "skipped", message=h.verdict).text = h.why
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
