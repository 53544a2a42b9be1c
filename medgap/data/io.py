"""Reading and writing images with their geometry: NIfTI (nibabel), PNG/TIFF (Pillow), h5 (h5py) and, when the
optional SimpleITK is installed (``pip install "medgap[itk]"``), NRRD and MetaImage (``.nrrd``, ``.mha``).

Arrays keep the file's voxel order: NIfTI ``(X, Y, Z)`` as nibabel gives it, PNG/TIFF ``(H, W)``; ITK files are
turned into the same ``(X, Y, Z)`` order with a RAS affine, as if they had been NIfTI.
Every failure is a :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from medgap.atomic import atomic_path
from medgap.errors import DatasetError

NIFTI_ENDINGS = (".nii.gz", ".nii")
PILLOW_ENDINGS = (".png", ".tif", ".tiff")  # 2-D images
ITK_ENDINGS = (".nrrd", ".mha")  # read and written through SimpleITK (optional)
SUPPORTED_ENDINGS = (*NIFTI_ENDINGS, *PILLOW_ENDINGS, ".h5", *ITK_ENDINGS)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])  # ITK's world axes point left/posterior, NIfTI's right/anterior


@dataclass(frozen=True)
class Geometry:
    """Where the voxels are: ``affine`` (4×4, voxel → world mm), ``spacing`` (mm per spatial axis), ``shape``."""

    affine: np.ndarray
    spacing: tuple[float, ...]
    shape: tuple[int, ...]
    header: nib.Nifti1Header | None = field(default=None, compare=False, repr=False)

    def matches(self, other: Geometry, tolerance: float = 1e-3) -> bool:
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=tolerance)

    @staticmethod
    def identity(shape: tuple[int, ...], spacing: tuple[float, ...] | None = None) -> Geometry:
        spacing = tuple(float(s) for s in (spacing or (1.0,) * len(shape)))
        affine = np.eye(4)
        for axis, step in enumerate(spacing[:3]):
            affine[axis, axis] = step
        return Geometry(affine=affine, spacing=spacing, shape=tuple(shape))


def file_ending(path: str | os.PathLike) -> str:
    name = os.fspath(path)
    for ending in SUPPORTED_ENDINGS:
        if name.endswith(ending):
            return ending
    raise DatasetError(f"{name}: unsupported file type (expected one of {', '.join(SUPPORTED_ENDINGS)})")


def read_image(
    path: str | os.PathLike, *, max_bytes: int | None = None, check_finite: bool = True
) -> tuple[np.ndarray, Geometry]:
    """Read one image channel as float32 with its geometry.

    Args:
        path: ``.nii.gz``/``.nii`` (3-D, or 4-D with one volume), ``.png``/``.tif`` (grayscale), ``.h5`` (dataset
            ``image``) or ``.nrrd``/``.mha`` (needs SimpleITK).
        max_bytes: refuse images whose float32 array would exceed this many bytes (checked from the header,
            before any voxel is read), so an oversized file is an error, not an out-of-memory kill.
        check_finite: refuse NaN/Inf voxels.

    Returns:
        ``(array (X, Y[, Z]) float32, Geometry)``.
    """
    path = Path(path)
    ending = file_ending(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if ending in NIFTI_ENDINGS:
        array, geometry = _read_nifti(path, max_bytes, dtype=np.float32)
    elif ending in PILLOW_ENDINGS:
        array, geometry = _read_png(path, max_bytes)
    elif ending in ITK_ENDINGS:
        array, geometry = _read_itk(path, max_bytes)
    else:
        array, geometry = _read_h5(path, "image", max_bytes)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DatasetError(f"{path}: unsupported voxel type {array.dtype} (expected real numbers)")
    array = np.asarray(array, dtype=np.float32)
    if check_finite and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise DatasetError(f"{path}: {bad} NaN/Inf voxels")
    return array, geometry


def read_label(path: str | os.PathLike, *, max_bytes: int | None = None) -> tuple[np.ndarray, Geometry]:
    """Read a label map as int16 (int64 when a value lies outside int16) with its geometry; non-integer values are
    an error."""
    path = Path(path)
    ending = file_ending(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if ending in NIFTI_ENDINGS:
        array, geometry = _read_nifti(path, max_bytes, dtype=None)
    elif ending in PILLOW_ENDINGS:
        array, geometry = _read_png(path, max_bytes)
    elif ending in ITK_ENDINGS:
        array, geometry = _read_itk(path, max_bytes)
    else:
        array, geometry = _read_h5(path, "label", max_bytes)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DatasetError(f"{path}: unsupported label type {array.dtype}")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise DatasetError(f"{path}: label map has non-integer values")
    if array.size and (array.min() < -32768 or array.max() > 32767):
        return np.asarray(array, dtype=np.int64), geometry  # kept exact (not wrapped): undeclared, reported as such
    return np.asarray(array, dtype=np.int16), geometry


def _read_nifti(path: Path, max_bytes: int | None, dtype) -> tuple[np.ndarray, Geometry]:
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many types for broken headers
        raise DatasetError(f"{path}: not a readable NIfTI file ({_short(error, path)})") from None
    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise DatasetError(f"{path}: expected a 2-D or 3-D image, got shape {tuple(image.shape)}")
    voxel_type = image.get_data_dtype()
    if voxel_type.kind not in "buif":  # complex, RGB/void: get_fdata would drop parts or fail
        raise DatasetError(f"{path}: unsupported voxel type {voxel_type} (expected real numbers)")
    check_memory_budget(path, shape, max_bytes)
    try:
        data = np.asanyarray(image.dataobj) if dtype is None else image.get_fdata(dtype=dtype)
    except (EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as error:
        raise DatasetError(f"{path}: corrupt or truncated NIfTI ({_short(error, path)})") from None
    data = np.asarray(data).reshape(shape)
    zooms = tuple(float(z) for z in image.header.get_zooms()[: len(shape)])
    geometry = Geometry(affine=np.asarray(image.affine, dtype=np.float64), spacing=zooms, shape=shape,
                        header=image.header)
    return data, geometry


def check_memory_budget(path: Path, shape: tuple[int, ...], max_bytes: int | None) -> None:
    """Refuse an image whose float32 array would exceed ``max_bytes``, from its header, before reading voxels."""
    if max_bytes is not None and int(np.prod(shape)) * 4 > max_bytes:
        raise DatasetError(
            f"{path}: image of shape {shape} needs {int(np.prod(shape)) * 4 / 2**20:.3g} MiB, over the memory "
            f"budget of {max_bytes / 2**20:.3g} MiB (data.max_image_mib / verify --max-image-mib)")


def stored_size(path: str | os.PathLike, dataset: str = "image") -> tuple[tuple[int, ...], int] | None:
    """``(shape, bytes per voxel as read)`` from a file's header, without reading voxels; ``None`` when the header
    cannot be read (the reader then reports the file)."""
    path = Path(path)
    try:
        ending = file_ending(path)
        if ending in NIFTI_ENDINGS:
            image = nib.load(path)
            scaled = any(v is not None and not np.isnan(v) and v != d for v, d in
                         ((getattr(image.dataobj, "slope", 1.0), 1.0), (getattr(image.dataobj, "inter", 0.0), 0.0)))
            return tuple(int(s) for s in image.shape), 8 if scaled else image.get_data_dtype().itemsize
        if ending == ".png":
            from PIL import Image

            with Image.open(path) as handle:
                return handle.size[::-1], {"1": 1, "L": 1, "P": 1, "I;16": 2, "I": 4, "F": 4}.get(handle.mode, 5)
        import h5py

        with h5py.File(path, "r") as handle:
            return tuple(handle[dataset].shape), handle[dataset].dtype.itemsize
    except Exception:  # noqa: BLE001 - any unreadable header is reported by the reader itself
        return None


def _read_png(path: Path, max_bytes: int | None = None) -> tuple[np.ndarray, Geometry]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            check_memory_budget(path, handle.size[::-1], max_bytes)
            if getattr(handle, "n_frames", 1) > 1:  # a TIFF stack would silently become its first slice
                raise DatasetError(f"{path}: {handle.n_frames} pages; only single-page 2-D images are read "
                                   "(save a 3-D stack as NIfTI)")
            if handle.mode not in ("L", "I", "I;16", "1", "P", "F"):  # "F": float TIFFs keep their values
                handle = handle.convert("L")
            data = np.asarray(handle)
    except Image.DecompressionBombError as error:  # a tiny file declaring billions of pixels
        raise DatasetError(f"{path}: PNG refused as a decompression bomb ({_short(error, path)})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        kind = "TIFF" if path.suffix.lower() in (".tif", ".tiff") else "PNG"
        raise DatasetError(f"{path}: not a readable {kind} ({_short(error, path)})") from None
    if data.dtype == bool:  # mode "1" (1-bit): 0/1 intensities or labels
        data = data.astype(np.uint8)
    return data, Geometry.identity(data.shape)


def _simple_itk(path: Path):
    try:
        import SimpleITK
    except ImportError:
        raise DatasetError(f"{path}: reading {path.suffix} files needs SimpleITK (pip install \"medgap[itk]\")") from None
    return SimpleITK


def _read_itk(path: Path, max_bytes: int | None = None) -> tuple[np.ndarray, Geometry]:
    """An NRRD/MetaImage file as ``(X, Y[, Z])`` with a RAS affine built from ITK's spacing, origin, direction."""
    sitk = _simple_itk(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        shape = tuple(int(s) for s in reader.GetSize())
        check_memory_budget(path, shape, max_bytes)
        if reader.GetNumberOfComponents() != 1:
            raise DatasetError(f"{path}: {reader.GetNumberOfComponents()} components per voxel; expected one "
                               "(save each channel as its own file, CASE_0000, CASE_0001, ...)")
        image = reader.Execute()
    except RuntimeError as error:  # SimpleITK raises RuntimeError for every I/O problem
        raise DatasetError(f"{path}: not a readable {path.suffix} image ({_short(error, path)})") from None
    if image.GetDimension() not in (2, 3):
        raise DatasetError(f"{path}: expected a 2-D or 3-D image, got {image.GetDimension()}-D")
    data = sitk.GetArrayFromImage(image).transpose()  # ITK arrays are (Z, Y, X)
    dimension = image.GetDimension()
    direction = np.eye(3)
    direction[:dimension, :dimension] = np.reshape(image.GetDirection(), (dimension, dimension))
    spacing = tuple(float(s) for s in image.GetSpacing())
    origin = np.zeros(3)
    origin[:dimension] = image.GetOrigin()
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag([*spacing, 1.0][:3])
    affine[:3, 3] = _LPS_TO_RAS @ origin
    return data, Geometry(affine=affine, spacing=spacing, shape=tuple(data.shape))


def write_itk(path: str | os.PathLike, array: np.ndarray, geometry: Geometry | None = None) -> None:
    """Write ``(X, Y[, Z])`` as NRRD/MetaImage atomically, the inverse of :func:`read_image` for these files."""
    path = Path(path)
    sitk = _simple_itk(path)
    array = np.asarray(array)
    image = sitk.GetImageFromArray(array.transpose())
    if geometry is not None:
        dimension = array.ndim
        linear = _LPS_TO_RAS @ geometry.affine[:3, :3]
        spacing = np.linalg.norm(linear, axis=0)
        image.SetSpacing([float(s) for s in spacing[:dimension]])
        image.SetDirection((linear / spacing)[:dimension, :dimension].ravel().tolist())
        image.SetOrigin((_LPS_TO_RAS @ geometry.affine[:3, 3])[:dimension].tolist())
    with atomic_path(path) as tmp:  # the temporary name keeps the ending: SimpleITK picks its writer by it
        sitk.WriteImage(image, str(tmp), useCompression=True)


def _read_h5(path: Path, dataset: str, max_bytes: int | None = None) -> tuple[np.ndarray, Geometry]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            link = handle.get(dataset, getlink=True)
            if link is None:
                raise DatasetError(f"{path}: no '{dataset}' dataset (found: {', '.join(handle.keys())})")
            if not isinstance(link, h5py.HardLink):  # a link may point into another file, anywhere
                raise DatasetError(f"{path}: '{dataset}' is a link ({type(link).__name__}); only data stored in the "
                                   "file itself is read")
            stored = handle[dataset]
            if not isinstance(stored, h5py.Dataset):
                raise DatasetError(f"{path}: '{dataset}' is a group, not an array")
            if stored.external or stored.is_virtual:  # raw bytes or views in other files: outside the dataset
                where = stored.external[0][0] if stored.external else "virtual sources"
                raise DatasetError(f"{path}: '{dataset}' is stored outside the file ({where!s}); only data stored in "
                                   "the file itself is read")
            if len(stored.shape) not in (2, 3):
                raise DatasetError(f"{path}: expected a 2-D or 3-D '{dataset}' array, got shape {stored.shape}")
            check_memory_budget(path, stored.shape, max_bytes)
            data = stored[()]
            spacing = tuple(float(s) for s in handle[dataset].attrs.get("spacing", (1.0,) * data.ndim))
    except OSError as error:
        raise DatasetError(f"{path}: not a readable h5 file ({_short(error, path)})") from None
    return data, Geometry.identity(data.shape, spacing)


def write_nifti(
    path: str | os.PathLike, array: np.ndarray, affine: np.ndarray | None = None,
    header: nib.Nifti1Header | None = None,
) -> None:
    """Write ``array`` as NIfTI atomically, with the given affine and (optionally) a reference header.

    The reference header carries over orientation codes and units; its data type is replaced by the array's.
    """
    array = np.asarray(array)
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if header is not None:
        header = header.copy()
        header.set_data_dtype(array.dtype)
    image = nib.Nifti1Image(array, affine, header=header)
    if header is None:
        image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 2-D uint8/uint16 array as PNG (or TIFF, by the file ending) atomically."""
    from PIL import Image

    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png expects uint8 or uint16, got {array.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG" if file_ending(path) == ".png" else "TIFF")


def write_image(path: str | os.PathLike, array: np.ndarray, geometry: Geometry | None = None) -> None:
    """Write by file ending: NIfTI with the geometry's affine/header, PNG/TIFF, or NRRD/MetaImage."""
    if file_ending(path) in PILLOW_ENDINGS:
        write_png(path, array)
    elif file_ending(path) in ITK_ENDINGS:
        write_itk(path, array, geometry)
    else:
        write_nifti(path, array, None if geometry is None else geometry.affine,
                    None if geometry is None else geometry.header)


def _short(error: BaseException, path: Path | None = None) -> str:
    """The first line of a library's error, at most 160 characters, with ``path`` (already named) shortened."""
    text = str(error).strip().splitlines()
    text = text[0] if text else type(error).__name__
    return (text.replace(str(path), path.name) if path is not None else text)[:160]
