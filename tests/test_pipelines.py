"""The shipped pipelines (pipelines/*.cppipe) load cleanly and run headless through CellProfiler.

Runs the CellProfiler of this interpreter's venv (``<venv>/bin/cellprofiler -c -r
--plugins-directory plugins``; CellProfiler 5 adds ``-e imageio_reader``), so ``bash scripts/test.sh``
covers CellProfiler 5 and 4.2. Two real runs per line, on 200 x 200 crops of two images, with
ImPartial's training shortened by editing the shipped pipeline with cellprofiler_core:

1. ``nuclei_mibi.cppipe`` on MIBI crops: nuclei counts and matched F1 against the ground truth (read
   from the label TIFFs the pipeline saves), the columns downstream users rely on, overlays.
2. ``cells_vectra.cppipe`` on Vectra crops plus FilterObjects (on ImPartial's confidence),
   OverlayOutlines, ConvertObjectsToImage + SaveImages and ExportToDatabase (SQLite): Nuclei, Cells
   and Cytoplasm counts equal, relationships (ImPartial's and RelateObjects'), per-object tables
   and the relationship table in the database, i.e. CellProfiler's own modules run unchanged
   downstream of ImPartial.

CellProfiler exits 0 after many failures: every test reads the outputs.
"""
import logging
import sqlite3

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
pytest.importorskip("torch")

from tests import helpers_cp as H  # noqa: E402

SHIPPED = ["nuclei_mibi.cppipe", "cells_vectra.cppipe", "train_model.cppipe", "apply_model_batch.cppipe",
           "draw_nuclei.cppipe"]
TRAINING = dict(H.FAST_TRAINING, max_iterations=300, time_budget=40.0)

pytestmark = pytest.mark.skipif(not H.cellprofiler_executable().exists(),
                                reason="no cellprofiler executable next to %s" % H.cellprofiler_executable().parent)


# ------------------------------------------------------------------------------ loading
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pipeline_loads_without_warnings(name, caplog):
    """Each shipped file loads in this CellProfiler line with no load error and no logged warning."""
    caplog.set_level(logging.WARNING)
    pipeline, problems = H.load_pipeline(H.PIPELINES / name)
    assert not problems, [getattr(p, "message", p) for p in problems]
    # (matplotlib warns once while it builds its font cache in a fresh environment: not ours)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and not r.name.startswith("matplotlib")]
    assert not warnings, warnings
    names = [m.module_name for m in pipeline.modules()]
    assert names[:4] == ["Images", "Metadata", "NamesAndTypes", "Groups"]
    assert "ImPartial" in names
    impartial = H.module(pipeline, "ImPartial")
    expected_mode = "Use a saved model" if name == "apply_model_batch.cppipe" else "Train in this pipeline"
    assert impartial.model_mode.value == expected_mode
    if name == "apply_model_batch.cppipe":
        assert names[-1] == "CreateBatchFiles"
    if name == "draw_nuclei.cppipe":
        assert impartial.scribble_source.value == "Drawn in CellProfiler (scribble folder)"
    if name == "cells_vectra.cppipe":
        assert impartial.channel_names() == ["PanCK", "DAPI"] and impartial.nuclear_channel.value == 2
        assert impartial.segment_choice.value == "Nuclei, cells and cytoplasm"


# ------------------------------------------------------------------------------ running a shipped pipeline
def run_shipped(tmp, name, inputs, add_modules=None):
    """Run the shipped pipeline ``name`` on ``inputs`` with ImPartial's training shortened, after
    ``add_modules(pipeline)`` adds downstream modules; the outputs folder, log and exit code."""
    pipeline, problems = H.load_pipeline(H.PIPELINES / name)
    assert not problems
    H.set_values(H.module(pipeline, "ImPartial"), **TRAINING)
    if add_modules is not None:
        add_modules(pipeline)
    path = H.write_pipeline(pipeline, tmp / ("fast_" + name))
    out = tmp / "out"
    rc, log, seconds = H.run_cellprofiler(["-c", "-r", "-p", path, "-i", inputs, "-o", out], tmp / "run.log")
    print("%s: %.0f s, exit %d" % (name, seconds, rc))
    return {"inputs": inputs, "out": out, "log": log, "rc": rc}


# ------------------------------------------------------------------------------ MIBI nuclei
@pytest.fixture(scope="module")
def mibi_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mibi")
    return run_shipped(tmp, "nuclei_mibi.cppipe", H.write_mibi_crops(tmp / "in"))


