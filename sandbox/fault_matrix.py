"""Write docs/reliability.md's fault table from the observations of the mail_faults and mail_spool_faults targets.

Each target appends one JSON line per case to ``<state_dir>/fault_matrix.jsonl``; the last line of each case wins.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

BEGIN = "<!-- fault-matrix:begin -->"
END = "<!-- fault-matrix:end -->"


def _cell(value: object) -> str:
    text = "—" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(lines: list[str]) -> str:
    """The Markdown table of the cases, in the order they ran."""
    cases: dict[str, dict] = {}
    for line in lines:
        if line.strip():
            row = json.loads(line)
            cases[row["case"]] = row
    out = ["| case | expected error | expected copies | observed error | observed copies | attempts | result |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in cases.values():
        ok = row["expected_error"] == row["error"] and row["expected_stored"] == row["stored"]
        out.append("| " + " | ".join(_cell(value) for value in (
            row["case"], row["expected_error"] or "none (delivered)", row["expected_stored"], row["error"] or "none",
            row["stored"], row["attempts"], "as expected" if ok else "DIFFERS")) + " |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--doc", required=True, type=Path)
    args = parser.parse_args()
    observations = (args.state_dir / "fault_matrix.jsonl").read_text(encoding="utf-8").splitlines()
    doc = args.doc.read_text(encoding="utf-8")
    before, _, rest = doc.partition(BEGIN)
    _, _, after = rest.partition(END)
    machine = f"Observed on {platform.system()} {platform.machine()}, Python {platform.python_version()}."
    args.doc.write_text(f"{before}{BEGIN}\n{machine}\n\n{render_table(observations)}\n{END}{after}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
