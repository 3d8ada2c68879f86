"""abanet_lib: the library behind the ABANet companion notebooks.

Paper: "ABANet: Attention Boundary-Aware Network for image segmentation"
(masked-face mask-region segmentation). Everything the notebooks show is computed here.
"""
__version__ = "0.1.0"
