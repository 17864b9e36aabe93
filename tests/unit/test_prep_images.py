"""Images: 16-bit PNG/TIFF and DICOM become 8-bit RGB once, in the cache; bad files are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from radgrpo.prep.errors import Drop
from radgrpo.prep.images import ImageOptions, ImageResolver


def _sixteen_bit(path, suffix):
    pixels = (np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30).astype(np.uint16)
    Image.fromarray(pixels).save(path.with_suffix(suffix))
    return str(path.with_suffix(suffix))


def _dicom(path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Rows, ds.Columns = 32, 24
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(32 * 24, dtype=np.uint16).reshape(32, 24) * 5).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    del pydicom
    return str(path)


@pytest.mark.parametrize("make", [lambda p: _sixteen_bit(p, ".png"), lambda p: _sixteen_bit(p, ".tiff"), _dicom])
def test_medical_formats_are_converted_once_to_8bit_rgb(tmp_path, make):
    source = make(tmp_path / "scan.dcm")
    resolver = ImageResolver(ImageOptions(cache_dir=tmp_path / "cache"), tmp_path)
    resolver.prefetch([source])
    (entry,) = resolver.entries([source])
    converted = entry["image"][len("file://"):]
    assert converted.startswith(str(tmp_path / "cache"))
    with Image.open(converted) as im:
        assert im.mode == "RGB"
        pixels = np.asarray(im)
    assert pixels.min() == 0 and pixels.max() == 255  # windowed to the full 8-bit range
    mtime = (tmp_path / "cache").stat().st_mtime_ns
    second = ImageResolver(ImageOptions(cache_dir=tmp_path / "cache"), tmp_path)
    assert second.entries([source]) == [entry] and second.converted == 0  # reused, not redone
    assert (tmp_path / "cache").stat().st_mtime_ns == mtime
    resolver.close()
    second.close()


def test_dicom_monochrome1_is_inverted(tmp_path):
    source = _dicom(tmp_path / "m1.dcm")
    resolver = ImageResolver(ImageOptions(cache_dir=tmp_path / "cache"), tmp_path)
    (entry,) = resolver.entries([source])
    with Image.open(entry["image"][len("file://"):]) as im:
        pixels = np.asarray(im)[..., 0]
    assert pixels[0, 0] == 255 and pixels[-1, -1] == 0  # low raw values are bright in MONOCHROME1
    resolver.close()


def test_missing_and_corrupt_images_drop_with_their_reason(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.png")
    resolver = ImageResolver(ImageOptions(cache_dir=tmp_path / "cache"), tmp_path)
    resolver.prefetch(["ok.png", "bad.png", "gone.png"])
    assert resolver.entries(["ok.png"]) == [{"image": f"file://{tmp_path / 'ok.png'}"}]
    for ref, reason in (("bad.png", "image_corrupt"), ("gone.png", "image_missing")):
        with pytest.raises(Drop) as err:
            resolver.entries([ref])
        assert err.value.reason == reason
    relaxed = ImageResolver(ImageOptions(cache_dir=tmp_path / "cache", strict=False, keep_first_k=2), tmp_path)
    assert len(relaxed.entries(["ok.png", "bad.png", "ok.png"])) == 1  # k=2 keeps ok+bad, bad dropped
    resolver.close()
    relaxed.close()
