"""The documentation is generated where the code is the source, and every claim of a file
stands: each config key, record field and race key has its own doc comment (the reference
pages are built from them), every dataclass is on a reference page, no file cites a file
the repository lacks, and the suite's budget warning fires past its budget."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys

import pytest
from sphinx.pycode import ModuleAnalyzer

from bench.core import race_settings, record, schema
from tests.helpers import ROOT

DOCUMENTED = (schema, record, race_settings)


def _dataclasses(module) -> list[type]:
    return [
        kind
        for _, kind in inspect.getmembers(module, inspect.isclass)
        if dataclasses.is_dataclass(kind) and kind.__module__ == module.__name__
    ]


@pytest.mark.parametrize("module", DOCUMENTED, ids=lambda m: m.__name__)
def test_every_field_has_its_doc_comment(module):
    docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
    missing = [
        f"{kind.__name__}.{field.name}"
        for kind in _dataclasses(module)
        for field in dataclasses.fields(kind)
        if not "".join(docs.get((kind.__name__, field.name), [])).strip()
    ]
    assert not missing, f"add a '#: ...' comment above each of: {', '.join(missing)}"


def test_every_dataclass_is_on_a_reference_page():
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    for module in DOCUMENTED:
        for kind in _dataclasses(module):
            assert f"{module.__name__}.{kind.__name__}" in pages, kind.__name__


CITED = re.compile(r"\b((?:bench|tests|benchmarks|conf|docs|sweeps|results|\.ci)/[\w./-]+?"
                   r"\.(?:py|yaml|md|csv|j2|json|toml))\b")  # fmt: skip
GONE = ("DESIGN.md", "PITFALLS.md", "DEVELOPERS.md", "seeds/")


def _tracked() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [n for n in listed.stdout.splitlines() if not n.startswith("tests/data/")]


def test_no_file_cites_a_file_the_repository_lacks():
    problems = []
    for name in _tracked():
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".yaml", ".toml", ".j2", ".txt") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        problems += [f"{name}: {gone}" for gone in GONE if gone in text and name != __file__]
        for cited in CITED.findall(text):
            placeholder = re.search(r"/[A-Z_]+\.", cited)  # sweeps/FILE.yaml, in a usage line
            if not placeholder and "*" not in cited and not (ROOT / cited).exists():
                problems.append(f"{name}: {cited}")
    problems = [p for p in problems if not p.startswith("tests/test_docs.py")]
    assert not problems, problems


def test_the_budget_warning_fires_past_the_budget_and_counts_like_with_like():
    from tests.conftest import SLOW_BUDGET_S, SUITE_BUDGET_S, budget_warnings

    assert budget_warnings(SUITE_BUDGET_S, SLOW_BUDGET_S) == []
    (wall,) = budget_warnings(SUITE_BUDGET_S + 1, SLOW_BUDGET_S)
    assert "of wall clock" in wall
    (slow,) = budget_warnings(SUITE_BUDGET_S, SLOW_BUDGET_S + 1)
    assert "of test time" in slow


def test_tests_that_read_one_trained_fixture_run_on_one_worker(tmp_path):
    """The suite's own grouping hook, in a small session of its own under xdist: the two
    tests that read ``sweep`` must share a worker, so that it trains once (a pytest/xdist
    pair that drops the grouping makes every worker train it again)."""
    (tmp_path / "conftest.py").write_text(
        "import pytest\n"
        "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n\n\n"
        '@pytest.fixture(scope="session")\ndef sweep():\n    return 1\n'
    )
    (tmp_path / "test_grouped.py").write_text(
        "".join(f"def test_{n}(sweep):\n    pass\n\n\n" for n in ("one", "two"))
        + "".join(f"def test_{n}():\n    pass\n\n\n" for n in ("three", "four", "five"))
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", "-o", "addopts=", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    workers = {
        test: re.search(rf"\[(gw\d)\].*PASSED \S*::test_{test}@shared_runs", proc.stdout)
        for test in ("one", "two")
    }
    assert all(workers.values()), proc.stdout[-3000:]
    assert workers["one"].group(1) == workers["two"].group(1)
