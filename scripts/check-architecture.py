#!/usr/bin/env python3
"""Checks the shape of the workspace (run by .ci/run):

1. no import circle between the modules (files) of a crate;
2. no production .rs file over the line limit (tests may be longer);
3. lull-engine depends on no I/O or runtime crate (`cargo tree`).

Usage: scripts/check-architecture.py [--max-lines N] [--no-tree]
Exits 1 and lists every finding when one fails.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["proto", "engine", "client", "common", "agent", "coordinator", "cli"]
FORBIDDEN = ["tokio", "async-nats", "tokio-postgres", "deadpool-postgres",
             "metrics", "metrics-exporter-prometheus", "tracing", "postgres"]

USE_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
MOD_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_0-9]+)\s*;", re.M)
PATH_ATTR_RE = re.compile(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_0-9]+)\s*;')


def strip_tests(src):
    """Drops `#[cfg(test)] mod tests { ... }` blocks and comments."""
    src = re.sub(r"//[^\n]*", "", src)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", src):
        if m.start() < i:
            continue
        out.append(src[i:m.start()])
        depth, j = 1, m.end()
        while j < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            j += 1
        i = j
    out.append(src[i:])
    return "".join(out)


def is_test_file(path):
    base = os.path.basename(path)
    return (base.endswith("_tests.rs") or base == "tests.rs" or base.endswith("_proptest.rs")
            or "/tests/" in path or "/benches/" in path)


def modules(crate_dir):
    """Maps module path tuples to files for one crate."""
    src = os.path.join(crate_dir, "src")
    mods = {}
    roots = [r for r in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, r))]
    for root in roots[:1]:
        walk(os.path.join(src, root), (), mods, is_root=True)
    return mods


def walk(path, mpath, mods, is_root=False):
    if path in mods.values():
        return
    mods[mpath] = path
    text = open(path, encoding="utf-8").read()
    code = strip_tests(text)
    if is_root or os.path.basename(path) == "mod.rs":
        here = os.path.dirname(path)
    else:
        here = os.path.splitext(path)[0]
    attrs = {name: p for p, name in PATH_ATTR_RE.findall(code)}
    for name in MOD_RE.findall(code):
        if name in attrs:
            child = os.path.join(os.path.dirname(path), attrs[name])
        else:
            child = os.path.join(here, name + ".rs")
            if not os.path.exists(child):
                child = os.path.join(here, name, "mod.rs")
        if os.path.exists(child):
            walk(child, mpath + (name,), mods)


def resolve(mpath, ref, known):
    """The longest known module a `crate::`/`super::` path names."""
    head, rest = ref
    parts = [p for p in rest.split("::") if p]
    if head == "crate":
        base = ()
    elif head == "self":
        base = mpath
    else:
        base = mpath[:-1]
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
    best = None
    for k in range(len(parts) + 1):
        cand = base + tuple(parts[:k])
        if cand in known:
            best = cand
    return best


def import_cycles(crate):
    mods = modules(os.path.join(ROOT, crate))
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        code = strip_tests(open(path, encoding="utf-8").read())
        # `use a::{b, c::d}`: expand one level of braces.
        for um in re.finditer(r"\b(crate|super|self)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)::\{([^;]*?)\}", code):
            for item in re.split(r",", um.group(3)):
                item = item.strip().split(" as ")[0].strip()
                if not item or item == "self" or "{" in item:
                    continue
                t = resolve(m, (um.group(1), um.group(2) + "::" + item.split("::")[0]), mods)
                if t is not None and t != m and not is_ancestor(t, m):
                    graph[m].add(t)
        for um in re.finditer(r"\b(crate|super)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)", code):
            t = resolve(m, (um.group(1), um.group(2)), mods)
            if t is not None and t != m and not is_ancestor(t, m):
                graph[m].add(t)
    return [sorted(mods[n] for n in scc) for scc in sccs(graph) if len(scc) > 1]


def is_ancestor(a, b):
    """A parent module (its mod.rs) re-exporting children is not a cycle edge
    when the child refers up to it for shared items; only sibling and
    cross-tree edges count."""
    return len(a) < len(b) and b[:len(a)] == a and False


def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def long_files(max_lines):
    found = []
    for crate in CRATES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, crate, "src")):
            for f in files:
                p = os.path.join(dirpath, f)
                if not f.endswith(".rs") or is_test_file(p) or "/bin/" in p:
                    continue
                n = strip_tests(open(p, encoding="utf-8").read()).count("\n")
                if n > max_lines:
                    found.append((n, os.path.relpath(p, ROOT)))
    return sorted(found, reverse=True)


def engine_tree():
    out = subprocess.run(["cargo", "tree", "-p", "lull-engine", "-e", "normal", "--prefix", "none"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    return sorted(n for n in names if n in FORBIDDEN)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-lines", type=int, default=600)
    ap.add_argument("--no-tree", action="store_true")
    ap.add_argument("--largest", type=int, default=0, help="print the N largest production files")
    a = ap.parse_args()
    failed = False
    for crate in CRATES:
        for cyc in import_cycles(crate):
            failed = True
            print(f"import circle in {crate}: " + " <-> ".join(os.path.relpath(p, ROOT) for p in cyc))
    for n, p in long_files(a.max_lines):
        failed = True
        print(f"{p}: {n} lines of production code (limit {a.max_lines})")
    if a.largest:
        for n, p in long_files(0)[: a.largest]:
            print(f"  {n:5d} {p}")
    if not a.no_tree:
        bad = engine_tree()
        if bad:
            failed = True
            print("lull-engine depends on: " + ", ".join(bad))
    if failed:
        sys.exit(1)
    print("architecture: no import circle, no production file over "
          f"{a.max_lines} lines" + ("" if a.no_tree else ", lull-engine pure"))


if __name__ == "__main__":
    main()
