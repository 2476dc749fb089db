"""JUnit XML for CI systems: one test case per row judged against `report.threshold`.

A row shown to meet the bar passes; one below it, or not shown to meet it, or not judged, is a
failure whose message is the verdict's sentence (promptfoo writes the same kind of file).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from runner.reporting.tables import Report


def junit_xml(report: Report) -> str:
    verdicts = report.verdicts
    failures = sum(1 for v in verdicts if not v.met)
    suites = ET.Element("testsuites", name="runner", tests=str(len(verdicts)), failures=str(failures))
    suite = ET.SubElement(suites, "testsuite", name=report.experiment, tests=str(len(verdicts)),
                          failures=str(failures), errors="0", skipped="0")
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=report.experiment,
                             name=f"{v.row}: {v.metric} >= {v.threshold:g}")
        if not v.met:
            failure = ET.SubElement(case, "failure", message=v.status, type=v.status.replace(" ", "_"))
            failure.text = v.text
        else:
            ET.SubElement(case, "system-out").text = v.text
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
