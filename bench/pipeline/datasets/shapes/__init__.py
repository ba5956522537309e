"""The embedded ``shapes`` dataset: importing this package registers it with TFDS."""

from bench.pipeline.datasets.shapes.shapes_dataset_builder import CLASSES, IMAGE_SIZE, Builder

__all__ = ["Builder", "CLASSES", "IMAGE_SIZE"]
