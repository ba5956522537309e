"""A Sphinx extension that writes the reference tables the code is the source of, before
the pages are read: every config group with its options (from conf/, each option's first
comment line), so a new option file shows up without anyone copying it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
OUT = Path(__file__).resolve().parents[1] / "generated"


def _summary(path: Path) -> str:
    """The first comment line of an option file (its purpose), without the ``#``."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("# @package"):
            continue
        if text.startswith("#"):
            return text.lstrip("# ").replace("|", "\\|")
        if text:
            break
    return ""


def options_table() -> str:
    """One row per option of every config group under conf/ (hydra's own folders aside)."""
    rows = ["| group | option | what it is |", "|---|---|---|"]
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"):
        for option in sorted(group.glob("*.yaml")):
            rows.append(f"| `{group.name}` | `{option.stem}` | {_summary(option)} |")
    for group in sorted((CONF / "hydra").glob("*/")):
        for option in sorted(group.glob("*.yaml")):
            rows.append(f"| `hydra/{group.name}` | `{option.stem}` | {_summary(option)} |")
    return "\n".join(rows) + "\n"


def write(app=None) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "options.md").write_text(options_table())


def setup(app):
    app.connect("builder-inited", write)
    return {"parallel_read_safe": True, "version": "1"}
