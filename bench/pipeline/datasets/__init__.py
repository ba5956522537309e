"""Datasets the harness ships itself, registered with TFDS on import."""
