#!/usr/bin/env python3
"""Fails if a crate's top-level modules import each other in a circle.

Usage: scripts/module_cycles.py crates/<crate>/src ...

A module's imports are the `crate::<module>` paths in its files (comments and the unit
tests at the end of a file aside). Parent and child modules (`service/mod.rs` and
`service/agents.rs`) are one module here: only imports between top-level modules count.
"""

import os
import re
import sys


def imports(src):
    edges = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            top = os.path.relpath(path, src)[:-3].split(os.sep)[0]
            if top in ("lib", "main"):
                continue
            with open(path) as f:
                lines = [l for l in f.read().split("\n") if not l.strip().startswith("//")]
            text = "\n".join(lines)
            tests = text.find("#[cfg(test)]\nmod tests")
            if tests >= 0:
                text = text[:tests]
            used = set(re.findall(r"crate::(\w+)", text))
            for group in re.findall(r"crate::\{([^}]*)\}", text):
                used.update(re.findall(r"(\w+)", group))
            edges.setdefault(top, set()).update(m for m in used if m != top)
    return edges


def cycles(edges):
    state, stack, found = {}, [], []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for other in sorted(edges.get(module, ())):
            if state.get(other) == "open":
                found.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def main():
    failed = False
    for src in sys.argv[1:]:
        for cycle in cycles(imports(src)):
            print(f"{src}: import cycle {' -> '.join(cycle)}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
