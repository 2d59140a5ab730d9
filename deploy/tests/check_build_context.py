#!/usr/bin/env python3
"""Check that the image can build: rebuild the Docker build context exactly as
`docker build` makes it from .dockerignore, copy it to a temporary directory, and
ask cargo whether the workspace there loads the way the Dockerfile builds it.

- The context: every file .dockerignore lets through, by BuildKit's rules (ported
  below from moby/patternmatcher and tonistiigi/fsutil, which `docker build` uses):
  patterns are anchored at the context root (`*.md` is the root's Markdown only),
  `*` and `?` stop at `/`, `**` spans directories, a pattern that matches a
  directory excludes everything under it, the last matching line wins, and a `!`
  line takes matches back (BuildKit only walks into an excluded directory when a
  `!` line could reach inside it).
- The workspace: `cargo metadata --locked --offline` in the copy (every member
  present, Cargo.lock in step with the manifests), and the packages quartet-transform,
  quartet-database, quartet-weather, quartet-chat and quartet-gateway each with a
  bin target of the same name (the Dockerfile builds `--bin quartet-$SERVICE`).
- The sources: every file a member embeds with include_str!/include_bytes! is in
  the context (cargo metadata does not read them; the build would).
- The Dockerfile: every FROM pins its image by digest.

No Docker engine is needed. cargo metadata runs offline with --filter-platform
(the host's Linux target): without it cargo wants the manifests of Windows-only
crates that no Linux build downloads; the crates it needs are in cargo's cache once
anything in the workspace has been built or checked (CI runs clippy first).

Usage: check_build_context.py [--ignore PATTERN]...
  --ignore adds a line at the end of .dockerignore for this run (the unit tests
  use it to prove that excluding a workspace member fails the check).
Exit status: 0 when everything passes, 1 otherwise (each problem printed).
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERIGNORE = REPO / ".dockerignore"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"

# The servers the Dockerfile builds: package quartet-$SERVICE, bin quartet-$SERVICE.
SERVER_PACKAGES = ("quartet-transform", "quartet-database", "quartet-weather", "quartet-chat", "quartet-gateway")


# ---------------------------------------------------------------------------
# .dockerignore, as moby/patternmatcher reads and matches it


def go_clean(path: str) -> str:
    """Go's filepath.Clean on a slash path (posixpath.normpath keeps a leading //)."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def read_dockerignore(text: str) -> list[str]:
    """ignorefile.ReadAll: a `#` in the first column starts a comment; lines are
    trimmed, cleaned and made relative to the context root; `!` keeps its place."""
    patterns = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


# Characters escaped when a pattern becomes a regular expression: special to
# regexps, with no meaning in a filepath.Match pattern.
_ESCAPED = set(".+()|{}$")


@dataclass
class Pattern:
    """One pattern, compiled as patternmatcher.Pattern.compile does: an exact
    path, a prefix (`dir/**`), a suffix (`**/name`) or a regular expression."""

    cleaned: str
    exclusion: bool
    kind: str = ""
    regex: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        regex = "^"
        kind = "exact"
        text = self.cleaned
        i = 0
        position = 0
        while position < len(text):
            char = text[position]
            position += 1
            if char == "*":
                if position < len(text) and text[position] == "*":
                    position += 1
                    if position < len(text) and text[position] == "/":
                        position += 1
                    if position >= len(text):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex += ".*"
                            kind = "regexp"
                    else:
                        regex += "(.*/)?"
                        kind = "regexp"
                    if i == 0:
                        kind = "suffix"
                else:
                    regex += "[^/]*"
                    kind = "regexp"
            elif char == "?":
                regex += "[^/]"
                kind = "regexp"
            elif char in _ESCAPED:
                regex += "\\" + char
            elif char == "\\":
                if position < len(text):
                    regex += "\\" + text[position]
                    position += 1
                    kind = "regexp"
                else:
                    regex += "\\"
            elif char in "[]":
                regex += char
                kind = "regexp"
            else:
                regex += char
            i += 1
        self.kind = kind
        if kind == "regexp":
            try:
                self.regex = re.compile(regex + "$")
            except re.error as error:
                raise ValueError(f"bad .dockerignore pattern {self.cleaned!r}: {error}") from error

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            # **/foo matches "foo"
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None, "a regexp pattern is compiled in __post_init__"
        return self.regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        """fsutil's patternWithoutTrailingGlob."""
        text = self.cleaned.removesuffix("/**")
        return text.removesuffix("/*")


@dataclass
class PatternMatcher:
    """patternmatcher.PatternMatcher over .dockerignore's patterns."""

    patterns: list[Pattern] = field(default_factory=list)

    @classmethod
    def new(cls, lines: list[str]) -> PatternMatcher:
        patterns = []
        for line in lines:
            text = line.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                text = text[1:]
            patterns.append(Pattern(text, exclusion))
        return cls(patterns)

    @property
    def exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches_using_parent_results(self, path: str, parent: list[bool] | None) -> tuple[bool, list[bool]]:
        """MatchesUsingParentResults: whether `path` is excluded, and what each
        pattern said, for its children. Without the parent's results (a path at
        the root) each parent directory is tried as MatchesOrParentMatches does."""
        matched = False
        info = [False] * len(self.patterns)
        for index, pattern in enumerate(self.patterns):
            match = bool(parent) and parent[index]
            if not match:
                if pattern.exclusion != matched:
                    continue
                match = pattern.match(path)
                if not match and not parent:
                    parent_path = posixpath.dirname(path)
                    if parent_path:
                        dirs = parent_path.split("/")
                        match = any(pattern.match("/".join(dirs[: i + 1])) for i in range(len(dirs)))
            info[index] = match
            if match:
                matched = not pattern.exclusion
        return matched, info

    def matches(self, path: str) -> bool:
        """Whether `path` (and so, for a directory, what is under it) is excluded,
        matching each of its parents first as a walk does."""
        parts = path.split("/")
        info: list[bool] | None = None
        matched = False
        for depth in range(len(parts)):
            matched, info = self.matches_using_parent_results("/".join(parts[: depth + 1]), info)
        return matched


