"""Installs impartial_core (the ImPartial method), impartial_cellprofiler (CellProfiler-side code)
and two commands: `impartial` (the command line) and `impartial-cellprofiler` (CellProfiler with the
plugin folder set and its wx workarounds; see impartial_cellprofiler/launch.py).

The CellProfiler module lives in plugins/impartial.py and is loaded by CellProfiler from its
plugins directory; it imports impartial_core, which this package provides.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r'__version__ = "([^"]+)"', (here / "impartial_core" / "__init__.py").read_text()).group(1)

setup(
    name="impartial-cellprofiler",
    version=version,
    description="ImPartial: nuclei and cell segmentation from a few scribbles, for CellProfiler",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    packages=find_packages(include=["impartial_core", "impartial_core.*", "impartial_cellprofiler", "impartial_cellprofiler.*"]),
    # What the test suite covers (scripts/test.sh): Python 3.9 + torch 2.8.0 with CellProfiler
    # 4.2.8.1, Python 3.11 + torch 2.13.0 with CellProfiler 5; the versions between are allowed.
    python_requires=">=3.9,<3.12",
    install_requires=[
        "numpy>=1.20,<2.3",
        "scipy>=1.7",
        "scikit-image>=0.18",
        "tifffile>=2021.1",
        "imageio>=2.9",
        "safetensors>=0.4",
        "torch>=2.8,<2.14",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "pytest-timeout"],
        "bench": ["scikit-learn>=1.0", "matplotlib>=3.3"],
    },
    entry_points={
        "console_scripts": [
            "impartial = impartial_core.cli:main",
            "impartial-cellprofiler = impartial_cellprofiler.launch:main",
        ]
    },
)
