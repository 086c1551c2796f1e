"""In-process tests of the ImPartial CellProfiler module (plugins/impartial.py).

Real cellprofiler_core objects throughout (Pipeline, InjectImage, Measurements, ObjectSet,
ImageSetList, Workspace): the pipeline runs the way CellProfiler runs it, prepare_group (which
runs the upstream modules over the group with run_group_with_yield and trains) then run() per
image set. Data: two 128x128 crops of the MIBI dsDNA image 0 with the paper's n200 scribbles.

Run:  .venv/bin/python -m pytest tests/test_plugin.py
      .venv-cp42/bin/python -m pytest tests/test_plugin.py
"""
import contextlib
import io
import logging
import os
import sys

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
torch = pytest.importorskip("torch")
# One intra-op thread: on a small, busy machine two threads spin against other work and train
# many times slower; the tests only need a tiny model.
torch.set_num_threads(1)


import cellprofiler_core.modules  # noqa: E402,F401  (loads the plugins; conftest set the directory)
from cellprofiler_core.constants.measurement import IMAGE  # noqa: E402
from cellprofiler_core.image import ImageSetList  # noqa: E402
from cellprofiler_core.measurement import Measurements  # noqa: E402
from cellprofiler_core.modules.injectimage import InjectImage  # noqa: E402
from cellprofiler_core.object import ObjectSet  # noqa: E402
from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.preferences import ABSOLUTE_FOLDER_NAME  # noqa: E402
from cellprofiler_core.setting import ValidationError  # noqa: E402
from cellprofiler_core.setting.text import Directory  # noqa: E402
from cellprofiler_core.utilities.core.modules import instantiate_module  # noqa: E402
from cellprofiler_core.workspace import Workspace  # noqa: E402

from benchmarks.data import data_dir  # noqa: E402

DATA = data_dir()

CROPS = [(slice(0, 128), slice(0, 128)), (slice(128, 256), slice(128, 256))]


def _read(name):
    import tifffile

    return np.asarray(tifffile.imread(str(DATA / "mibi_dsdna" / name)))


@pytest.fixture(scope="module")
def data():
    image, scribbles, labels = _read("image0.tif"), _read("image0_scribbles_n200.tif"), _read("image0_nuclei_labels.tif")
    return ([image[c].astype(np.float32) for c in CROPS], [scribbles[c].astype(np.uint8) for c in CROPS],
            [labels[c].astype(np.int32) for c in CROPS])


def plugin_module():
    """The Python module CellProfiler imported the plugin from (for its constants)."""
    return sys.modules[type(instantiate_module("ImPartial")).__module__]


def new_session():
    """What a new CellProfiler session starts with: no model in memory, only the files."""
    type(instantiate_module("ImPartial")).model_store().clear()


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def module_log():
    """The module's log lines (logger ``impartial``) while the block runs, as a list of messages."""
    logger, handler = logging.getLogger("impartial"), _Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def trainings(lines):
    return sum(line.startswith("ImPartial: training on") for line in lines)


def loads(lines):
    return sum(line.startswith("ImPartial: loaded the model") for line in lines)


def make_module(folder, **settings):
    module = instantiate_module("ImPartial")
    module.channels[0].image_name.value = "DNA"
    module.scribble_image.value = "Scribbles"
    module.model_directory.value = Directory.static_join_string(ABSOLUTE_FOLDER_NAME, str(folder))
    module.time_budget.value = 60
    module.show_advanced.value = True
    module.network_width.value = 8
    module.max_iterations.value = 100
    module.patch_size.value = 64
    module.batch_size.value = 4
    module.use_gpu.value = False
    for name, value in settings.items():
        getattr(module, name).value = value
    return module


def make_pipeline(module, channels, scribbles=None):
    """InjectImage modules (one per channel, plus the scribbles) followed by the ImPartial module."""
    pipeline = Pipeline()
    number = 1
    for name, images in channels.items():
        inject = InjectImage(name, images)
        inject.set_module_num(number)
        pipeline.add_module(inject)
        number += 1
    if scribbles is not None:
        inject = InjectImage("Scribbles", scribbles)
        inject.set_module_num(number)
        pipeline.add_module(inject)
        number += 1
    module.set_module_num(number)
    pipeline.add_module(module)
    return pipeline


