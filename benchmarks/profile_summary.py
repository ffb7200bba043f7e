"""Summarise a ``py-spy record -f raw`` profile (collapsed stacks): top functions by self and inclusive samples.

Profile the server under load, then summarise:
    .venv/bin/py-spy record -p <server pid> -d 15 -r 250 -f raw -o /tmp/prof.txt --nonblocking &
    .venv/bin/python benchmarks/load.py --url ... --concurrency 16 --stream --duration 15
    .venv/bin/python benchmarks/profile_summary.py /tmp/prof.txt [--top 30] [--match modelyard]

Idle samples (the event loop waiting in ``select``/``epoll``) are counted apart so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once \(uvloop|run_forever \(uvloop)")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """``func (path/to/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``; lines dropped so a function is one entry."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only list functions whose entry contains this text")
    args = parser.parse_args()
    self_count: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in Path(args.profile).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f.strip()]
        leaf = frames[-1] if frames else "?"
        if IDLE.search(leaf) or not frames:
            idle += count
            continue
        busy += count
        self_count[leaf] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"samples: busy {busy}, idle {idle}")
    for title, counter in (("self", self_count), ("inclusive", inclusive)):
        print(f"\n## top by {title} samples (share of busy samples)")
        shown = 0
        for frame, count in counter.most_common():
            if args.match and args.match not in frame:
                continue
            print(f"{100 * count / max(busy, 1):5.1f}%  {frame}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
