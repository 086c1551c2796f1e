"""How the ImPartial module sees CellProfiler's groups, image sets and cluster jobs.

- :func:`running_as_cluster_job`: whether this process runs only part of the image sets (and so
  must load a model, never train one);
- :func:`group_suffix` and :func:`grouping_of`: the group an image set belongs to, and the name
  part that gives each group its own model file;
- :func:`forget_images`: what lets the module run the modules above it over a whole group;
- :func:`analysis_workers`: how many Analysis workers share the machine with this one.
"""
import functools
import os
import re
import sys

# Command-line switches that make a CellProfiler process run only part of the image sets: such a
# process is a cluster job and must never train (every job would train its own model).
SLICE_SWITCHES = ("-f", "--first-image-set", "-l", "--last-image-set", "-g", "--group")


def running_as_cluster_job(pipeline, argv=None):
    """True when this process runs a batch file or only a slice of the image sets.

    Signals (either one): the pipeline is in batch mode, i.e. it was loaded from the
    Batch_data.h5 that CreateBatchFiles wrote (``Pipeline.in_batch_mode()``, the signal
    CellProfiler's own input modules use), or the command line (``argv``, default
    ``sys.argv``) asks for part of the image sets (``-f``/``--first-image-set``,
    ``-l``/``--last-image-set``, ``-g``/``--group``).
    """
    try:
        if pipeline is not None and pipeline.in_batch_mode():
            return True
    except Exception:  # a pipeline without the method (never in CP 4.2 / 5)
        pass
    return any(selects_image_sets(arg) for arg in (sys.argv if argv is None else argv)[1:])


def analysis_workers(argv=None):
    """How many processes of this analysis run at once: 1, or in an Analysis-mode worker (started by
    the GUI with ``--analysis-id ID``) the workers of that analysis, its siblings included, as the
    process table shows them (the GUI's worker count is a preference headless workers cannot read)."""
    argv = sys.argv if argv is None else argv
    if "--analysis-id" not in argv[:-1]:
        return 1
    return _workers_of(argv[argv.index("--analysis-id") + 1])


@functools.lru_cache(maxsize=None)
def _workers_of(analysis):
    """The processes of the analysis ``analysis``, this one included (counted once per process: the
    module asks before every image set)."""
    import psutil  # a CellProfiler dependency

    try:
        siblings = psutil.Process().parent().children()
    except (psutil.Error, AttributeError):  # the parent ended (parent() is None) or cannot be read
        return 1
    return max(1, sum(_runs_analysis(process, analysis, psutil.Error) for process in siblings))


def _runs_analysis(process, analysis, error):
    try:
        command = process.cmdline()
    except error:  # it ended, or is not ours to read
        return False
    return "--analysis-id" in command[:-1] and command[command.index("--analysis-id") + 1] == analysis


def selects_image_sets(arg):
    """Whether one command-line word is a -f/-l/-g switch, in any spelling CellProfiler's parser takes.

    ``-f 3``, ``-f3``, ``--first-image-set 3`` and ``--first-image-set=3`` all select image sets;
    long options may also be abbreviated (``--first=3``), as optparse and argparse allow.
    """
    if arg.startswith("--"):
        name = arg.split("=", 1)[0]
        return len(name) > 3 and any(s.startswith(name) for s in SLICE_SWITCHES if s.startswith("--"))
    return any(arg.startswith(s) for s in SLICE_SWITCHES if not s.startswith("--"))


def group_suffix(grouping):
    """``Plate-P1_Well-A01`` for the grouping {"Metadata_Plate": "P1", "Metadata_Well": "A01"}; "" without groups."""
    parts = []
    for key, value in sorted((grouping or {}).items()):
        key = key[len("Metadata_"):] if key.startswith("Metadata_") else key
        parts.append("%s-%s" % tuple(re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-.") for text in (key, value)))
    return "_".join(parts)


def group_file_name(name, grouping):
    """``model_Plate-P1.safetensors`` for ``model.safetensors`` and the grouping of plate P1: each
    group's own file; the name itself without groups."""
    suffix = group_suffix(grouping)
    if not suffix:
        return name
    stem, extension = os.path.splitext(name)
    return "%s_%s%s" % (stem, suffix, extension)


def grouping_of(workspace):
    """The grouping (metadata key to value) of the current image set's group; {} without groups."""
    number = workspace.measurements.image_set_number
    _, groupings = workspace.pipeline.get_groupings(workspace)
    for grouping, image_numbers in groupings:
        if number in image_numbers:
            return dict(grouping or {})
    return {}


def forget_images(image_set, names):
    """Drop the cached images and the image providers of these names from an image set.

    ``Pipeline.run_group_with_yield`` means to restore the image set's providers after each image
    set but cannot (CellProfiler 4.2 and 5 hand it a copy of the list), and NamesAndTypes *adds* a
    provider per image set while ``get_image`` returns the first of a name. Without this, every
    image set after the first, and every group after the first, would be read as the first one.
    """
    image_set.clear_cache()
    for name in names:
        image_set.remove_image_provider(name)