def run_pipeline(pipeline, n_image_sets, workspaces=None):
    """What Pipeline.run does for one group: prepare_group of every module, then each cycle."""
    measurements = Measurements(mode="memory")   # in memory: no temporary HDF5 file per run
    image_set_list = ImageSetList()
    numbers = list(range(1, n_image_sets + 1))
    for number in numbers:
        measurements.add_measurement(IMAGE, "ImageNumber", number, image_set_number=number)
    measurements.image_set_number = 1
    workspace = Workspace(pipeline, None, measurements, ObjectSet(), measurements, image_set_list)
    for module in pipeline.modules():  # Pipeline.prepare_group, minus its catch-all (errors must surface)
        workspace.set_module(module)
        module.prepare_group(workspace, {}, numbers)
    object_sets = []
    for number in numbers:
        measurements.next_image_set(number)
        object_set = ObjectSet()
        for module in pipeline.modules():
            workspace = Workspace(pipeline, module, measurements, object_set, measurements, image_set_list)
            module.run(workspace)
            if workspaces is not None:
                workspaces.append(workspace)
        object_sets.append(object_set)
    pipeline.post_group(workspace, {})
    return measurements, object_sets


def mean_matched_iou(pred, truth):
    from impartial_core.metrics import matched_dice_iou

    return matched_dice_iou(pred, truth)[1]


@pytest.fixture(scope="module")
def nuclei_run(tmp_path_factory, data):
    images, scribbles, labels = data
    folder = tmp_path_factory.mktemp("model")
    new_session()
    module = make_module(folder)
    pipeline = make_pipeline(module, {"DNA": images}, scribbles)
    module.validate_module(pipeline)
    with module_log() as lines:
        measurements, object_sets = run_pipeline(pipeline, len(images))
    return dict(folder=folder, module=module, pipeline=pipeline, measurements=measurements, object_sets=object_sets,
                trained=trainings(lines))


# ---------------------------------------------------------------------------- nuclei
def test_nuclei_counts_and_accuracy(nuclei_run, data):
    _, _, labels = data
    assert nuclei_run["trained"] == 1
    m = nuclei_run["measurements"]
    for number, (object_set, truth) in enumerate(zip(nuclei_run["object_sets"], labels), start=1):
        nuclei = object_set.get_objects("Nuclei").segmented
        n_true = len(np.unique(truth)) - 1
        assert 0.6 * n_true <= nuclei.max() <= 1.5 * n_true
        assert m.get_measurement(IMAGE, "Count_Nuclei", number) == nuclei.max()
        assert mean_matched_iou(nuclei, truth) > 0.25
        assert 0.0 < m.get_measurement(IMAGE, "ImPartial_Threshold_Nuclei", number) < 1.0
        probability = m.get_measurement("Nuclei", "ImPartial_MeanForegroundProbability", number)
        assert len(probability) == nuclei.max() and np.all(probability > 0.3)


def test_model_file_written_and_cached(nuclei_run, data):
    images, scribbles, _ = data
    path = nuclei_run["folder"] / "impartial_model.safetensors"
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    new_session()
    # unticking "Use a GPU" changes how training runs, not what it learns: no retraining either
    module = make_module(nuclei_run["folder"], use_gpu=True)
    with module_log() as lines:
        measurements, object_sets = run_pipeline(make_pipeline(module, {"DNA": images}, scribbles), len(images))
    assert trainings(lines) == 0, "the same data and settings must not retrain"
    assert loads(lines) == 1 and path.stat().st_mtime_ns == stamp
    first = nuclei_run["object_sets"][0].get_objects("Nuclei").segmented
    np.testing.assert_array_equal(object_sets[0].get_objects("Nuclei").segmented, first)
    # and in memory: a third run neither trains nor reads the file
    with module_log() as lines:
        run_pipeline(make_pipeline(make_module(nuclei_run["folder"]), {"DNA": images}, scribbles), len(images))
    assert (trainings(lines), loads(lines)) == (0, 0) and path.stat().st_mtime_ns == stamp


