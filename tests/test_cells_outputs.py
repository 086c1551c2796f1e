"""Cells-only models with a nuclear stain give nuclei, cells and cytoplasm in both front ends.

The module (in-process, CellProfiler's own Workspace) trains a small cells-only model on a synthetic
two-channel image and emits three object sets with IdentifySecondary/TertiaryObjects' numbering and
relationships; the command line writes the three label images.
"""
import numpy as np
import tifffile

from impartial_core.metrics import match_at_iou
from impartial_core.object_sets import object_sets, relationships

from .test_cli_outputs import _run
from .test_plugin import make_module, make_pipeline, new_session, run_pipeline


def test_a_nuclear_stain_adds_nuclei_and_cytoplasm_to_a_cells_only_model():
    assert [s.name for s in object_sets(["cells"])] == ["cells"]
    made = object_sets(["cells"], nuclear_stain=True)
    assert [s.name for s in made] == ["nuclei", "cells", "cytoplasm"]
    assert not any(s.has_threshold for s in made if s.name != "cells")  # stained nuclei have no learnt threshold
    assert [(p.name, c.name) for p, c in relationships(["cells"], nuclear_stain=True)] == [
        ("nuclei", "cells"), ("nuclei", "cytoplasm"), ("cells", "cytoplasm")]
    assert relationships(["cells"]) == ()


def _cells_image(size=96):
    """Nine round cells of radius 11 on a grid, each with a nucleus of radius 4 (DNA channel)."""
    rows, cols = np.mgrid[:size, :size]
    cells = np.zeros((size, size), np.int32)
    nuclei = np.zeros((size, size), np.int32)
    for n, (r, c) in enumerate([(r, c) for r in (16, 48, 80) for c in (16, 48, 80)], start=1):
        cells[(rows - r) ** 2 + (cols - c) ** 2 <= 11 ** 2] = n
        nuclei[(rows - r) ** 2 + (cols - c) ** 2 <= 4 ** 2] = n
    rng = np.random.default_rng(0)
    membrane = (cells > 0) * 0.8 + rng.normal(0, 0.1, cells.shape)
    dna = (nuclei > 0) * 1.0 + rng.normal(0, 0.1, cells.shape)
    scribbles = np.zeros(cells.shape, np.uint8)
    scribbles[16, 8:25], scribbles[48, 40:57], scribbles[80, 72:89] = 3, 3, 3
    scribbles[32, :] = scribbles[64, :] = 1
    scribbles[:, 32] = scribbles[:, 64] = 1
    return membrane.astype(np.float32), dna.astype(np.float32), scribbles, cells, nuclei


def test_module_emits_nuclei_cells_and_cytoplasm_for_cells_only_with_two_channels(tmp_path):
    membrane, dna, scribbles, true_cells, true_nuclei = _cells_image()
    new_session()
    module = make_module(tmp_path, segment_choice="Cells only", max_iterations=150)
    module.add_channel()
    module.channels[0].image_name.value, module.channels[1].image_name.value = "Membrane", "DNA"
    module.nuclear_channel.value = 2
    pipeline = make_pipeline(module, {"Membrane": [membrane], "DNA": [dna]}, [scribbles])
    columns = {(o, f) for o, f, *_ in module.get_measurement_columns(pipeline)}
    assert ("Cytoplasm", "Parent_Nuclei") in columns and ("Nuclei", "Children_Cells_Count") in columns
    measurements, object_sets_made = run_pipeline(pipeline, 1)
    objects = object_sets_made[0]
    nuclei, cells, cytoplasm = (objects.get_objects(n).segmented for n in ("Nuclei", "Cells", "Cytoplasm"))
    assert match_at_iou(nuclei, true_nuclei)["f1"] > 0.8
    assert match_at_iou(cells, true_cells)["f1"] > 0.8
    # numbering: cell n holds nucleus n, cytoplasm n = cell n minus nucleus n
    for n in range(1, int(nuclei.max()) + 1):
        assert (cells[nuclei == n] == n).all()
    assert ((cytoplasm > 0) == ((cells > 0) & (nuclei == 0))).all()
    assert list(measurements.get_current_measurement("Cells", "Parent_Nuclei")) == list(range(1, int(cells.max()) + 1))


def test_predict_writes_nuclei_cells_and_cytoplasm_for_a_cells_model_with_a_nuclear_channel(tmp_path, capsys):
    import torch

    from impartial_core.config import NetworkConfig, tasks_for
    from impartial_core.model import ImPartialModel
    from impartial_core.network import ImPartialNet

    torch.manual_seed(0)
    model = tmp_path / "cells.safetensors"
    ImPartialModel(ImPartialNet(NetworkConfig(2, 4), tasks_for("cells", 2)).eval(), {"cells": 0.5}).save(model)
    membrane, dna, *_ = _cells_image()
    image = tmp_path / "x.tif"
    tifffile.imwrite(image, np.stack([membrane, dna]))
    status, _, stderr = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", tmp_path / "out",
                             "--nuclear-channel", 1)
    assert status == 0, stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"x_nuclei.tif", "x_cells.tif", "x_cytoplasm.tif"} <= set(written)
    nuclei = tifffile.imread(tmp_path / "out" / "x_nuclei.tif")
    assert nuclei.max() > 0  # found in the DNA channel whatever the untrained model says
    status, _, stderr = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", tmp_path / "o2",
                             "--nuclear-channel", 2)
    assert status == 2 and "--nuclear-channel 2" in stderr and "2 channel(s)" in stderr
