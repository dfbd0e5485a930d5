"""Run every ``tests/bench/bench_*.py`` and write reports/bench.md and reports/bench.json.

Each bench module defines ``TITLE`` and ``run() -> list[dict]``; each dict is one
measurement: ``name``, ``value``, ``unit``, ``how`` (how it was measured), and
optionally ``target`` (text) and ``met`` (bool). Benchmarks report; they never fail
the build on a number.

Usage: python tests/bench/run.py [--out DIR] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(mod)
    return mod


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="reports")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sections": [],
    }
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and args.only not in path.stem:
            continue
        print(f"bench: {path.stem} ...", flush=True)
        t0 = time.perf_counter()
        try:
            mod = _load(path)
            rows = mod.run()
            title = getattr(mod, "TITLE", path.stem)
        except Exception:  # a broken bench is reported, and the others still run
            traceback.print_exc()
            failed.append(path.stem)
            continue
        report["sections"].append(
            {"module": path.stem, "title": title, "seconds": time.perf_counter() - t0, "rows": rows}
        )
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# paytoken benchmark report",
        "",
        f"Run {report['started_utc']} on {report['machine']['platform']} "
        f"(Python {report['machine']['python']}).",
        "",
    ]
    for sec in report["sections"]:
        lines += [f"## {sec['title']}", "", "| measurement | value | unit | target | how |", "|---|---|---|---|---|"]
        for r in sec["rows"]:
            target = r.get("target", "")
            if "met" in r:
                target = f"{target} ({'met' if r['met'] else 'NOT met'})"
            lines.append(
                f"| {r['name']} | {_fmt(r['value'])} | {r.get('unit', '')} | {target} | {r.get('how', '')} |"
            )
        lines.append("")
    if failed:
        lines += ["## Benchmarks that failed to run", "", *(f"- {f}" for f in failed), ""]
    (out / "bench.md").write_text("\n".join(lines))
    print(f"bench: wrote {out / 'bench.md'} and {out / 'bench.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
