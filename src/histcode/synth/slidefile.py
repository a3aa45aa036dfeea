"""Write pyramidal whole-slide files OpenSlide reads: generic tiled TIFF and Aperio SVS.

Both store every pyramid level as its own top-level TIFF page (not SubIFDs), JPEG-compressed tiles.
The generic TIFF carries its resolution in XResolution/YResolution (pixels per centimetre), which
OpenSlide reports as ``openslide.mpp-x/y``. The SVS carries Aperio's ImageDescription (``AppMag``,
``MPP``), a stripped thumbnail page after level 0 and a label image, as Aperio scanners write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from histcode.atomic import atomic_path


@dataclass(frozen=True)
class ScannerStyle:
    """File-level scanner habits: tile edge, JPEG quality, and (SVS only) scanner identity."""

    tile_px: int = 256
    jpeg_quality: int = 85
    scanner_id: str = "SS1302"


def pyramid(image: np.ndarray, min_side: int = 1024, factor: int = 4) -> list[np.ndarray]:
    """Level 0 plus area-downsampled levels (×4 each) while the previous level is larger than ``min_side``."""
    levels = [image]
    while max(levels[-1].shape[:2]) > min_side:
        prev = levels[-1]
        h, w = max(1, prev.shape[0] // factor), max(1, prev.shape[1] // factor)
        levels.append(cv2.resize(prev, (w, h), interpolation=cv2.INTER_AREA))
    return levels


def _tiled_kwargs(style: ScannerStyle) -> dict[str, object]:
    # photometric "rgb" + JPEG: tifffile stores YCbCr 2x2-subsampled JPEG (photometric 6), as scanners do.
    return dict(
        tile=(style.tile_px, style.tile_px),
        photometric="rgb",
        compression="jpeg",
        compressionargs={"level": style.jpeg_quality},
        metadata=None,
        maxworkers=1,
    )


def write_generic_tiff(
    path: Path, image: np.ndarray, mpp: float, style: ScannerStyle
) -> list[tuple[int, int]]:
    """Pyramidal JPEG TIFF with resolution tags; returns level (width, height)s."""
    levels = pyramid(image)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=image.size > 2**31) as tw:
        for i, lvl in enumerate(levels):
            ds = image.shape[1] / lvl.shape[1]
            res = 1e4 / (mpp * ds)  # px per cm
            tw.write(
                lvl,
                subfiletype=0 if i == 0 else 1,
                resolution=(res, res),
                resolutionunit="CENTIMETER",
                **_tiled_kwargs(style),
            )
    return [(lv.shape[1], lv.shape[0]) for lv in levels]


def aperio_description(
    width: int,
    height: int,
    *,
    mpp: float,
    app_mag: int,
    style: ScannerStyle,
    filename: str,
    date: str,
    image_id: int,
) -> str:
    """Level-0 ImageDescription in Aperio's ``header|key = value|...`` form."""
    fields = {
        "AppMag": str(app_mag),
        "StripeWidth": "2040",
        "ScanScope ID": style.scanner_id,
        "Filename": filename,
        "Date": date,
        "Time": "10:42:17",
        "Time Zone": "GMT-0500",
        "MPP": f"{mpp:.4f}",
        "Left": "25.691574",
        "Top": "23.449873",
        "LineCameraSkew": "-0.000424",
        "LineAreaXOffset": "0.019265",
        "LineAreaYOffset": "-0.000313",
        "Focus Offset": "0.000000",
        "ImageID": str(image_id),
        "OriginalWidth": str(width),
        "OriginalHeight": str(height),
        "Filtered": "5",
        "Gamma": "2.2",
        "Exposure Time": "109",
        "Exposure Scale": "0.000001",
        "ICC Profile": "ScanScope v1",
    }
    head = (
        f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] "
        f"({style.tile_px}x{style.tile_px}) JPEG/RGB Q={style.jpeg_quality}"
    )
    return head + "|" + "|".join(f"{k} = {v}" for k, v in fields.items())


def _label_image(text: str) -> np.ndarray:
    label = np.full((400, 420, 3), 245, np.uint8)
    for i, part in enumerate([text[:12], text[12:24], text[24:36]]):
        cv2.putText(
            label, part, (14, 120 + 80 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 2, cv2.LINE_AA
        )
    cv2.rectangle(label, (14, 20), (406, 70), (30, 30, 30), -1)  # stand-in for the printed barcode
    return label


def write_aperio_svs(
    path: Path,
    image: np.ndarray,
    mpp: float,
    style: ScannerStyle,
    *,
    label_text: str,
    date: str,
    image_id: int,
) -> list[tuple[int, int]]:
    """Aperio SVS: level 0 (with description), thumbnail (stripped), lower levels, label; level sizes back."""
    levels = pyramid(image)
    h, w = image.shape[:2]
    app_mag = round(10.0 / mpp)
    desc0 = aperio_description(
        w, h, mpp=mpp, app_mag=app_mag, style=style, filename=path.stem, date=date, image_id=image_id
    )
    thumb = cv2.resize(
        image, (max(1, w * 768 // max(w, h)), max(1, h * 768 // max(w, h))), interpolation=cv2.INTER_AREA
    )
    tail = desc0.split("|", 1)[1]
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=image.size > 2**31) as tw:
        tw.write(levels[0], description=desc0, **_tiled_kwargs(style))
        tw.write(
            thumb,
            description=f"Aperio Image Library v12.0.15 \r\n{w}x{h} -> {thumb.shape[1]}x{thumb.shape[0]}"
            f" - |{tail}",
            photometric="rgb",
            compression="jpeg",
            compressionargs={"level": 90},
            rowsperstrip=16,
            metadata=None,
        )
        for lvl in levels[1:]:
            desc = (
                f"Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] ({style.tile_px}x{style.tile_px}) "
                f"-> {lvl.shape[1]}x{lvl.shape[0]} JPEG/RGB Q={style.jpeg_quality}|{tail}"
            )
            tw.write(lvl, description=desc, **_tiled_kwargs(style))
        label = _label_image(label_text)
        tw.write(
            label,
            description=f"Aperio Image Library v12.0.15\r\nlabel {label.shape[1]}x{label.shape[0]}",
            photometric="rgb",
            compression="lzw",
            rowsperstrip=label.shape[0],
            metadata=None,
            subfiletype=1,
        )
    return [(lv.shape[1], lv.shape[0]) for lv in levels]