def test_other_settings_keep_a_backup(nuclei_run, data, tmp_path):
    images, scribbles, _ = data
    import shutil

    shutil.copy2(nuclei_run["folder"] / "impartial_model.safetensors", tmp_path / "impartial_model.safetensors")
    module = make_module(tmp_path, seed=1, max_iterations=5)
    with module_log() as lines:
        run_pipeline(make_pipeline(module, {"DNA": images[:1]}, scribbles[:1]), 1)
    assert trainings(lines) == 1
    backups = list(tmp_path.glob("impartial_model.*.bak.safetensors"))
    assert len(backups) == 1
    assert (tmp_path / "impartial_model.safetensors").read_bytes() != backups[0].read_bytes()


def test_declared_columns_equal_written(nuclei_run):
    check_columns(nuclei_run["module"], nuclei_run["pipeline"], nuclei_run["measurements"])


def check_columns(module, pipeline, measurements):
    declared = {(obj, feature) for obj, feature, _ in module.get_measurement_columns(pipeline)}
    object_names = {obj for obj, _ in declared} - {IMAGE}
    written = set()
    for obj in object_names | {IMAGE}:
        for feature in measurements.get_feature_names(obj):
            if obj == IMAGE and not (feature.startswith("Count_") or feature.startswith("ImPartial_")):
                continue  # ImageNumber, InjectImage's digests
            written.add((obj, feature))
    assert declared == written
    # categories / measurements / objects describe the same columns
    for obj in object_names | {IMAGE}:
        described = set()
        for category in module.get_categories(pipeline, obj):
            for measurement in module.get_measurements(pipeline, obj, category):
                objects = module.get_measurement_objects(pipeline, obj, category, measurement)
                if objects:
                    described |= {(obj, "%s_%s_%s" % (category, measurement, o)) for o in objects}
                else:
                    described.add((obj, "%s_%s" % (category, measurement)))
        assert described == {(o, f) for o, f in declared if o == obj}


# ---------------------------------------------------------------------------- nuclei + cells
@pytest.fixture(scope="module")
def cells_run(tmp_path_factory, data):
    """Two channels (DNA + a synthetic cell marker), cytoplasm scribbles, values 5/7/9."""
    from skimage.segmentation import expand_labels

    images, scribbles, labels = data
    rng = np.random.default_rng(0)
    markers, new_scribbles = [], []
    for image, scribble, truth in zip(images, scribbles, labels):
        cells = expand_labels(truth, 4)
        markers.append((0.6 * (cells > 0) + 0.1 * rng.random(cells.shape)).astype(np.float32))
        out = np.zeros_like(scribble)
        out[scribble == 1] = 5
        out[scribble == 2] = 7
        out[(scribble == 1) & (cells > 0) & (truth == 0)] = 9
        new_scribbles.append(out)
    folder = tmp_path_factory.mktemp("cells")
    module = make_module(folder, segment_choice="Nuclei, cells and cytoplasm", background_value=5, nucleus_value=7,
                         cytoplasm_value=9, save_probability=True, save_uncertainty=True)
    module.add_channel()
    module.channels[1].image_name.value = "Marker"
    module.show_window = True  # fills workspace.display_data as for the GUI's display window
    pipeline = make_pipeline(module, {"DNA": images, "Marker": markers}, new_scribbles)
    module.validate_module(pipeline)
    workspaces = []
    measurements, object_sets = run_pipeline(pipeline, len(images), workspaces)
    return dict(module=module, pipeline=pipeline, measurements=measurements, object_sets=object_sets, folder=folder,
                workspace=workspaces[-1])


