"""Data sets as whole uint8 tensors (see :mod:`irat.data.datasets`)."""
from irat.data.datasets import DATASETS, ImageDataset, dataset_names, load_dataset, load_image_folder

__all__ = ["DATASETS", "ImageDataset", "dataset_names", "load_dataset", "load_image_folder"]
