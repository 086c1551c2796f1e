"""Shared pytest setup: point CellProfiler at this repository's plugins before it loads modules,
and the small trained models several test files use (each trained once per session).

CellProfiler scans the plugin directory when ``cellprofiler_core.modules`` is first imported, so
this must run before any test module imports it. Without CellProfiler installed it does nothing.
"""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def pytest_configure(config):
    try:
        import cellprofiler_core.preferences as preferences
    except ImportError:
        return
    preferences.set_headless()
    preferences.set_plugin_directory(str(REPO / "plugins"), globally=False)
    os.environ.setdefault("MPLBACKEND", "Agg")



@pytest.fixture(scope="session")
def trained():
    """(``TrainingResult``, image, true labels) of 60 iterations on synthetic nuclei."""
    from .synthetic import train_on_blobs

    return train_on_blobs()


@pytest.fixture(scope="session")
def blob_model():
    """An ``ImPartialModel`` of synthetic nuclei (see ``synthetic.blob_model``)."""
    from .synthetic import blob_model

    return blob_model()


@pytest.fixture(scope="session")
def blob_model_file(blob_model, tmp_path_factory):
    """``blob_model`` saved alone in a folder of its own."""
    path = tmp_path_factory.mktemp("models") / "model.safetensors"
    blob_model.save(path)
    return path
