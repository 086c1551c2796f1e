"""The ImPartial module's model folder and model file settings.

The folder defaults to the Default Output Folder and is remapped by CreateBatchFiles like other
folders; a file setting browses in it and shows model files (``*.safetensors``) first.
"""
from cellprofiler_core.preferences import ABSOLUTE_FOLDER_NAME, DEFAULT_OUTPUT_FOLDER_NAME
from cellprofiler_core.setting.text import Directory, Filename

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
