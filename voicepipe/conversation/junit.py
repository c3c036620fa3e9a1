"""Conversation results as JUnit XML: one test suite per conversation, one test case per turn."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from voicepipe.conversation.runner import ConversationResult
from voicepipe.diskwrite import write_whole


def junit_xml(results: list[ConversationResult]) -> str:
    root = ET.Element("testsuites", name="voicepipe conversations")
    for result in results:
        failures = sum(1 for turn in result.turns if not turn.passed)
        suite = ET.SubElement(root, "testsuite", name=result.conversation.name, tests=str(max(1, len(result.turns))),
                              failures=str(failures), errors="1" if result.error else "0",
                              time=f"{result.seconds:.3f}", file=str(result.conversation.path))
        if result.run_dir is not None:
            properties = ET.SubElement(suite, "properties")
            ET.SubElement(properties, "property", name="run_folder", value=str(result.run_dir))
        if result.error and not result.turns:
            case = ET.SubElement(suite, "testcase", classname=result.conversation.name, name="conversation")
            ET.SubElement(case, "error", message=result.error).text = result.error
            continue
        for turn in result.turns:
            case = ET.SubElement(suite, "testcase", classname=result.conversation.name,
                                 name=f"turn {turn.index + 1}: {turn.label}")
            failed = [check for check in turn.checks if not check.passed]
            if failed:
                text = "\n".join(f"{check.kind}: {check.message}" for check in failed)
                ET.SubElement(case, "failure", message=text.splitlines()[0]).text = text
        if result.error:
            ET.SubElement(suite, "system-err").text = result.error
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(results: list[ConversationResult], path: str | Path) -> None:
    write_whole(Path(path), junit_xml(results))  # whole or not at all