def test_cells_contain_their_nuclei(cells_run):
    m = cells_run["measurements"]
    for number, object_set in enumerate(cells_run["object_sets"], start=1):
        nuclei = object_set.get_objects("Nuclei").segmented
        cells = object_set.get_objects("Cells").segmented
        cytoplasm = object_set.get_objects("Cytoplasm").segmented
        assert nuclei.max() > 5
        assert nuclei.max() == cells.max() == cytoplasm.max()
        assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])
        assert not np.any((cytoplasm > 0) & (nuclei > 0))
        n = nuclei.max()
        counts = [m.get_measurement(IMAGE, "Count_%s" % name, number) for name in ("Nuclei", "Cells", "Cytoplasm")]
        assert counts == [n, n, n]
        np.testing.assert_array_equal(m.get_measurement("Cells", "Parent_Nuclei", number), np.arange(1, n + 1))
        np.testing.assert_array_equal(m.get_measurement("Cytoplasm", "Parent_Nuclei", number), np.arange(1, n + 1))
        np.testing.assert_array_equal(m.get_measurement("Cytoplasm", "Parent_Cells", number), np.arange(1, n + 1))
        assert np.all(m.get_measurement("Nuclei", "Children_Cells_Count", number) == 1)
        assert np.all(m.get_measurement("Nuclei", "Children_Cytoplasm_Count", number) == 1)
        assert np.all(m.get_measurement("Cells", "Children_Cytoplasm_Count", number) == 1)


def test_display_data(cells_run, data):
    workspace = cells_run["workspace"]
    assert workspace.module is cells_run["module"]
    d = workspace.display_data
    assert d.channels.shape == (2, 128, 128)
    assert d.label_names == ["Nuclei", "Cells", "Cytoplasm"] and len(d.labels) == 3
    assert sorted(d.tasks) == ["cells", "nuclei"] and len(d.probability) == len(d.uncertainty) == 2
    assert d.loss_curve.ndim == 2 and d.loss_curve.shape[1] == 2 and len(d.loss_curve) > 0
    assert set(np.unique(d.scribbles)) <= {0, 1, 2, 3} and (d.scribbles == 3).any()


def test_cells_relationships_recorded(cells_run):
    m = cells_run["measurements"]
    module, pipeline = cells_run["module"], cells_run["pipeline"]
    declared = {(r, a, b) for r, a, b, _ in module.get_object_relationships(pipeline)}
    assert declared == {("Parent", "Nuclei", "Cells"), ("Parent", "Nuclei", "Cytoplasm"), ("Parent", "Cells", "Cytoplasm")}
    for relationship, parent, child in declared:
        groups = [g for g in m.get_relationship_groups()
                  if (g.relationship, g.object_name1, g.object_name2) == (relationship, parent, child)]
        assert len(groups) == 1 and groups[0].module_number == module.module_num
        records = m.get_relationships(module.module_num, relationship, parent, child)
        total = sum(m.get_measurement(IMAGE, "Count_%s" % child, n) for n in (1, 2))
        assert len(records) == total


def test_plugin_import_does_not_import_torch():
    import subprocess

    code = ("import sys, cellprofiler_core.preferences as p; p.set_headless(); "
            "p.set_plugin_directory(sys.argv[1], globally=False); import cellprofiler_core.modules; "
            "from cellprofiler_core.utilities.core.modules import instantiate_module; "
            "m = instantiate_module('ImPartial'); assert m.module_name == 'ImPartial'; print('torch' in sys.modules)")
    plugins = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins")
    out = subprocess.run([sys.executable, "-c", code, plugins], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]


def test_cells_columns_and_images(cells_run):
    check_columns(cells_run["module"], cells_run["pipeline"], cells_run["measurements"])
    m = cells_run["measurements"]
    for name in ("NucleiProbability", "CellProbability", "NucleiUncertainty", "CellUncertainty"):
        image = m.get_image(name)
        assert image.pixel_data.shape == (128, 128)
        assert image.pixel_data.min() >= 0 and image.pixel_data.max() <= 1


