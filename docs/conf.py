"""Sphinx configuration: MyST pages, the PyData theme (as pandas, SciPy and scikit-learn),
and references generated from the code: the config schema and the record from their
dataclasses (autodoc, Google-style docstrings through napoleon), the commands' options from
their argparse parsers (sphinx-argparse)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

project = "bench"
author = "the bench developers"
copyright = "2026, the bench developers"  # noqa: A001  (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxarg.ext",
    "bench_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "*-draft.md"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
# TensorFlow and friends stay out of the docs build: the modules documented import none.
autodoc_mock_imports = ["tensorflow", "tf_keras", "tensorflow_hub", "tensorflow_datasets"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # a dataclass's "Attributes:" as fields, not second descriptions
html_theme = "pydata_sphinx_theme"
html_title = "bench"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
# sphinx-argparse's domain cannot resolve MyST's "any" references (it says so once per build).
suppress_warnings = ["myst.header", "myst.domains"]
