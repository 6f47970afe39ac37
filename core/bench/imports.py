"""`bench import`: importing the flower photos of ../shared/datasets/flowers (a folder of 5 class
folders), first 500 of them, then all 3,000, then all of them as one zip; each import runs in a fresh
interpreter that reports its images per second and its peak memory (max RSS), so memory that grows
with the dataset shows as a difference between the rows. Goal: >= 150 images/s on 2 cores and the
same peak memory at 500 and 3,000 images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from core.errors import TransferLabError

PROJECT = Path(__file__).resolve().parents[2]
FLOWERS = PROJECT.parent / "shared" / "datasets" / "flowers"
_IMPORT_CHILD = """
import json, resource, sys, time
from pathlib import Path
from core.data import importer
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
info = importer.import_path(sys.argv[1], Path(sys.argv[2]))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = sum(info["counts"].values())
print(json.dumps({"images": images, "skipped": len(info["skipped"]), "seconds": round(seconds, 2),
                  "images_per_second": round(images / seconds, 1), "rss_before_import_mb": round(before / 1024, 1),
                  "peak_rss_mb": round(peak / 1024, 1)}))
"""


def _import_once(src: Path, ws: Path, label: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _IMPORT_CHILD, str(src), str(ws)], cwd=PROJECT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise TransferLabError(f"The import benchmark step '{label}' failed: {proc.stderr.strip()[-400:]}")
    return {"source": label, **json.loads(proc.stdout)}


def run(source: Path = FLOWERS, small: int = 500) -> dict[str, Any]:
    """Import `small` photos, then all of them, then all as a zip, each in a fresh interpreter; speed and peak memory."""
    photos = sorted(source.glob("*/*.jpg")) if source.is_dir() else []
    if not photos:
        raise TransferLabError(f"The import benchmark needs the flower photos in {source}; that folder is missing or empty.")
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        subset = Path(tmp) / "subset"
        classes = sorted({p.parent.name for p in photos})
        for photo in (p for c in classes for p in sorted(source.glob(f"{c}/*.jpg"))[: small // len(classes)]):
            (subset / photo.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, subset / photo.parent.name / photo.name)
        archive = Path(tmp) / "flowers.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for photo in photos:
                zf.write(photo, f"flowers/{photo.parent.name}/{photo.name}")
        rows = [
            _import_once(subset, Path(tmp) / "ws", f"folder, {len(list(subset.glob('*/*.jpg')))} photos"),
            _import_once(source, Path(tmp) / "ws", f"folder, {len(photos)} photos"),
            _import_once(archive, Path(tmp) / "ws", f"zip, {len(photos)} photos"),
        ]
    return {"benchmark": "import", "rows": rows, "cpus": os.cpu_count(),
            "peak_rss_growth_mb": round(rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1)}


def describe(result: dict[str, Any]) -> str:
    """The import figures, one line per row."""
    return "\n".join(
        [f"import on {result['cpus']} CPUs:"]
        + [f"  {r['source']}: {r['images_per_second']:.0f} images/s ({r['images']} in {r['seconds']:.1f} s), "
           f"peak memory {r['peak_rss_mb']:.0f} MB ({r['rss_before_import_mb']:.0f} MB before the import)"
           for r in result["rows"]]
        + [f"  peak memory growth from the small to the full set: {result['peak_rss_growth_mb']:+.0f} MB"]
    )