# ---------------------------------------------------------------------------- saved models, cluster
def test_saved_model_channel_mismatch_names_setting(nuclei_run, data):
    images, _, _ = data
    module = make_module(nuclei_run["folder"], model_mode="Use a saved model")
    module.add_channel()
    module.channels[1].image_name.value = "DNA2"
    pipeline = make_pipeline(module, {"DNA": images, "DNA2": images})
    with pytest.raises(ValidationError) as info:
        module.validate_module(pipeline)
    assert "1 channel" in info.value.message and "Select a channel image" in info.value.message
    assert info.value.get_setting() is module.channels[1].image_name
    with pytest.raises(ValueError, match="channel"):
        run_pipeline(pipeline, 1)


def test_saved_model_missing_file_names_setting(tmp_path):
    module = make_module(tmp_path, model_mode="Use a saved model")
    pipeline = make_pipeline(module, {"DNA": [np.zeros((64, 64), np.float32)]})
    with pytest.raises(ValidationError) as info:
        module.validate_module(pipeline)
    assert info.value.get_setting() is module.model_file_name
    module = make_module(tmp_path, model_mode="Fine-tune a saved model with these scribbles")
    with pytest.raises(ValidationError) as info:
        module.validate_module(make_pipeline(module, {"DNA": [np.zeros((64, 64), np.float32)]}))
    assert info.value.get_setting() is module.model_file_name
    module = make_module(tmp_path / "missing")
    with pytest.raises(ValidationError) as info:
        module.validate_module(make_pipeline(module, {"DNA": [np.zeros((64, 64), np.float32)]}))
    assert info.value.get_setting() is module.model_directory


def test_use_saved_model(nuclei_run, data):
    images, _, labels = data
    module = make_module(nuclei_run["folder"], model_mode="Use a saved model")
    pipeline = make_pipeline(module, {"DNA": images})
    module.validate_module(pipeline)
    assert not module.is_aggregation_module()
    with module_log() as lines:
        _, object_sets = run_pipeline(pipeline, len(images))
    assert trainings(lines) == 0
    first = nuclei_run["object_sets"][0].get_objects("Nuclei").segmented
    np.testing.assert_array_equal(object_sets[0].get_objects("Nuclei").segmented, first)


def test_cluster_job_never_trains(tmp_path, data, monkeypatch, nuclei_run):
    images, scribbles, _ = data
    monkeypatch.setattr(sys, "argv", ["cellprofiler", "-c", "-r", "-p", "x.cppipe", "-f", "1", "-l", "2"])
    module = make_module(tmp_path)
    with module_log() as lines:
        with pytest.raises(ValueError, match="does not exist.*never train"):
            run_pipeline(make_pipeline(module, {"DNA": images}, scribbles), len(images))
        # with the model file in place the job loads it, whatever its fingerprint (it sees only a slice)
        module = make_module(nuclei_run["folder"], seed=3)
        run_pipeline(make_pipeline(module, {"DNA": images[:1]}, scribbles[:1]), 1)
    assert trainings(lines) == 0


def test_no_scribbles_and_wrong_size_name_the_setting(tmp_path, data):
    images, scribbles, _ = data
    module = make_module(tmp_path)
    empty = [np.zeros_like(s) for s in scribbles]
    with pytest.raises(ValueError, match="none of the 2 image set.*scribble"):
        run_pipeline(make_pipeline(module, {"DNA": images}, empty), 2)
    module = make_module(tmp_path)
    with pytest.raises(ValueError, match="Select the scribble image"):
        run_pipeline(make_pipeline(module, {"DNA": images}, [s[:100] for s in scribbles]), 2)
    module = make_module(tmp_path, nucleus_value=5)
    with pytest.raises(ValueError, match="Scribble value for nuclei"):
        run_pipeline(make_pipeline(module, {"DNA": images}, scribbles), 2)


