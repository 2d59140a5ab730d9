"""The build-context check must see what `docker build` sends: the matcher is held
to Docker's documented rules (and to BuildKit's walk where it differs), and the
whole check is run against .dockerignore files that leave a workspace member out,
which it must refuse.

Run: python3 -m unittest discover -s deploy/tests   (needs cargo; no Docker)
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_build_context as context  # noqa: E402


def excluded(patterns: str, path: str) -> bool:
    return context.PatternMatcher.new(context.read_dockerignore(patterns)).matches(path)


class DockerignoreRules(unittest.TestCase):
    def test_patterns_are_anchored_at_the_root(self) -> None:
        self.assertTrue(excluded("*.md", "README.md"))
        self.assertFalse(excluded("*.md", "docs/operations.md"))
        self.assertTrue(excluded("/docs", "docs/operations.md"))

    def test_star_and_question_mark_stop_at_a_slash(self) -> None:
        self.assertFalse(excluded("services/*.rs", "services/chat/src/lib.rs"))
        self.assertTrue(excluded("services/*/Cargo.toml", "services/chat/Cargo.toml"))
        self.assertTrue(excluded("ca?go.lock", "cargo.lock"))
        self.assertFalse(excluded("a?b", "a/b"))

    def test_double_star_spans_directories_or_none(self) -> None:
        self.assertTrue(excluded("**/target", "target/debug/quartet"))
        self.assertTrue(excluded("**/target", "bench/bare/target/x"))
        self.assertFalse(excluded("**/target", "services/mytarget"))
        self.assertTrue(excluded("**/*.profraw", "default.profraw"))
        self.assertTrue(excluded("**/*.profraw", "a/b/c.profraw"))
        self.assertTrue(excluded("docs/**", "docs/a/b.md"))
        self.assertTrue(excluded("services/**/fixtures", "services/chat/tests/fixtures/x"))

    def test_a_matched_directory_takes_everything_under_it(self) -> None:
        self.assertTrue(excluded("bench", "bench/bare/src/main.rs"))
        self.assertFalse(excluded("bench", "benchmarks.txt"))

    def test_the_last_matching_line_wins(self) -> None:
        self.assertFalse(excluded("bench\n!bench/bare", "bench/bare/Cargo.toml"))
        self.assertTrue(excluded("bench\n!bench/bare", "bench/suite.py"))
        self.assertTrue(excluded("!bench/bare\nbench", "bench/bare/Cargo.toml"))
        self.assertTrue(excluded("bench\n!bench/bare\n**/target", "bench/bare/target/x"))

    def test_a_later_line_is_not_rechecked_on_parents_the_exception_took_back(self) -> None:
        # BuildKit's walk (MatchesUsingParentResults) remembers which lines matched
        # the parent, and skips a plain line for a parent that was already
        # excluded: `bench` again at the end does not exclude bench/bare/.
        self.assertFalse(excluded("bench\n!bench/bare\nbench", "bench/bare/Cargo.toml"))
        self.assertTrue(excluded("bench\n!bench/bare\nbench/bare", "bench/bare/Cargo.toml"))

    def test_comments_blank_lines_and_whitespace(self) -> None:
        self.assertEqual(context.read_dockerignore("# c\n\n  docs  \n! /x/ \n #y\n/\n"), ["docs", "!x", "#y", "/"])
        self.assertTrue(excluded(" #y", "#y"))
        self.assertTrue(excluded("\ufeffdocs", "docs"))

    def test_a_bad_pattern_is_an_error(self) -> None:
        with self.assertRaises(ValueError):
            context.PatternMatcher.new(["!"])
        with self.assertRaises(ValueError):
            excluded("[a", "a")


class ContextWalk(unittest.TestCase):
    def tree(self, *files: str) -> Path:
        root = Path(self.enterContext(tempfile.TemporaryDirectory()))
        for name in files:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(name)
        return root

    def test_exceptions_reach_into_an_excluded_directory(self) -> None:
        root = self.tree("bench/suite.py", "bench/bare/Cargo.toml", "bench/bare/src/main.rs", "Cargo.toml")
        files = context.context_files(root, ["bench", "!bench/bare"])
        self.assertEqual(files, ["Cargo.toml", "bench/bare/Cargo.toml", "bench/bare/src/main.rs"])

    def test_a_glob_exception_does_not_reach_into_an_excluded_directory_by_prefix(self) -> None:
        # BuildKit walks into an excluded directory for a glob exception (it cannot
        # tell by prefix whether it applies) and then matches it file by file.
        root = self.tree("logs/a.txt", "logs/b.keep")
        self.assertEqual(context.context_files(root, ["logs", "!**/*.keep"]), ["logs/b.keep"])
        self.assertEqual(context.context_files(root, ["logs", "!other/x"]), [])


class BuildContextCheck(unittest.TestCase):
    def test_the_repository_context_is_a_loadable_locked_workspace(self) -> None:
        summary, problems = context.check([])
        self.assertEqual(problems, [], summary)

    def test_an_excluded_workspace_member_fails_the_check(self) -> None:
        summary, problems = context.check(["bench/bare"])
        self.assertTrue(any("bench/bare" in p and "cargo metadata" in p for p in problems), problems)

    def test_the_old_dockerignore_that_left_out_bench_bare_fails_the_check(self) -> None:
        old = ".git\n.ci\n**/target\n**/quartet-data\n**/*.profraw\n**/__pycache__\nbench\ndeploy\ndocs\n*.md\n"
        _, problems = context.check([], dockerignore=old)
        self.assertTrue(any("bench/bare" in p for p in problems), problems)

    def test_a_missing_lock_file_fails_the_check(self) -> None:
        _, problems = context.check(["Cargo.lock"])
        self.assertTrue(any("cargo metadata" in p for p in problems), problems)

    def test_an_excluded_embedded_file_fails_the_check(self) -> None:
        _, problems = context.check(["services/weather/data"])
        self.assertTrue(any("observations-sample.csv" in p for p in problems), problems)

    def test_a_base_image_by_tag_only_fails_the_check(self) -> None:
        problems = context.dockerfile_problems(
            "FROM rust:1.95-slim-bookworm AS build\nFROM build\n"
            "FROM gcr.io/distroless/cc-debian12:nonroot@sha256:" + "a" * 64 + "\n"
        )
        self.assertEqual(problems, ["Dockerfile: FROM rust:1.95-slim-bookworm is not pinned by digest (image:tag@sha256:...)"])

    def test_the_dockerfile_pins_every_base_image(self) -> None:
        self.assertEqual(context.dockerfile_problems(context.DOCKERFILE.read_text(encoding="utf-8")), [])


if __name__ == "__main__":
    unittest.main()