def test_mibi_counts_and_accuracy(mibi_run):
    import tifffile

    from impartial_core.metrics import match_at_iou

    out, log = mibi_run["out"], mibi_run["log"]
    assert (out / "Image.csv").is_file(), "no Image.csv (exit %d):\n%s" % (mibi_run["rc"], H.tail(log))
    assert "ImPartial: training on 2 image set(s)" in log, H.tail(log)
    assert (out / "impartial_model.safetensors").is_file()
    images = H.read_csv(out / "Image.csv")
    assert sorted(r["Metadata_ImageID"] for r in images) == ["0", "3"]
    nuclei = H.by_image(H.read_csv(out / "Nuclei.csv"))
    report = []
    for row in images:
        stem = "image%s" % row["Metadata_ImageID"]
        count = int(float(row["Count_Nuclei"]))
        truth = np.asarray(tifffile.imread(str(mibi_run["inputs"] / ("%s_nuclei_labels.tif" % stem))))
        n_true = len(np.unique(truth[truth > 0]))
        predicted = np.asarray(tifffile.imread(str(out / ("%s_nuclei_impartial.tiff" % stem))))
        scores = match_at_iou(predicted.astype(np.int64), truth.astype(np.int64), 0.5)
        report.append("%s: %d nuclei (truth %d), F1@0.5 %.2f" % (stem, count, n_true, scores["f1"]))
        # the exported objects are the saved label image's objects
        assert len(nuclei.get(int(row["ImageNumber"]), [])) == count
        assert int(predicted.max()) == count == len(np.unique(predicted[predicted > 0]))
        # a sane range after a 300-iteration training on ~40 scribbled nuclei
        assert 0.4 * n_true <= count <= 2.5 * n_true, report
        assert scores["f1"] >= 0.3, report
        assert 0.0 < float(row["ImPartial_Threshold_Nuclei"]) < 1.0
        assert row["ImPartial_ModelFingerprint"]
    print("; ".join(report))


def test_mibi_columns_and_overlays(mibi_run):
    import imageio.v2 as imageio

    out = mibi_run["out"]
    assert (out / "Nuclei.csv").is_file(), H.tail(mibi_run["log"])
    rows = H.read_csv(out / "Nuclei.csv")
    assert rows
    for name in ("Location_Center_X", "Location_Center_Y", "AreaShape_Area", "Intensity_MeanIntensity_DNA",
                 "ImPartial_MeanForegroundProbability", "ImPartial_MeanUncertainty", "Metadata_ImageID"):
        assert name in rows[0], name
    areas = H.column(rows, "AreaShape_Area")
    assert min(areas) >= 20  # the module's minimum object size
    x = H.column(rows, "Location_Center_X")
    assert 0 <= min(x) and max(x) < 200
    p = H.column(rows, "ImPartial_MeanForegroundProbability")
    assert 0.0 <= min(p) and max(p) <= 1.0 and np.mean(p) > 0.5
    for stem in ("image0", "image3"):
        overlay = np.asarray(imageio.imread(str(out / ("%s_nuclei_overlay.png" % stem))))
        assert overlay.shape[:2] == (200, 200) and overlay.ndim == 3
        # yellow outlines drawn on a grey image
        yellow = (overlay[..., 0] > 200) & (overlay[..., 1] > 200) & (overlay[..., 2] < 60)
        assert yellow.sum() > 100


# ------------------------------------------------------------------------------ Vectra cells + downstream modules
def add_downstream_modules(pipeline):
    """CellProfiler's own modules downstream of ImPartial, before the export modules."""
    flt = H.add_module(pipeline, "FilterObjects", before="ExportToSpreadsheet", x_name="Cells",
                       y_name="ConfidentCells", mode="Measurements", filter_choice="Limits")
    measurement = flt.measurements[0]
    measurement.measurement.value = "ImPartial_MeanForegroundProbability"
    measurement.wants_minimum.value = True
    measurement.min_limit.value = 0.6
    measurement.wants_maximum.value = False
    overlay = H.add_module(pipeline, "OverlayOutlines", before="ExportToSpreadsheet", image_name="DAPI",
                           output_image_name="CellOverlay", wants_color="Color", line_mode="Inner")
    while len(overlay.outlines) < 3:
        overlay.add_outline()
    for group, (name, colour) in zip(overlay.outlines, (("Nuclei", "Yellow"), ("Cells", "Green"), ("ConfidentCells", "Red"))):
        group.objects_name.value = name
        group.color.value = colour
    H.add_module(pipeline, "SaveImages", before="ExportToSpreadsheet", save_image_or_figure="Image",
                 image_name="CellOverlay", file_name_method="From image filename", file_image_name="DAPI",
                 wants_file_name_suffix=True, file_name_suffix="_cells_overlay", file_format="png",
                 bit_depth="8-bit integer", overwrite=True)
    H.add_module(pipeline, "ConvertObjectsToImage", before="ExportToSpreadsheet", object_name="Cells",
                 image_name="CellLabels", image_mode="uint16")
    H.add_module(pipeline, "SaveImages", before="ExportToSpreadsheet", save_image_or_figure="Image",
                 image_name="CellLabels", file_name_method="From image filename", file_image_name="DAPI",
                 wants_file_name_suffix=True, file_name_suffix="_cells", file_format="tiff",
                 bit_depth="16-bit integer", overwrite=True, tiff_compress=False)
    H.add_module(pipeline, "ExportToDatabase", db_type="SQLite", sqlite_file="impartial.db",
                 separate_object_tables="One table per object type", allow_overwrite="Data and schema",
                 wants_agg_mean=True)


