"""In-process tests of the ImPartial CellProfiler module (plugins/impartial.py).

Real cellprofiler_core objects throughout (Pipeline, InjectImage, Measurements, ObjectSet,
ImageSetList, Workspace): the pipeline runs the way CellProfiler runs it, prepare_group (which
runs the upstream modules over the group with run_group_with_yield and trains) then run() per
image set. Data: two 128x128 crops of the MIBI dsDNA image 0 with the paper's n200 scribbles.

Run:  .venv/bin/python -m pytest tests/test_plugin.py
      .venv-cp42/bin/python -m pytest tests/test_plugin.py
"""
import contextlib
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
    module.cpu_threads.value = 1  # the tests train tiny models: one thread, whatever the machine
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


def test_colour_and_tiny_images_name_the_setting(tmp_path, data):
    """A colour image selected as a channel, and an image too small to learn from (1x2 pixels with
    a background and a nucleus scribble): errors naming the image set and the channel setting, said
    once (no chained exception), and nothing is trained or written."""
    images, scribbles, _ = data
    colour = [np.dstack([image, image / 2, image / 4]) for image in images]  # (equal planes would pass as grey)
    with pytest.raises(ValueError, match=r"image set 1: the channel image DNA \(setting \"Select a channel image\"\) "
                                         r"is not a grayscale image") as info:
        run_pipeline(make_pipeline(make_module(tmp_path), {"DNA": colour}, scribbles), 2)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    tiny = make_module(tmp_path)
    with module_log() as lines, pytest.raises(ValueError, match=r"image set 1: the image is 2x1 pixels; ImPartial "
                                                                r"needs at least 16x16 \(setting \"Select a channel"):
        run_pipeline(make_pipeline(tiny, {"DNA": [np.array([[0.2, 0.8]], np.float32)]},
                                   [np.array([[1, 2]], np.uint8)]), 1)
    assert trainings(lines) == 0 and not list(tmp_path.iterdir())


def test_damaged_model_file_is_named_once(tmp_path, blob_model_file):
    """A damaged model file: one error naming the file and the setting, not a chain of exceptions."""
    damaged = tmp_path / "impartial_model.safetensors"
    damaged.write_bytes(b"\xff" * 64 + blob_model_file.read_bytes()[64:])
    module = make_module(tmp_path, model_mode="Use a saved model")
    with pytest.raises(ValueError) as info:
        run_pipeline(make_pipeline(module, {"DNA": [np.zeros((64, 64), np.float32)]}), 1)
    message = str(info.value)
    assert message.startswith('ImPartial, setting "Model file name": The model file setting: ') and str(damaged) in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
