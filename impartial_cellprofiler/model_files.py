"""The ImPartial module's model folder and model file settings, and their checks.

The folder defaults to the Default Output Folder and is remapped by CreateBatchFiles like other
folders; a file setting browses in it and shows model files (``*.safetensors``) first. A saved
model is compared with the module's settings, and each problem is a ValidationError on the
setting to change.
"""
import os

from cellprofiler_core.preferences import (ABSOLUTE_FOLDER_NAME, DEFAULT_INPUT_SUBFOLDER_NAME, DEFAULT_OUTPUT_FOLDER_NAME,
                                          DEFAULT_OUTPUT_SUBFOLDER_NAME)
from cellprofiler_core.setting import ValidationError
from cellprofiler_core.setting.text import Directory, Filename

from impartial_cellprofiler.choices import MODE_TRAIN

MODEL_FILES = [("ImPartial model (*.safetensors)", "*.safetensors"), ("All files (*.*)", "*.*")]


def model_folder_setting(text, doc):
    """A folder setting: the Default Output Folder first, then an absolute folder, then the others."""
    first = [DEFAULT_OUTPUT_FOLDER_NAME, ABSOLUTE_FOLDER_NAME]
    return Directory(text, value=Directory.static_join_string(DEFAULT_OUTPUT_FOLDER_NAME, ""),
                     dir_choices=first + [c for c in Directory.DIR_ALL if c not in first], allow_metadata=False, doc=doc)


def model_file_setting(text, value, folder, doc):
    """A model file name in the folder setting ``folder`` (its browse button opens that folder)."""
    def set_folder(path):
        folder.join_parts(*folder.get_parts_from_path(path))

    return Filename(text, value, get_directory_fn=folder.get_absolute_path, set_directory_fn=set_folder,
                    exts=MODEL_FILES, doc=doc)


def check_folder(folder):
    """An absolute model folder (the ``folder`` setting) must exist; the others are made when needed."""
    path = folder.get_absolute_path()
    if folder.dir_choice == ABSOLUTE_FOLDER_NAME and not os.path.isdir(path):
        raise ValidationError("The model folder %s does not exist" % path, folder)


def make_folder(setting, folder):
    """Check, before any training, that a model can be saved in ``folder`` (of the folder ``setting``);
    create a missing sub-folder of a default folder, as SaveImages does."""
    if os.path.isdir(folder):
        return
    if setting.dir_choice in (DEFAULT_INPUT_SUBFOLDER_NAME, DEFAULT_OUTPUT_SUBFOLDER_NAME):
        os.makedirs(folder, exist_ok=True)
        return
    raise ValueError("ImPartial: cannot save the model: the folder %s (setting \"%s\") does not exist" % (
        folder, setting.text))


def check_saved_model(module, path):
    """Compare the model file ``path`` with the ImPartial ``module``'s settings: a ValidationError on
    the setting to change."""
    from impartial_core.model_io import ModelFileError

    if not os.path.isfile(path):
        raise ValidationError(
            "%s needs a model file, but %s does not exist. Train one with \"%s\" first, or correct the model "
            "folder and file name." % (module.model_mode.value, path, MODE_TRAIN), module.model_file_name)
    try:
        info = module.model_store().info(path)
    except ModelFileError as error:
        raise ValidationError("The model file setting: %s" % error, module.model_file_name) from None
    channels = module.channels[0].image_name
    for problem in info.problems_with(module.channel_names(), module.task_names(), module.nuclear_channel.value - 1):
        if problem.kind == "count":
            more = len(module.channels) > problem.value
            raise ValidationError('%s in "%s". Select the same channels in the same order, or train a new model.'
                                  % (problem.message, channels.text),
                                  module.channels[-1].image_name if more else module.add_channel_button)
        if problem.kind == "order":
            raise ValidationError('%s in "%s". Select them in the model\'s order.' % (problem.message, channels.text),
                                  channels)
        if problem.field == "nuclear_channel":
            raise ValidationError('%s ("%s"). Set it to %d, or check that the channels are selected in the model\'s '
                                  'order.' % (problem.message, module.nuclear_channel.text, problem.value + 1),
                                  module.nuclear_channel)
        raise ValidationError('%s in "%s". Choose the matching option or train a new model.' % (
            problem.message, module.segment_choice.text), module.segment_choice)
