"""The analysis room: pandas and matplotlib, never TensorFlow.

``load`` (records or W&B runs into one tidy frame, one row per run), ``tables`` (comparison
tables and ``python -m bench.aggregate``), ``verdict`` (the sentences the report draws from
a table), ``plots`` (figures), ``report`` (``python -m bench.report``: one jinja2 template
for the HTML page and the Markdown file) and ``wandb_api`` (the W&B public API and
Reports).
"""
