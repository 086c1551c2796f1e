"""ImPartial: cell and nuclei segmentation from a few scribbles (Martinez et al., bioRxiv 2021.01.20.427458).

A pure PyTorch + numpy library, importable without CellProfiler.
"""
__version__ = "0.1.0"
