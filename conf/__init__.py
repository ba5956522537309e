"""Hydra config, shipped inside the wheel as ``bench.conf`` (``pkg://bench.conf``).

One folder per axis, one file per option; see the README's "Config axes".
"""
