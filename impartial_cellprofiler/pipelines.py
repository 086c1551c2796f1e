"""Building CellProfiler pipelines in code, the same way in CellProfiler 4.2 and 5.

The recipe: :func:`start_headless` before anything imports ``cellprofiler_core.modules`` (that
import fills the module table, and CellProfiler 5 loads the plugins there); a pipeline whose input
modules (Images, Metadata, NamesAndTypes, Groups) are set up by :func:`new_pipeline`; every further
module added by :func:`add_module` with its settings given by attribute name; :func:`write_pipeline`
saves the text ``.cppipe``, which both lines read. No JVM is needed, even in CellProfiler 4.2.

scripts/make_pipelines.py builds the shipped pipelines with these functions; the benchmarks and
the tests build and edit pipelines with them too. CellProfiler is imported inside the functions,
so importing this module does not start it.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]


def start_headless(plugins_directory: PathLike) -> None:
    """Set CellProfiler headless with ``plugins_directory`` as its plugin folder, and load the modules.

    Must run before the first ``import cellprofiler_core.modules`` of the process: that import
    reads the plugin folder once.
    """
    import cellprofiler_core.preferences as prefs

    prefs.set_headless()
    prefs.set_plugin_directory(str(plugins_directory), globally=False)
    import cellprofiler_core.modules  # noqa: F401  fills the module table, loads the plugins


def new_pipeline(regexp: str, assignments: Sequence[Tuple[str, str]], match_key: str = "ImageID") -> Any:
    """A pipeline of the four input modules: images named by NamesAndTypes rules, matched by metadata.

    Parameters
    ----------
    regexp : str
        File-name regular expression for the Metadata module; its named groups become metadata
        (e.g. ``"^image(?P<ImageID>[0-9]+)"``).
    assignments : sequence of (image name, rule)
        One NamesAndTypes assignment per image, with its rule in CellProfiler's filter syntax
        (e.g. ``'and (file does contain "_DAPI.tif")'``). Every image loads as a grayscale image
        with the intensity range from the image metadata (float TIFFs keep their values).
    match_key : str
        The metadata key that matches the images of one image set (with more than one image).

    Returns
    -------
    cellprofiler_core.pipeline.Pipeline
    """
    from cellprofiler_core.pipeline import Pipeline

    pipeline = Pipeline()
    pipeline.init_modules()
    _images, metadata, names_and_types, _groups = pipeline.modules()
    metadata.wants_metadata.value = True
    method = metadata.extraction_methods[0]
    method.extraction_method.value = "Extract from file/folder names"
    method.source.value = "File name"
    method.file_regexp.value = regexp
    method.filter_choice.value = "All images"
    names_and_types.assignment_method.value = "Images matching rules"
    # (unused with rules; set so that both CellProfiler lines save the same value)
    single_rescale = getattr(names_and_types, "single_rescale", None) or names_and_types.single_rescale_method
    single_rescale.value = "Image metadata"
    groups = setting_groups(names_and_types, "assignments", "add_assignment", len(assignments))
    for group, (name, rule) in zip(groups, assignments):
        group.rule_filter.value = rule
        group.image_name.value = name
        group.load_as_choice.value = "Grayscale image"
        rescale = getattr(group, "rescale", None) or group.rescale_method  # CellProfiler 4.2 / 5
        rescale.value = "Image metadata"
    if len(assignments) > 1:
        names_and_types.matching_choice.value = "Metadata"
        names_and_types.join.value = str([{name: match_key for name, _ in assignments}])
    else:
        names_and_types.matching_choice.value = "Order"
    return pipeline


def find_module(pipeline: Any, name: str, index: int = 0) -> Any:
    """The ``index``-th module called ``name`` in the pipeline; ValueError naming it if absent."""
    found = [m for m in pipeline.modules() if m.module_name == name]
    if len(found) <= index:
        raise ValueError(f"no {name} module #{index} in the pipeline ({len(found)} found)")
    return found[index]


def set_values(module: Any, **values: Any) -> None:
    """Set settings by attribute name; a list or tuple is saved as names joined by ", " (list subscribers)."""
    for attribute, value in values.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(value)
        getattr(module, attribute).value = value


def setting_groups(module: Any, groups: str, add: str, count: int) -> List[Any]:
    """The first ``count`` groups of a repeated setting, adding groups with the method ``add`` as needed.

    E.g. ``setting_groups(impartial, "channels", "add_channel", 2)``: ImPartial's first two channels.
    """
    while len(getattr(module, groups)) < count:
        getattr(module, add)()
    return list(getattr(module, groups))[:count]


def add_module(pipeline: Any, name: str, before: Optional[str] = None, **values: Any) -> Any:
    """Add the module ``name`` with settings, at the end or before the first module called ``before``."""
    from cellprofiler_core.utilities.core.modules import instantiate_module

    module = instantiate_module(name)
    position = len(pipeline.modules()) + 1
    if before is not None:
        position = find_module(pipeline, before).module_num
    module.set_module_num(position)
    set_values(module, **values)
    pipeline.add_module(module)
    return module


def absolute_folder(path: PathLike) -> str:
    """The value of a folder setting that names ``path`` itself (not a default folder)."""
    from cellprofiler_core.preferences import ABSOLUTE_FOLDER_NAME
    from cellprofiler_core.setting.text import Directory

    return Directory.static_join_string(ABSOLUTE_FOLDER_NAME, str(path))


def load_pipeline(path: PathLike) -> Tuple[Any, List[Any]]:
    """Load a ``.cppipe`` (after :func:`start_headless`): the pipeline and the load problems reported."""
    from cellprofiler_core.pipeline import LoadException, Pipeline

    events: List[Any] = []
    pipeline = Pipeline()
    pipeline.add_listener(lambda _pipeline, event: events.append(event))
    with open(path) as fd:  # Pipeline.load(path) would leave its own file handle open
        pipeline.load(fd)
    problems = [e for e in events if isinstance(e, LoadException) or "Error" in type(e).__name__]
    return pipeline, problems


def write_pipeline(pipeline: Any, path: PathLike) -> PathLike:
    """Save the pipeline as a text ``.cppipe`` at ``path``; returns ``path``."""
    with open(path, "w") as fd:
        pipeline.dump(fd)
    return path
