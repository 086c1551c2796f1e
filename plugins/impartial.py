"""ImPartial: nuclei and cell segmentation from a few scribbles, as a CellProfiler module.

The settings, and their mapping onto ``impartial_core`` (the method, shared with the ``impartial``
command line) and ``impartial_cellprofiler`` (display, progress, groups, measurements). torch is
imported only when a model is trained or applied, so the plugin loads fast and without it.
"""

import logging
import math
import os
import sys

import numpy

from cellprofiler_core.image import Image
from cellprofiler_core.module import Module
from cellprofiler_core.preferences import get_headless
from cellprofiler_core.setting import Binary, Divider, HiddenCount, SettingsGroup, ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.do_something import DoSomething, RemoveSettingButton
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import Float, ImageName, Integer, LabelName

LOGGER = logging.getLogger("impartial")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPO, "impartial_cellprofiler")) and _REPO not in sys.path:
    # A plugins folder inside a checkout of the repository: use the packages next to it (appended,
    # so that an installed copy comes first).
    sys.path.append(_REPO)
try:  # CellProfiler-side code; none of it imports torch
    from impartial_cellprofiler import (display, drawn_scribbles, groups, image_sets, measurements, model_files,
                                        progress, revisions, validation)
    from impartial_cellprofiler.choices import (LENGTH_BUDGET, LENGTH_CHOICES, LENGTH_ITERATIONS, MODE_CHOICES,
                                                MODE_FINE_TUNE, MODE_SAVED, MODE_TRAIN, SEG_CELLS, SEG_CHOICES,
                                                SEG_NUCLEI, SOURCE_CHOICES, SOURCE_FOLDER, SOURCE_IMAGE, TASK_CHOICE)
    from impartial_cellprofiler.help import MODULE_HELP, SETTING_HELP
except ImportError:  # the module stays in the menu, and its validation says what to install
    MODULE_HELP, SETTING_HELP = "ImPartial: see its settings' message for what to install.", {}


def _doc(setting):
    """The help of a setting, by the name of the attribute that holds it (impartial_cellprofiler.help)."""
    return SETTING_HELP.get(setting, "")


def _import_library():
    """Import the packages; say what to install when they are missing (CellProfiler would hide a
    plugin whose import fails: this keeps the module in the menu, its validation shows the message)."""
    try:
        from impartial_core import config, model, model_store  # noqa: F401
        import impartial_cellprofiler  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "ImPartial needs the impartial_core package and PyTorch in CellProfiler's Python "
            "environment, but importing them failed (%s). Install them into the Python that runs "
            "CellProfiler with:  pip install -e %s  (and pip install torch if it is missing)." % (error, _REPO)
        ) from error


# Models kept in memory by the module (GUI test mode and repeated runs never train or read twice).
MAX_MODELS_IN_MEMORY = 4