@pytest.fixture(scope="module")
def vectra_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vectra")
    return run_shipped(tmp, "cells_vectra.cppipe", H.write_vectra_crops(tmp / "in"), add_downstream_modules)


def test_vectra_nuclei_cells_cytoplasm(vectra_run):
    out, log = vectra_run["out"], vectra_run["log"]
    assert (out / "Image.csv").is_file(), "no Image.csv (exit %d):\n%s" % (vectra_run["rc"], H.tail(log))
    assert "Error" not in log, H.tail(log, 80)
    images = H.read_csv(out / "Image.csv")
    assert sorted(r["Metadata_ImageID"] for r in images) == ["1", "2"]
    for row in images:
        n = int(float(row["Count_Nuclei"]))
        assert n == int(float(row["Count_Cells"])) == int(float(row["Count_Cytoplasm"])), row
        assert 5 <= n <= 400, n  # about 100-150 cells in a 200 x 200 crop
        assert int(float(row["Count_ConfidentCells"])) <= n
    tables = {name: H.read_csv(out / ("%s.csv" % name)) for name in ("Nuclei", "Cells", "Cytoplasm", "ConfidentCells")}
    for name in ("Nuclei", "Cells", "Cytoplasm"):
        row = tables[name][0]
        for column in ("Location_Center_X", "AreaShape_Area", "Intensity_MeanIntensity_PanCK",
                       "Intensity_MeanIntensity_DAPI", "ImPartial_MeanForegroundProbability", "ImPartial_MeanUncertainty"):
            assert column in row, (name, column)
    # relationships made by ImPartial (like IdentifySecondary/TertiaryObjects) and by RelateObjects
    for name, columns in (("Nuclei", ["Children_Cells_Count", "Children_Cytoplasm_Count", "Parent_Cells"]),
                          ("Cells", ["Parent_Nuclei", "Children_Cytoplasm_Count", "Children_Nuclei_Count",
                                     "Mean_Nuclei_Intensity_MeanIntensity_DAPI"]),
                          ("Cytoplasm", ["Parent_Nuclei", "Parent_Cells"]),
                          ("ConfidentCells", ["Parent_Cells"])):
        for column in columns:
            assert column in tables[name][0], (name, column)
    # object n of every set belongs together: cell n has nucleus n, cytoplasm n lies in cell n
    for row in tables["Cells"]:
        assert int(float(row["Parent_Nuclei"])) == int(float(row["ObjectNumber"]))
        assert int(float(row["Children_Nuclei_Count"])) == 1
    for row in tables["Cytoplasm"]:
        assert int(float(row["Parent_Cells"])) in (0, int(float(row["ObjectNumber"])))
    # cytoplasm is mostly PanCK, nuclei mostly DAPI (channel order kept through the pipeline)
    nuc_ratio = np.median([float(r["Intensity_MeanIntensity_DAPI"]) / max(float(r["Intensity_MeanIntensity_PanCK"]), 1e-9)
                           for r in tables["Nuclei"]])
    cyto_ratio = np.median([float(r["Intensity_MeanIntensity_DAPI"]) / max(float(r["Intensity_MeanIntensity_PanCK"]), 1e-9)
                            for r in tables["Cytoplasm"] if float(r["AreaShape_Area"]) > 0])
    assert nuc_ratio > cyto_ratio, (nuc_ratio, cyto_ratio)
    # FilterObjects kept exactly the cells whose ImPartial confidence is at least 0.6
    probability = {(r["ImageNumber"], int(float(r["ObjectNumber"]))): float(r["ImPartial_MeanForegroundProbability"])
                   for r in tables["Cells"]}
    kept = {(r["ImageNumber"], int(float(r["Parent_Cells"]))) for r in tables["ConfidentCells"]}
    assert kept == {key for key, p in probability.items() if p >= 0.6}


