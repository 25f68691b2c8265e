#!/usr/bin/python3
"""Fails if a file of the project refers to the folder outside it that the project once read from.

A clone of the project alone must build and pass its tests, so no tracked file may point at
`../shared` (or its absolute place on the development machine). In a git checkout the tracked
files (`git ls-files`) are scanned; in a source tree without git (a release tarball) every file
under the source root is, except build directories and `.git`.

Usage: tests/self_contained.py SOURCE_ROOT
"""
import os
import subprocess
import sys

# Written split so that this file does not match itself even if it were not excluded by name.
PATTERNS = [b"../" + b"shared", b"/work/" + b"shared"]
SELF = os.path.abspath(__file__)


def tracked_files(root):
    """The tracked files, or None when `root` is not a git checkout (or git is missing)."""
    try:
        inside = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"],
                                capture_output=True, text=True)
    except FileNotFoundError:
        return None
    if inside.returncode != 0 or os.path.realpath(inside.stdout.strip()) != os.path.realpath(root):
        return None
    out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True, check=True).stdout
    return [os.path.join(root, p) for p in out.decode().split("\0") if p]


def all_files(root):
    for directory, subdirs, files in os.walk(root):
        # A meson build directory holds meson-private/; skip it and git's own files.
        subdirs[:] = [d for d in subdirs
                      if d != ".git" and not os.path.isdir(os.path.join(directory, d, "meson-private"))]
        for name in files:
            yield os.path.join(directory, name)


def offending_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        return []  # deleted in the work tree but still tracked, or a submodule
    hits = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if any(p in line for p in PATTERNS):
            hits.append((number, line.decode("utf-8", "replace").strip()))
    return hits


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(SELF), ".."))
    files = tracked_files(root)
    how = "tracked files (git ls-files)"
    if files is None:
        files, how = list(all_files(root)), "files under the source root (not a git checkout)"
    files = [f for f in files if os.path.abspath(f) != SELF]
    bad = [(os.path.relpath(f, root), n, text) for f in files for n, text in offending_lines(f)]
    for path, number, text in bad:
        print(f"{path}:{number}: refers to a folder outside the project: {text[:160]}")
    if bad:
        print(f"{len(bad)} reference(s) to ../shared in {how}; the project must stand alone "
              "(test vectors are in tests/vectors/, format facts in docs/infra-format.md)")
        return 1
    print(f"ok: none of {len(files)} {how} refers to ../shared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
