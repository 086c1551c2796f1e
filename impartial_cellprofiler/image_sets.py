"""Reading the ImPartial module's inputs from CellProfiler's image sets.

- :func:`describe`: an image set as messages name it, by its files;
- :func:`read_channels`: the channel images of an image set as one (C, H, W) stack, and
  :func:`unusable`: what makes them unusable (constant, saturated, ...), if anything;
- :func:`read_scribbles`: the whole-number labels of a scribble image as NamesAndTypes loaded it;
- :func:`scribble_image_classes` and :func:`missing_classes_message`: the module's scribble image
  in the convention, and what its errors say (naming the module's settings);
- :func:`group_image_sets`: run the modules above over a group's image sets, one at a time;
- :class:`TrainingSets`: which image sets a group trains on (every scribbled one, a few others).
"""
import logging

import numpy
from cellprofiler_core.constants.measurement import IMAGE

from impartial_cellprofiler.groups import forget_images

LOGGER = logging.getLogger("impartial")

# A group's image sets without scribbles only feed the self-supervised loss (which measured no gain
# on the paper's data): a few are kept, not a whole plate's worth of images in memory.
MAX_UNSCRIBBLED_IMAGE_SETS = 8


def describe(measurements, names, number):
    """The image set ``number`` as errors and warnings name it: ``image set 2 (image3.tif)``, with the
    files NamesAndTypes loaded for its images ``names`` (just the number for images made otherwise)."""
    files = []
    for name in names:
        feature = "FileName_%s" % name
        if measurements is not None and measurements.has_feature(IMAGE, feature):
            value = measurements.get_measurement(IMAGE, feature, number)
            if value and value not in files:
                files.append(str(value))
    return "image set %d (%s)" % (number, ", ".join(files)) if files else "image set %d" % number


def read_channels(image_set, names, where, setting_text, cache=True):
    """The channels ``names`` of an image set as one (C, H, W) float32 array, and the first channel's
    image (the parent of the objects). ``where`` names the image set (:func:`describe`) and
    ``setting_text`` the channel setting in errors."""
    arrays, first = [], None
    for name in names:
        try:
            image = image_set.get_image(name, must_be_grayscale=True, cache=cache)
        except ValueError as error:  # CellProfiler's "Image must be grayscale", naming neither image nor setting
            raise ValueError(
                "ImPartial, %s: the channel image %s (setting \"%s\") is not a grayscale image (%s). ImPartial takes "
                "one grayscale image per channel: in NamesAndTypes load it as \"Grayscale image\", or split a colour "
                "image with ColorToGray and select each of its channels." % (where, name, setting_text, error)) from None
        data = numpy.asarray(image.pixel_data, dtype=numpy.float32)
        if data.ndim != 2:
            raise ValueError("ImPartial, %s: the channel %s (setting \"%s\") is not a 2-D image (shape %s); 3-D is "
                             "not supported" % (where, name, setting_text, data.shape))
        if first is None:
            first = image
        elif data.shape != arrays[0].shape:
            raise ValueError(
                "ImPartial, %s: the channel %s is %dx%d pixels but %s is %dx%d; all channels (\"%s\") "
                "must have the same size" % (where, name, data.shape[1], data.shape[0], names[0], arrays[0].shape[1],
                                             arrays[0].shape[0], setting_text))
        arrays.append(data)
    return numpy.stack(arrays), first


def unusable(stack, names, where, setting_text):
    """What makes the channels of an image set unusable (``input_checks.unusable_channels``), as one
    message naming the image set, its files and the channel setting; None if the image set is usable."""
    from impartial_core.input_checks import unusable_channels

    problems = unusable_channels(stack, names)
    if not problems:
        return None
    return "ImPartial, %s: %s (setting \"%s\")" % (where, "; ".join(p.message for p in problems), setting_text)


def read_scribbles(image_set, name, cache=True):
    """The labels of the scribble image ``name`` (NamesAndTypes divides 8-bit images by 255 and
    records it as the image's scale): an InputError from ``decode_scribbles`` if it holds none."""
    from impartial_core.scribbles.values import decode_scribbles

    image = image_set.get_image(name, cache=cache)
    return decode_scribbles(image.pixel_data, getattr(image, "scale", None))


def scribble_image_classes(module, image_set, where, shape):
    """The scribble image of an image set in the convention, read with the ``module``'s values; errors
    name the image set (``where``, see :func:`describe`), the image and the settings."""
    from impartial_core.problems import InputError

    values, name = module.scribble_values(), module.scribble_image.value
    where = "ImPartial, %s, the scribble image %s (setting \"%s\")" % (where, name, module.scribble_image.text)
    try:
        raw = read_scribbles(image_set, name, cache=False)
        if raw.shape != tuple(shape):
            raise ValueError("%s is %dx%d pixels but the channels are %dx%d: it must hold the scribbles of the same "
                             "image" % (where, raw.shape[1], raw.shape[0], shape[1], shape[0]))
        return values.to_classes(raw)
    except InputError as error:
        named = ", ".join("\"%s\" (%d)" % (module.value_setting(field).text, value) for field, value in values.classes())
        raise ValueError("%s: %s. The settings %s name the values of the classes; 0 means no scribble." % (
            where, error, named)) from None


