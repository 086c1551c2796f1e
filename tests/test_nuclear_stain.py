"""Nuclei found in a nuclear stain without training: their size and dim nuclei beside bright ones."""
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from impartial_core.instances import nuclei_from_channel
from impartial_core.metrics import match_at_iou
from impartial_core.nuclear_stain import nuclear_radius


def _disks(radius: int, brightness, size=(96, 160), spacing=None, seed=0):
    """Round nuclei on a grid, nucleus i with ``brightness[i % len(brightness)]``, plus noise."""
    spacing = spacing or 4 * radius
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = yy ** 2 + xx ** 2 <= radius ** 2
    labels = np.zeros(size, np.int32)
    image = np.zeros(size, np.float32)
    n = 0
    for cy in range(spacing // 2, size[0] - radius, spacing):
        for cx in range(spacing // 2, size[1] - radius, spacing):
            box = (slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
            labels[box][disk] = n + 1
            image[box][disk] = brightness[n % len(brightness)]
            n += 1
    image = ndi.gaussian_filter(image, 1.0) + np.random.default_rng(seed).normal(0, 0.01, size)
    return image.astype(np.float32), labels


@pytest.mark.parametrize("radius", [4, 7, 11])
def test_the_nuclear_radius_is_that_of_the_nuclei(radius):
    image, _ = _disks(radius, [1.0], size=(160, 160))
    assert abs(nuclear_radius(image) - radius) <= 0.3 * radius


def test_a_large_image_is_measured_on_tiles_alike():
    """An image over 4 tiles of 256 x 256 is measured on 4 tiles spread over it, to the same radius."""
    from impartial_core.nuclear_stain import _tiles

    image, _ = _disks(7, [1.0], size=(560, 560))
    assert len(_tiles(image.shape)) == 4
    assert abs(nuclear_radius(image) - 7) <= 2.1


def test_dim_nuclei_beside_bright_ones_are_found():
    """A left half of nuclei 8x dimmer than the right half: a global threshold sees only the bright
    half; dividing by the local level finds every nucleus."""
    image, labels = _disks(6, [1.0])
    image[:, :80] *= 0.125
    assert match_at_iou(ndi.label(image > threshold_otsu(image))[0], labels, 0.5)["tp"] < labels.max() * 0.6
    found = nuclei_from_channel(image * 1000 + 50)
    assert match_at_iou(found, labels, 0.5)["tp"] == labels.max() == found.max()


def test_nuclei_under_a_diffuse_haze_are_found():
    """A haze as bright as the nuclei, about ten nuclei wide, and a ramp across the field: the
    background beyond a few nuclear radii is subtracted first, so every nucleus is still found
    once, at its size, and the gaps between hazed nuclei stay background."""
    image, labels = _disks(6, [1.0], size=(144, 192))
    yy, xx = np.mgrid[:144, :192]
    haze = np.exp(-((yy - 60) ** 2 + (xx - 90) ** 2) / (2 * 60.0 ** 2)) + 0.5 * xx / 192
    found = nuclei_from_channel((image + haze) * 1000 + 50)
    assert match_at_iou(found, labels, 0.5)["tp"] == labels.max() == found.max()


@pytest.mark.parametrize("shape", [(96, 160), (3, 5), (1, 40)])
def test_the_wide_background_gaussian_computed_on_blocks_matches_the_full_one(shape):
    """The background's Gaussian (sigma 4 nuclear radii) is computed on blocks a quarter sigma
    wide and interpolated back: within 0.02 (1% of the range) of the full-resolution filter on nuclei over
    a ramp (range 2), float32, the same shape, and a constant kept exactly, down to images
    narrower than a block."""
    from impartial_core.nuclear_stain import _smoothed

    sigma = 24.0
    nuclei, _ = _disks(6, [1.0], size=(96, 160))
    stain = (nuclei + np.linspace(0.0, 1.0, 160)[None, :])[:shape[0], :shape[1]].astype(np.float32)
    fast, full = _smoothed(stain, sigma), ndi.gaussian_filter(stain, sigma)
    assert fast.shape == shape and fast.dtype == np.float32
    assert np.abs(fast - full).max() <= 0.02, np.abs(fast - full).max()
    assert np.array_equal(_smoothed(np.full(shape, 2.5, np.float32), sigma), np.full(shape, 2.5, np.float32))
