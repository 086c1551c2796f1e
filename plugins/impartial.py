"""ImPartial: nuclei and cell segmentation from a few scribbles, as a CellProfiler module.

One module class per plugin file (CellProfiler 4.2 looks for the class whose lower-cased name is
the file name; CellProfiler 5 registers the first Module subclass). All the image analysis lives in
the ``impartial_core`` package; this file only maps CellProfiler settings, images, objects and
measurements onto it. torch is imported only when a model is trained or applied, so CellProfiler
starts as fast as without the plugin.
"""

import datetime
import logging
import os
import re
import shutil
import sys
import threading
import time

import numpy

from cellprofiler_core.constants.measurement import (
    COLTYPE_FLOAT,
    COLTYPE_INTEGER,
    COLTYPE_VARCHAR_FORMAT,
    FF_CHILDREN_COUNT,
    FF_PARENT,
    IMAGE,
    MCA_AVAILABLE_EACH_CYCLE,
    R_PARENT,
)
from cellprofiler_core.image import Image
from cellprofiler_core.module import Module
from cellprofiler_core.object import Objects
from cellprofiler_core.preferences import (
    ABSOLUTE_FOLDER_NAME,
    DEFAULT_INPUT_SUBFOLDER_NAME,
    DEFAULT_OUTPUT_FOLDER_NAME,
    DEFAULT_OUTPUT_SUBFOLDER_NAME,
    get_headless,
)
from cellprofiler_core.setting import Binary, Divider, HiddenCount, SettingsGroup, ValidationError
from cellprofiler_core.setting.choice import Choice
from cellprofiler_core.setting.do_something import DoSomething, RemoveSettingButton
from cellprofiler_core.setting.subscriber import ImageSubscriber
from cellprofiler_core.setting.text import Directory, Filename, Float, ImageName, Integer, LabelName
from cellprofiler_core.utilities.core.module.identify import (
    add_object_count_measurements,
    add_object_location_measurements,
    get_object_measurement_columns,
)

LOGGER = logging.getLogger("impartial")


def _import_core():
    """Import impartial_core (the algorithms); say exactly what to install when it is missing.

    CellProfiler hides a plugin whose import fails, so this module imports the library only when it
    is used: the module stays in the menu and its validation shows this message instead.
    """
    try:
        import impartial_core  # noqa: F401
    except ImportError:
        # A plugins folder inside a checkout of the repository: use the library next to it.
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.isdir(os.path.join(repo, "impartial_core")) and repo not in sys.path:
            sys.path.append(repo)
    try:
        import impartial_core  # noqa: F401
        from impartial_core import config, model, scribbles  # noqa: F401
    except ImportError as error:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        raise ImportError(
            "ImPartial needs the impartial_core package and PyTorch in CellProfiler's Python "
            "environment, but importing them failed (%s). Install them into the Python that runs "
            "CellProfiler with:  pip install -e %s  (and pip install torch if it is missing)." % (error, repo)
        ) from error
    return impartial_core


# ----------------------------------------------------------------------------- choices
SEG_NUCLEI = "Nuclei"
SEG_ALL = "Nuclei, cells and cytoplasm"
SEG_CELLS = "Cells only"
SEG_CHOICES = [SEG_NUCLEI, SEG_ALL, SEG_CELLS]
TASK_CHOICE = {SEG_NUCLEI: "nuclei", SEG_ALL: "nuclei+cells", SEG_CELLS: "cells"}

MODE_TRAIN = "Train in this pipeline"
MODE_SAVED = "Use a saved model"
MODE_FINE_TUNE = "Fine-tune a saved model with these scribbles"
MODE_CHOICES = [MODE_TRAIN, MODE_SAVED, MODE_FINE_TUNE]

C_IMPARTIAL = "ImPartial"
FTR_MEAN_PROBABILITY = "MeanForegroundProbability"
FTR_MEAN_UNCERTAINTY = "MeanUncertainty"
FTR_THRESHOLD = "Threshold"
FTR_FINGERPRINT = "ModelFingerprint"
M_FINGERPRINT = "%s_%s" % (C_IMPARTIAL, FTR_FINGERPRINT)

# A group's image sets without scribbles only feed the self-supervised loss (which measured no gain
# on the paper's data): a few are kept, not a whole plate's worth of images in memory.
MAX_UNSCRIBBLED_IMAGE_SETS = 8
# Command-line switches that make a CellProfiler process run only part of the image sets: such a
# process is a cluster job and must never train (every job would train its own model).
_SLICE_SWITCHES = ("-f", "--first-image-set", "-l", "--last-image-set", "-g", "--group")

LOG_EVERY_S = 10.0

# Models kept in memory, keyed by training fingerprint (trained) or by path + file stamp (loaded):
# GUI test mode and repeated runs in one CellProfiler session never train or read a file twice.
_MODEL_CACHE = {}
_MODEL_CACHE_MAX = 4
_CACHE_LOCK = threading.Lock()
_METADATA_CACHE = {}


def _cache_put(key, model):
    with _CACHE_LOCK:
        _MODEL_CACHE.pop(key, None)
        _MODEL_CACHE[key] = model
        while len(_MODEL_CACHE) > _MODEL_CACHE_MAX:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))


def _cache_get(key):
    with _CACHE_LOCK:
        return _MODEL_CACHE.get(key)


