"""The ImPartial module's settings as pipelines saved them, by module revision.

CellProfiler hands ``Module.upgrade_settings`` the setting values a pipeline file holds and the
revision of the plugin that saved them. Each later revision adds its conversion here, one step at
a time, so that pipelines saved by every earlier plugin still load; :func:`check_count` refuses
values CellProfiler would pair with the wrong settings.
"""


def refuse_newer(revision, current):
    """A pipeline saved by a newer plugin cannot be read: say so instead of guessing."""
    if revision > current:
        raise ValueError(
            "ImPartial: this pipeline was saved with a newer ImPartial plugin (module revision %d; this one reads "
            "revisions up to %d). Install the newer plugin to open it." % (revision, current))


def check_count(setting_values, revision, n_fixed):
    """Refuse values whose number is not the channel count (the first value), one per channel, and
    the ``n_fixed`` other settings: CellProfiler would pair them with the wrong settings or drop some."""
    expected = 1 + int(setting_values[0]) + n_fixed
    if len(setting_values) != expected:
        raise ValueError(
            "ImPartial: the pipeline holds %d setting values for this module where revision %d with %s channel(s) "
            "has %d; the pipeline file was edited or damaged." % (len(setting_values), revision, setting_values[0],
                                                                   expected))


def add_scribble_source(setting_values):
    """Revision 1 -> 2: the scribble source (an image from NamesAndTypes, as before), the scribble
    folder, whether to open the editor, and the split strokes' value are added at the end."""
    from impartial_cellprofiler.choices import SOURCE_IMAGE
    from impartial_cellprofiler.drawn_scribbles import default_folder

    return list(setting_values) + [SOURCE_IMAGE, default_folder(), "Yes", "4"]