# Characters that make a `!` line a glob rather than a plain path (fsutil).
_PATTERN_CHARS = set("*[]?^\\")


def context_files(root: Path, lines: list[str]) -> list[str]:
    """The files (and symlinks) BuildKit sends from `root`, relative slash paths,
    as fsutil's filterFS.Walk decides with .dockerignore's patterns."""
    matcher = PatternMatcher.new(lines)
    exceptions = [p for p in matcher.patterns if p.exclusion]
    only_prefix_exceptions = not any(_PATTERN_CHARS & set(p.without_trailing_glob()) for p in exceptions)
    found: list[str] = []

    def walk(directory: Path, relative: str, parent: list[bool] | None) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = f"{relative}/{entry.name}" if relative else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            excluded, info = matcher.matches_using_parent_results(path, parent)
            if excluded:
                if not is_dir:
                    continue
                if only_prefix_exceptions:
                    # BuildKit skips an excluded directory unless a `!` line
                    # names a path inside it.
                    inside = path + "/"
                    if not any((p.without_trailing_glob() + "/").startswith(inside) for p in exceptions):
                        continue
            if is_dir:
                walk(Path(entry.path), path, info)
            elif not excluded:
                found.append(path)

    walk(root, "", None)
    return found


# ---------------------------------------------------------------------------
# The checks


def copy_context(root: Path, files: list[str], destination: Path) -> int:
    """Copies the context's files; returns their size in bytes."""
    size = 0
    for relative in files:
        source = root / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
            size += target.stat().st_size
    return size


def host_target() -> str:
    """The host's Rust target (the image builds for Linux on the builder's arch)."""
    result = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("host: ") and "-linux-" in line:
            return line.removeprefix("host: ").strip()
    return "x86_64-unknown-linux-gnu"


def workspace_problems(workspace: Path) -> tuple[list[str], dict | None]:
    """`cargo metadata --locked --offline` in the copy, and the server binaries."""
    command = ["cargo", "metadata", "--locked", "--offline", "--format-version", "1",
               "--filter-platform", host_target()]
    result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip()
        if "--offline was specified" in detail:
            detail += "\n(cargo's cache lacks a crate: run `cargo fetch` once, then check again)"
        return [f"cargo metadata fails in the build context:\n{detail}"], None
    metadata = json.loads(result.stdout)
    problems = []
    packages = {package["name"]: package for package in metadata["packages"]
                if package["id"] in metadata["workspace_members"]}
    for name in SERVER_PACKAGES:
        package = packages.get(name)
        if package is None:
            problems.append(f"package {name} is not a workspace member in the build context")
            continue
        bins = {target["name"] for target in package["targets"] if "bin" in target["kind"]}
        if name not in bins:
            problems.append(f"package {name} has no bin target {name} (bins: {sorted(bins) or 'none'})")
    return problems, metadata


_INCLUDE = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)')


def embedded_file_problems(workspace: Path, metadata: dict) -> list[str]:
    """Files the members embed at compile time that the context left out."""
    problems = []
    for package in metadata["packages"]:
        if package["id"] not in metadata["workspace_members"]:
            continue
        member = Path(package["manifest_path"]).parent
        for source in sorted(member.rglob("*.rs")):
            for included in _INCLUDE.findall(source.read_text(encoding="utf-8", errors="replace")):
                if not (source.parent / included).exists():
                    where = source.relative_to(workspace)
                    problems.append(f"{where} embeds {included!r}, which is not in the build context")
    return problems


_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
_STAGE = re.compile(r"^\s*FROM\s+.*?\s+AS\s+(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def dockerfile_problems(text: str) -> list[str]:
    """Every base image is pinned by digest (earlier stages and scratch aside)."""
    stages = {name.lower() for name in _STAGE.findall(text)}
    problems = []
    for image in _FROM.findall(text):
        if image.lower() in stages or image == "scratch":
            continue
        if not _DIGEST.search(image):
            problems.append(f"Dockerfile: FROM {image} is not pinned by digest (image:tag@sha256:...)")
    return problems


def check(extra_ignores: list[str], dockerignore: str | None = None) -> tuple[str, list[str]]:
    """(summary, problems) for the repository's build context, from .dockerignore
    (or the given text in its place) plus `extra_ignores` lines at its end."""
    if dockerignore is None:
        dockerignore = DOCKERIGNORE.read_text(encoding="utf-8") if DOCKERIGNORE.exists() else ""
    lines = read_dockerignore(dockerignore + "\n" + "\n".join(extra_ignores))
    problems = dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8"))
    try:
        files = context_files(REPO, lines)
    except ValueError as error:
        return "unreadable .dockerignore", problems + [str(error)]
    with tempfile.TemporaryDirectory(prefix="quartet-context-") as temporary:
        workspace = Path(temporary)
        size = copy_context(REPO, files, workspace)
        summary = f"{len(files)} files, {size / 2**20:.1f} MiB"
        found, metadata = workspace_problems(workspace)
        problems += found
        if metadata is not None:
            problems += embedded_file_problems(workspace, metadata)
            summary += f", {len(metadata['workspace_members'])} workspace members"
    return summary, problems


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                        help="an extra .dockerignore line for this run")
    options = parser.parse_args(arguments)
    summary, problems = check(options.ignore)
    status = "ok" if not problems else f"{len(problems)} problem(s)"
    print(f"build context: {status} ({summary})")
    for problem in problems:
        print(f"  {problem}")
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
