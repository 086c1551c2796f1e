"""The ImPartial module's settings checks: each problem a ValidationError on the setting to change.

CellProfiler calls them in the GUI as settings change (``Module.validate_module``); the module runs
them again before a headless run or a batch job prepares a group, where nobody saw the GUI.
"""
from cellprofiler_core.setting import ValidationError

from impartial_cellprofiler import model_files
from impartial_cellprofiler.choices import MODE_FINE_TUNE, MODE_SAVED, MODE_TRAIN


def validate(module):
    """Raise a ValidationError for the first problem with the ImPartial ``module``'s settings."""
    names = module.channel_names()
    if len(set(names)) != len(names):
        raise ValidationError("The same image is selected twice as a channel: %s" % ", ".join(names),
                              module.channels[-1].image_name)
    if len(names) > 1 and module.nuclear_channel.value > len(names):
        raise ValidationError("The nuclear stain channel is %d but only %d channel image(s) are selected" % (
            module.nuclear_channel.value, len(names)), module.nuclear_channel)
    if module.model_mode != MODE_SAVED and not module.draws_scribbles():
        if module.scribble_image.value in names:
            raise ValidationError("The scribble image is also selected as a channel", module.scribble_image)
        for problem in module.scribble_values().problems():
            raise ValidationError("Scribble values: %s" % problem.message, module.value_setting(problem.field))
    if module.model_mode != MODE_SAVED and module.patch_size.value % 4:
        raise ValidationError("The patch size must be a multiple of 4, got %d" % module.patch_size.value,
                              module.patch_size)
    objects = [name for _, name in module.object_names()]
    if len(set(objects)) != len(objects):
        raise ValidationError("The object sets need different names, got %s" % ", ".join(objects),
                              module.cells_name if module.wants_cells() else module.nuclei_name)
    images = [name for _, _, name in module.output_images()]
    if len(set(images)) != len(images):
        raise ValidationError("The output images need different names, got %s" % ", ".join(images),
                              module.save_uncertainty)
    model_files.check_folder(module.model_directory)
    if module.model_mode == MODE_FINE_TUNE and module.fine_tuned_file_name.value == module.model_file_name.value:
        raise ValidationError("The fine-tuned model needs another file name than the model it starts from",
                              module.fine_tuned_file_name)
    if module.model_mode != MODE_TRAIN:
        model_files.check_saved_model(module, module.model_path())
