"""The peers' results as a Markdown table, and the machine stamp every JSON of run.sh carries.

    python benchmarks/peers/table.py DIR            # one table per workload, to stdout
    python benchmarks/peers/table.py --stamp DIR    # add "machine" (and "trainer") to supjax's JSONs

Rows: supjax (float32, bfloat16), the paper's loop (from supjax's float32 ``--baseline`` file)
and every peer; columns: model-steps/s and supjax's ratio to it (supjax's rate / its rate),
for supjax in float32 and in bfloat16. Standard library only (runs with any python).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path


def machine() -> dict:
    """The CPU model (from /proc/cpuinfo), its logical core count and the kernel."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def trainer(result: dict) -> str:
    """A result's trainer: its own ``trainer`` key, else supjax's (``supjax bench`` writes none)."""
    return result.get("trainer") or f"supjax-{result['precision']}"


def stamp(directory: Path) -> None:
    """Add ``machine`` and ``trainer`` to every JSON in ``directory`` that lacks them."""
    for path in sorted(directory.glob("*.json")):
        result = json.loads(path.read_text())
        if "machine" not in result or "trainer" not in result:
            result = {"trainer": trainer(result), **result, "machine": result.get("machine", machine())}
            path.write_text(json.dumps(result, indent=1) + "\n")


def rows(results: list[dict]) -> list[tuple[str, str, float]]:
    """(trainer, precision, model-steps/s): supjax first, then the paper's loop, then the peers."""
    out = []
    for r in results:
        out.append((trainer(r), r["precision"], r["model_steps_per_s"]))
        if "baseline" in r:
            out.append(("paper loop (paper's data recipe)", r["precision"], r["baseline"]["model_steps_per_s"]))
            out.append(("paper loop (supjax's sampler)", r["precision"], r["baseline_sampler"]["model_steps_per_s"]))
    order = ("supjax", "paper", "torch")

    def key(row):  # supjax, the paper's loop, the peers; eager before compiled, float32 before bf16
        group = next((i for i, k in enumerate(order) if row[0].startswith(k)), len(order))
        return group, "compiled" in row[0], row[1] != "float32", row[0]

    return sorted(out, key=key)


def table(results: list[dict]) -> str:
    """One Markdown table of ``results`` (one workload)."""
    first = results[0]
    found = {trainer(r): r["model_steps_per_s"] for r in results}
    ours = {p: found.get(f"supjax-{p}") for p in ("float32", "bfloat16")}
    lines = [
        f"{first['workload']} (n = {first.get('n')}, B = {first.get('batch_size')}), {first['date']}, "
        f"{first.get('machine', {}).get('cpu', first['device'])}, {first.get('machine', {}).get('cores', '?')} cores",
        "",
        "| trainer | precision | model-steps/s | supjax float32 / it | supjax bfloat16 / it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, precision, rate in rows(results):
        ratios = [f"{ours[p] / rate:.2f}x" if ours[p] else "" for p in ("float32", "bfloat16")]
        lines.append(f"| {name} | {precision} | {rate:.1f} | {ratios[0]} | {ratios[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--stamp", action="store_true", help="add machine and trainer to the JSONs, print nothing")
    args = parser.parse_args()
    if args.stamp:
        stamp(args.directory)
        return
    results = [json.loads(p.read_text()) for p in sorted(args.directory.glob("*.json"))]
    if not results:
        raise SystemExit(f"no JSON results in {args.directory}")
    workloads = sorted({r["workload"] for r in results})
    print("\n\n".join(table([r for r in results if r["workload"] == w]) for w in workloads))


if __name__ == "__main__":
    main()
