#!/usr/bin/env python
"""Build a valid .cppipe programmatically, in CellProfiler 4.2.8.1 and 5.0.0.devNNN alike.

Example (what scripts/verify_headless.sh runs):

    TMP=$(mktemp -d)
    .venv/bin/python scripts/make_test_pipeline_example.py \
        --write-plugin "$TMP/plugins" --write-images "$TMP/in" \
        --plugins-directory "$TMP/plugins" --module SmokeTestModule \
        -o "$TMP/smoke.cppipe"
    .venv/bin/cellprofiler -c -r -p "$TMP/smoke.cppipe" -i "$TMP/in" -o "$TMP/out" \
        --plugins-directory "$TMP/plugins"          # CP 5 (PNG input: no -e needed)
    # -> $TMP/out/MyExpt_Image.csv has a column Image_SmokeTest_Mean_DNA

The recipe, identical in both versions:
  1. cellprofiler_core.preferences.set_headless(); set_plugin_directory(DIR, globally=False)
     BEFORE the first `import cellprofiler_core.modules` (that import fills the module table,
     and in CP 5 also loads the plugins; CP 4.2 loads plugins inside fill_modules()).
  2. Pipeline(); pipeline.init_modules() adds the four input modules
     (Images, Metadata, NamesAndTypes, Groups).
  3. instantiate_module("Name") for each further module, set `.value` on its settings,
     module.set_module_num(len(pipeline.modules()) + 1); pipeline.add_module(module).
  4. pipeline.dump(open(path, "w")) writes the text .cppipe (v6 format in both versions).
No JVM is needed for this, even in CP 4.2.
"""
import argparse
import os
import sys
import textwrap

SMOKE_PLUGIN = textwrap.dedent(
    '''
    """SmokeTestModule: throwaway CellProfiler plugin that records the mean of an image."""
    from cellprofiler_core.module import Module
    from cellprofiler_core.setting.subscriber import ImageSubscriber


    class SmokeTestModule(Module):
        module_name = "SmokeTestModule"
        category = "Image Processing"
        variable_revision_number = 1

        def create_settings(self):
            self.image_name = ImageSubscriber("Select the input image", "None")

        def settings(self):
            return [self.image_name]

        def _feature(self):
            return "SmokeTest_Mean_" + self.image_name.value

        def run(self, workspace):
            image = workspace.image_set.get_image(self.image_name.value)
            workspace.measurements.add_image_measurement(
                self._feature(), float(image.pixel_data.mean())
            )

        def get_measurement_columns(self, pipeline):
            return [("Image", self._feature(), "float")]

        def get_categories(self, pipeline, object_name):
            return ["SmokeTest"] if object_name == "Image" else []

        def get_measurements(self, pipeline, object_name, category):
            if object_name == "Image" and category == "SmokeTest":
                return ["Mean_" + self.image_name.value]
            return []
    '''
)


def write_plugin(directory):
    os.makedirs(directory, exist_ok=True)
    # CP 4.2 needs file name == lower-cased class name.
    with open(os.path.join(directory, "smoketestmodule.py"), "w") as fd:
        fd.write(SMOKE_PLUGIN)


def write_images(directory, n=2):
    import numpy as np
    import imageio

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((64, 64)) * 255).astype(np.uint8)
        imageio.imwrite(os.path.join(directory, "img%02d.png" % (i + 1)), img)


def build_pipeline(plugins_directory, module_names, image_name="DNA"):
    import cellprofiler_core.preferences as prefs

    prefs.set_headless()
    if plugins_directory:
        prefs.set_plugin_directory(os.path.abspath(plugins_directory), globally=False)
    import cellprofiler_core.modules  # noqa: F401  fills the module table (+ plugins)
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.utilities.core.modules import instantiate_module

    pipeline = Pipeline()
    pipeline.init_modules()  # Images, Metadata, NamesAndTypes, Groups
    nat = [m for m in pipeline.modules() if m.module_name == "NamesAndTypes"][0]
    nat.assignment_method.value = "All images"
    nat.single_image_provider.value = image_name

    def add(name):
        module = instantiate_module(name)  # ValueError "Could not find the X module" if absent
        module.set_module_num(len(pipeline.modules()) + 1)
        pipeline.add_module(module)
        return module

    for name in module_names:
        module = add(name)
        # Point every image input of the new module at the named image.
        for setting in module.settings():
            if type(setting).__name__ == "ImageSubscriber":
                setting.value = image_name
    export = add("ExportToSpreadsheet")
    export.wants_overwrite_without_warning.value = True
    return pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help=".cppipe to write")
    parser.add_argument("--plugins-directory")
    parser.add_argument("--module", action="append", default=[], help="module to add (repeatable)")
    parser.add_argument("--write-plugin", metavar="DIR", help="write the throwaway SmokeTestModule plugin to DIR")
    parser.add_argument("--write-images", metavar="DIR", help="write 2 small PNG test images to DIR")
    args = parser.parse_args(argv)
    if args.write_plugin:
        write_plugin(args.write_plugin)
    if args.write_images:
        write_images(args.write_images)
    pipeline = build_pipeline(args.plugins_directory, args.module)
    with open(args.output, "w") as fd:
        pipeline.dump(fd)
    print("wrote %s with modules: %s" % (args.output, ", ".join(m.module_name for m in pipeline.modules())))


if __name__ == "__main__":
    sys.exit(main())
