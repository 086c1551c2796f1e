"""Reading the ImPartial module's inputs from CellProfiler's image sets.

- :func:`read_channels`: the channel images of an image set as one (C, H, W) stack;
- :func:`read_scribbles`: the whole-number labels of a scribble image as NamesAndTypes loaded it;
- :func:`group_image_sets`: run the modules above over a group's image sets, one at a time;
- :class:`TrainingSets`: which image sets a group trains on (every scribbled one, a few others).
"""
import logging

import numpy

from impartial_cellprofiler.groups import forget_images

LOGGER = logging.getLogger("impartial")

# A group's image sets without scribbles only feed the self-supervised loss (which measured no gain
# on the paper's data): a few are kept, not a whole plate's worth of images in memory.
MAX_UNSCRIBBLED_IMAGE_SETS = 8


def read_channels(image_set, names, number, setting_text, cache=True):
    """The channels ``names`` of image set ``number`` as one (C, H, W) float32 array, and the first
    channel's image (the parent of the objects). ``setting_text`` names the channel setting in errors."""
    arrays, first = [], None
    for name in names:
        image = image_set.get_image(name, must_be_grayscale=True, cache=cache)
        data = numpy.asarray(image.pixel_data, dtype=numpy.float32)
        if data.ndim != 2:
            raise ValueError("ImPartial: the channel %s is not a 2-D image (shape %s); 3-D is not supported" % (
                name, data.shape))
        if first is None:
            first = image
        elif data.shape != arrays[0].shape:
            raise ValueError(
                "ImPartial, image set %d: the channel %s is %dx%d pixels but %s is %dx%d; all channels (\"%s\") "
                "must have the same size" % (number, name, data.shape[1], data.shape[0], names[0], arrays[0].shape[1],
                                             arrays[0].shape[0], setting_text))
        arrays.append(data)
    return numpy.stack(arrays), first


def read_scribbles(image_set, name, cache=True):
    """The labels of the scribble image ``name`` (NamesAndTypes divides 8-bit images by 255 and
    records it as the image's scale): an InputError from ``decode_scribbles`` if it holds none."""
    from impartial_core.scribbles.values import decode_scribbles

    image = image_set.get_image(name, cache=cache)
    return decode_scribbles(image.pixel_data, getattr(image, "scale", None))


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
    ``max_unscribbled`` of the others (they only feed the self-supervised loss)."""

    def __init__(self, max_unscribbled=MAX_UNSCRIBBLED_IMAGE_SETS):
        self.max_unscribbled = max_unscribbled
        self.images, self.scribbles = [], []
        self.seen = self.unscribbled = 0

    def add(self, stack, scribbles):
        self.seen += 1
        if scribbles.any() or self.unscribbled < self.max_unscribbled:
            self.unscribbled += not scribbles.any()
            self.images.append(stack)
            self.scribbles.append(scribbles)

    @property
    def left_out(self):
        return self.seen - len(self.images)

    def log_left_out(self):
        """Say how many image sets were left out of training, if any."""
        if self.left_out:
            LOGGER.info("ImPartial: %d of the group's %d image sets have no scribbles and were left out of training "
                        "(at most %d such image sets are kept, for the self-supervised loss)",
                        self.left_out, self.seen, self.max_unscribbled)
