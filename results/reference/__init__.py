"""Published reference numbers, shipped inside the wheel as ``bench.reference``."""
