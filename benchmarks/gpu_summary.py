"""Summarise a gpu_suite.sh run as markdown: each step's exit code and time, then every result table.

    python benchmarks/gpu_summary.py SUITE_LOG RESULTS_FOLDER
"""
import json
import re
import sys
from pathlib import Path


def steps(log_text):
    rows = re.findall(r"^=== (\S+): exit (\d+) after (\d+) s(.*)$", log_text, re.MULTILINE)
    lines = ["| step | result | seconds |", "|---|---|---:|"]
    for name, code, seconds, note in rows:
        result = "passed" if code == "0" else f"FAILED (exit {code}){note}"
        lines.append(f"| {name} | {result} | {seconds} |")
    return lines


def table(rows):
    """A list of dicts (or of lists) as a markdown table of its scalar columns."""
    if rows and isinstance(rows[0], (list, tuple)):
        return ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    columns = [key for key, value in rows[0].items() if not isinstance(value, dict)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row.get(column)) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def target_lines(data):
    """The benchmark's targets, as ratios (batch norm's are columns of its table)."""
    targets = data.get("targets") or data.get("checks", {}).get("targets") or {}
    lines = ["", "targets (ratio; 1.00 or the wanted value and above: met):", ""] if targets else []
    for name, value in targets.items():
        lines.append(f"- {name}: " + (f"{value['ratio']:.2f}, wanted {value['wanted']}" if isinstance(value, dict)
                                       else f"{value:.2f}"))
    return lines


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "x".join(str(item) for item in value)
    return str(value)


def main(log_path, results):
    log_text = Path(log_path).read_text(errors="replace")
    environment = log_text.split("=== environment", 1)[-1].split("===", 1)[0].strip()
    lines = ["# GPU suite", "", "```", environment, "```", ""] + steps(log_text)
    for path in sorted(Path(results).glob("*.json")):
        data = json.loads(path.read_text())
        rows = next((data[key] for key in ("rows", "results") if isinstance(data.get(key), list) and data[key]), None)
        lines += ["", f"## {path.name}", ""]
        copy = data.get("copy_gb_per_s") or data.get("meta", {}).get("copy_gb_s")
        if copy:
            lines += [f"device-to-device copy, same run: {copy:.0f} GB/s", ""]
        lines += table(rows) if rows else ["(no table in this file)"]
        lines += target_lines(data)
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:3])
