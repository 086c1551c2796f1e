"""The ImPartial module's display window: channels, objects, scribbles, probability and uncertainty.

``show(display_data, figure)`` draws what ``run`` put in ``workspace.display_data`` onto
CellProfiler's figure: row 0 the first channel and each object set, row 1 the scribbles and each
task's foreground probability (and the training loss), row 2 the outlines and each uncertainty.
"""
import numpy

from impartial_core.scribbles import SCRIBBLE_COLOURS

#: outline colours of the object sets, in output order (nuclei, cells, cytoplasm)
OUTLINE_COLOURS = [(1.0, 0.9, 0.0), (0.0, 1.0, 1.0), (1.0, 0.3, 1.0)]


def keep(d, stack, channel_names, labels_of, maps, loss_curve, scribbles):
    """Fill the display data ``d`` for :func:`show`: the (C, H, W) channels, the label image of each
    object set by name, each task's maps, the training loss curve and the scribbles (or None)."""
    d.channels = stack
    d.channel_names = list(channel_names)
    d.label_names = list(labels_of)
    d.labels = list(labels_of.values())
    d.tasks = list(maps.keys())
    d.probability = [maps[t].foreground_probability for t in d.tasks]
    d.uncertainty = [maps[t].uncertainty for t in d.tasks]
    d.loss_curve = numpy.asarray(loss_curve or numpy.zeros((0, 2)), float)
    d.scribbles = scribbles if scribbles is not None else numpy.zeros(stack.shape[1:], numpy.uint8)


def show(d, figure):
    """Draw the display data ``d`` (channels, labels, label_names, tasks, probability, uncertainty,
    scribbles, loss_curve) on ``figure``."""
    n_maps = len(d.tasks)
    columns = max(3, 1 + len(d.label_names))
    figure.set_subplots((columns, 3))
    background = d.channels[0]
    figure.subplot_imshow_grayscale(0, 0, background, title="Input: %s" % d.channel_names[0])
    axes0 = figure.subplot(0, 0)
    for i, (labels, name) in enumerate(zip(d.labels, d.label_names)):
        figure.subplot_imshow_labels(1 + i, 0, labels, title=name, sharexy=axes0)
    figure.subplot_imshow(0, 1, scribble_rgb(background, d.scribbles), title="Scribbles", sharexy=axes0)
    for i in range(n_maps):
        figure.subplot_imshow(1 + i, 1, d.probability[i], title="P(%s)" % d.tasks[i], colormap="viridis",
                              sharexy=axes0, vmin=0, vmax=1)
    figure.subplot_imshow(0, 2, outline_rgb(background, d.labels), title="Outlines", sharexy=axes0)
    for i in range(n_maps):
        figure.subplot_imshow(1 + i, 2, d.uncertainty[i], title="Uncertainty (%s)" % d.tasks[i], colormap="magma",
                              sharexy=axes0, vmin=0, vmax=1)
    if columns > 1 + n_maps and len(d.loss_curve):
        axes = figure.subplot(columns - 1, 1)
        axes.clear()
        axes.plot(d.loss_curve[:, 0], d.loss_curve[:, 1])
        axes.set_title("Training loss")
        axes.set_xlabel("iteration")


def gray_rgb(image):
    """A grey-level image as RGB in [0, 1], stretched between its 1st and 99.8th percentiles."""
    image = numpy.asarray(image, float)
    lo, hi = numpy.percentile(image, (1, 99.8)) if image.size else (0, 1)
    gray = numpy.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
    return numpy.dstack([gray] * 3)


def scribble_rgb(image, scribbles):
    """The image in grey with the scribbles painted over it in the scribble colours."""
    rgb = gray_rgb(image)
    for value, colour in SCRIBBLE_COLOURS.items():
        rgb[scribbles == value] = numpy.asarray(colour, float) / 255
    return rgb


def outline_rgb(image, labels_list):
    """The image in grey with the outlines of each label image in its own colour."""
    from skimage.segmentation import find_boundaries

    rgb = gray_rgb(image)
    for labels, colour in zip(labels_list, OUTLINE_COLOURS):
        rgb[find_boundaries(labels, mode="inner")] = colour
    return rgb