def _file_key(path):
    stat = os.stat(path)
    return ("file", os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


def running_as_cluster_job(pipeline):
    """True when this process runs a batch file or only a slice of the image sets.

    Signals (either one): the pipeline is in batch mode, i.e. it was loaded from the
    Batch_data.h5 that CreateBatchFiles wrote (``Pipeline.in_batch_mode()``, the signal
    CellProfiler's own input modules use), or the command line asks for part of the image sets
    (``-f``/``--first-image-set``, ``-l``/``--last-image-set``, ``-g``/``--group``).
    """
    try:
        if pipeline is not None and pipeline.in_batch_mode():
            return True
    except Exception:  # a pipeline without the method (never in CP 4.2 / 5)
        pass
    return any(_selects_image_sets(arg) for arg in sys.argv[1:])


def _selects_image_sets(arg):
    """Whether one command-line word is a -f/-l/-g switch, in any spelling CellProfiler's parser takes.

    ``-f 3``, ``-f3``, ``--first-image-set 3`` and ``--first-image-set=3`` all select image sets;
    long options may also be abbreviated (``--first=3``), as optparse and argparse allow.
    """
    if arg.startswith("--"):
        name = arg.split("=", 1)[0]
        return len(name) > 3 and any(s.startswith(name) for s in _SLICE_SWITCHES if s.startswith("--"))
    return any(arg.startswith(s) for s in _SLICE_SWITCHES if not s.startswith("--"))


def _group_suffix(grouping):
    """``Plate-P1_Well-A01`` for the grouping {"Metadata_Plate": "P1", "Metadata_Well": "A01"}; "" without groups."""
    parts = []
    for key, value in sorted((grouping or {}).items()):
        key = key[len("Metadata_"):] if key.startswith("Metadata_") else key
        parts.append("%s-%s" % tuple(re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-.") for text in (key, value)))
    return "_".join(parts)


def _grouping_of(workspace):
    """The grouping (metadata key to value) of the current image set's group; {} without groups."""
    number = workspace.measurements.image_set_number
    _, groupings = workspace.pipeline.get_groupings(workspace)
    for grouping, image_numbers in groupings:
        if number in image_numbers:
            return dict(grouping or {})
    return {}


def _forget_images(image_set, names):
    """Drop the cached images and the image providers of these names from an image set.

    ``Pipeline.run_group_with_yield`` means to restore the image set's providers after each image
    set but cannot (CellProfiler 4.2 and 5 hand it a copy of the list), and NamesAndTypes *adds* a
    provider per image set while ``get_image`` returns the first of a name. Without this, every
    image set after the first, and every group after the first, would be read as the first one.
    """
    image_set.clear_cache()
    for name in names:
        image_set.remove_image_provider(name)


# CellProfiler shifts signed 16-bit images by 32768 and rescales 32- and 64-bit integers, so their
# label values cannot be read back; the fix is on the user's side.
SCRIBBLE_FILE_HINT = ("Save scribble images as unsigned 8- or 16-bit TIFF or PNG files: CellProfiler shifts signed "
                      "and rescales 32-bit integer images")


def _scribbles_to_raw(image, setting_text):
    """The integer values of a scribble image as CellProfiler loaded it.

    NamesAndTypes divides an 8-bit image by 255 (16-bit by 65535) and records that divisor as the
    image's scale; undo it. A scribble image must hold whole numbers.
    """
    data = numpy.asarray(image.pixel_data)
    if data.ndim == 3:
        if data.shape[-1] in (3, 4) and not numpy.all(data[..., :1] == data[..., : min(3, data.shape[-1])]):
            raise ValueError(
                "%s: the scribble image is a colour image; it must be a grey-level label image whose values are the "
                "background, nucleus and cytoplasm values set in the module" % setting_text)
        data = data[..., 0]
    if data.dtype.kind in "iub":
        return data.astype(numpy.int64)
    candidates = []
    scale = getattr(image, "scale", None)
    if scale:
        candidates.append(float(scale))
    candidates += [1.0, 255.0, 65535.0]
    for factor in candidates:
        scaled = data.astype(numpy.float64) * factor
        rounded = numpy.round(scaled)
        if numpy.all(numpy.abs(scaled - rounded) < 1e-3):
            return rounded.astype(numpy.int64)
    raise ValueError(
        "%s: the scribble image does not hold whole-number labels (values like %s). Load it in NamesAndTypes as a "
        "grey-level image saved without compression loss (TIFF or PNG), not as a JPEG or a rescaled image. %s."
        % (setting_text, numpy.unique(data)[:5].tolist(), SCRIBBLE_FILE_HINT))


class ImPartial(Module):
    """
ImPartial
=========

**ImPartial** segments nuclei, or nuclei with their whole cells and cytoplasm, after learning
from a few **scribbles**: strokes that mark some background, some nuclei and (for cells) some
cytoplasm. It trains a small neural network inside the pipeline on the scribbled image sets of a
group (and up to 8 unscribbled ones: it also learns from unscribbled pixels by a self-supervised
loss), saves it as a model file, and applies it to every image set.

|

============ ============ ===============
Supports 2D? Supports 3D? Respects masks?
============ ============ ===============
YES          NO           NO
============ ============ ===============

What do I need as input?
^^^^^^^^^^^^^^^^^^^^^^^^

-  One or more grey-level **channel images** of the same size (e.g. a DNA stain, and for cells
   a membrane or cytoplasm marker). Mark which channel is the nuclear stain.
-  A **scribble image** of the same size for each image set, loaded in *NamesAndTypes* as a
   grey-level image: 0 = not annotated, and one value each for background, nucleus and
   cytoplasm (1, 2 and 3 by default; set other values in the module). Draw scribbles in any
   paint program or Fiji (a label image saved as TIFF or PNG). Image sets whose scribble image
   is all 0 are still segmented and still help training. Scribbles must mark at least some
   background and some nuclei (and some cytoplasm to train cells) somewhere in the group.

What do I get as output?
^^^^^^^^^^^^^^^^^^^^^^^^

-  *Nuclei*: nuclei objects (touching nuclei split unless switched off).
-  *Cells* and *Cytoplasm* (with "Nuclei, cells and cytoplasm"): each cell grown from its
   nucleus, and its cytoplasm (cell minus nucleus). Nucleus *n*, cell *n* and cytoplasm *n*
   have the same object number, as with IdentifySecondaryObjects and IdentifyTertiaryObjects, and
   the parent/child relationships are recorded (Cells are children of Nuclei; Cytoplasm is a
   child of both).
-  *Cells* only (with "Cells only"): whole cells split by the cell probability alone.
-  Optionally, the foreground probability and uncertainty maps as images (to save with
   *SaveImages*, or to threshold yourself).
-  The model file (safetensors weights + JSON metadata, never pickled), reusable with "Use a
   saved model" here or with the ``impartial`` command line.

Measurements made by this module
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

**Image measurements:**

-  *Count*: the number of objects of each object set.
-  *ImPartial_Threshold_<objects>*: the probability threshold used for the nuclei (and cells).
-  *ImPartial_ModelFingerprint*: the training-data fingerprint of the model applied.

**Object measurements** (for each object set):

-  *Location_Center_X*, *Location_Center_Y*, *Number_Object_Number*.
-  *ImPartial_MeanForegroundProbability*: mean foreground probability over the object (low
   values mark doubtful objects).
-  *ImPartial_MeanUncertainty*: mean uncertainty (binary entropy of the probability) over
   the object: where to scribble next.
-  *Parent_Nuclei* (Cells, Cytoplasm), *Parent_Cells* (Cytoplasm), *Children_Cells_Count*
   (Nuclei) and *Children_Cytoplasm_Count* (Nuclei, Cells).

Technical notes
^^^^^^^^^^^^^^^

**Training and the model file.** With "Train in this pipeline" the module is an aggregation
module, like CorrectIlluminationCalculate with "All: First cycle": before the first cycle of each
group it runs the modules above it over every image set of the group, collects the channels and
scribbles of the scribbled image sets (and of at most 8 others, so a plate of thousands of image
sets does not have to fit in memory), and trains. The model is cached by a fingerprint of the
images, scribbles and training settings: when the model file already holds a model of the same fingerprint it is loaded
instead (so Test mode, stepping through image sets and re-running the pipeline never retrain),
and a model trained in this CellProfiler session is kept in memory. When the model file holds a
*different* model (other images, scribbles or settings), it is never silently replaced: it is
renamed to ``<name>.<date-time>.bak.safetensors`` next to it (the log says so) and the new model
is written in its place. Files are written atomically: a crash never leaves half a model.
With several groups (the Groups module), each group trains its own model and saves it under the
file name plus the group's metadata, e.g. ``impartial_model_Plate-P1.safetensors`` for plate P1;
cluster jobs load their own group's file.

**Fine-tuning.** "Fine-tune a saved model with these scribbles" starts from the saved model and
trains it further on this group's images and scribbles; the result goes to its own file (default
``impartial_model_finetuned.safetensors``), the starting model is not modified.

**Cluster / batch processing.** Cluster jobs never train. A process knows it is a cluster job when
its pipeline was loaded from a *Batch_data.h5* (CreateBatchFiles; the pipeline is in batch
mode) or when its command line selects part of the image sets (``-f``/``-l`` or ``-g``). It
then loads the model file (for "Fine-tune", the fine-tuned file) and a missing file is an error
naming the setting. The workflow: (1) run the pipeline once on your workstation (or step through
Test mode) so the model is trained and saved; (2) add CreateBatchFiles, map the model folder's
local path to the cluster's path (the model folder is remapped like other folders); (3) submit
the jobs. Or choose "Use a saved model" for the cluster pipeline.

**Training time.** Training stops at the time budget (default 180 s, chosen for CPUs) or at the
maximum number of iterations, whichever comes first, and keeps the weights that did best on
held-aside scribbled pixels. A GPU is used when available and allowed. Headless runs log the
iteration, loss and estimated time left about every 10 seconds (logger name ``impartial``); the
GUI shows a progress dialog during Test mode training.

**Inputs.** Channels are normalised per image (percentiles 1 and 99.8, values beyond three
times that range clipped, so a hot camera pixel does not become an object), so any bit depth
works. 3-D images and masks are not supported.

Usage example
^^^^^^^^^^^^^

#. *Images*: drag in ``image0.tif`` … and their scribble images ``image0_scribbles.tif`` ….
#. *NamesAndTypes*: assign "DNA" to images whose name does not contain ``scribbles`` and
   "Scribbles" to those that do; match them by file name metadata.
#. *ImPartial*: channel "DNA", scribble image "Scribbles", segment "Nuclei", "Train in this
   pipeline", model folder "Default Output Folder".
#. *MeasureObjectSizeShape*, *ExportToSpreadsheet* as usual. Run Test mode to see the result,
   then add scribbles where the uncertainty is high and run again.

References
^^^^^^^^^^

-  Martinez N, Sapiro G, Tannenbaum A, Hollmann TJ, Nadeem S (2021) "ImPartial: Partial
   Annotations for Cell Instance Segmentation." *bioRxiv* 2021.01.20.427458.
   (`link <https://doi.org/10.1101/2021.01.20.427458>`__)
-  Krull A, Buchholz TO, Jug F (2019) "Noise2Void - Learning Denoising from Single Noisy
   Images." *CVPR*. (the blind-spot self-supervision ImPartial builds on)
"""

    module_name = "ImPartial"
    category = "Object Processing"
    variable_revision_number = 1

    # Counters for tests and logs: how many models this process trained / loaded from a file.
    trainings = 0
    loads = 0

    # ------------------------------------------------------------------ settings
    def create_settings(self):
        self.channels = []
        self.channel_count = HiddenCount(self.channels, "Channel count")
        self.add_channel(can_remove=False)
        self.add_channel_button = DoSomething("", "Add another channel", self.add_channel)

        self.nuclear_channel = Integer(
            "Nuclear stain channel (number in the list above)", 1, minval=1,
            doc="The position, in the list of channel images above, of the nuclear stain (DNA, DAPI, "
                "Hoechst…). The nuclei are learnt from this channel; cells from all channels.")

        self.scribble_image = ImageSubscriber(
            "Select the scribble image", "None",
            doc="The scribble image of each image set: a grey-level label image of the same size as the "
                "channels, loaded in NamesAndTypes. 0 means not annotated; the values below mark background, "
                "nuclei and cytoplasm. Save it as an unsigned 8- or 16-bit TIFF or PNG. When training, every image "
                "set needs one (an all-zero image where nothing is scribbled): NamesAndTypes drops image sets "
                "without it, and they are then not segmented either. To segment many images from a few "
                "scribbled ones, train once and apply the saved model (see the pipelines README).")
        self.background_value = Integer(
            "Scribble value for background", 1, minval=1,
            doc="The value of background scribbles (outside every cell) in the scribble image.")
        self.nucleus_value = Integer(
            "Scribble value for nuclei", 2, minval=1,
            doc="The value of nucleus scribbles in the scribble image.")
        self.cytoplasm_value = Integer(
            "Scribble value for cytoplasm", 3, minval=1,
            doc="The value of cytoplasm scribbles (inside a cell, outside its nucleus). For nuclei they count "
                "as background.")

        self.segment_choice = Choice(
            "What do you want to segment?", SEG_CHOICES, SEG_NUCLEI,
            doc="- *%s*: nuclei only (scribble background and nuclei).\n"
                "- *%s*: nuclei, whole cells grown from them, and cytoplasm (scribble background, nuclei and "
                "cytoplasm; give a membrane or cytoplasm marker as a second channel).\n"
                "- *%s*: whole cells without nuclei (scribble background and cells; nucleus and cytoplasm "
                "scribbles both count as cell)." % (SEG_NUCLEI, SEG_ALL, SEG_CELLS))
        self.nuclei_name = LabelName("Name the nuclei objects", "Nuclei", doc="Name of the nuclei objects.")
        self.cells_name = LabelName("Name the cell objects", "Cells", doc="Name of the whole-cell objects.")
        self.cytoplasm_name = LabelName("Name the cytoplasm objects", "Cytoplasm", doc="Name of the cytoplasm objects.")

        self.model_mode = Choice(
            "Model", MODE_CHOICES, MODE_TRAIN,
            doc="- *%s*: train on the images and scribbles of each group before its first cycle, save the "
                "model file (a file holding a model trained on the same data and settings is loaded instead).\n"
                "- *%s*: apply the model file; no scribbles needed. Use this on a cluster.\n"
                "- *%s*: start from the model file and train it further with this group's scribbles; the result "
                "is saved to its own file." % (MODE_TRAIN, MODE_SAVED, MODE_FINE_TUNE))
        self.model_directory = Directory(
            "Model folder", value=Directory.static_join_string(DEFAULT_OUTPUT_FOLDER_NAME, ""),
            dir_choices=[DEFAULT_OUTPUT_FOLDER_NAME, ABSOLUTE_FOLDER_NAME] + [
                c for c in Directory.DIR_ALL if c not in (DEFAULT_OUTPUT_FOLDER_NAME, ABSOLUTE_FOLDER_NAME)],
            allow_metadata=False,
            doc="The folder of the model file. CreateBatchFiles remaps it for the cluster like other folders.")

        def get_directory_fn():
            return self.model_directory.get_absolute_path()

        def set_directory_fn(path):
            dir_choice, custom_path = self.model_directory.get_parts_from_path(path)
            self.model_directory.join_parts(dir_choice, custom_path)

        self.model_file_name = Filename(
            "Model file name", "impartial_model.safetensors",
            get_directory_fn=get_directory_fn, set_directory_fn=set_directory_fn,
            exts=[("ImPartial model (*.safetensors)", "*.safetensors"), ("All files (*.*)", "*.*")],
            doc="The model file: written when training, read with a saved model, the starting point when "
                "fine-tuning.")
        self.fine_tuned_file_name = Filename(
            "Fine-tuned model file name", "impartial_model_finetuned.safetensors",
            get_directory_fn=get_directory_fn, set_directory_fn=set_directory_fn,
            exts=[("ImPartial model (*.safetensors)", "*.safetensors"), ("All files (*.*)", "*.*")],
            doc="Where the fine-tuned model is saved (in the model folder). Must differ from the model file.")
        self.time_budget = Float(
            "Training time budget (seconds)", 180.0, minval=1.0,
            doc="Training stops after this many seconds (or at the maximum number of iterations). 180 s gives "
                "good nuclei on a laptop CPU; a GPU does far more iterations in the same time.")

        self.show_advanced = Binary("Show advanced settings?", False,
                                    doc="Show the network, training and object settings.")
        self.network_width = Integer(
            "Network width (filters of the first level)", 16, minval=4, maxval=128,
            doc="Wider networks can learn more but train slower; 16 suits CPUs, 32 or 64 a GPU.")
        self.max_iterations = Integer("Maximum training iterations", 2000, minval=1,
                                      doc="Upper bound of training iterations (the time budget usually ends training first).")
        self.patch_size = Integer("Training patch size (pixels)", 128, minval=16, maxval=1024,
                                  doc="Side of the square training patches; a multiple of 4, at most the image size.")
        self.batch_size = Integer("Training batch size", 8, minval=1, maxval=256,
                                  doc="Patches per training iteration.")
        self.learning_rate = Float("Learning rate", 0.002, minval=1e-6, maxval=1.0,
                                   doc="Adam learning rate.")
        self.seed = Integer(
            "Random seed", 0, minval=0,
            doc="Seed of the training randomness. The same seed gives the same model on the CPU when the iteration "
                "limit ends training; when the time budget ends it, the number of iterations (hence the model) "
                "depends on the machine's speed. For a reproducible model, set the maximum iterations below what "
                "the budget allows (the log says how many were done).")
        self.use_gpu = Binary("Use a GPU when available?", True,
                              doc="Train and predict on a CUDA or Apple GPU when there is one; otherwise the CPU.")

        self.threshold_automatic = Binary(
            "Automatic probability threshold?", True,
            doc="*Yes*: use the threshold learnt at training (chosen on the scribbled pixels). *No*: enter one.")
        self.manual_threshold = Float("Probability threshold", 0.5, minval=0.0, maxval=1.0,
                                      doc="Pixels whose foreground probability is above this are foreground.")
        self.min_size = Integer("Minimum object size (pixels)", 20, minval=0,
                                doc="Objects smaller than this (in pixels) are discarded.")
        self.split_touching = Binary(
            "Split touching objects?", True,
            doc="Split touching nuclei (with \"Cells only\": touching cells) by a watershed on their distance "
                "transform. Cells grown from nuclei are always separated by their nuclei.")
        self.fill_holes = Binary("Fill holes in objects?", True, doc="Fill holes inside each object.")
        self.exclude_border = Binary("Discard objects touching the image border?", False,
                                     doc="Discard objects that touch the image border (with cells, a cell, its nucleus and "
                                         "cytoplasm go together).")

        self.save_probability = Binary("Save the foreground probability images?", False,
                                       doc="Add the foreground probability (0 to 1) of each task as an image.")
        self.nuclei_probability_name = ImageName("Name the nuclei probability image", "NucleiProbability",
                                                 doc="Name of the nuclei foreground probability image.")
        self.cells_probability_name = ImageName("Name the cell probability image", "CellProbability",
                                                doc="Name of the whole-cell foreground probability image.")
        self.save_uncertainty = Binary("Save the uncertainty images?", False,
                                       doc="Add the uncertainty (binary entropy of the probability, 0 to 1) of each task "
                                           "as an image.")
        self.nuclei_uncertainty_name = ImageName("Name the nuclei uncertainty image", "NucleiUncertainty",
                                                 doc="Name of the nuclei uncertainty image.")
        self.cells_uncertainty_name = ImageName("Name the cell uncertainty image", "CellUncertainty",
                                                doc="Name of the whole-cell uncertainty image.")

        self._model = None

    def add_channel(self, can_remove=True):
        group = SettingsGroup()
        if can_remove:
            group.append("divider", Divider(line=False))
        group.append("image_name", ImageSubscriber(
            "Select a channel image", "None",
            doc="A grey-level channel image. All channels of an image set must have the same size; the "
                "order of the channels must stay the same for a saved model."))
        if can_remove:
            group.append("remover", RemoveSettingButton("", "Remove this channel", self.channels, group))
        self.channels.append(group)

    def settings(self):
        result = [self.channel_count]
        result += [group.image_name for group in self.channels]
        result += [
            self.nuclear_channel, self.scribble_image, self.background_value, self.nucleus_value,
            self.cytoplasm_value, self.segment_choice, self.nuclei_name, self.cells_name, self.cytoplasm_name,
            self.model_mode, self.model_directory, self.model_file_name, self.fine_tuned_file_name,
            self.time_budget, self.show_advanced, self.network_width, self.max_iterations, self.patch_size,
            self.batch_size, self.learning_rate, self.seed, self.use_gpu, self.threshold_automatic,
            self.manual_threshold, self.min_size, self.split_touching, self.fill_holes, self.exclude_border,
            self.save_probability, self.nuclei_probability_name, self.cells_probability_name,
            self.save_uncertainty, self.nuclei_uncertainty_name, self.cells_uncertainty_name,
        ]
        return result

    def prepare_settings(self, setting_values):
        count = int(setting_values[0])
        del self.channels[1:]
        while len(self.channels) < count:
            self.add_channel()

    def visible_settings(self):
        result = []
        for group in self.channels:
            result += group.visible_settings()
        result += [self.add_channel_button]
        if len(self.channels) > 1:
            result += [self.nuclear_channel]
        result += [self.segment_choice]
        if self.segment_choice != SEG_CELLS:
            result += [self.nuclei_name]
        if self.segment_choice != SEG_NUCLEI:
            result += [self.cells_name]
        if self.segment_choice == SEG_ALL:
            result += [self.cytoplasm_name]
        result += [self.model_mode]
        if self.model_mode != MODE_SAVED:
            result += [self.scribble_image, self.background_value, self.nucleus_value]
            if self.segment_choice != SEG_NUCLEI:
                result += [self.cytoplasm_value]
        result += [self.model_directory, self.model_file_name]
        if self.model_mode == MODE_FINE_TUNE:
            result += [self.fine_tuned_file_name]
        if self.model_mode != MODE_SAVED:
            result += [self.time_budget]
        result += [self.threshold_automatic]
        if not self.threshold_automatic.value:
            result += [self.manual_threshold]
        result += [self.min_size]
        result += [self.show_advanced]
        if self.show_advanced.value:
            if self.model_mode == MODE_TRAIN:
                result += [self.network_width]
            if self.model_mode != MODE_SAVED:
                result += [self.max_iterations, self.patch_size, self.batch_size, self.learning_rate, self.seed]
            result += [self.use_gpu]
            result += [self.split_touching, self.fill_holes, self.exclude_border]
        result += [self.save_probability]
        if self.save_probability.value:
            if self.segment_choice != SEG_CELLS:
                result += [self.nuclei_probability_name]
            if self.segment_choice != SEG_NUCLEI:
                result += [self.cells_probability_name]
        result += [self.save_uncertainty]
        if self.save_uncertainty.value:
            if self.segment_choice != SEG_CELLS:
                result += [self.nuclei_uncertainty_name]
            if self.segment_choice != SEG_NUCLEI:
                result += [self.cells_uncertainty_name]
        return result

    def help_settings(self):
        return [self.channels[0].image_name] + [s for s in self.settings()[1 + len(self.channels):]]

    def upgrade_settings(self, setting_values, variable_revision_number, module_name):
        if variable_revision_number > self.variable_revision_number:
            raise ValueError(
                "ImPartial: this pipeline was saved with a newer ImPartial plugin (module revision %d; this one "
                "reads revisions up to %d). Install the newer plugin to open it." % (
                    variable_revision_number, self.variable_revision_number))
        # Revision 1 is the first; later revisions add their conversions here, one step at a time.
        fixed = len(self.settings()) - 1 - len(self.channels)
        expected = 1 + int(setting_values[0]) + fixed
        if len(setting_values) != expected:
            # CellProfiler would pair the values with the wrong settings, or drop the missing ones.
            raise ValueError(
                "ImPartial: the pipeline holds %d setting values for this module where revision %d with %s "
                "channel(s) has %d; the pipeline file was edited or damaged." % (
                    len(setting_values), variable_revision_number, setting_values[0], expected))
        return setting_values, variable_revision_number

    def volumetric(self):
        return False

    # ------------------------------------------------------------------ what the module makes
    @property
    def task_choice(self):
        return TASK_CHOICE[self.segment_choice.value]

    def wants_nuclei(self):
        return self.segment_choice != SEG_CELLS

    def wants_cells(self):
        return self.segment_choice != SEG_NUCLEI

    def wants_cytoplasm(self):
        return self.segment_choice == SEG_ALL

    def object_names(self):
        """(task of the maps, objects attribute, object name) for each object set made."""
        result = []
        if self.wants_nuclei():
            result.append(("nuclei", "nuclei", self.nuclei_name.value))
        if self.wants_cells():
            result.append(("cells", "cells", self.cells_name.value))
        if self.wants_cytoplasm():
            result.append(("cells", "cytoplasm", self.cytoplasm_name.value))
        return result

    def output_images(self):
        """(task, 'probability' | 'uncertainty', image name) for each optional output image."""
        result = []
        tasks = [t for t, wanted in (("nuclei", self.wants_nuclei()), ("cells", self.wants_cells())) if wanted]
        names = {("nuclei", "probability"): self.nuclei_probability_name, ("cells", "probability"): self.cells_probability_name,
                 ("nuclei", "uncertainty"): self.nuclei_uncertainty_name, ("cells", "uncertainty"): self.cells_uncertainty_name}
        for kind, wanted in (("probability", self.save_probability.value), ("uncertainty", self.save_uncertainty.value)):
            if wanted:
                result += [(task, kind, names[(task, kind)].value) for task in tasks]
        return result

    def relationships(self):
        """(parent name, child name) pairs."""
        if not self.wants_cytoplasm():
            return []
        nuclei, cells, cytoplasm = self.nuclei_name.value, self.cells_name.value, self.cytoplasm_name.value
        return [(nuclei, cells), (nuclei, cytoplasm), (cells, cytoplasm)]

    def threshold_objects(self):
        """Object names that get an image threshold measurement (one per task)."""
        return [name for task, attribute, name in self.object_names() if attribute != "cytoplasm"]

    def get_measurement_columns(self, pipeline):
        columns = []
        for _, _, name in self.object_names():
            columns += get_object_measurement_columns(name)
            columns += [(name, "%s_%s" % (C_IMPARTIAL, FTR_MEAN_PROBABILITY), COLTYPE_FLOAT),
                        (name, "%s_%s" % (C_IMPARTIAL, FTR_MEAN_UNCERTAINTY), COLTYPE_FLOAT)]
        for parent, child in self.relationships():
            columns += [(parent, FF_CHILDREN_COUNT % child, COLTYPE_INTEGER), (child, FF_PARENT % parent, COLTYPE_INTEGER)]
        for name in self.threshold_objects():
            columns.append((IMAGE, "%s_%s_%s" % (C_IMPARTIAL, FTR_THRESHOLD, name), COLTYPE_FLOAT))
        columns.append((IMAGE, M_FINGERPRINT, COLTYPE_VARCHAR_FORMAT % 64))
        return columns

    def get_categories(self, pipeline, object_name):
        categories = set()
        for obj, feature, _ in self.get_measurement_columns(pipeline):
            if obj == object_name:
                categories.add(feature.split("_", 1)[0])
        return sorted(categories)

    def get_measurements(self, pipeline, object_name, category):
        result = []
        for obj, feature, _ in self.get_measurement_columns(pipeline):
            if obj != object_name or feature.split("_", 1)[0] != category:
                continue
            measurement = feature.split("_", 1)[1]
            if object_name == IMAGE and category == C_IMPARTIAL and measurement.startswith(FTR_THRESHOLD + "_"):
                measurement = FTR_THRESHOLD
            if measurement not in result:
                result.append(measurement)
        return result

    def get_measurement_objects(self, pipeline, object_name, category, measurement):
        if object_name == IMAGE and category == C_IMPARTIAL and measurement == FTR_THRESHOLD:
            return self.threshold_objects()
        return []

    def get_object_relationships(self, pipeline):
        return [(R_PARENT, parent, child, MCA_AVAILABLE_EACH_CYCLE) for parent, child in self.relationships()]

    def is_object_identification_module(self):
        return True

    # ------------------------------------------------------------------ validation
    def channel_names(self):
        return [group.image_name.value for group in self.channels]

    def scribble_values(self):
        """Scribble image value -> the convention's class (1 background, 2 nucleus, 3 cytoplasm).

        Cytoplasm scribbles count as background for nuclei, so a nuclei-only module reads the same
        scribble images as a cells one; its (then hidden) cytoplasm value yields to the other two.
        """
        values = {self.background_value.value: 1, self.nucleus_value.value: 2}
        if self.wants_cells():
            values[self.cytoplasm_value.value] = 3
        else:
            values.setdefault(self.cytoplasm_value.value, 3)
        return values

    def model_path(self):
        return os.path.join(self.model_directory.get_absolute_path(), self.model_file_name.value)

    def output_model_path(self, grouping=None):
        """The file this module writes (training, fine-tuning) and cluster jobs read back.

        With Groups each group has its own model, so its file name carries the group's metadata
        (``impartial_model_Plate-P1.safetensors``): groups neither replace each other's file nor
        share a model, and each cluster job reads its own group's.
        """
        name = self.fine_tuned_file_name.value if self.model_mode == MODE_FINE_TUNE else self.model_file_name.value
        suffix = _group_suffix(grouping)
        if suffix:
            stem, extension = os.path.splitext(name)
            name = "%s_%s%s" % (stem, suffix, extension)
        return os.path.join(self.model_directory.get_absolute_path(), name)

    def validate_module(self, pipeline):
        try:
            _import_core()
        except ImportError as error:
            raise ValidationError(str(error), self.model_mode)
        if len(set(self.channel_names())) != len(self.channels):
            raise ValidationError("The same image is selected twice as a channel: %s" % ", ".join(self.channel_names()),
                                  self.channels[-1].image_name)
        if len(self.channels) > 1 and self.nuclear_channel.value > len(self.channels):
            raise ValidationError(
                "The nuclear stain channel is %d but only %d channel image(s) are selected" % (
                    self.nuclear_channel.value, len(self.channels)), self.nuclear_channel)
        if self.model_mode != MODE_SAVED:
            if self.scribble_image.value in self.channel_names():
                raise ValidationError("The scribble image is also selected as a channel", self.scribble_image)
            seen = {}
            settings = [self.background_value, self.nucleus_value] + ([self.cytoplasm_value] if self.wants_cells() else [])
            for setting in settings:
                if setting.value in seen:
                    raise ValidationError("The scribble values for %s and %s are both %d; each class needs its own value" % (
                        seen[setting.value].text.lower(), setting.text.lower(), setting.value), setting)
                seen[setting.value] = setting
            patch = self.patch_size.value
            if patch % 4:
                raise ValidationError("The patch size must be a multiple of 4, got %d" % patch, self.patch_size)
        names = [name for _, _, name in self.object_names()]
        if len(set(names)) != len(names):
            raise ValidationError("The object sets need different names, got %s" % ", ".join(names),
                                  self.cells_name if self.wants_cells() else self.nuclei_name)
        images = [name for _, _, name in self.output_images()]
        if len(set(images)) != len(images):
            raise ValidationError("The output images need different names, got %s" % ", ".join(images),
                                  self.save_uncertainty)
        self.validate_model_file(pipeline)

    def validate_model_file(self, pipeline):
        folder = self.model_directory.get_absolute_path()
        if self.model_directory.dir_choice == ABSOLUTE_FOLDER_NAME and not os.path.isdir(folder):
            raise ValidationError("The model folder %s does not exist" % folder, self.model_directory)
        if self.model_mode == MODE_FINE_TUNE and self.fine_tuned_file_name.value == self.model_file_name.value:
            raise ValidationError("The fine-tuned model needs another file name than the model it starts from",
                                  self.fine_tuned_file_name)
        if self.model_mode == MODE_TRAIN:
            return
        path = self.model_path()
        if not os.path.isfile(path):
            raise ValidationError(
                "%s needs a model file, but %s does not exist. Train one with \"%s\" first, or correct the model "
                "folder and file name." % (self.model_mode.value, path, MODE_TRAIN), self.model_file_name)
        self.check_saved_model(path, ValidationError)

    def check_saved_model(self, path, error_class):
        """Compare the saved model's channels and tasks with the settings; raise error_class(message, setting)."""
        _import_core()
        from impartial_core.model import ImPartialModel
        from impartial_core.model_io import ModelFileError

        try:
            key = _file_key(path)
            meta = _METADATA_CACHE.get(key)
            if meta is None:  # validation runs on every edit in the GUI: read each file once
                meta = _METADATA_CACHE[key] = ImPartialModel.read_metadata(path)
        except (ModelFileError, OSError) as error:
            raise self._error(error_class, "The model file setting: %s" % error, self.model_file_name)
        count = int(meta.get("channels", {}).get("count", 0))
        names = meta.get("channels", {}).get("names", [])
        if count != len(self.channels):
            raise self._error(
                error_class,
                "The model file %s was trained on %d channel(s)%s, but %d channel image(s) are selected in "
                "\"Select a channel image\". Select the same channels in the same order, or train a new model."
                % (path, count, " (%s)" % ", ".join(names) if names else "", len(self.channels)),
                self.channels[-1].image_name if len(self.channels) > count else self.add_channel_button)
        if names and sorted(names) == sorted(self.channel_names()) and names != self.channel_names():
            raise self._error(
                error_class,
                "The model file %s was trained on the channels %s in this order, but \"Select a channel image\" "
                "lists %s. Select them in the model's order." % (path, ", ".join(names), ", ".join(self.channel_names())),
                self.channels[0].image_name)
        nuclei = [t for t in meta.get("tasks", []) if t.get("name") == "nuclei"]
        learnt = (nuclei[0].get("reconstructed_channels") or [None])[0] if nuclei else None
        if len(self.channels) > 1 and isinstance(learnt, int) and learnt != self.nuclear_channel.value - 1:
            raise self._error(
                error_class,
                "The model file %s learnt nuclei from channel %d%s, but \"%s\" is %d. Set it to %d, or check that "
                "the channels are selected in the model's order." % (
                    path, learnt + 1, " (%s)" % names[learnt] if learnt < len(names) else "", self.nuclear_channel.text,
                    self.nuclear_channel.value, learnt + 1),
                self.nuclear_channel)
        tasks = sorted(t.get("name") for t in meta.get("tasks", []))
        wanted = sorted(self.task_choice.split("+"))
        if tasks != wanted:
            raise self._error(
                error_class,
                "The model file %s segments %s, but \"What do you want to segment?\" asks for %s. Choose the "
                "matching option or train a new model." % (path, " + ".join(tasks), self.segment_choice.value),
                self.segment_choice)

    @staticmethod
    def _error(error_class, message, setting):
        if error_class is ValidationError:
            return ValidationError(message, setting)
        return error_class(message)

    def validate_module_for_run(self, pipeline):
        self.validate_module(pipeline)

    # ------------------------------------------------------------------ training
    def is_aggregation_module(self):
        return self.model_mode != MODE_SAVED

    def get_configs(self, n_channels):
        from impartial_core.config import InstanceConfig, NetworkConfig, TrainingConfig

        network = NetworkConfig(n_channels=n_channels, width=self.network_width.value)
        training = TrainingConfig(
            patch_size=self.patch_size.value, batch_size=self.batch_size.value,
            learning_rate=float(self.learning_rate.value), max_iterations=self.max_iterations.value,
            time_budget_s=float(self.time_budget.value), seed=self.seed.value, device=self.device())
        instance = InstanceConfig(
            threshold=None if self.threshold_automatic.value else float(self.manual_threshold.value),
            min_size=self.min_size.value, cell_min_size=self.min_size.value, fill_holes=self.fill_holes.value,
            split_touching=self.split_touching.value, exclude_border=self.exclude_border.value)
        return network, training, instance

    def device(self):
        # "auto" (not the device found) keeps the training fingerprint the same on every machine.
        return "auto" if self.use_gpu.value else "cpu"

    def load_model(self, path, setting=None, missing_hint=None):
        """Load a model file (cached per file stamp), check it fits the settings.

        ``missing_hint`` is what the error for a missing file tells the user to do.
        """
        _import_core()
        from impartial_core.model import ImPartialModel

        setting = setting or self.model_file_name
        if not os.path.isfile(path):
            raise ValueError(
                "ImPartial: the model file %s does not exist (setting \"%s\" in \"%s\"). %s" % (
                    path, setting.text, self.model_directory.text,
                    missing_hint or "Train a model first with \"%s\"." % MODE_TRAIN))
        self.check_saved_model(path, ValueError)
        key = _file_key(path)
        model = _cache_get(key)
        if model is None:
            model = ImPartialModel.load(path)
            ImPartial.loads += 1
            LOGGER.info("ImPartial: loaded the model %s", path)
            _cache_put(key, model)
        return model

    def check_settings(self, pipeline):
        """The GUI's settings checks, which headless runs and batch jobs otherwise never make."""
        try:
            self.test_valid(pipeline)
        except ValidationError as error:
            raise ValueError("ImPartial, setting \"%s\": %s" % (error.get_setting().text, error.message)) from error

    def prepare_group(self, workspace, grouping, image_numbers):
        _import_core()
        self._model = None
        pipeline = workspace.pipeline
        self.check_settings(pipeline)
        if self.model_mode == MODE_SAVED:
            self._model = self.load_model(self.model_path())
            return True
        if running_as_cluster_job(pipeline):
            LOGGER.info("ImPartial: running as a cluster job (batch file or -f/-l/-g): loading the model, not training")
            self._model = self.load_output_model(grouping)
            return True
        if len(image_numbers) == 0:
            return True
        images, scribbles = self.collect_training_data(workspace, grouping, image_numbers)
        self._model = self.train_or_load(images, scribbles, self.output_model_path(grouping))
        return True

    def load_output_model(self, grouping):
        """The model that training wrote for this group, for a process that does not train."""
        setting = self.fine_tuned_file_name if self.model_mode == MODE_FINE_TUNE else self.model_file_name
        return self.load_model(
            self.output_model_path(grouping), setting,
            "Cluster jobs never train: run the pipeline once on your workstation to train and save the model, "
            "then create the batch files.")

    def collect_training_data(self, workspace, grouping, image_numbers):
        """Run the upstream modules over the group; return the (C, H, W) images and scribbles."""
        from impartial_core.scribbles import remap_scribbles

        pipeline = workspace.pipeline
        m = workspace.measurements
        title = "#%d: ImPartial" % self.module_num
        message = "ImPartial is collecting %d image set(s) to train on" % len(image_numbers)
        images, scribbles = [], []
        seen = unscribbled = 0
        upstream_images = self.upstream_image_names(pipeline)
        _forget_images(m, upstream_images)  # the previous group's last image set left them behind
        mapping = self.scribble_values()
        scribble_text = "\"%s\" (%s)" % (self.scribble_image.text, self.scribble_image.value)
        for w in pipeline.run_group_with_yield(workspace, grouping, image_numbers, self, title, message):
            image_set = w.image_set
            number = w.measurements.image_set_number
            stack, first = self.get_channels(image_set, number, cache=False)
            raw = _scribbles_to_raw(image_set.get_image(self.scribble_image.value, cache=False), scribble_text)
            if raw.shape != stack.shape[1:]:
                raise ValueError(
                    "ImPartial, image set %d: the scribble image %s is %dx%d pixels but the channels are %dx%d. The "
                    "setting \"%s\" must name the scribbles of the same image." % (
                        number, self.scribble_image.value, raw.shape[1], raw.shape[0], stack.shape[2], stack.shape[1],
                        self.scribble_image.text))
            unknown = sorted(set(numpy.unique(raw).tolist()) - set(mapping) - {0})
            if unknown:
                named = [self.background_value, self.nucleus_value] + ([self.cytoplasm_value] if self.wants_cells() else [])
                raise ValueError(
                    "ImPartial, image set %d: the scribble image %s holds the value(s) %s, which none of the "
                    "settings %s names. Set those to your scribble image's values, or erase the other values "
                    "(0 means no scribble).%s" % (
                        number, self.scribble_image.value, unknown[:10],
                        ", ".join("\"%s\" (%d)" % (setting.text, setting.value) for setting in named),
                        " " + SCRIBBLE_FILE_HINT + "." if min(unknown) < 0 or max(unknown) >= 32768 else ""))
            scribble = remap_scribbles(raw, mapping)
            seen += 1
            if scribble.any() or unscribbled < MAX_UNSCRIBBLED_IMAGE_SETS:
                unscribbled += not scribble.any()
                images.append(stack)
                scribbles.append(scribble)
            _forget_images(image_set, upstream_images)
        if not images:
            raise ValueError("ImPartial: no image set reached the module to train on")
        if seen > len(images):
            LOGGER.info("ImPartial: %d of the group's %d image sets have no scribbles and were left out of training "
                        "(at most %d such image sets are kept, for the self-supervised loss)",
                        seen - len(images), seen, MAX_UNSCRIBBLED_IMAGE_SETS)
        self.check_scribbles(scribbles, seen, grouping)
        return images, scribbles

    def upstream_image_names(self, pipeline):
        """The names of the images that the modules above this one make (NamesAndTypes' included)."""
        return set(pipeline.get_provider_dictionary("imagegroup", self))

    def check_scribbles(self, scribbles, n_image_sets, grouping=None):
        from impartial_core.config import tasks_for

        tasks = tasks_for(self.task_choice, 1, 0)
        present = set()
        for s in scribbles:
            present.update(int(v) for v in numpy.unique(s))
        # with Groups each group trains alone: say which one lacks scribbles
        where = "ImPartial"
        if grouping:
            where += ", group %s" % ", ".join("%s=%s" % item for item in sorted(grouping.items()))
        if not present - {0}:
            raise ValueError(
                "%s: none of the %d image set(s) has any scribble in the scribble image \"%s\". Draw some "
                "background and nucleus scribbles (values %d and %d), or check the scribble image setting and its "
                "values." % (where, n_image_sets, self.scribble_image.value, self.background_value.value,
                             self.nucleus_value.value))
        value_of = {1: (self.background_value, "background"), 2: (self.nucleus_value, "nucleus"),
                    3: (self.cytoplasm_value, "cytoplasm")}
        for task in tasks:
            for role, values in (("foreground", task.foreground_values), ("background", task.background_values)):
                if not present & set(values):
                    described = " or ".join("%s (value %d, setting \"%s\")" % (value_of[v][1], value_of[v][0].value,
                                                                               value_of[v][0].text) for v in values)
                    raise ValueError(
                        "%s: the scribble images \"%s\" have no %s scribbles for the %s: draw some %s." % (
                            where, self.scribble_image.value, role, task.name, described))

    def get_channels(self, image_set, number, cache=True):
        """The channels of image set ``number`` as one (C, H, W) float32 array, and the first channel's image."""
        arrays = []
        first = None
        for i, group in enumerate(self.channels):
            image = image_set.get_image(group.image_name.value, must_be_grayscale=True, cache=cache)
            data = numpy.asarray(image.pixel_data, dtype=numpy.float32)
            if data.ndim != 2:
                raise ValueError("ImPartial: the channel %s is not a 2-D image (shape %s); 3-D is not supported" % (
                    group.image_name.value, data.shape))
            if first is None:
                first = image
            elif data.shape != arrays[0].shape:
                raise ValueError(
                    "ImPartial, image set %d: the channel %s is %dx%d pixels but %s is %dx%d; all channels (\"%s\") "
                    "must have the same size" % (number, group.image_name.value, data.shape[1], data.shape[0],
                                                 self.channels[0].image_name.value, arrays[0].shape[1],
                                                 arrays[0].shape[0], group.image_name.text))
            arrays.append(data)
        return numpy.stack(arrays), first

    def train_or_load(self, images, scribbles, path):
        from impartial_core.config import tasks_for
        from impartial_core.model import ImPartialModel
        from impartial_core.normalization import as_channels_first

        n_channels = images[0].shape[0]
        tasks = tasks_for(self.task_choice, n_channels, self.nuclear_channel.value - 1 if n_channels > 1 else 0)
        network, training, _ = self.get_configs(n_channels)
        start_from = None
        if self.model_mode == MODE_FINE_TUNE:
            start_from = self.load_model(self.model_path())
            network = start_from.net.network
        channels_first = [as_channels_first(im) for im in images]
        fingerprint = ImPartialModel.fingerprint_for(channels_first, scribbles, tasks, network, training, start_from)
        self.make_model_folder(os.path.dirname(path))
        model = _cache_get(("trained", fingerprint))
        file_matches = os.path.isfile(path) and self._file_fingerprint(path) == fingerprint
        if model is not None and file_matches:
            LOGGER.info("ImPartial: using the model trained earlier in this session (%s)", fingerprint[:12])
            return model
        if file_matches:
            model = self.load_model(path, self.fine_tuned_file_name if self.model_mode == MODE_FINE_TUNE else self.model_file_name)
            LOGGER.info("ImPartial: %s holds a model trained on these images, scribbles and settings: not training", path)
            _cache_put(("trained", fingerprint), model)
            return model
        if model is None:
            model = self.train(channels_first, scribbles, tasks, network, training, start_from)
            _cache_put(("trained", model.fingerprint), model)
        self.save_model(model, path)
        return model

    @staticmethod
    def _file_fingerprint(path):
        from impartial_core.model import ImPartialModel
        from impartial_core.model_io import ModelFileError

        try:
            return ImPartialModel.read_metadata(path).get("training_data_fingerprint")
        except ModelFileError:
            return None

    def make_model_folder(self, folder):
        """Check, before any training, that the model can be saved; create a missing sub-folder."""
        if os.path.isdir(folder):
            return
        if self.model_directory.dir_choice in (DEFAULT_INPUT_SUBFOLDER_NAME, DEFAULT_OUTPUT_SUBFOLDER_NAME):
            os.makedirs(folder, exist_ok=True)  # as SaveImages makes its sub-folders
            return
        raise ValueError("ImPartial: cannot save the model: the folder %s (setting \"%s\") does not exist" % (
            folder, self.model_directory.text))

    def save_model(self, model, path):
        """Write the model; a different model already at the path is kept as a dated backup."""
        folder = os.path.dirname(path)
        if os.path.exists(path):
            stem = os.path.basename(path)
            if stem.endswith(".safetensors"):
                stem = stem[: -len(".safetensors")]
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            backup = os.path.join(folder, "%s.%s.bak.safetensors" % (stem, stamp))
            n = 1
            while os.path.exists(backup):
                backup = os.path.join(folder, "%s.%s-%d.bak.safetensors" % (stem, stamp, n))
                n += 1
            shutil.copy2(path, backup)
            LOGGER.warning("ImPartial: %s held a model trained on other data or settings; kept it as %s and "
                           "replaced it with the new model", path, backup)
            model.save(path, overwrite=True)
        else:
            model.save(path)
        LOGGER.info("ImPartial: saved the model to %s", path)

    def train(self, images, scribbles, tasks, network, training, start_from):
        from impartial_core.model import ImPartialModel
        from impartial_core.training import TrainingCancelled

        LOGGER.info("ImPartial: training on %d image set(s) (%d scribbled pixels), budget %.0f s, at most %d iterations",
                    len(images), int(sum(int((s > 0).sum()) for s in scribbles)), training.time_budget_s,
                    training.max_iterations)
        reporter = _ProgressReporter(self.module_num)
        try:
            model = ImPartialModel.train(images, scribbles, tasks, network, training, channel_names=self.channel_names(),
                                         progress=reporter, start_from=start_from)
        except TrainingCancelled:
            raise ValueError("ImPartial: training was cancelled; no model was saved")
        finally:
            reporter.close()
        ImPartial.trainings += 1
        summary = model.training_summary
        LOGGER.info("ImPartial: trained %s iterations in %s s (%s)", summary.get("iterations"), summary.get("elapsed_s"),
                    summary.get("stopped_because"))
        return model

    # ------------------------------------------------------------------ run
    def run(self, workspace):
        _import_core()
        from impartial_core.instances import object_confidence

        model = self._model
        if model is None:
            # prepare_group did not run in this process (or the module was re-created): load the file.
            model = self._model = self.load_output_model(_grouping_of(workspace))
        stack, first = self.get_channels(workspace.image_set, workspace.measurements.image_set_number)
        try:
            model.check_compatible(stack.shape[0], self.task_choice.split("+"))
        except ValueError as error:
            raise ValueError("ImPartial: %s (settings \"Select a channel image\" and \"%s\")" % (
                error, self.segment_choice.text))
        _, _, instance = self.get_configs(stack.shape[0])
        maps = model.predict(stack, device=self.device())
        objects = model.segment(maps, instance)
        m = workspace.measurements

        labels_of = {}
        for task, attribute, name in self.object_names():
            labels = getattr(objects, attribute)
            if labels is None:
                labels = numpy.zeros(stack.shape[1:], numpy.int32)
            labels = numpy.asarray(labels, numpy.int32)
            labels_of[name] = labels
            result = Objects()
            result.segmented = labels
            result.parent_image = first
            workspace.object_set.add_objects(result, name)
            count = int(labels.max(initial=0))
            add_object_location_measurements(m, name, labels, count)
            add_object_count_measurements(m, name, count)
            mean_p, mean_u = object_confidence(labels, maps[task].foreground_probability, maps[task].uncertainty)
            m.add_measurement(name, "%s_%s" % (C_IMPARTIAL, FTR_MEAN_PROBABILITY), mean_p)
            m.add_measurement(name, "%s_%s" % (C_IMPARTIAL, FTR_MEAN_UNCERTAINTY), mean_u)
        self.add_relationships(workspace)
        for task, attribute, name in self.object_names():
            if attribute == "cytoplasm":
                continue
            threshold = instance.threshold if instance.threshold is not None else model.thresholds.get(task, 0.5)
            m.add_image_measurement("%s_%s_%s" % (C_IMPARTIAL, FTR_THRESHOLD, name), float(threshold))
        m.add_image_measurement(M_FINGERPRINT, str(model.fingerprint)[:64])
        for task, kind, name in self.output_images():
            data = maps[task].foreground_probability if kind == "probability" else maps[task].uncertainty
            workspace.image_set.add(name, Image(numpy.asarray(data, numpy.float32), parent_image=first))

        if self.show_window:
            d = workspace.display_data
            d.channels = stack
            d.channel_names = self.channel_names()
            d.labels = [labels_of[name] for _, _, name in self.object_names()]
            d.label_names = [name for _, _, name in self.object_names()]
            d.tasks = list(maps.keys())
            d.probability = [maps[t].foreground_probability for t in d.tasks]
            d.uncertainty = [maps[t].uncertainty for t in d.tasks]
            d.loss_curve = numpy.asarray(model.training_summary.get("loss_curve") or numpy.zeros((0, 2)), float)
            scribble = None
            if self.model_mode != MODE_SAVED:
                try:
                    raw = _scribbles_to_raw(workspace.image_set.get_image(self.scribble_image.value), "scribbles")
                    from impartial_core.scribbles import remap_scribbles
                    scribble = remap_scribbles(raw, self.scribble_values())
                except Exception:
                    scribble = None
            d.scribbles = scribble if scribble is not None else numpy.zeros(stack.shape[1:], numpy.uint8)

    def add_relationships(self, workspace):
        """Parent/child measurements and relationships, like Identify Secondary/Tertiary Objects."""
        if not self.wants_cytoplasm():
            return
        m = workspace.measurements
        object_set = workspace.object_set
        nuclei_name, cells_name, cyto_name = self.nuclei_name.value, self.cells_name.value, self.cytoplasm_name.value
        nuclei, cells, cytoplasm = (object_set.get_objects(n) for n in (nuclei_name, cells_name, cyto_name))
        children_per_nucleus, nucleus_of_cell = nuclei.relate_children(cells)
        children_per_cell, cell_of_cytoplasm = cells.relate_children(cytoplasm)
        nucleus_of_cell = numpy.asarray(nucleus_of_cell, int)
        cell_of_cytoplasm = numpy.asarray(cell_of_cytoplasm, int)
        # Cytoplasm does not overlap its nucleus: its nucleus is the parent of its cell.
        nucleus_of_cytoplasm = numpy.zeros(len(cell_of_cytoplasm), int)
        has_cell = cell_of_cytoplasm > 0
        nucleus_of_cytoplasm[has_cell] = nucleus_of_cell[cell_of_cytoplasm[has_cell] - 1]
        cytoplasm_per_nucleus = numpy.bincount(nucleus_of_cytoplasm, minlength=nuclei.count + 1)[1:nuclei.count + 1]
        for parent_name, child_name, parents_of, child_count in (
            (nuclei_name, cells_name, nucleus_of_cell, children_per_nucleus),
            (nuclei_name, cyto_name, nucleus_of_cytoplasm, cytoplasm_per_nucleus),
            (cells_name, cyto_name, cell_of_cytoplasm, children_per_cell),
        ):
            m.add_measurement(child_name, FF_PARENT % parent_name, numpy.asarray(parents_of, int))
            m.add_measurement(parent_name, FF_CHILDREN_COUNT % child_name, numpy.asarray(child_count, int))
            mask = parents_of > 0
            image_numbers = numpy.ones(int(mask.sum()), int) * m.image_set_number
            m.add_relate_measurement(self.module_num, R_PARENT, parent_name, child_name, image_numbers,
                                     numpy.asarray(parents_of)[mask], image_numbers, numpy.flatnonzero(mask) + 1)

    def post_group(self, workspace, grouping):
        self._model = None

    # ------------------------------------------------------------------ batch files
    def prepare_to_create_batch(self, workspace, fn_alter_path):
        self.model_directory.alter_for_create_batch_files(fn_alter_path)
        return True

    # ------------------------------------------------------------------ display
    def display(self, workspace, figure):
        d = workspace.display_data
        channels = d.channels
        n_maps = len(d.tasks)
        columns = max(3, 1 + len(d.label_names))
        figure.set_subplots((columns, 3))
        background = channels[0]
        figure.subplot_imshow_grayscale(0, 0, background, title="Input: %s" % d.channel_names[0])
        axes0 = figure.subplot(0, 0)
        for i, (labels, name) in enumerate(zip(d.labels, d.label_names)):
            figure.subplot_imshow_labels(1 + i, 0, labels, title=name, sharexy=axes0)
        figure.subplot_imshow(0, 1, _scribble_rgb(background, d.scribbles), title="Scribbles", sharexy=axes0)
        for i in range(n_maps):
            figure.subplot_imshow(1 + i, 1, d.probability[i], title="P(%s)" % d.tasks[i], colormap="viridis",
                                  sharexy=axes0, vmin=0, vmax=1)
        figure.subplot_imshow(0, 2, _outline_rgb(background, d.labels), title="Outlines", sharexy=axes0)
        for i in range(n_maps):
            figure.subplot_imshow(1 + i, 2, d.uncertainty[i], title="Uncertainty (%s)" % d.tasks[i], colormap="magma",
                                  sharexy=axes0, vmin=0, vmax=1)
        if columns > 1 + n_maps and len(d.loss_curve):
            axes = figure.subplot(columns - 1, 1)
            axes.clear()
            axes.plot(d.loss_curve[:, 0], d.loss_curve[:, 1])
            axes.set_title("Training loss")
            axes.set_xlabel("iteration")


def _gray_rgb(image):
    image = numpy.asarray(image, float)
    lo, hi = numpy.percentile(image, (1, 99.8)) if image.size else (0, 1)
    gray = numpy.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
    return numpy.dstack([gray] * 3)


def _scribble_rgb(image, scribbles):
    rgb = _gray_rgb(image)
    colors = {1: (0.2, 0.4, 1.0), 2: (1.0, 0.2, 0.2), 3: (0.2, 1.0, 0.2)}
    for value, color in colors.items():
        rgb[scribbles == value] = color
    return rgb


def _outline_rgb(image, labels_list):
    from skimage.segmentation import find_boundaries

    rgb = _gray_rgb(image)
    colors = [(1.0, 0.9, 0.0), (0.0, 1.0, 1.0), (1.0, 0.3, 1.0)]
    for labels, color in zip(labels_list, colors):
        rgb[find_boundaries(labels, mode="inner")] = color
    return rgb


class _ProgressReporter:
    """Training progress: a log line about every 10 s; a wx progress dialog in the GUI's main thread."""

    def __init__(self, module_num):
        self.module_num = module_num
        self.last_log = 0.0
        self.dialog = None
        self.cancelled = False
        try:
            if not get_headless():
                import wx

                if wx.GetApp() is not None and wx.IsMainThread():
                    self.dialog = wx.ProgressDialog(
                        "#%d: ImPartial" % module_num, "Training the ImPartial model…", maximum=1000,
                        # PD_AUTO_HIDE: without it the dialog turns modal when the maximum is reached
                        # and waits for the user to click "Close" before the pipeline goes on.
                        style=wx.PD_APP_MODAL | wx.PD_AUTO_HIDE | wx.PD_CAN_ABORT | wx.PD_ELAPSED_TIME
                        | wx.PD_REMAINING_TIME)
        except Exception:  # no wx, no display: log lines only
            self.dialog = None

    def __call__(self, progress):
        now = time.monotonic()
        if now - self.last_log >= LOG_EVERY_S or progress.iteration >= progress.max_iterations:
            self.last_log = now
            loss = progress.losses.get("total")
            LOGGER.info("ImPartial training: iteration %d/%d, loss %s, %.0f s elapsed, about %.0f s left",
                        progress.iteration, progress.max_iterations,
                        "%.4f" % loss if loss is not None else "n/a", progress.elapsed_s, progress.remaining_s)
        if self.dialog is not None:
            try:
                loss = progress.losses.get("total")
                keep_going, _ = self.dialog.Update(
                    int(1000 * progress.fraction),
                    "Iteration %d, loss %s" % (progress.iteration, "%.4f" % loss if loss is not None else "n/a"))
            except Exception:
                keep_going = True
            if not keep_going:
                from impartial_core.training import TrainingCancelled

                raise TrainingCancelled()

    def close(self):
        if self.dialog is not None:
            try:
                self.dialog.Destroy()
            except Exception:
                pass
            self.dialog = None
