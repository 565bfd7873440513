#!/usr/bin/env python3
"""Keeps the code blocks of a docs page equal to regions of a compiled, tested source file.

In the page, a line `<!-- snippet: <source path>#<name> -->` is followed by a ```cpp block; in the
source, the region sits between `// [<name>]` and `// [end <name>]` (dedented). ctest runs the check;
`--write` rewrites the blocks from the sources.

usage: check-doc-snippets.py [--write] <page.md> [...]
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = re.compile(r"^<!-- snippet: (\S+)#(\S+) -->$")


def region(path, name):
    lines = open(os.path.join(ROOT, path)).read().splitlines()
    try:
        start = lines.index(next(l for l in lines if l.strip() == f"// [{name}]"))
        end = lines.index(next(l for l in lines if l.strip() == f"// [end {name}]"))
    except StopIteration:
        sys.exit(f"{path}: no region '{name}' (// [{name}] ... // [end {name}])")
    body = lines[start + 1:end]
    indent = min(len(l) - len(l.lstrip()) for l in body if l.strip())
    return [l[indent:] for l in body]


def process(page, write):
    lines = open(page).read().splitlines()
    out, errors, i, count = [], [], 0, 0
    while i < len(lines):
        out.append(lines[i])
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        count += 1
        if i + 1 >= len(lines) or lines[i + 1] != "```cpp":
            sys.exit(f"{page}:{i + 1}: a ```cpp block must follow the snippet mark")
        end = i + 2
        while end < len(lines) and lines[end] != "```":
            end += 1
        want = region(m.group(1), m.group(2))
        if lines[i + 2:end] != want:
            errors.append(f"{page}:{i + 1}: block differs from {m.group(1)}#{m.group(2)}")
        out += ["```cpp"] + want + ["```"]
        i = end + 1
    if write:
        open(page, "w").write("\n".join(out) + "\n")
    elif errors:
        sys.exit("\n".join(errors) + "\n(scripts/check-doc-snippets.py --write " + page + ")")
    if count == 0:
        sys.exit(f"{page}: no snippet marks")
    print(f"{page}: {count} snippets {'written' if write else 'match their sources'}")


def main():
    args = sys.argv[1:]
    write = "--write" in args
    for page in [a for a in args if a != "--write"]:
        process(page, write)


if __name__ == "__main__":
    main()
