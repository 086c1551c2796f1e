"""The README's napari picture: an exported package run by bioimageio.core, its maps shown in napari.

napari is not part of any of this project's venvs; the picture was made with napari 0.9.2 and
PyQt5 installed beside .venv-bioimageio (the versions that venv holds kept as constraints), under
Xvfb (Debian also needs libxcb-icccm4, libxcb-keysyms1 and libxcb-xinerama0 for Qt):

    .venv-bioimageio/bin/pip freeze > /tmp/pins.txt
    .venv-bioimageio/bin/pip install --target /tmp/napari -c /tmp/pins.txt "napari[pyqt5]"
    impartial export --model model.safetensors --out model.zip --image examples/data/mibi_dsdna/image5.tif
    PYTHONPATH=/tmp/napari BIOIMAGEIO_PERFORM_IO_CHECKS=false xvfb-run -a -s "-screen 0 1400x1000x24" \\
        .venv-bioimageio/bin/python docs/bioimageio_napari.py model.zip examples/data/mibi_dsdna/image5.tif \\
        docs/bioimageio_napari.png
"""
import sys
import warnings

import numpy as np
import tifffile

warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
import napari  # noqa: E402
from bioimageio.core import predict  # noqa: E402
from qtpy.QtCore import QTimer  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402


def main(package: str, image_path: str, screenshot: str) -> None:
    image = tifffile.imread(image_path).astype(np.float32)
    outputs = predict(model=package, inputs={"raw": image[None, None]}).members
    viewer = napari.Viewer(title=f"napari: {package} run by bioimageio.core")
    viewer.add_image(image, name="image (MIBI dsDNA)", colormap="gray")
    viewer.add_image(outputs["uncertainty"].data[0, 0].to_numpy(), name="nuclei uncertainty", colormap="magma",
                     visible=False)
    viewer.add_image(outputs["foreground_probability"].data[0, 0].to_numpy(), name="nuclei foreground_probability",
                     colormap="green", blending="additive", opacity=0.5)
    viewer.window.resize(1200, 760)

    def grab() -> None:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):  # the PyQt5 deprecation notice
            toast.close()
        QApplication.processEvents()
        viewer.screenshot(screenshot, canvas_only=False, flash=False)
        viewer.close()
        QApplication.instance().quit()

    QTimer.singleShot(4000, grab)
    napari.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
