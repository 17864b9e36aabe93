"""Check, convert and place every image a row references, once per image, in parallel.

verl keeps embedded image bytes in host memory for the whole run (verl issues #7391, #4995), so
rows reference images by path unless `images.mode=bytes`. Each distinct image is checked once
(the result is remembered by path), on a thread pool because PIL and file I/O release the GIL:

- a missing file -> Drop("image_missing"), an undecodable one -> Drop("image_corrupt");
- 16-bit PNG/TIFF and DICOM files, which the VLM processors cannot read correctly, are converted
  once to 8-bit RGB PNGs in `cache_dir` (named by source path, size and mtime, so a rerun reuses
  them) and rows point at the converted file;
- images that arrive as bytes (MedVLThinker parquet, base64 in CheXPO) are written to `cache_dir`
  under their content hash in path mode, or kept as bytes in bytes mode.

`check="header"` opens the file and verifies its structure (cheap; enough to catch missing,
truncated-header or non-image files); `check="decode"` decodes every pixel (slow, thorough);
`check="none"` only tests that the file exists.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from radgrpo.atomic import replace_atomically
from radgrpo.prep.errors import Drop

_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_DICOM_SUFFIXES = {".dcm", ".dicom"}


@dataclass(frozen=True)
class ImageOptions:
    mode: str = "path"             # path | bytes
    check: str = "header"          # header | decode | none
    cache_dir: Path | None = None  # where converted / extracted images go
    workers: int = 8
    keep_first_k: int | None = None
    strict: bool = True            # a bad image drops the record (else only the image)
    min_pixels: int | None = None
    max_pixels: int | None = None


class ImageResolver:
    """Turn image references into verl image entries, caching each path's verdict.

    Call `prefetch(refs)` with the references of a batch of records (checks them in parallel), then
    `entries(refs)` per record, which returns verl's `images` list or raises Drop.
    """

    def __init__(self, options: ImageOptions, root: Path):
        self.options = options
        self._root = str(root)
        self._known: dict[str, str | Drop] = {}   # absolute path -> usable path, or its Drop
        self._batch_bytes: dict[int, str | bytes | Drop] = {}  # id(bytes ref) -> verdict, one batch
        self._single: dict[str, list[dict[str, Any]]] = {}     # path -> entries of a one-image row
        self._pool = ThreadPoolExecutor(max_workers=max(1, options.workers))
        self.converted = 0

    def close(self) -> None:
        self._pool.shutdown()

    def _key(self, ref: Any) -> Any:
        """Bytes stay bytes; a path becomes absolute (string ops: this runs once per reference)."""
        if isinstance(ref, bytes) or ref.startswith("/"):
            return ref
        return os.path.normpath(os.path.join(self._root, os.path.expanduser(ref)))

    def prefetch(self, refs: list[Any]) -> None:
        """Check every not-yet-seen reference in `refs` on the thread pool."""
        todo = list({k: None for k in map(self._key, refs)
                     if not isinstance(k, bytes) and k not in self._known})
        for key, verdict in zip(todo, self._pool.map(self._check_path, todo)):
            self._known[key] = verdict
        blobs = [r for r in refs if isinstance(r, bytes)]
        self._batch_bytes = dict(zip(map(id, blobs), self._pool.map(self._bytes_verdict, blobs)))

    def entries(self, refs: list[Any]) -> list[dict[str, Any]]:
        """verl `images` entries for one record's references (after keep_first_k).

        A lone path reference (the common case) is memoised; callers must not mutate the result.
        """
        if len(refs) == 1 and isinstance(refs[0], str) and self.options.mode == "path":
            entries = self._single.get(refs[0])
            if entries is None:
                if len(self._single) >= 1 << 17:
                    self._single.clear()
                entries = self._single[refs[0]] = self._entries(refs)
            return entries
        return self._entries(refs)

    def _entries(self, refs: list[Any]) -> list[dict[str, Any]]:
        if self.options.keep_first_k is not None:
            refs = refs[: self.options.keep_first_k]
        out, first_drop = [], None
        for ref in refs:
            key = self._key(ref)
            if isinstance(key, bytes):
                verdict = self._batch_bytes.get(id(key)) or self._bytes_verdict(key)
            else:
                verdict = self._known.get(key) or self._known.setdefault(key, self._check_path(key))
            if isinstance(verdict, Drop):
                if self.options.strict:
                    raise verdict
                first_drop = first_drop or verdict
                continue
            out.append(self._entry(verdict))
        if not out:
            raise first_drop or Drop("no_image", "no image left")
        return out

    def _entry(self, verdict: str | bytes) -> dict[str, Any]:
        if self.options.mode == "bytes":
            data = verdict if isinstance(verdict, bytes) else Path(verdict).read_bytes()
            entry: dict[str, Any] = {"bytes": data}
        else:
            entry = {"image": "file://" + verdict}
        if self.options.min_pixels is not None:
            entry["min_pixels"] = self.options.min_pixels
        if self.options.max_pixels is not None:
            entry["max_pixels"] = self.options.max_pixels
        return entry

    # -- checks -----------------------------------------------------------------------------------

    def _check_path(self, path: str) -> str | Drop:
        """The path a row should use for this image, or the Drop explaining why none."""
        try:
            st = os.stat(path)
        except OSError:
            return Drop("image_missing", path)
        if self.options.check == "none":
            return path
        try:
            if Path(path).suffix.lower() in _DICOM_SUFFIXES or _is_dicom(path):
                return self._converted(path, st, lambda: _dicom_to_image(path))
            with Image.open(path) as im:
                if im.mode not in _EIGHT_BIT_MODES:
                    return self._converted(path, st, lambda: _load(path))
                if self.options.check == "decode":
                    im.load()
                else:
                    im.verify()
            return path
        except Drop as drop:
            return drop
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            return Drop("image_corrupt", f"{path}: {exc}")

    def _converted(self, path: str, st: os.stat_result, load) -> str:
        """Path of the 8-bit RGB PNG made from `path`, converting it on first use."""
        name = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
        target = self._cache_dir() / f"{name}.png"
        if not target.exists():
            replace_atomically(target, lambda tmp: tmp.write_bytes(_png_bytes(to_8bit_rgb(load()))))
            self.converted += 1
        return str(target)

    def _bytes_verdict(self, data: bytes) -> str | bytes | Drop:
        """Check image bytes; in path mode write them to the cache (by content hash)."""
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if im.mode not in _EIGHT_BIT_MODES:
                    data = _png_bytes(to_8bit_rgb(im))
                    self.converted += 1
                suffix = "." + (im.format or "png").lower()
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            return Drop("image_corrupt", f"embedded image: {exc}")
        if self.options.mode == "bytes":
            return data
        target = self._cache_dir() / (hashlib.sha1(data).hexdigest()[:24] + suffix)
        if not target.exists():
            replace_atomically(target, lambda tmp: tmp.write_bytes(data))
        return str(target)

    def _cache_dir(self) -> Path:
        if self.options.cache_dir is None:
            raise Drop("image_corrupt", "image needs conversion but no images.cache_dir is set")
        self.options.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.options.cache_dir


def to_8bit_rgb(image: Image.Image) -> Image.Image:
    """Min-max window a 16-bit / float image to 8 bits and return it as RGB."""
    if image.mode in _EIGHT_BIT_MODES:
        return image.convert("RGB")
    import numpy as np

    pixels = np.asarray(image, dtype=np.float64)
    lo, hi = float(pixels.min()), float(pixels.max())
    scaled = (pixels - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(pixels)
    return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")


def _load(path: str) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im


def _is_dicom(path: str) -> bool:
    with open(path, "rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"


def _dicom_to_image(path: str) -> Image.Image:
    """A DICOM's pixels as an image: rescaled, MONOCHROME1 inverted, windowed to 8 bits later."""
    try:
        import pydicom
    except ImportError:
        raise Drop("image_corrupt", f"{path} is DICOM; install pydicom (pip install radgrpo[dicom])")
    import numpy as np

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many types for unsupported or broken files
        raise Drop("image_corrupt", f"{path}: {exc}") from None
    pixels = pixels * float(getattr(ds, "RescaleSlope", 1) or 1) + float(getattr(ds, "RescaleIntercept", 0) or 0)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
        pixels = pixels[0]  # multi-frame: first frame
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=-1)
    return Image.fromarray(pixels.astype(np.float32))


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