# ---------------------------------------------------------------------------- settings
def test_settings_round_trip(tmp_path):
    module = make_module(tmp_path, segment_choice="Nuclei, cells and cytoplasm", model_mode="Use a saved model",
                         cells_name="MyCells", threshold_automatic=False, manual_threshold=0.35, seed=7)
    module.add_channel()
    module.channels[1].image_name.value = "Membrane"
    module.nuclear_channel.value = 2
    pipeline = Pipeline()
    module.set_module_num(1)
    pipeline.add_module(module)
    text = io.StringIO()
    pipeline.dump(text)
    assert "ImPartial:[module_num:1" in text.getvalue()
    loaded = Pipeline()
    loaded.loadtxt(io.StringIO(text.getvalue()), raise_on_error=True)
    copy = loaded.modules()[0]
    assert type(copy).__name__ == "ImPartial"
    assert len(copy.channels) == 2
    assert [s.value_text for s in copy.settings()] == [s.value_text for s in module.settings()]
    values = [s.unicode_value for s in module.settings()]  # what Pipeline.dump writes
    assert module.upgrade_settings(values, 2, "ImPartial") == (values, 2)
    # revision 1 had no scribble source, folder, editor or split value: it reads scribble images as before
    assert module.upgrade_settings(values[:-4], 1, "ImPartial") == (values, 2)
    assert values[-4:] == ["An image from NamesAndTypes", "Default Output Folder sub-folder|scribbles", "Yes", "4"]


def test_batch_path_remapped_and_aggregation(tmp_path):
    module = make_module("/local/models")
    assert module.is_aggregation_module()
    module.prepare_to_create_batch(None, lambda path, **kwargs: path.replace("/local", "/cluster"))
    assert module.model_directory.get_absolute_path() == "/cluster/models"


def test_help_text():
    module = instantiate_module("ImPartial")
    doc = type(module).__doc__
    for heading in ("Supports 2D?", "What do I need as input?", "What do I get as output?",
                    "Measurements made by this module", "Technical notes", "References", "2021.01.20.427458"):
        assert heading in doc
    assert module.category == "Object Processing" and module.variable_revision_number == 2


# ---------------------------------------------------------------------------- groups, cluster jobs, settings checks
@pytest.mark.parametrize("argv, cluster", [
    (["-c", "-r", "-p", "x.cppipe", "-f1", "-l1"], True),
    (["-c", "-r", "-p", "x.cppipe", "--first-image-set=3"], True),
    (["-c", "-r", "-p", "x.cppipe", "--first", "3"], True),
    (["-c", "-r", "-p", "x.cppipe", "-gPlate=P1"], True),
    (["-c", "-r", "-p", "x.cppipe", "--group", "Plate=P1"], True),
    (["-c", "-r", "-p", "x.cppipe", "--file-list", "files.txt", "-L", "INFO"], False),
])
def test_cluster_job_switches_in_every_spelling(monkeypatch, argv, cluster):
    from impartial_cellprofiler.groups import running_as_cluster_job

    monkeypatch.setattr(sys, "argv", ["cellprofiler"] + argv)
    assert running_as_cluster_job(Pipeline()) is cluster


def test_group_model_file_names(tmp_path):
    from impartial_cellprofiler.groups import group_suffix

    module = make_module(tmp_path)
    assert module.output_model_path({}) == str(tmp_path / "impartial_model.safetensors")
    grouping = {"Metadata_Plate": "P 1/2", "Metadata_Batch": "b3"}
    path = module.output_model_path(grouping)
    assert path == str(tmp_path / "impartial_model_Batch-b3_Plate-P-1-2.safetensors")
    assert module.applied_model_path(grouping) == path  # what a cluster job of the group loads
    assert group_suffix(None) == ""
    # a saved model is the file the settings name, for every group: prepare_group and run load the same
    module.model_mode.value = "Use a saved model"
    assert module.applied_model_path(grouping) == module.model_path() == str(tmp_path / "impartial_model.safetensors")


