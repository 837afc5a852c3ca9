"""Summarise a py-spy collapsed-stack file (`py-spy record --format raw`) into shares.

    .venv/bin/python bench/py_spy_summary.py /tmp/spy/single.txt [--top 25]

Prints, per function (file:name), the share of samples in which it is on the stack (inclusive)
and the share in which it is the innermost frame (self), busiest first. Idle samples (a worker
waiting in accept/select for a request) are counted apart and left out of the shares.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

IDLE = re.compile(r"\b(select|accept|wait_for_readable|sleep|run_for_one|poll)\b.*\((gunicorn|selectors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = idle = 0
    with open(args.path, encoding="utf-8") as lines:
        text = lines.read().splitlines()
    for line in text:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames or IDLE.search(frames[-1]):
            idle += samples
            continue
        total += samples
        names = []
        for frame in frames:
            found = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
            name = f"{found.group(2).split('site-packages/')[-1].split('wt-speed/')[-1]}:{found.group(1)}" if found else frame
            names.append(name)
        for name in set(names):
            inclusive[name] += samples
        own[names[-1]] += samples
    print(f"{total} busy samples, {idle} idle samples left out")
    print("inclusive share | self share | function")
    for name, samples in inclusive.most_common(args.top):
        print(f"{samples / total:7.1%} | {own[name] / total:6.1%} | {name}")
    print("\nself share (innermost frame) | function")
    for name, samples in own.most_common(args.top):
        print(f"{samples / total:7.1%} | {name}")


if __name__ == "__main__":
    main()