class ImPartial(Module):
    __doc__ = MODULE_HELP

    module_name = "ImPartial"
    category = "Object Processing"
    variable_revision_number = 4

    _store = None  # the model store of the module's instances, made when first used (it imports torch)

    @classmethod
    def model_store(cls):
        """The bounded store of models in memory and the policy for model files (impartial_core.model_store)."""
        if cls._store is None:
            _import_library()
            from impartial_core.model_store import ModelStore

            cls._store = ModelStore(max_models=MAX_MODELS_IN_MEMORY, logger=progress.PrefixedLog())
        return cls._store

    # ------------------------------------------------------------------ settings
    def create_settings(self):
        self.channels = []
        self.channel_count = HiddenCount(self.channels, "Channel count")
        self.add_channel(can_remove=False)
        self.add_channel_button = DoSomething("", "Add another channel", self.add_channel)

        self.nuclear_channel = Integer(
            "Nuclear stain channel (number in the list above)", 1, minval=1,
            doc=_doc("nuclear_channel"))
        self.scribble_source = Choice("Scribbles", SOURCE_CHOICES, SOURCE_IMAGE, doc=_doc("scribble_source"))
        self.scribble_image = ImageSubscriber("Select the scribble image", "None", doc=_doc("scribble_image"))
        self.scribble_folder = drawn_scribbles.scribble_folder_setting("Scribble folder", _doc("scribble_folder"))
        self.open_editor = Binary("Open the scribble editor in the GUI?", True, doc=_doc("open_editor"))
        self.background_value = Integer("Scribble value for background", 1, minval=1, doc=_doc("background_value"))
        self.nucleus_value = Integer("Scribble value for nuclei", 2, minval=1, doc=_doc("nucleus_value"))
        self.cytoplasm_value = Integer("Scribble value for cytoplasm", 3, minval=1, doc=_doc("cytoplasm_value"))
        self.split_value = Integer("Scribble value for split strokes", 4, minval=1, doc=_doc("split_value"))

        self.segment_choice = Choice(
            "What do you want to segment?", SEG_CHOICES, SEG_NUCLEI,
            doc=_doc("segment_choice"))
        self.nuclei_name = LabelName("Name the nuclei objects", "Nuclei", doc=_doc("nuclei_name"))
        self.cells_name = LabelName("Name the cell objects", "Cells", doc=_doc("cells_name"))
        self.cytoplasm_name = LabelName("Name the cytoplasm objects", "Cytoplasm", doc=_doc("cytoplasm_name"))

        self.model_mode = Choice("Model", MODE_CHOICES, MODE_TRAIN, doc=_doc("model_mode"))
        self.model_directory = model_files.model_folder_setting("Model folder", _doc("model_directory"))
        self.model_file_name = model_files.model_file_setting(
            "Model file name", "impartial_model.safetensors", self.model_directory, _doc("model_file_name"))
        self.fine_tuned_file_name = model_files.model_file_setting(
            "Fine-tuned model file name", "impartial_model_finetuned.safetensors", self.model_directory,
            _doc("fine_tuned_file_name"))
        self.training_length = Choice("Train for", LENGTH_CHOICES, doc=_doc("training_length"))
        self.time_budget = Float("Training time budget (seconds)", 180.0, minval=1.0, doc=_doc("time_budget"))

        self.show_advanced = Binary("Show advanced settings?", False, doc=_doc("show_advanced"))
        self.network_width = Integer(
            "Network width (filters of the first level)", 16, minval=4, maxval=128,
            doc=_doc("network_width"))
        self.max_iterations = Integer("Maximum training iterations", 2000, minval=1, doc=_doc("max_iterations"))
        self.patch_size = Integer("Training patch size (pixels)", 128, minval=16, maxval=1024, doc=_doc("patch_size"))
        self.batch_size = Integer("Training batch size", 8, minval=1, maxval=256, doc=_doc("batch_size"))
        self.learning_rate = Float("Learning rate", 0.002, minval=1e-6, maxval=1.0, doc=_doc("learning_rate"))
        self.seed = Integer("Random seed", 0, minval=0, doc=_doc("seed"))
        self.use_gpu = Binary("Use a GPU when available?", True, doc=_doc("use_gpu"))
        self.cpu_threads = Integer("CPU threads (0 for automatic)", 0, minval=0, doc=_doc("cpu_threads"))

        self.threshold_automatic = Binary("Automatic probability threshold?", True, doc=_doc("threshold_automatic"))
        self.manual_threshold = Float("Probability threshold", 0.5, minval=0.0, maxval=1.0,
                                      doc=_doc("manual_threshold"))
        self.min_size = Integer("Minimum object size (pixels)", 20, minval=0, doc=_doc("min_size"))
        self.split_touching = Binary("Split touching objects?", True, doc=_doc("split_touching"))
        self.split_depth = Float("Neck depth that splits touching nuclei (pixels)", 1.0, minval=0.01, doc=_doc("split_depth"))
        self.fill_holes = Binary("Fill holes in objects?", True, doc=_doc("fill_holes"))
        self.exclude_border = Binary("Discard objects touching the image border?", False, doc=_doc("exclude_border"))

        self.save_probability = Binary("Save the foreground probability images?", False, doc=_doc("save_probability"))
        self.nuclei_probability_name = ImageName("Name the nuclei probability image", "NucleiProbability",
                                                 doc=_doc("nuclei_probability_name"))
        self.cells_probability_name = ImageName("Name the cell probability image", "CellProbability",
                                                doc=_doc("cells_probability_name"))
        self.save_uncertainty = Binary("Save the uncertainty images?", False, doc=_doc("save_uncertainty"))
        self.nuclei_uncertainty_name = ImageName("Name the nuclei uncertainty image", "NucleiUncertainty",
                                                 doc=_doc("nuclei_uncertainty_name"))
        self.cells_uncertainty_name = ImageName("Name the cell uncertainty image", "CellUncertainty",
                                                doc=_doc("cells_uncertainty_name"))

        self._model = None
        self._training = None  # the group's image_sets.TrainingSets while training in the pipeline

    def add_channel(self, can_remove=True):
        group = SettingsGroup()
        if can_remove:
            group.append("divider", Divider(line=False))
        group.append("image_name", ImageSubscriber("Select a channel image", "None", doc=_doc("image_name")))
        if can_remove:
            group.append("remover", RemoveSettingButton("", "Remove this channel", self.channels, group))
        self.channels.append(group)

    def settings(self):
        return [self.channel_count] + [group.image_name for group in self.channels] + [
            self.nuclear_channel, self.scribble_image, self.background_value, self.nucleus_value,
            self.cytoplasm_value, self.segment_choice, self.nuclei_name, self.cells_name, self.cytoplasm_name,
            self.model_mode, self.model_directory, self.model_file_name, self.fine_tuned_file_name,
            self.time_budget, self.show_advanced, self.network_width, self.max_iterations, self.patch_size,
            self.batch_size, self.learning_rate, self.seed, self.use_gpu, self.threshold_automatic,
            self.manual_threshold, self.min_size, self.split_touching, self.fill_holes, self.exclude_border,
            self.save_probability, self.nuclei_probability_name, self.cells_probability_name,
            self.save_uncertainty, self.nuclei_uncertainty_name, self.cells_uncertainty_name,
            self.scribble_source, self.scribble_folder, self.open_editor, self.split_value, self.training_length,
            self.cpu_threads, self.split_depth,
        ]

    def prepare_settings(self, setting_values):
        count = int(setting_values[0])
        del self.channels[1:]
        while len(self.channels) < count:
            self.add_channel()

    def per_task(self, nuclei_setting, cells_setting):
        """Of a pair of settings, those of the tasks segmented (nuclei, cells or both)."""
        return [s for s, task in ((nuclei_setting, "nuclei"), (cells_setting, "cells")) if task in self.task_names()]

    def visible_settings(self):
        result = [setting for group in self.channels for setting in group.visible_settings()]
        result += [self.add_channel_button] + ([self.nuclear_channel] if len(self.channels) > 1 else [])
        result += [self.segment_choice] + [name for _, name in self.object_names_settings()]
        result += [self.model_mode]
        if self.model_mode != MODE_SAVED:
            result += [self.scribble_source]
            if self.draws_scribbles():
                result += [self.scribble_folder, self.open_editor]
            else:
                result += [self.scribble_image, self.background_value, self.nucleus_value]
                result += ([self.cytoplasm_value] if self.wants_cells() else []) + [self.split_value]
        result += [self.model_directory, self.model_file_name]
        result += [self.fine_tuned_file_name] if self.model_mode == MODE_FINE_TUNE else []
        if self.model_mode != MODE_SAVED:
            result += [self.training_length, self.max_iterations if self.fixed_iterations() else self.time_budget]
        result += [self.threshold_automatic] + ([] if self.threshold_automatic.value else [self.manual_threshold])
        result += [self.min_size, self.show_advanced]
        if self.show_advanced.value:
            result += [self.network_width] if self.model_mode == MODE_TRAIN else []
            if self.model_mode != MODE_SAVED:
                result += [] if self.fixed_iterations() else [self.max_iterations]
                result += [self.patch_size, self.batch_size, self.learning_rate, self.seed]
            result += [self.use_gpu, self.cpu_threads, self.split_touching]
            result += ([self.split_depth] if self.split_touching.value else []) + [self.fill_holes, self.exclude_border]
        result += [self.save_probability]
        result += self.per_task(self.nuclei_probability_name, self.cells_probability_name) if self.save_probability.value else []
        result += [self.save_uncertainty]
        result += self.per_task(self.nuclei_uncertainty_name, self.cells_uncertainty_name) if self.save_uncertainty.value else []
        return result

    def help_settings(self):
        return [self.channels[0].image_name] + [s for s in self.settings()[1 + len(self.channels):]]

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        revisions.refuse_newer(variable_revision_number, self.variable_revision_number)
        if variable_revision_number == 1:
            revisions.check_count(setting_values, 1, len(self.settings()) - 1 - len(self.channels) - 7)
            setting_values, variable_revision_number = revisions.add_scribble_source(setting_values), 2
        if variable_revision_number == 2:
            setting_values, variable_revision_number = list(setting_values) + [LENGTH_BUDGET, "0"], 3
        if variable_revision_number == 3:
            setting_values, variable_revision_number = list(setting_values) + ["1.0"], 4
        revisions.check_count(setting_values, variable_revision_number, len(self.settings()) - 1 - len(self.channels))
        return setting_values, variable_revision_number

    # ------------------------------------------------------------------ what the module makes
    @property
    def task_choice(self):
        return TASK_CHOICE[self.segment_choice.value]

    def draws_scribbles(self):
        """Whether the scribbles are drawn in CellProfiler (files in the scribble folder)."""
        return self.scribble_source == SOURCE_FOLDER

    def fixed_iterations(self):
        """Whether training runs a fixed number of iterations (no time limit): the same model anywhere."""
        return self.training_length == LENGTH_ITERATIONS

    def wants_cells(self):
        return self.segment_choice != SEG_NUCLEI

    def nuclei_from_stain(self):
        """Cells only with several channels: the nuclear stain seeds the cells (nuclei, cells, cytoplasm)."""
        return self.segment_choice == SEG_CELLS and len(self.channels) > 1

    def task_names(self):
        return self.task_choice.split("+")

    def object_names(self):
        """(object set of impartial_core.object_sets, object name) for each object set made."""
        return [(objects, setting.value) for objects, setting in self.object_names_settings()]

    def object_names_settings(self):
        """(object set, its name setting) for each object set made."""
        from impartial_core.object_sets import object_sets

        names = {"nuclei": self.nuclei_name, "cells": self.cells_name, "cytoplasm": self.cytoplasm_name}
        return [(objects, names[objects.name]) for objects in object_sets(self.task_names(), self.nuclei_from_stain())]

    def output_images(self):
        """(task, 'probability' | 'uncertainty', image name) for each optional output image."""
        names = {("nuclei", "probability"): self.nuclei_probability_name, ("cells", "probability"): self.cells_probability_name,
                 ("nuclei", "uncertainty"): self.nuclei_uncertainty_name, ("cells", "uncertainty"): self.cells_uncertainty_name}
        wanted = [kind for kind, setting in (("probability", self.save_probability), ("uncertainty", self.save_uncertainty))
                  if setting.value]
        return [(task, kind, names[(task, kind)].value) for kind in wanted for task in self.task_names()]

    def relationships(self):
        """(parent name, child name) pairs."""
        from impartial_core.object_sets import relationships

        name_of = {objects.name: name for objects, name in self.object_names()}
        return [(name_of[parent.name], name_of[child.name])
                for parent, child in relationships(self.task_names(), self.nuclei_from_stain())]

    def threshold_objects(self):
        """Object names that get an image threshold measurement (one per task)."""
        return [name for objects, name in self.object_names() if objects.has_threshold]

    def get_measurement_columns(self, pipeline):
        names = [name for _, name in self.object_names()]
        return measurements.columns(names, self.relationships(), self.threshold_objects())

    def get_categories(self, pipeline, object_name):
        return measurements.categories(self.get_measurement_columns(pipeline), object_name)

    def get_measurements(self, pipeline, object_name, category):
        return measurements.measurements(self.get_measurement_columns(pipeline), object_name, category)

    def get_measurement_objects(self, pipeline, object_name, category, measurement):
        return measurements.measurement_objects(object_name, category, measurement, self.threshold_objects())

    def get_object_relationships(self, pipeline):
        return measurements.object_relationships(self.relationships())

    def is_object_identification_module(self):
        return True

    # ------------------------------------------------------------------ validation
    def channel_names(self):
        return [group.image_name.value for group in self.channels]

    def scribble_values(self):
        """The user's value of each scribble class (impartial_core.scribbles.values.ScribbleValues)."""
        from impartial_core.scribbles.values import ScribbleValues

        return ScribbleValues(self.background_value.value, self.nucleus_value.value, self.cytoplasm_value.value,
                              uses_cytoplasm=self.wants_cells(), split=self.split_value.value)

    def value_setting(self, field):
        """The setting of a scribble class's value: ``field`` is background, nucleus, cytoplasm or split."""
        return getattr(self, "%s_value" % field)

    def model_path(self):
        return os.path.join(self.model_directory.get_absolute_path(), self.model_file_name.value)

    def output_model_path(self, grouping=None):
        """The file this module writes (training, fine-tuning) and cluster jobs read back.

        With Groups each group has its own model, so its file name carries the group's metadata
        (``impartial_model_Plate-P1.safetensors``): groups neither replace each other's file nor
        share a model, and each cluster job reads its own group's.
        """
        name = self.fine_tuned_file_name.value if self.model_mode == MODE_FINE_TUNE else self.model_file_name.value
        return os.path.join(self.model_directory.get_absolute_path(), groups.group_file_name(name, grouping))

    def applied_model_path(self, grouping=None):
        """The model file a group applies when it does not train: the saved model as named (the same
        for every group), or the file training wrote for the group."""
        return self.model_path() if self.model_mode == MODE_SAVED else self.output_model_path(grouping)

    def validate_module(self, pipeline):
        try:
            _import_library()
        except ImportError as error:
            raise ValidationError(str(error), self.model_mode)
        validation.validate(self)

    def validate_module_for_run(self, pipeline):
        self.validate_module(pipeline)

    # ------------------------------------------------------------------ training
    def is_aggregation_module(self):
        return self.model_mode != MODE_SAVED

    def get_configs(self, n_channels):
        from impartial_core.config import NetworkConfig, TrainingConfig
        from impartial_core.object_sets import instance_config

        network = NetworkConfig(n_channels=n_channels, width=self.network_width.value)
        training = TrainingConfig(
            patch_size=self.patch_size.value, batch_size=self.batch_size.value,
            learning_rate=float(self.learning_rate.value), max_iterations=self.max_iterations.value,
            time_budget_s=math.inf if self.fixed_iterations() else float(self.time_budget.value), seed=self.seed.value,
            device=self.device())
        instance = instance_config(None if self.threshold_automatic.value else float(self.manual_threshold.value),
                                   self.min_size.value, split_touching=self.split_touching.value,
                                   fill_holes=self.fill_holes.value, exclude_border=self.exclude_border.value,
                                   split_depth=float(self.split_depth.value))
        return network, training, instance

    def device(self):
        """Where to train and predict; on the CPU, this job's share of the CPUs (impartial_core.threads)."""
        from impartial_core.threads import use_threads

        use_threads(self.cpu_threads.value or None, groups.analysis_workers())
        return "auto" if self.use_gpu.value else "cpu"

    def load_model(self, path, setting=None, missing_hint=None):
        """Load a model file after checking it fits the settings; ``missing_hint`` says what to do
        when it is missing."""
        if not os.path.isfile(path):
            raise ValueError("ImPartial: the model file %s does not exist (setting \"%s\" in \"%s\"). %s" % (
                path, (setting or self.model_file_name).text, self.model_directory.text,
                missing_hint or "Train a model first with \"%s\"." % MODE_TRAIN))
        self.check_settings(path=path)
        return self.model_store().load(path)

    def check_settings(self, pipeline=None, path=None):
        """The GUI's settings checks (of a model file at ``path``, or all), which headless runs and batch
        jobs otherwise never make: a ValueError naming the setting."""
        try:
            model_files.check_saved_model(self, path) if path else self.test_valid(pipeline)
        except ValidationError as error:
            raise ValueError("ImPartial, setting \"%s\": %s" % (error.get_setting().text, error.message)) from None

    def prepare_group(self, workspace, grouping, image_numbers):
        _import_library()
        self._model = None
        pipeline = workspace.pipeline
        self.check_settings(pipeline)
        if self.model_mode == MODE_SAVED:
            self._model = self.load_applied_model(grouping)
        elif groups.running_as_cluster_job(pipeline):
            LOGGER.info("ImPartial: running as a cluster job (batch file or -f/-l/-g): loading the model, not training")
            self._model = self.load_applied_model(grouping)
        elif len(image_numbers) > 0:
            self._training = self.collect_training_data(workspace, grouping, image_numbers)
            lacking = self.scribble_problems(self._training.scribbles)
            if lacking and self.edits_in_gui(workspace):
                LOGGER.info("ImPartial: not enough scribbles to train yet (%s): draw them in the editor", lacking[0].message)
                return True
            self.check_scribbles(self._training.scribbles, self._training.seen, grouping)
            self._model = self.train_or_load(self._training.images, self._training.scribbles,
                                             self.output_model_path(grouping))
        return True

    def load_applied_model(self, grouping):
        """The model a group applies without training (see ``applied_model_path``)."""
        if self.model_mode == MODE_SAVED:
            return self.load_model(self.model_path())
        setting = self.fine_tuned_file_name if self.model_mode == MODE_FINE_TUNE else self.model_file_name
        return self.load_model(
            self.applied_model_path(grouping), setting,
            "Cluster jobs never train: run the pipeline once on your workstation to train and save the model, "
            "then create the batch files.")

    def collect_training_data(self, workspace, grouping, image_numbers):
        """Run the upstream modules over the group; return its ``image_sets.TrainingSets``."""
        kept = image_sets.TrainingSets()
        for number, image_set in image_sets.group_image_sets(workspace, self, grouping, image_numbers):
            where = image_sets.describe(workspace.measurements, self.channel_names(), number)
            stack, _ = self.get_channels(image_set, where, cache=False)
            if self.draws_scribbles():
                scribbles = drawn_scribbles.read_drawn(self.scribble_file(workspace.measurements, number), stack.shape[1:])
            else:
                scribbles = image_sets.scribble_image_classes(self, image_set, where, stack.shape[1:])
            kept.add(stack, scribbles, number, self.unusable(stack, where))
        if not kept.images:
            raise ValueError("ImPartial: no usable image set reached the module to train on")
        kept.log_left_out()
        return kept

    def scribble_problems(self, scribbles):
        """What the scribbles lack to train the tasks (``impartial_core.problems.Problem`` list)."""
        from impartial_core.config import tasks_for
        from impartial_core.scribbles.values import missing_classes

        return missing_classes(scribbles, tasks_for(self.task_choice, 1, 0))

    def check_scribbles(self, scribbles, n_image_sets, grouping=None):
        """Stop, naming the group and the settings, when the scribbles lack a class a task needs."""
        problems = self.scribble_problems(scribbles)
        if problems:
            raise ValueError(image_sets.missing_classes_message(self, problems[0], n_image_sets, grouping))

    def get_channels(self, image_set, where, cache=True):
        """The channels of an image set (``where`` names it) as one (C, H, W) float32 array, and the first
        channel's image."""
        return image_sets.read_channels(image_set, self.channel_names(), where, self.channels[0].image_name.text, cache)

    def unusable(self, stack, where):
        """What makes an image set's channels unusable (constant, saturated, ...), or None."""
        return image_sets.unusable(stack, self.channel_names(), where, self.channels[0].image_name.text)

    def train_or_load(self, images, scribbles, path):
        """The group's model: kept in memory, read from ``path`` when it holds a model of these images,
        scribbles and settings, or trained and saved there (impartial_core.model_store)."""
        request = self.training_request(images, scribbles)
        model_files.make_folder(self.model_directory, os.path.dirname(path))
        return self.model_store().train_or_reuse(path, request, self.train).model

    def training_request(self, images, scribbles):
        """The ``model_store.TrainingRequest`` of these images and scribbles under the settings."""
        from impartial_core.config import tasks_for
        from impartial_core.model_store import TrainingRequest

        n_channels = images[0].shape[0]
        tasks = tasks_for(self.task_choice, n_channels, self.nuclear_channel.value - 1 if n_channels > 1 else 0)
        network, training, _ = self.get_configs(n_channels)
        start_from = None
        if self.model_mode == MODE_FINE_TUNE:
            start_from = self.load_model(self.model_path())
            network = start_from.net.network
        return TrainingRequest(images, scribbles, tasks, network, training, start_from, tuple(self.channel_names()))

    def train(self, request):
        """Train the model of a request, with a progress dialog in the GUI and log lines (a fixed number
        of iterations with a fixed number of threads: impartial_core.threads.training_threads)."""
        from impartial_core.threads import training_threads, use_threads

        use_threads(training_threads(self.cpu_threads.value or None, self.fixed_iterations()), groups.analysis_workers())
        return progress.train_with_progress(request, "#%d: ImPartial" % self.module_num, get_headless())

    # ------------------------------------------------------------------ run
    def run(self, workspace):
        _import_library()
        from impartial_core import memory

        where = image_sets.describe(workspace.measurements, self.channel_names(), workspace.measurements.image_set_number)
        stack, first = self.get_channels(workspace.image_set, where)
        unusable = self.unusable(stack, where)
        if unusable:
            LOGGER.warning("%s. No objects were made for it (measurement %s).", unusable, measurements.M_USABLE)
        shown = drawn_scribbles.edit_and_refine(self, workspace, stack) if self.edits_in_gui(workspace) else None
        if self._model is None and not self.edits_in_gui(workspace):
            # prepare_group did not run in this process (or the module was re-created): load the file.
            self._model = self.load_applied_model(groups.grouping_of(workspace))
        model, scribbles = self._model, self.current_scribbles(workspace, stack.shape[1:])
        instance = self.get_configs(stack.shape[0])[2]
        maps, objects = shown or self.segment(None if unusable else model, stack, scribbles, instance)
        memory.release_free_memory()  # the step's freed arrays: a long job does not grow (impartial_core.memory)
        measurements.add_input_check(workspace, unusable)
        labels_of = {}
        for object_set, name in self.object_names():
            labels = getattr(objects, object_set.name)
            labels_of[name] = numpy.asarray(labels if labels is not None else numpy.zeros(stack.shape[1:]), numpy.int32)
            threshold = model.threshold(object_set.task, instance) if object_set.has_threshold and model else None
            measurements.add_objects(workspace, name, labels_of[name], first, maps.get(object_set.task), threshold)
        if self.relationships():
            measurements.add_relationships(workspace, self.module_num, self.nuclei_name.value, self.cells_name.value,
                                           self.cytoplasm_name.value)
        workspace.measurements.add_image_measurement(measurements.M_FINGERPRINT, str(model.fingerprint)[:64] if model else "")
        for task, kind, name in self.output_images():
            empty = numpy.zeros(stack.shape[1:], numpy.float32)
            data = empty if task not in maps else (
                maps[task].foreground_probability if kind == "probability" else maps[task].uncertainty)
            workspace.image_set.add(name, Image(numpy.asarray(data, numpy.float32), parent_image=first))
        if self.show_window:
            display.keep(workspace.display_data, stack, self.channel_names(), labels_of, maps,
                         model.training_summary.get("loss_curve") if model else None, scribbles)

    def segment(self, model, stack, scribbles, instance):
        """The maps (by task) and objects of one image set (none without a model: nothing drawn yet);
        split strokes among ``scribbles`` divide the objects they cross."""
        from impartial_core.instances import Objects
        from impartial_core.scribbles import SPLIT

        if model is None:
            return {}, Objects()
        try:
            model.check_compatible(stack.shape[0], self.task_names())
        except ValueError as error:
            raise ValueError("ImPartial: %s (settings \"%s\" and \"%s\")" % (
                error, self.channels[0].image_name.text, self.segment_choice.text))
        maps = model.predict(stack, device=self.device())
        stain = self.nuclear_channel.value - 1 if self.nuclei_from_stain() else None
        return maps, model.segment(maps, instance, image=stack, nuclear_channel=stain,
                                   split_strokes=None if scribbles is None else scribbles == SPLIT)

    def current_scribbles(self, workspace, shape):
        """The scribbles of the current image set in the convention (None when applying a saved model)."""
        if self.model_mode == MODE_SAVED:
            return None
        if self.draws_scribbles():
            return drawn_scribbles.read_drawn(self.scribble_file(workspace.measurements), shape)
        try:
            return self.scribble_values().to_classes(image_sets.read_scribbles(workspace.image_set, self.scribble_image.value))
        except ValueError:  # training has said what is wrong with them
            return None

    # ------------------------------------------------------------------ the scribble editor
    def edits_in_gui(self, workspace):
        """Whether this run opens the scribble editor: drawn scribbles, the editor on, in the GUI (Test
        mode, or an Analyze Images worker, which asks the GUI through its interaction handler)."""
        in_gui = getattr(workspace, "interaction_handler", None) is not None or not get_headless()
        return self.model_mode != MODE_SAVED and self.draws_scribbles() and self.open_editor.value and in_gui

    def scribble_file(self, measurements, number=None):
        """The scribble file of image set ``number`` (default: the current one) in the scribble folder."""
        return drawn_scribbles.scribble_path(self.scribble_folder.get_absolute_path(), measurements,
                                             self.channel_names()[0], number)

    def handle_interaction(self, stack, scribbles, objects, uncertainty, path):
        """The scribble editor, in the GUI process: the drawn scribbles, or None (Cancel)."""
        return drawn_scribbles.edit(stack, scribbles, self.wants_cells(), self.channel_names(), objects, uncertainty,
                                    "ImPartial: scribbles of %s" % os.path.basename(path))

    def post_group(self, workspace, grouping):
        self._model = self._training = None

    # ------------------------------------------------------------------ batch files
    def prepare_to_create_batch(self, workspace, fn_alter_path):
        self.model_directory.alter_for_create_batch_files(fn_alter_path)
        self.scribble_folder.alter_for_create_batch_files(fn_alter_path)
        return True

    # ------------------------------------------------------------------ display
    def display(self, workspace, figure):
        display.show(workspace.display_data, figure)
