"""In-process tests of the ImPartial module's settings, groups and cluster jobs, and the checks headless
runs make before training (real cellprofiler_core objects, as in tests/test_plugin.py)."""
import io
import sys

import numpy as np
import pytest

pytest.importorskip("cellprofiler_core")
pytest.importorskip("torch")

from cellprofiler_core.pipeline import Pipeline  # noqa: E402
from cellprofiler_core.setting import ValidationError  # noqa: E402
from cellprofiler_core.utilities.core.modules import instantiate_module  # noqa: E402

from .test_plugin import data, make_module, make_pipeline, module_log, run_pipeline, trainings  # noqa: E402,F401


# ---------------------------------------------------------------------------- settings
def test_settings_round_trip(tmp_path):
    module = make_module(tmp_path, segment_choice="Nuclei, cells and cytoplasm", model_mode="Use a saved model",
                         cells_name="MyCells", threshold_automatic=False, manual_threshold=0.35, seed=7,
                         cpu_threads=0)  # the default, which revision 2 pipelines are upgraded to
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
    assert module.upgrade_settings(values, 4, "ImPartial") == (values, 4)
    # revision 3 had no split depth: it cut at necks 1 px deep, the default
    assert module.upgrade_settings(values[:-1], 3, "ImPartial") == (values, 4)
    assert values[-1] == "1.0"
    # revision 2 had no training length (it trained for a time budget, the default) nor thread count (automatic)
    assert module.upgrade_settings(values[:-3], 2, "ImPartial") == (values, 4)
    assert values[-3:-1] == ["A time budget", "0"]
    # revision 1 had no scribble source, folder, editor or split value either: it reads scribble images as before
    assert module.upgrade_settings(values[:-7], 1, "ImPartial") == (values, 4)
    assert values[-7:-3] == ["An image from NamesAndTypes", "Default Output Folder sub-folder|scribbles", "Yes", "4"]


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
    assert module.category == "Object Processing" and module.variable_revision_number == 4


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
    assert module.split_depth not in module.visible_settings()  # no split, no depth
    cutting = make_module(tmp_path, segment_choice="Cells only", split_depth=0.5)
    assert cutting.split_depth in cutting.visible_settings() and cutting.get_configs(1)[2].split_h == 0.5
    nuclei_only = make_module(tmp_path)
    assert nuclei_only.scribble_values().mapping() == {1: 1, 2: 2, 3: 3, 4: 4}
    nuclei_only.cytoplasm_value.value = 1  # hidden; must not take the background value over
    assert nuclei_only.scribble_values().mapping() == {1: 1, 2: 2, 4: 4}


def test_setting_texts_survive_a_saved_pipeline(tmp_path):
    """A .cppipe holds "text:value" lines split at the first colon: no setting's text may hold one, and
    non-default values of the newest settings come back from a saved pipeline."""
    module = make_module(tmp_path, cpu_threads=3, split_depth=0.5,
                         training_length="A fixed number of iterations (the same model on any machine)")
    assert [s.text for s in module.settings() if ":" in s.text] == []
    pipeline = Pipeline()
    module.set_module_num(1)
    pipeline.add_module(module)
    text = io.StringIO()
    pipeline.dump(text)
    loaded = Pipeline()
    loaded.loadtxt(io.StringIO(text.getvalue()), raise_on_error=True)
    copy = loaded.modules()[0]
    assert copy.cpu_threads.value == 3 and copy.fixed_iterations() and copy.split_depth.value == 0.5


def test_training_length_setting(tmp_path):
    """A time budget by default (max iterations advanced); a fixed number of iterations shows the
    iterations instead of the budget and trains without a time limit."""
    module = make_module(tmp_path, show_advanced=False)
    assert module.training_length.value == "A time budget"
    assert module.time_budget in module.visible_settings() and module.max_iterations not in module.visible_settings()
    assert module.get_configs(1)[1].time_budget_s == module.time_budget.value
    module.training_length.value = "A fixed number of iterations (the same model on any machine)"
    assert module.max_iterations in module.visible_settings() and module.time_budget not in module.visible_settings()
    training = module.get_configs(1)[1]
    assert training.time_budget_s == float("inf") and training.max_iterations == module.max_iterations.value
    module.show_advanced.value = True
    assert module.visible_settings().count(module.max_iterations) == 1
    module.model_mode.value = "Use a saved model"
    assert module.training_length not in module.visible_settings()


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
    with pytest.raises(ValueError, match="newer ImPartial plugin.*revision 5"):
        module.upgrade_settings(values, 5, "ImPartial")
    for damaged, revision in ((values[:10], 4), (values[:5] + ["extra"] + values[5:], 4), (values, 3), (values, 2),
                              (values, 1)):
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

    from impartial_cellprofiler.model_files import make_folder

    module = make_module(tmp_path)
    module.model_directory.dir_choice = DEFAULT_OUTPUT_SUBFOLDER_NAME
    make_folder(module.model_directory, str(tmp_path / "models" / "run1"))
    assert (tmp_path / "models" / "run1").is_dir()
    module = make_module(tmp_path)  # an absolute folder that does not exist is the user's to fix
    with pytest.raises(ValueError, match="does not exist"):
        make_folder(module.model_directory, str(tmp_path / "absent"))


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