def test_vectra_images_and_database(vectra_run):
    import imageio.v2 as imageio
    import tifffile

    out = vectra_run["out"]
    assert (out / "Image.csv").is_file(), H.tail(vectra_run["log"])
    images = {r["Metadata_ImageID"]: r for r in H.read_csv(out / "Image.csv")}
    for image_id, row in images.items():
        labels = np.asarray(tifffile.imread(str(out / ("image%s_DAPI_cells.tiff" % image_id))))
        assert labels.shape == (200, 200) and int(labels.max()) == int(float(row["Count_Cells"]))
        overlay = np.asarray(imageio.imread(str(out / ("image%s_DAPI_cells_overlay.png" % image_id))))
        assert overlay.shape[:2] == (200, 200) and overlay.ndim == 3
    db = out / "impartial.db"
    assert db.is_file(), H.tail(vectra_run["log"])
    with sqlite3.connect(str(db)) as connection:
        tables = {r[0] for r in connection.execute("select name from sqlite_master where type in ('table', 'view')")}
        for table in ("MyExpt_Per_Image", "MyExpt_Per_Nuclei", "MyExpt_Per_Cells", "MyExpt_Per_Cytoplasm",
                      "MyExpt_Per_Relationships", "MyExpt_Per_RelationshipTypes"):
            assert table in tables, (table, sorted(tables))
        assert connection.execute("select count(*) from MyExpt_Per_Image").fetchone()[0] == 2
        for name in ("Nuclei", "Cells", "Cytoplasm"):
            rows = connection.execute("select count(*) from MyExpt_Per_%s" % name).fetchone()[0]
            assert rows == len(H.read_csv(out / ("%s.csv" % name))), name
            columns = [r[1] for r in connection.execute("pragma table_info(MyExpt_Per_%s)" % name)]
            assert "%s_ImPartial_MeanForegroundProbability" % name in columns, columns[:20]
        kinds = connection.execute(
            "select t.object_name1, t.object_name2, count(*) from MyExpt_Per_Relationships r join "
            "MyExpt_Per_RelationshipTypes t on r.relationship_type_id = t.relationship_type_id "
            "where t.relationship = 'Parent' group by t.object_name1, t.object_name2").fetchall()
        pairs = {(a, b): n for a, b, n in kinds}
        n_cells = sum(int(float(r["Count_Cells"])) for r in images.values())
        assert pairs.get(("Nuclei", "Cells")) == n_cells, pairs
        assert ("Cells", "Cytoplasm") in pairs and ("Cells", "Nuclei") in pairs, pairs


# ------------------------------------------------------------------------------ scribbles drawn in CellProfiler
def test_draw_pipeline_headless_reads_the_scribble_folder(tmp_path):
    """draw_nuclei.cppipe headless: with no scribble file it stops naming the folder setting; with
    files dropped in the folder (the paper's n100 scribbles, as another program would save them:
    ``<image>_scribbles.tif``) it trains on them, in both CellProfiler lines."""
    import shutil

    import tifffile

    from impartial_core.metrics import match_at_iou

    inputs = H.write_mibi_crops(tmp_path / "in")
    drawn = {}
    for path in sorted(inputs.glob("*_scribbles_n100.tif")):
        drawn[path.name.replace("_scribbles_n100", "")] = path
        shutil.move(str(path), str(tmp_path / path.name))  # out of the input folder: nothing but images there
    (tmp_path / "empty").mkdir()
    first = run_shipped(tmp_path / "empty", "draw_nuclei.cppipe", inputs)
    assert "none of the 2 image set(s) has a scribble file in %s" % (tmp_path / "empty" / "out" / "scribbles") \
        in first["log"], H.tail(first["log"])
    assert 'setting "Scribble folder"' in first["log"] and not (first["out"] / "Image.csv").exists()
    scribbles = tmp_path / "full" / "out" / "scribbles"  # the pipeline's default: scribbles/ in the output folder
    scribbles.mkdir(parents=True)
    for image, path in drawn.items():
        shutil.copy(str(tmp_path / path.name), str(scribbles / image.replace(".tif", "_scribbles.tif")))
    run = run_shipped(tmp_path / "full", "draw_nuclei.cppipe", inputs)
    assert "ImPartial: training on 2 image set(s)" in run["log"], H.tail(run["log"])
    for row in H.read_csv(run["out"] / "Image.csv"):
        stem = "image%s" % row["Metadata_ImageID"]
        truth = tifffile.imread(str(inputs / ("%s_nuclei_labels.tif" % stem))).astype(np.int64)
        predicted = tifffile.imread(str(run["out"] / ("%s_nuclei_impartial.tiff" % stem))).astype(np.int64)
        assert match_at_iou(predicted, truth, 0.5)["f1"] >= 0.3, stem
