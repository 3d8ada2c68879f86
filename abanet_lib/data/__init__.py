"""Data layer: sample types, loaders, the data-set registry, splits, torch data sets.

Public API (see docs/architecture.md, "Data"):
    Sample, SampleRef, DataError, list_samples, list_folder_pairs, fetch, DATASETS,
    binarize_mask, decode_image, resize_pair, IMAGENET_MEAN, IMAGENET_STD, normalize, split_samples,
    Split, prepare_arrays, PreparedArrays, SegmentationDataset, synthetic_samples, data_fingerprint.
Statistics and plots for notebook 01 live in :mod:`abanet_lib.data.explore` (import it
explicitly; it pulls in matplotlib).
"""
from .loaders import (
    MASK_SUFFIXES,
    FaceBox,
    list_folder_pairs,
    list_maskedfacenet,
    list_mfsd,
    list_mfsd_sample,
    list_samples,
    read_mfsd_boxes,
)
from .fingerprint import check_fingerprint, data_fingerprint, fingerprint_differences
from .registry import DATASETS, DatasetSpec, download_dataset, fetch, verify_dataset
from .samples import (
    BOMB_PIXELS,
    IMAGE_EXTENSIONS,
    MIN_IMAGE_SIZE,
    DataError,
    DataWarning,
    LoadReport,
    RefList,
    Sample,
    SampleRef,
    binarize_mask,
    binarize_mask_with_alpha,
    decode_image,
    group_from_name,
    open_image,
    read_image,
    read_mask,
)
from .splits import PAPER_COUNTS, Split, split_samples
from .synthetic import synthetic_refs, synthetic_samples, write_sample_folder
from .torch_data import PreparedArrays, SegmentationDataset, prepare_arrays
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    augment_pair,
    denormalize,
    image_to_tensor,
    normalize,
    resize_image,
    resize_pair,
)

__all__ = [
    "BOMB_PIXELS", "binarize_mask_with_alpha", "check_fingerprint", "data_fingerprint", "decode_image",
    "fingerprint_differences", "open_image",
    "DATASETS", "DataError", "DataWarning", "DatasetSpec", "FaceBox", "IMAGENET_MEAN", "IMAGENET_STD",
    "IMAGE_EXTENSIONS", "MASK_SUFFIXES", "MIN_IMAGE_SIZE", "LoadReport", "PAPER_COUNTS", "PreparedArrays",
    "RefList", "Sample", "SampleRef", "SegmentationDataset", "Split", "augment_pair", "binarize_mask",
    "denormalize", "download_dataset", "fetch", "group_from_name", "image_to_tensor", "list_folder_pairs",
    "list_maskedfacenet", "list_mfsd", "list_mfsd_sample", "list_samples", "normalize", "prepare_arrays",
    "read_image", "read_mask", "read_mfsd_boxes", "resize_image", "resize_pair", "split_samples",
    "synthetic_refs", "synthetic_samples", "verify_dataset", "write_sample_folder",
]