def test_settings_apply_to_the_objects_made(tmp_path):
    """Cells only: the minimum size and the split setting are visible and act on the cells; a
    nuclei-only module reads scribble images that also hold cytoplasm strokes (as background)."""
    module = make_module(tmp_path, segment_choice="Cells only", min_size=55, split_touching=False)
    assert module.split_touching in module.visible_settings()
    _, _, instance = module.get_configs(1)
    assert instance.cell_min_size == 55 and instance.split_touching is False
    nuclei_only = make_module(tmp_path)
    assert nuclei_only.scribble_values().mapping() == {1: 1, 2: 2, 3: 3, 4: 4}
    nuclei_only.cytoplasm_value.value = 1  # hidden; must not take the background value over
    assert nuclei_only.scribble_values().mapping() == {1: 1, 2: 2, 4: 4}


def test_hidden_nuclear_channel_is_not_validated(tmp_path):
    module = make_module(tmp_path)
    module.add_channel()
    module.channels[1].image_name.value = "Membrane"
    module.nuclear_channel.value = 2
    module.channels[1].remover.on_event_fired()  # the user removes the second channel
    assert module.nuclear_channel not in module.visible_settings()
    module.validate_module(make_pipeline(module, {"DNA": [np.zeros((64, 64), np.float32)]}))


def test_upgrade_refuses_newer_and_damaged_settings(tmp_path):
    module = make_module(tmp_path)
    values = [s.unicode_value for s in module.settings()]
    with pytest.raises(ValueError, match="newer ImPartial plugin.*revision 3"):
        module.upgrade_settings(values, 3, "ImPartial")
    for damaged, revision in ((values[:10], 2), (values[:5] + ["extra"] + values[5:], 2), (values, 1)):
        with pytest.raises(ValueError, match="setting values"):
            module.upgrade_settings(damaged, revision, "ImPartial")


def _two_channel_saved_model(folder, channel_names, nuclear_channel, selected):
    """A one-iteration nuclei model of two channels saved in ``folder``, its image, and a module in
    "Use a saved model" mode that selects the channels ``selected``."""
    from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
    from impartial_core.model import ImPartialModel

    image = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[5:10, 5:10], scribbles[30:35, 30:35] = 1, 2
    model = ImPartialModel.train([image], [scribbles], tasks_for("nuclei", 2, nuclear_channel), NetworkConfig(2, 4),
                                 TrainingConfig(patch_size=32, batch_size=2, max_iterations=1, device="cpu"),
                                 channel_names=channel_names)
    model.save(str(folder / "impartial_model.safetensors"))
    module = make_module(folder, model_mode="Use a saved model")
    module.channels[0].image_name.value = selected[0]
    module.add_channel()
    module.channels[1].image_name.value = selected[1]
    return image, module


def test_saved_model_channel_order_checked(tmp_path):
    image, module = _two_channel_saved_model(tmp_path, ["DNA", "Membrane"], 0, ["Membrane", "DNA"])
    with pytest.raises(ValidationError, match="DNA, Membrane in this order"):
        module.validate_module(make_pipeline(module, {"Membrane": [image[1]], "DNA": [image[0]]}))


def test_model_sub_folder_made_before_training(tmp_path):
    from cellprofiler_core.preferences import DEFAULT_OUTPUT_SUBFOLDER_NAME

    module = make_module(tmp_path)
    module.model_directory.dir_choice = DEFAULT_OUTPUT_SUBFOLDER_NAME
    module.make_model_folder(str(tmp_path / "models" / "run1"))
    assert (tmp_path / "models" / "run1").is_dir()
    module = make_module(tmp_path)  # an absolute folder that does not exist is the user's to fix
    with pytest.raises(ValueError, match="does not exist"):
        module.make_model_folder(str(tmp_path / "absent"))


