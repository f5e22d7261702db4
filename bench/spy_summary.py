"""Summarise py-spy's collapsed stacks (``py-spy record -f raw``): the share of samples under each frame.

    python bench/spy_summary.py worker.txt [more.txt ...] [--top 25]

A sample counts for a frame when that frame is anywhere on its stack (inclusive time), so shares
overlap. Frames are ``function (file)`` with the file shortened to its package path.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/bench/", "/work/wt/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def load(paths: list[Path]) -> tuple[Counter[str], int]:
    inclusive: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            for frame in {short(f) for f in stack.split(";")}:
                inclusive[frame] += n
    return inclusive, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--grep", help="only frames whose text contains this")
    args = parser.parse_args(argv)
    inclusive, total = load(args.files)
    print(f"{total} samples")
    shown = 0
    for frame, n in inclusive.most_common():
        if args.grep and args.grep not in frame:
            continue
        print(f"{100 * n / total:6.1f} %  {frame}")
        shown += 1
        if shown >= args.top:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
