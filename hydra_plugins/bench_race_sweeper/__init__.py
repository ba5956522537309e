"""bench's race sweeper for Hydra (``hydra/sweeper=race``; bench.launch.race)."""