def missing_classes_message(module, problem, n_image_sets, grouping=None):
    """What to tell the user of the ``module`` when the group's scribbles lack a class (a ``Problem``
    of ``missing_classes``): which group, which images or folder, which settings."""
    where = "ImPartial"  # with Groups each group trains alone: say which one lacks scribbles
    if grouping:
        where += ", group %s" % ", ".join("%s=%s" % item for item in sorted(grouping.items()))
    values, image = module.scribble_values(), module.scribble_image.value
    if problem.kind == "no_scribbles" and module.draws_scribbles():
        return ("%s: none of the %d image set(s) has a scribble file in %s (setting \"%s\"). Draw scribbles in the GUI "
                "(Test mode opens the editor), or put files named after the images there." % (
                    where, n_image_sets, module.scribble_folder.get_absolute_path(), module.scribble_folder.text))
    if problem.kind == "no_scribbles":
        return ("%s: none of the %d image set(s) has any scribble in the scribble image \"%s\". Draw some background "
                "and nucleus scribbles (values %d and %d), or check the scribble image setting and its values." % (
                    where, n_image_sets, image, values.background, values.nucleus))
    if module.draws_scribbles():
        return "%s: the scribble files in %s: %s." % (where, module.scribble_folder.get_absolute_path(), problem.message)
    described = " or ".join("value %d (setting \"%s\")" % (values.value_of(c), module.value_setting(values.field_of(c)).text)
                            for c in problem.value)
    return "%s: the scribble images \"%s\": %s, %s." % (where, image, problem.message, described)


def group_image_sets(workspace, module, grouping, image_numbers):
    """Run the modules above ``module`` over the group's image sets; yield each (number, image set).

    Each image set's images are dropped once the caller is done with it, so that a group is read
    one image set at a time and the next image set is not read as the previous one.
    """
    pipeline = workspace.pipeline
    upstream_images = set(pipeline.get_provider_dictionary("imagegroup", module))
    forget_images(workspace.measurements, upstream_images)  # the previous group's last image set left them behind
    title = "#%d: %s" % (module.module_num, module.module_name)
    message = "%s is collecting %d image set(s) to train on" % (module.module_name, len(image_numbers))
    for w in pipeline.run_group_with_yield(workspace, grouping, image_numbers, module, title, message):
        yield w.measurements.image_set_number, w.image_set
        forget_images(w.image_set, upstream_images)


class TrainingSets:
    """The images and scribbles a group trains on: every scribbled image set, and the first
    ``max_unscribbled`` of the others (they only feed the self-supervised loss); ``numbers`` are
    their image set numbers."""

    def __init__(self, max_unscribbled=MAX_UNSCRIBBLED_IMAGE_SETS):
        self.max_unscribbled = max_unscribbled
        self.images, self.scribbles, self.numbers = [], [], []
        self.seen = self.unscribbled = 0

    def add(self, stack, scribbles, number=None, unusable=None):
        """Keep an image set, unless ``unusable`` (a message: :func:`unusable`) says its channels are:
        then refuse it if it has scribbles, else leave it out."""
        self.seen += 1
        if unusable and scribbles.any():
            raise ValueError("%s. Its scribbles cannot be learnt from: nothing was trained and no model file was "
                             "changed. Fix or remove the image, or its scribbles." % unusable)
        if unusable:
            LOGGER.warning("%s. It has no scribbles and is left out of training.", unusable)
        elif scribbles.any() or self.unscribbled < self.max_unscribbled:
            self.unscribbled += not scribbles.any()
            self.images.append(stack)
            self.scribbles.append(scribbles)
            self.numbers.append(number)

    def update(self, number, stack, scribbles):
        """Replace the scribbles of image set ``number`` (drawn anew), adding the image set if it was left out."""
        if number not in self.numbers:  # kept in image set order, as a later run of the group reads them
            at = sum(n < number for n in self.numbers)
            self.images.insert(at, stack)
            self.scribbles.insert(at, scribbles)
            self.numbers.insert(at, number)
        self.scribbles[self.numbers.index(number)] = scribbles

    @property
    def has_scribbles(self):
        return any(s.any() for s in self.scribbles)

    @property
    def left_out(self):
        return self.seen - len(self.images)

    def log_left_out(self):
        """Say how many image sets were left out of training, if any."""
        if self.left_out:
            LOGGER.info("ImPartial: %d of the group's %d image sets have no scribbles and were left out of training "
                        "(at most %d such image sets are kept, for the self-supervised loss)",
                        self.left_out, self.seen, self.max_unscribbled)