def test_unscribbled_image_sets_kept_only_up_to_the_cap(tmp_path, data, caplog):
    images, scribbles, _ = data
    from impartial_cellprofiler.image_sets import MAX_UNSCRIBBLED_IMAGE_SETS
    from impartial_core.model import ImPartialModel

    n = MAX_UNSCRIBBLED_IMAGE_SETS + 3
    channels = [images[0]] + [images[i % 2] + i for i in range(n)]
    marks = [scribbles[0]] + [np.zeros_like(scribbles[0])] * n
    module = make_module(tmp_path, max_iterations=2)
    with caplog.at_level("INFO"):
        run_pipeline(make_pipeline(module, {"DNA": channels}, marks), n + 1)
    summary = ImPartialModel.read_metadata(str(tmp_path / "impartial_model.safetensors"))["training_summary"]
    assert summary["n_images"] == 1 + MAX_UNSCRIBBLED_IMAGE_SETS
    assert "3 of the group's %d image sets have no scribbles" % (n + 1) in caplog.text


# ------------------------------------------------------------- headless runs: settings checked, errors that name what to fix
@pytest.mark.parametrize("settings, setting_text, message", [
    ({"patch_size": 130}, r"Training patch size \(pixels\)", "multiple of 4"),
    ({"segment_choice": "Nuclei, cells and cytoplasm", "cytoplasm_value": 2}, "Scribble value for cytoplasm",
     "both 2"),
    ({"scribble_image": "None"}, "Select the scribble image", ""),
])
def test_runs_without_the_gui_check_the_settings_first(tmp_path, data, settings, setting_text, message):
    """CellProfiler checks a module's settings only in the GUI: headless runs and batch jobs must
    stop with the same message, naming the setting, before any training."""
    images, scribbles, _ = data
    module = make_module(tmp_path, **settings)
    with module_log() as lines:
        with pytest.raises(ValueError, match='setting "%s":.*%s' % (setting_text, message)):
            run_pipeline(make_pipeline(module, {"DNA": images}, scribbles), 2)
    assert trainings(lines) == 0 and not (tmp_path / "impartial_model.safetensors").exists()


def test_a_channel_selected_twice_stops_a_run(tmp_path, data):
    images, scribbles, _ = data
    module = make_module(tmp_path)
    module.add_channel()
    module.channels[1].image_name.value = "DNA"
    with pytest.raises(ValueError, match="selected twice"):
        run_pipeline(make_pipeline(module, {"DNA": images}, scribbles), 2)


def test_saved_model_nuclear_channel_checked(tmp_path):
    image, module = _two_channel_saved_model(tmp_path, ["Membrane", "DNA"], 1, ["Membrane", "DNA"])
    pipeline = make_pipeline(module, {"Membrane": [image[0]], "DNA": [image[1]]})
    module.nuclear_channel.value = 1
    with pytest.raises(ValidationError, match=r"learnt nuclei from channel 2 \(DNA\).*Set it to 2") as info:
        module.validate_module(pipeline)
    assert info.value.get_setting() is module.nuclear_channel
    module.nuclear_channel.value = 2
    module.validate_module(pipeline)


def test_errors_name_the_group_and_the_image_set(tmp_path, data):
    images, scribbles, _ = data
    module = make_module(tmp_path)
    with pytest.raises(ValueError, match="group Metadata_Plate=P2: none of the 2 image set"):
        module.check_scribbles([np.zeros_like(s) for s in scribbles], 2, {"Metadata_Plate": "P2"})
    module.add_channel()
    module.channels[1].image_name.value = "Membrane"
    membrane = [images[0], images[1][:100]]
    with pytest.raises(ValueError, match="image set 2: the channel Membrane is 128x100"):
        run_pipeline(make_pipeline(module, {"DNA": images, "Membrane": membrane}, scribbles), 2)


def test_signed_scribble_files_get_a_hint(tmp_path, data):
    """CellProfiler shifts signed 16-bit images by 32768: the values then name no setting, and the
    message must say how to save the file instead."""
    images, scribbles, _ = data
    shifted = [s.astype(np.uint16) + 32768 for s in scribbles]
    with pytest.raises(ValueError, match="unsigned 8- or 16-bit"):
        run_pipeline(make_pipeline(make_module(tmp_path), {"DNA": images}, shifted), 2)
