"""Reading a source member by member, never extracting it: a folder, a .zip or a .tar(.gz).

Every entry's path is checked (nothing outside the archive), links are not followed, nested archives
are not opened, and the member count, file sizes, total size and expansion ratio are capped
(core.data.limits). What a source holds comes back as a Scan: bounded readers, folders, and what was
set aside with its reason.
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Callable

from core.data.limits import ImportLimits, Refused, size_words
from core.errors import DatasetError
from core.spec import kinds

IMAGE_SUFFIXES = kinds.IMAGE.extensions  # the image kind's (core.spec.kinds); kept for its readers
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
# Operating-system clutter in archives and folders: counted, not listed one by one.
_JUNK_NAMES = ("__macosx", "thumbs.db", "desktop.ini")


@dataclass
class Scan:
    """What a source holds: candidate files with bounded readers, folders, and what was set aside."""

    files: list[tuple[PurePosixPath, Callable[[], bytes]]] = field(default_factory=list)
    dirs: set[PurePosixPath] = field(default_factory=set)
    skipped: list[dict[str, str]] = field(default_factory=list)
    junk: int = 0

    def skip(self, name: object, reason: str) -> None:
        self.skipped.append({"file": str(name), "reason": reason})


def _check_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[a-zA-Z]:", name) or ".." in path.parts:
        raise Refused(f"The archive entry '{name}' points outside the archive; the archive was refused as unsafe.")
    return PurePosixPath(*(p for p in path.parts if p not in ("", ".")))


def _is_junk(path: PurePosixPath) -> bool:
    return any(part.startswith(".") or part.lower() in _JUNK_NAMES for part in path.parts)


def too_large(limits: ImportLimits) -> str:
    return f"larger than {size_words(limits.max_file_bytes)}"


def _check_total(total: int, source: str, limits: ImportLimits) -> None:
    if total > limits.max_total_bytes:
        raise Refused(f"'{source}' expands to more than {size_words(limits.max_total_bytes)}; import a smaller set.")


def _check_ratio(what: str, size: int, packed: int, limits: ImportLimits) -> None:
    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(packed, 1):
        raise Refused(
            f"{what} expands {size / max(packed, 1):,.0f} times, more than the limit of "
            f"{limits.max_ratio:.0f}; the archive was refused as a possible zip bomb."
        )


def _expansion(size: int, packed: int, limits: ImportLimits) -> str | None:
    """Why one archive entry is set aside unread as a possible zip bomb, or None when its ratio is fine."""
    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(packed, 1):
        return (f"expands {size / max(packed, 1):,.0f} times, more than the limit of {limits.max_ratio:.0f} "
                "(a possible zip bomb); set aside unread")
    return None


def bounded(read: Callable[[int], bytes], limits: ImportLimits) -> bytes:
    # Never trust a declared size alone: read one byte past the cap and look.
    data = read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise DatasetError(too_large(limits))
    return data


def scan_zip(zf: zipfile.ZipFile, source: str, limits: ImportLimits, scan: Scan) -> None:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise Refused(
            f"'{source}' holds {len(infos):,} entries, more than the limit of {limits.max_members:,}; split it into smaller zips."
        )
    total = 0
    for info in infos:
        path = _check_member_path(info.filename)
        if not path.parts:
            continue
        if _is_junk(path):
            scan.junk += not info.is_dir()
            continue
        if info.is_dir():
            scan.dirs.add(path)
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            scan.skip(path, "symbolic link (not followed)")
            continue
        if path.suffix.lower() in ARCHIVE_SUFFIXES:
            scan.skip(path, "archive inside the archive (not opened); upload it on its own")
            continue
        if info.flag_bits & 0x1:
            scan.skip(path, "password-protected entry (cannot be read)")
            continue
        if info.file_size > limits.max_file_bytes:
            scan.skip(path, too_large(limits))
            continue
        # One entry that expands too much is set aside without being read; the rest still imports.
        bomb = _expansion(info.file_size, info.compress_size, limits)
        if bomb:
            scan.skip(path, bomb)
            continue
        total += info.file_size
        _check_total(total, source, limits)

        def read(info: zipfile.ZipInfo = info) -> bytes:
            try:
                with zf.open(info) as f:
                    data = bounded(f.read, limits)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError):
                raise DatasetError("damaged entry in the archive (could not be unpacked)") from None
            bomb = _expansion(len(data), info.compress_size, limits)  # a declared size can lie
            if bomb:
                raise DatasetError(bomb)
            return data

        scan.files.append((path, read))


def _scan_tar(tar: tarfile.TarFile, source: str, packed: int, limits: ImportLimits, scan: Scan) -> None:
    count = total = 0
    # Iterating reads one header at a time, so the member cap stops a header flood early.
    for member in tar:
        count += 1
        if count > limits.max_members:
            raise Refused(
                f"'{source}' holds more than {limits.max_members:,} entries, the limit; split it into smaller archives."
            )
        path = _check_member_path(member.name)
        if not path.parts:
            continue
        if _is_junk(path):
            scan.junk += not member.isdir()
            continue
        if member.isdir():
            scan.dirs.add(path)
            continue
        if member.issym() or member.islnk():
            scan.skip(path, "symbolic link (not followed)")
            continue
        if not member.isfile() or member.issparse():
            scan.skip(path, "not a regular file")
            continue
        if path.suffix.lower() in ARCHIVE_SUFFIXES:
            scan.skip(path, "archive inside the archive (not opened); upload it on its own")
            continue
        if member.size > limits.max_file_bytes:
            scan.skip(path, too_large(limits))
            continue
        total += member.size
        _check_total(total, source, limits)

        def read(member: tarfile.TarInfo = member) -> bytes:
            try:
                f = tar.extractfile(member)
                if f is None:
                    raise DatasetError("not a regular file")
                with f:
                    return bounded(f.read, limits)
            except (tarfile.TarError, zlib.error, EOFError, OSError):
                raise DatasetError("damaged entry in the archive (could not be unpacked)") from None

        scan.files.append((path, read))
    # A compressed tar has one stream: its overall expansion is what a bomb inflates.
    _check_ratio(f"'{source}'", total, packed, limits)


def _scan_folder(src: Path, limits: ImportLimits, scan: Scan) -> None:
    count = total = 0
    for path in sorted(src.rglob("*")):
        rel = PurePosixPath(path.relative_to(src).as_posix())
        if _is_junk(rel):
            scan.junk += path.is_file()
            continue
        if path.is_symlink():
            scan.skip(rel, "symbolic link (not followed)")
            continue
        if path.is_dir():
            scan.dirs.add(rel)
            continue
        if not path.is_file():
            scan.skip(rel, "not a regular file")
            continue
        count += 1
        if count > limits.max_members:
            raise Refused(f"'{src}' holds more than {limits.max_members:,} files; import a smaller folder.")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            scan.skip(rel, too_large(limits))
            continue
        total += size
        _check_total(total, str(src), limits)

        def read(path: Path = path) -> bytes:
            with path.open("rb") as f:
                return bounded(f.read, limits)

        scan.files.append((rel, read))


def zip_entries(src: Path, limits: ImportLimits, skipped: list[dict]) -> list[tuple[PurePosixPath, Callable[[], bytes]]]:
    """The files of a zip as (path, bounded reader), with unsafe zips refused and set-aside files listed."""
    scan = Scan(skipped=skipped)
    scan_zip(open_zip(src, Path(src).name), Path(src).name, limits, scan)
    return scan.files


def open_zip(src: Path | IO[bytes], name: str) -> zipfile.ZipFile:
    """The zip archive, or a sentence saying what the file is instead (a photo dropped in the zip box, a broken zip)."""
    try:
        return zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        if PurePosixPath(name.lower()).suffix in IMAGE_SUFFIXES:
            raise DatasetError(f"'{name}' is an image, not a zip: put your images into one folder per class and zip "
                               "the folders, or add images class by class under 'Build classes here'.") from None
        raise DatasetError(f"'{name}' is not a readable zip file; re-create it and upload again.") from None


def scan_source(src: Path, label: str, limits: ImportLimits, scan: Scan) -> None:
    """Fill a scan from a folder, a .zip or a .tar(.gz); DatasetError for anything else."""
    lower = src.name.lower()
    if src.is_dir():
        _scan_folder(src, limits, scan)
    elif src.is_file() and lower.endswith(".zip"):
        scan_zip(open_zip(src, label), label, limits, scan)
    elif src.is_file() and lower.endswith(TAR_SUFFIXES):
        try:
            tar = tarfile.open(src, "r:*")
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            raise DatasetError(f"'{label}' is not a readable tar archive; re-create it and try again.") from None
        try:
            _scan_tar(tar, label, src.stat().st_size, limits, scan)
        except (tarfile.TarError, EOFError, zlib.error, OSError):
            raise DatasetError(f"'{label}' is damaged (it ends early or is not a tar archive); re-create it.") from None
    elif src.exists():
        raise DatasetError(
            f"'{src.name}' is neither a folder, a .zip nor a .tar.gz file; give a folder of class folders or an archive of one."
        )
    else:
        raise DatasetError(f"'{src}' does not exist; check the path.")
