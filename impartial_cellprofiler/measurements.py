"""The ImPartial module's objects and measurements, in CellProfiler's terms.

What the module declares (columns, categories, relationships) and what it writes for each image
set come from here, so that the two cannot drift apart: per object set the location, count,
``ImPartial_MeanForegroundProbability`` and ``ImPartial_MeanUncertainty``; per image the
threshold of each task's objects, the model's fingerprint and whether the input was usable; and, with cytoplasm, the parent/child
relationships of nuclei, cells and cytoplasm, as IdentifySecondaryObjects and
IdentifyTertiaryObjects record them.
"""
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
from cellprofiler_core.object import Objects
from cellprofiler_core.utilities.core.module.identify import (
    add_object_count_measurements,
    add_object_location_measurements,
    get_object_measurement_columns,
)

C_IMPARTIAL = "ImPartial"
FTR_MEAN_PROBABILITY = "MeanForegroundProbability"
FTR_MEAN_UNCERTAINTY = "MeanUncertainty"
FTR_THRESHOLD = "Threshold"
FTR_FINGERPRINT = "ModelFingerprint"
M_MEAN_PROBABILITY = "%s_%s" % (C_IMPARTIAL, FTR_MEAN_PROBABILITY)
M_MEAN_UNCERTAINTY = "%s_%s" % (C_IMPARTIAL, FTR_MEAN_UNCERTAINTY)
M_FINGERPRINT = "%s_%s" % (C_IMPARTIAL, FTR_FINGERPRINT)
#: 1 when the image set's channels could be segmented, 0 when one was unusable (constant, mostly
#: saturated, mostly NaN, too small: ``impartial_core.input_checks``) and no objects were made
M_USABLE = "%s_UsableInput" % C_IMPARTIAL
#: why the image set was unusable (empty when it was usable)
M_INPUT_PROBLEM = "%s_InputProblem" % C_IMPARTIAL
INPUT_PROBLEM_WIDTH = 255
#: the fingerprint column's width (of the 64 hexadecimal digits of a SHA-256)
FINGERPRINT_WIDTH = 64


def threshold_feature(object_name):
    return "%s_%s_%s" % (C_IMPARTIAL, FTR_THRESHOLD, object_name)


def columns(object_names, relationships, threshold_objects):
    """The measurement columns of the object sets ``object_names``, the (parent, child) name pairs
    ``relationships`` and the objects with a threshold of their own."""
    result = []
    for name in object_names:
        result += get_object_measurement_columns(name)
        result += [(name, M_MEAN_PROBABILITY, COLTYPE_FLOAT), (name, M_MEAN_UNCERTAINTY, COLTYPE_FLOAT)]
    for parent, child in relationships:
        result += [(parent, FF_CHILDREN_COUNT % child, COLTYPE_INTEGER), (child, FF_PARENT % parent, COLTYPE_INTEGER)]
    result += [(IMAGE, threshold_feature(name), COLTYPE_FLOAT) for name in threshold_objects]
    result.append((IMAGE, M_FINGERPRINT, COLTYPE_VARCHAR_FORMAT % FINGERPRINT_WIDTH))
    result += [(IMAGE, M_USABLE, COLTYPE_INTEGER), (IMAGE, M_INPUT_PROBLEM, COLTYPE_VARCHAR_FORMAT % INPUT_PROBLEM_WIDTH)]
    return result


def categories(all_columns, object_name):
    """``Module.get_categories`` from the columns."""
    return sorted({feature.split("_", 1)[0] for obj, feature, _ in all_columns if obj == object_name})


def measurements(all_columns, object_name, category):
    """``Module.get_measurements`` from the columns: the thresholds are one measurement per object set."""
    result = []
    for obj, feature, _ in all_columns:
        if obj != object_name or feature.split("_", 1)[0] != category:
            continue
        measurement = feature.split("_", 1)[1]
        if object_name == IMAGE and category == C_IMPARTIAL and measurement.startswith(FTR_THRESHOLD + "_"):
            measurement = FTR_THRESHOLD
        if measurement not in result:
            result.append(measurement)
    return result


def measurement_objects(object_name, category, measurement, threshold_objects):
    """``Module.get_measurement_objects``: the object sets of the threshold measurement."""
    if object_name == IMAGE and category == C_IMPARTIAL and measurement == FTR_THRESHOLD:
        return list(threshold_objects)
    return []


def object_relationships(relationships):
    """``Module.get_object_relationships`` from the (parent, child) name pairs."""
    return [(R_PARENT, parent, child, MCA_AVAILABLE_EACH_CYCLE) for parent, child in relationships]


def add_objects(workspace, name, labels, parent_image, task_maps, threshold=None):
    """Add the label image ``labels`` as the object set ``name`` with its location, count and
    confidence measurements (``task_maps``: the TaskMaps of the task it comes from, None without a model), and the
    probability threshold that made them unless None."""
    from impartial_core.instances import object_confidence

    m = workspace.measurements
    result = Objects()
    result.segmented = labels
    result.parent_image = parent_image
    workspace.object_set.add_objects(result, name)
    count = int(labels.max(initial=0))
    add_object_location_measurements(m, name, labels, count)
    add_object_count_measurements(m, name, count)
    if task_maps is None:  # no model yet (nothing drawn to train on): no objects, nothing to measure
        mean_p = mean_u = numpy.zeros(count)
    else:
        mean_p, mean_u = object_confidence(labels, task_maps.foreground_probability, task_maps.uncertainty)
    m.add_measurement(name, M_MEAN_PROBABILITY, mean_p)
    m.add_measurement(name, M_MEAN_UNCERTAINTY, mean_u)
    if threshold is not None:
        m.add_image_measurement(threshold_feature(name), float(threshold))


def add_input_check(workspace, problem):
    """Record whether the image set was usable, and why not (``problem``: a message, or None)."""
    workspace.measurements.add_image_measurement(M_USABLE, 0 if problem else 1)
    workspace.measurements.add_image_measurement(M_INPUT_PROBLEM, (problem or "")[:INPUT_PROBLEM_WIDTH])


def add_relationships(workspace, module_num, nuclei_name, cells_name, cytoplasm_name):
    """Parent/child measurements and relationships of nuclei, cells and cytoplasm."""
    m = workspace.measurements
    nuclei, cells, cytoplasm = (workspace.object_set.get_objects(n) for n in (nuclei_name, cells_name, cytoplasm_name))
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
        (nuclei_name, cytoplasm_name, nucleus_of_cytoplasm, cytoplasm_per_nucleus),
        (cells_name, cytoplasm_name, cell_of_cytoplasm, children_per_cell),
    ):
        m.add_measurement(child_name, FF_PARENT % parent_name, numpy.asarray(parents_of, int))
        m.add_measurement(parent_name, FF_CHILDREN_COUNT % child_name, numpy.asarray(child_count, int))
        mask = parents_of > 0
        image_numbers = numpy.ones(int(mask.sum()), int) * m.image_set_number
        m.add_relate_measurement(module_num, R_PARENT, parent_name, child_name, image_numbers,
                                 numpy.asarray(parents_of)[mask], image_numbers, numpy.flatnonzero(mask) + 1)
