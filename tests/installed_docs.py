#!/usr/bin/python3
"""Fails if the installed binary or man page points an operator at a document `meson install` did not install.

Installs the build into a temporary DESTDIR, then collects every path under the docdir that the
installed man page, `infra-keys --help`, each command's `--help`, and the strings compiled into the
binary (error hints included) name, and checks each one exists in the installed tree. Also fails on
a mention of "the README" or "docs/" that is not such a path, and on a relative link in an
installed Markdown file that leads nowhere in the installed tree.

Usage: tests/installed_docs.py MESON BUILD_DIR DOCDIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def installed_paths(meson, build):
    """{build file: absolute install path} as `meson introspect --installed` reports it."""
    out = subprocess.run([meson, "introspect", build, "--installed"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def in_destdir(destdir, path):
    return os.path.join(destdir, os.path.relpath(path, "/"))


def one_installed(installed, suffix):
    found = [p for p in installed.values() if p.endswith(suffix)]
    if len(found) != 1:
        sys.exit(f"expected one installed file ending in {suffix}, found {found}")
    return found[0]


def man_text(path):
    """The man page source with groff's escapes that may sit inside a path removed."""
    with open(path) as f:
        text = f.read()
    for escape, plain in (("\\-", "-"), ("\\%", ""), ("\\fI", ""), ("\\fB", ""), ("\\fR", ""), ("\\fP", "")):
        text = text.replace(escape, plain)
    return text


def help_texts(binary):
    """`infra-keys --help` and every command's `--help`, by command."""
    top = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    commands = re.findall(r"^  ([a-z][a-z-]+)\s", top.split("Subcommands:", 1)[1], re.MULTILINE)
    if len(commands) < 5:
        sys.exit(f"could not read the commands from `infra-keys --help`:\n{top}")
    texts = {"--help": top}
    for command in commands:
        texts[f"{command} --help"] = subprocess.run([binary, command, "--help"], capture_output=True, text=True,
                                                    check=True).stdout
    return texts


def binary_strings(binary):
    """The printable runs of the binary: every message and hint it can print is among them."""
    with open(binary, "rb") as f:
        data = f.read()
    return "\n".join(s.decode() for s in re.findall(rb"[\x20-\x7e]{6,}", data))


def doc_path_pattern(docdir):
    return re.escape(docdir) + r"[^\s\"'`,;:()\\]*"


def doc_references(text, docdir):
    return {r.rstrip(".") for r in re.findall(doc_path_pattern(docdir), text)}


def stray_mentions(text, docdir):
    """Mentions of the README or of docs/ that do not name the installed path."""
    without = re.sub(doc_path_pattern(docdir), "", text)
    return re.findall(r"[^\n]{0,40}(?:\bthe README\b|\bREADME\b|(?<![\w/])docs/)[^\n]{0,40}", without)


def markdown_links(path):
    with open(path) as f:
        text = f.read()
    return [link for link in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", link) and not link.startswith("#")]


def main():
    meson, build, docdir = sys.argv[1:4]
    failures = []
    with tempfile.TemporaryDirectory(prefix="infra-keys-install-") as destdir:
        subprocess.run([meson, "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", destdir],
                       check=True, stdout=subprocess.DEVNULL)
        installed = installed_paths(meson, build)
        binary = in_destdir(destdir, one_installed(installed, "/bin/infra-keys"))
        man = in_destdir(destdir, one_installed(installed, "/man1/infra-keys.1"))

        sources = {"man page": man_text(man), "binary": binary_strings(binary)}
        sources.update(help_texts(binary))
        references = {}
        for source, text in sources.items():
            refs = doc_references(text, docdir)
            for ref in refs:
                references.setdefault(ref, []).append(source)
            for mention in stray_mentions(text, docdir):
                failures.append(f"{source}: names a document without its installed path: {mention.strip()!r}")
        # Where an operator is pointed at the documentation at all; without these the check proves nothing.
        for source in ("man page", "binary", "--help", "verify --help"):
            if not doc_references(sources[source], docdir):
                failures.append(f"{source}: names nothing under {docdir}")

        for ref, where in sorted(references.items()):
            if not os.path.exists(in_destdir(destdir, ref)):
                failures.append(f"{ref} (named by {', '.join(sorted(set(where)))}) is not installed")

        installed_docdir = in_destdir(destdir, docdir)
        markdown = [os.path.join(d, f) for d, _, files in os.walk(installed_docdir) for f in files if f.endswith(".md")]
        for path in markdown:
            for link in markdown_links(path):
                target = os.path.normpath(os.path.join(os.path.dirname(path), link.split("#")[0]))
                if not os.path.exists(target):
                    failures.append(f"{os.path.relpath(path, installed_docdir)}: link {link} leads nowhere once installed")

    for failure in failures:
        print(failure)
    if failures:
        return 1
    print(f"ok: {len(references)} documents named by the man page, {len(sources) - 2} --help texts and "
          f"the binary are installed; {len(markdown)} installed Markdown files link only to installed files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
