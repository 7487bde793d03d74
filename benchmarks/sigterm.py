"""How fast a sweep answers SIGTERM: the chunk in flight, then a checkpoint, then exit 143.

    python benchmarks/sigterm.py [--tries 3] [--json benchmarks/results/...json]

For the demo and the paper slice (their default chunk sizes), each try starts
``supjax sweep`` on a fresh run directory, waits until it has trained its first chunk,
sends SIGTERM after a random further delay of 0 to 10 s, and times the exit.
"""

import argparse
import datetime
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from supjax import bench, results
from supjax.cli.toy import DEMO

parser = argparse.ArgumentParser()
parser.add_argument("--tries", type=int, default=3)
parser.add_argument("--json", help="write the results here")
args = parser.parse_args()

workloads = {"demo": DEMO, "paper-slice": bench.WORKLOADS["paper-slice"]}
rows = []
for name, spec in workloads.items():
    for attempt in range(args.tries):
        with tempfile.TemporaryDirectory() as tmp:
            config, out = Path(tmp) / "c.toml", Path(tmp) / "run"
            config.write_text(results.to_toml(spec.to_dict()))
            process = subprocess.Popen(
                [sys.executable, "-m", "supjax.cli", "sweep", str(config), "--out", str(out), "--quiet"],
                stderr=subprocess.PIPE,
                text=True,
            )
            while True:
                progress = out / "progress.json"
                if progress.is_file() and json.loads(progress.read_text())["step"] > 0:
                    break
                time.sleep(0.05)
            time.sleep(random.Random(attempt).uniform(0, 10))
            sent = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            code = process.wait()
            seconds = time.perf_counter() - sent
            step = json.loads((out / "progress.json").read_text())["step"]
            rows.append(
                {
                    "workload": name,
                    "try": attempt,
                    "exit_code": code,
                    "answer_s": seconds,
                    "step": step,
                    "message": process.stderr.read().strip().splitlines()[-1],
                }
            )
            print(f"{name}: exit {code} after {seconds:.1f} s at step {step}")
result = {"date": str(datetime.date.today()), "machine": "CPU, 2 cores", "tries": rows}
if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
