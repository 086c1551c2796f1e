"""Scribbles drawn in CellProfiler: the module's scribble folder, and the editor it opens in the GUI.

With the scribble source "drawn in CellProfiler" the module keeps one scribble file per image set in
its scribble folder, named after the image set's first channel file (``A01.tif`` ->
``A01_scribbles.tif``; ``impartial_core.scribble_files``), in the usual values (1 background,
2 nucleus, 3 cytoplasm, 4 split stroke; the module's value settings are for scribble images loaded
by NamesAndTypes). In the GUI (Test mode, and Analyze Images through CellProfiler's interaction
request) the module opens the editor on each image set; Save writes the file (keeping the earlier
one as a dated backup) and the model is refined with every stroke of the group. Headless runs,
batch files and cluster jobs read the files and never open anything.
"""
import logging
import os

import numpy

LOGGER = logging.getLogger("impartial")


def default_folder():
    """The scribble folder setting's default value: a sub-folder ``scribbles`` of the Default Output
    Folder (beside the model file, and out of the way of the Images module's file list)."""
    from cellprofiler_core.preferences import DEFAULT_OUTPUT_SUBFOLDER_NAME
    from cellprofiler_core.setting.text import Directory

    return Directory.static_join_string(DEFAULT_OUTPUT_SUBFOLDER_NAME, "scribbles")


def scribble_folder_setting(text, doc):
    """The scribble folder setting (remapped by CreateBatchFiles like other folders)."""
    from cellprofiler_core.preferences import ABSOLUTE_FOLDER_NAME, DEFAULT_OUTPUT_SUBFOLDER_NAME
    from cellprofiler_core.setting.text import Directory

    first = [DEFAULT_OUTPUT_SUBFOLDER_NAME, ABSOLUTE_FOLDER_NAME]
    return Directory(text, value=default_folder(), dir_choices=first + [c for c in Directory.DIR_ALL if c not in first],
                     allow_metadata=False, doc=doc)


def image_file_of(measurements, channel_name, image_number=None):
    """The file name of the image set's ``channel_name`` image (its FileName measurement)."""
    feature = "FileName_%s" % channel_name
    if image_number is None:
        name = measurements.get_current_image_measurement(feature)
    else:
        name = measurements.get_measurement("Image", feature, image_number)
    if not name:
        raise ValueError("ImPartial: the image %s has no file name (measurement %s), which names its scribble file; "
                         "load it with NamesAndTypes" % (channel_name, feature))
    return name


def scribble_path(folder, measurements, channel_name, image_number=None):
    """The scribble file of an image set in ``folder``."""
    from impartial_core.scribble_files import scribble_file_path

    return scribble_file_path(folder, image_file_of(measurements, channel_name, image_number))


def read_drawn(path, shape):
    """The scribbles of one image set: its file, or none (zeros) when there is no file. Errors name
    the file and the setting."""
    from impartial_core.scribble_files import read_scribble_file

    try:
        scribbles = read_scribble_file(path, shape)
    except ValueError as error:
        raise ValueError("ImPartial, the scribble folder: %s" % error) from None
    return numpy.zeros(shape, numpy.uint8) if scribbles is None else scribbles


def write_drawn(path, scribbles):
    """Save the scribbles of one image set; returns the dated backup of the file it replaced, if
    any. Unchanged scribbles write nothing."""
    from impartial_core.scribble_files import write_scribble_file

    os.makedirs(os.path.dirname(path), exist_ok=True)
    _, backup = write_scribble_file(path, scribbles, scribbles.shape)
    return backup


def edit(stack, scribbles, uses_cytoplasm, channel_names, objects, uncertainty, title):
    """Open the scribble editor (modal, in the GUI process) and return the scribbles, or None when the
    user cancels.

    Parameters
    ----------
    stack : (C, H, W) channels.
    scribbles : (H, W) current scribbles.
    uses_cytoplasm : whether to offer the cytoplasm brush (cells are segmented).
    channel_names : names of the channels, shown at their contrast controls.
    objects : object name -> label image (outlines are shown); may be empty before any training.
    uncertainty : (H, W) uncertainty map, or None; also where suggestions come from.
    title : the dialog's title.
    """
    import wx

    from impartial_cellprofiler.editor import edit_scribbles, module_brushes

    from impartial_core.scribbles import BACKGROUND, CYTOPLASM, NUCLEUS, SPLIT

    brushes = module_brushes(BACKGROUND, NUCLEUS, CYTOPLASM if uses_cytoplasm else None, SPLIT)
    labels = next(iter(objects.values()), None) if objects else None
    suggest = _suggester(uncertainty, labels) if uncertainty is not None else None
    app = wx.GetApp()
    parent = getattr(app, "frame", None) if app is not None else None
    return edit_scribbles(parent, numpy.moveaxis(stack, 0, -1), scribbles, brushes, channel_names=channel_names,
                          objects=objects, uncertainty=uncertainty, suggest=suggest, title=title)


def _suggester(uncertainty, labels):
    """The editor's "next suggestion": the core's places on this image, for the scribbles drawn so far."""
    from impartial_core.suggestions import SPLIT, suggest

    def places(drawn):
        found = suggest([uncertainty], [labels], 10, scribbles=[drawn])
        return [(p.row, p.col, "a split stroke across the merged object" if p.kind == SPLIT else "unsure: add strokes")
                for p in found]

    return places


def edit_and_refine(module, workspace, stack):
    """The editor loop of the ImPartial ``module`` on the current image set.

    Opens the editor (in the GUI process, through CellProfiler's interaction request, which calls
    ``module.handle_interaction``) on the channels, the current scribbles, objects and uncertainty;
    after Save writes the image set's scribble file, then trains the group's first model (when
    there was none) or refines the current one with every stroke of the group. Cancelling that
    training keeps the model as it was (the scribbles stay saved).

    Returns the (maps, objects) it showed when the scribbles and model stay as they were (so the
    image set is not predicted twice), else None.
    """
    number, shape = workspace.measurements.image_set_number, stack.shape[1:]
    path = module.scribble_file(workspace.measurements)
    current = read_drawn(path, shape)
    maps, objects = module.segment(module._model, stack, current, module.get_configs(stack.shape[0])[2])
    shown = {name: getattr(objects, o.name) for o, name in module.object_names() if getattr(objects, o.name) is not None}
    uncertainty = next(iter(maps.values())).uncertainty if maps else None
    drawn = workspace.interaction_request(module, stack, current, shown, uncertainty, str(path))
    if drawn is None or numpy.array_equal(drawn, current):
        return maps, objects
    backup = write_drawn(path, drawn)
    LOGGER.info("ImPartial: saved the scribbles of image set %d to %s%s", number, path,
                " (the earlier file kept as %s)" % backup if backup else "")
    training = module._training
    if training is None:  # the module was re-created since prepare_group: the next run trains
        return
    training.update(number, stack, drawn)
    if module.scribble_problems(training.scribbles):
        return  # not enough classes yet: the next image set's editor asks for more
    from impartial_cellprofiler.groups import grouping_of
    from impartial_cellprofiler.progress import Cancelled

    path = module.output_model_path(grouping_of(workspace))
    try:
        if module._model is None:
            module._model = module.train_or_load(training.images, training.scribbles, path)
        else:
            request = module.training_request(training.images, training.scribbles)
            module._model = module.model_store().refine(path, request, module._model, module.train).model
    except Cancelled as error:
        LOGGER.warning("%s; the model stays as it was", error)
