"""Images with nothing to segment, through CellProfiler headless as users run it (CellProfiler 5 with
``-e imageio_reader``, 4.2 with Bio-Formats): refused for training, flagged at prediction.

Four 200x200 MIBI crops: ``image0`` as it is, ``image3`` as a float TIFF holding two NaN pixels (which
CellProfiler 5's reader turns into one value almost everywhere, and 4.2 reads correctly), ``image5``
all zeros (a failed acquisition), and in CellProfiler 5 ``image7`` as a float TIFF with values from 0.05
to 1.75, which its reader turns into whole numbers: two grey levels (4.2 reads it as it is, and its
SaveImages then refuses the pipeline's overlay of an image above 1). Each has scribbles.

- Training in the pipeline stops before any training, naming the file and the setting, once, and
  the model file already in the folder is left byte for byte as it was (no backup is made).
- Applying a saved model flags the unusable image sets (``ImPartial_UsableInput`` 0, the reason in
  ``ImPartial_InputProblem``, a logged warning naming the file) and makes no objects for them,
  while the usable image set is segmented.
"""
import shutil

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
pytest.importorskip("torch")

from tests import helpers_cp as H  # noqa: E402

pytestmark = pytest.mark.skipif(not H.cellprofiler_executable().exists(),
                                reason="no cellprofiler executable next to %s" % H.cellprofiler_executable().parent)

def _inputs(folder):
    import tifffile

    H.write_mibi_crops(folder, ("image0", "image3", "image5") + (("image7",) if _reads_float_tiff_badly() else ()))
    if _reads_float_tiff_badly():
        bright = np.asarray(tifffile.imread(str(folder / "image7.tif")), np.float32)
        tifffile.imwrite(str(folder / "image7.tif"), bright * 1.7 + 0.05)
    nan = np.asarray(tifffile.imread(str(folder / "image3.tif")), np.float32)
    nan[10, 10] = nan[50, 60] = np.nan
    tifffile.imwrite(str(folder / "image3.tif"), nan)
    tifffile.imwrite(str(folder / "image5.tif"), np.zeros(nan.shape, np.float32))
    return folder


def _run(tmp, model_file, **settings):
    pipeline, problems = H.load_pipeline(H.PIPELINES / "nuclei_mibi.cppipe")
    assert not problems
    H.set_values(H.module(pipeline, "ImPartial"), **dict(H.FAST_TRAINING, max_iterations=30), **settings)
    out = tmp / "out"
    out.mkdir()
    shutil.copy(model_file, out / "impartial_model.safetensors")
    path = H.write_pipeline(pipeline, tmp / "pipeline.cppipe")
    rc, log, _ = H.run_cellprofiler(["-c", "-r", "-p", path, "-i", _inputs(tmp / "in"), "-o", out], tmp / "run.log")
    return out, log, rc


def _reads_float_tiff_badly():
    """CellProfiler 5's imageio reader rescales a float TIFF holding NaN into one value almost everywhere,
    and one holding values above 1 into whole numbers."""
    return H.cp_line() == "cp5"


def test_training_refuses_unusable_images_and_keeps_the_model(tmp_path, blob_model_file):
    out, log, rc = _run(tmp_path, blob_model_file)
    model = out / "impartial_model.safetensors"
    assert model.read_bytes() == blob_model_file.read_bytes(), H.tail(log)
    assert sorted(p.name for p in out.iterdir() if "impartial_model" in p.name) == [model.name], "a backup was made"
    assert "ImPartial: training on" not in log, H.tail(log)
    if _reads_float_tiff_badly():
        refused = "image set 2 (image3.tif): DNA: 100.0% of its pixels are at its maximum"
    else:
        refused = "image set 3 (image5.tif): DNA: every pixel has the value 0"
    assert refused in log, H.tail(log)
    assert 'setting "Select a channel image"' in log and "nothing was trained and no model file was changed" in log
    # said once: no chain of tracebacks repeating it
    assert log.count(refused) == 1, H.tail(log, 80)
    assert "The above exception was the direct cause" not in log, H.tail(log, 80)


def test_saved_model_flags_unusable_images_and_makes_no_objects(tmp_path, blob_model_file):
    out, log, rc = _run(tmp_path, blob_model_file, model_mode="Use a saved model")
    assert (out / "Image.csv").is_file(), "no Image.csv (exit %d):\n%s" % (rc, H.tail(log))
    rows = {row["FileName_DNA"]: row for row in H.read_csv(out / "Image.csv")}
    assert sorted(rows) == ["image0.tif", "image3.tif", "image5.tif"] + (["image7.tif"] if _reads_float_tiff_badly() else [])
    unusable = ["image3.tif", "image5.tif", "image7.tif"] if _reads_float_tiff_badly() else ["image5.tif"]
    for name, row in rows.items():
        flagged = name in unusable
        assert int(float(row["ImPartial_UsableInput"])) == (0 if flagged else 1), (name, row["ImPartial_InputProblem"])
        assert (row["ImPartial_InputProblem"] != "") == flagged
        if flagged:
            assert int(float(row["Count_Nuclei"])) == 0
            assert ("%s): DNA:" % name) in log and "No objects were made for it" in log, H.tail(log)
        else:  # the usable image sets are segmented: the blob model finds nuclei in the MIBI crops
            assert int(float(row["Count_Nuclei"])) > 0, H.tail(log)
    assert "image5.tif): DNA: every pixel has the value 0" in rows["image5.tif"]["ImPartial_InputProblem"]
    if _reads_float_tiff_badly():
        assert "DNA: its pixels take only 2 distinct values" in rows["image7.tif"]["ImPartial_InputProblem"]
