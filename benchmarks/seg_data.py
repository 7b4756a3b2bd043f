"""Real labelled images for the segmentation harness: Debian's ``mricron-data`` atlases, read with nibabel.

Each atlas is one subject: a T1 MRI and manual labels on the same grid. Axial slices are split into
train / validation / test slabs with gaps between them, so no slice of one split is adjacent to a slice
of another. One subject means the results are evidence about label imbalance, not about generalisation
across subjects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEMPLATES = Path("/usr/share/mricron/templates")
MISSING = f"needs Debian's mricron-data (apt-get install -y mricron-data): no atlas under {TEMPLATES}"

# atlas name -> (T1 image, label image); both on one grid
ATLASES = {
    "aal": ("ch2.nii.gz", "aal.nii.gz"),               # human, 116 regions + background, 1 mm
    "brodmann": ("ch2.nii.gz", "brodmann.nii.gz"),     # human, 41 areas + background, 1 mm
    "inia19": ("inia19-t1-brain.nii.gz", "inia19-NeuroMaps.nii.gz"),  # macaque, 724 labels
}
SPLITS = ("train", "val", "test")
PAD_TO = 8   # slices are padded with background to a multiple of this (in both directions)


def available(atlas: str = "aal") -> bool:
    """Whether the atlas's two files are installed."""
    return all((TEMPLATES / name).is_file() for name in ATLASES[_check_atlas(atlas)])


def _check_atlas(atlas):
    if atlas not in ATLASES:
        raise ValueError(f"atlas must be one of {sorted(ATLASES)}, got {atlas!r}")
    return atlas


@dataclass
class Slices:
    """The slices of one split: ``inputs`` (S, 4, H, W) float32 (T1 and the x, y, z position),
    ``labels`` (S, H, W) int64 in ``[0, classes)``, and their indices along the slice axis."""

    inputs: np.ndarray
    labels: np.ndarray
    index: np.ndarray


@dataclass
class Dataset:
    atlas: str
    stride: int
    slice_stride: int
    classes: int
    splits: dict            # split name -> Slices
    train_frequency: np.ndarray   # (classes,) share of the training pixels in each class
    label_values: np.ndarray      # (classes,) the atlas's label value of each class (0 = background)

    def describe(self) -> dict:
        shape = self.splits["train"].labels.shape[1:]
        return {"atlas": self.atlas, "stride": self.stride, "slice_stride": self.slice_stride, "slice_shape": list(shape),
                "classes": self.classes,
                "slices": {name: self.splits[name].index.tolist() for name in SPLITS},
                "train_frequency": [float(f"{f:.4g}") for f in self.train_frequency]}


def slab_split(count: int, block: int, gap: int, val: int, test: int) -> dict:
    """Indices ``0..count-1`` split into repeating blocks ``[train | gap | val | gap | test | gap]``.

    Every block holds ``block`` slices, ``val`` and ``test`` of them validation and test slices and
    ``3 * gap`` left out, so two slices of different splits are always more than ``gap`` apart. The
    blocks repeat along the whole range (every region of the volume is in every split); a trailing
    partial block goes to training up to its first gap.
    """
    for name, value, least in (("block", block, 1), ("gap", gap, 0), ("val", val, 1), ("test", test, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    train = block - val - test - 3 * gap
    if train < 1:
        raise ValueError(f"block must be > val + test + 3 * gap = {val + test + 3 * gap} slices, got {block}")
    layout = ["train"] * train + [None] * gap + ["val"] * val + [None] * gap + ["test"] * test + [None] * gap
    out = {name: [] for name in SPLITS}
    for i in range(count):
        split = layout[i % block]
        if split is not None and (i // block < count // block or split == "train"):
            out[split].append(i)
    return {name: np.asarray(index, dtype=np.int64) for name, index in out.items()}


def _block_mean(volume, strides):
    x, y, z = (s // k * k for s, k in zip(volume.shape, strides))
    (a, b, c) = strides
    return volume[:x, :y, :z].reshape(x // a, a, y // b, b, z // c, c).mean(axis=(1, 3, 5))


def load(atlas: str = "aal", stride: int = 2, block: int = 15, gap: int = 1, val: int = 2, test: int = 2,
         slice_stride: int | None = None) -> Dataset:
    """The atlas at ``stride`` voxels per pixel in the slice and ``slice_stride`` (default ``stride``)
    between slices (T1: block mean; labels: the voxel at the block's centre), cropped to the labelled
    box and padded with background to a multiple of ``PAD_TO`` pixels, as axial slices split by
    :func:`slab_split`.

    Classes are the label values present after downsampling, renumbered ``0..C-1`` (0 = background).
    """
    import nibabel

    _check_atlas(atlas)
    slice_stride = stride if slice_stride is None else slice_stride
    for name, value in (("stride", stride), ("slice_stride", slice_stride)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not available(atlas):
        raise FileNotFoundError(MISSING)
    t1_file, label_file = (nibabel.load(str(TEMPLATES / name)) for name in ATLASES[atlas])
    if t1_file.shape[:3] != label_file.shape[:3] or not np.allclose(t1_file.affine, label_file.affine, atol=1e-3):
        raise ValueError(f"{atlas}: the T1 image and the labels are not on one grid")
    t1 = np.asarray(t1_file.dataobj, dtype=np.float32).reshape(t1_file.shape[:3])
    raw = np.asarray(label_file.dataobj).reshape(label_file.shape[:3]).astype(np.int64)
    strides = (stride, stride, slice_stride)
    t1 = _block_mean(t1, strides)
    raw = raw[tuple(slice(s // 2, None, s) for s in strides)][tuple(slice(s) for s in t1.shape)]
    box = [np.flatnonzero((raw > 0).any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    lo, hi = [max(b[0] - 1, 0) for b in box], [b[-1] + 2 for b in box]
    t1, raw = (v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] for v in (t1, raw))
    pad = [(0, -s % PAD_TO) for s in raw.shape[:2]] + [(0, 0)]  # n: a multiple of 64 pixels
    t1, raw = np.pad(t1, pad), np.pad(raw, pad)
    values, labels = np.unique(raw, return_inverse=True)
    if values[0] != 0:
        values, labels = np.concatenate([[0], values]), labels.reshape(raw.shape) + 1
    labels = labels.reshape(raw.shape)
    brain = t1[raw > 0]
    t1 = (t1 - brain.mean()) / brain.std()
    x, y = np.meshgrid(np.linspace(-1, 1, t1.shape[0]), np.linspace(-1, 1, t1.shape[1]), indexing="ij")
    z = np.linspace(-1, 1, t1.shape[2])
    index = slab_split(t1.shape[2], block, gap, val, test)
    splits = {}
    for name, idx in index.items():
        inputs = np.stack([np.stack([t1[:, :, k], x, y, np.full_like(x, z[k])]) for k in idx]).astype(np.float32)
        splits[name] = Slices(inputs, np.ascontiguousarray(labels[:, :, idx].transpose(2, 0, 1)), idx)
    frequency = np.bincount(splits["train"].labels.ravel(), minlength=len(values)) / splits["train"].labels.size
    return Dataset(atlas, stride, slice_stride, len(values), splits, frequency, values)
