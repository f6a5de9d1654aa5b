"""Datasets and the audit split.

>>> from mialab.data import load_dataset, make_split
>>> ds = load_dataset("digits")
>>> split = make_split(ds.y, seed=0)
>>> split.sizes()["members"]
120
"""

from mialab.data.dataset import MAX_CLASSES, Dataset, check_labels, from_arrays, from_csv, read_csv_table
from mialab.data.features import standardize_features
from mialab.data.formats import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_cifar_batch, read_idx
from mialab.data.loaders import available_datasets, default_root, load_dataset
from mialab.data.split import make_split, stratified_counts

__all__ = [
    "Dataset",
    "from_arrays",
    "from_csv",
    "read_csv_table",
    "check_labels",
    "MAX_CLASSES",
    "standardize_features",
    "load_dataset",
    "available_datasets",
    "default_root",
    "make_split",
    "stratified_counts",
    "read_idx",
    "read_cifar_batch",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
]
