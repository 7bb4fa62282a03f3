"""The model archive: one set of bytes per model version, named by its sha256.

A model folder becomes a deterministic, uncompressed tar: entries sorted by
path, modes normalised (0755 for executables and folders, 0644 otherwise),
owners and times zeroed. So the digest is a function of the folder's paths
and contents alone: the same folder archived on any machine, from any copy
(the MLflow store, a workflow artifact, a release), gives the same digest.
Uncompressed because gzip's bytes depend on the zlib build, and model files
(pickles, weights) gain little from it.

Reading is one pass: the stream is hashed while it is unpacked, and a
mismatch removes what was unpacked. Only regular files and folders are
unpacked, and never outside the target folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlci.errors import MlciError

CHUNK = 1 << 20


class ArchiveError(MlciError):
    pass


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


class _HashingWriter:
    """A write-only file that hashes (and optionally keeps) what tarfile writes."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.sink = sink

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def digest(self) -> Digest:
        return Digest(self.hash.hexdigest(), self.size)


class _HashingReader:
    """A read-only file over chunks, hashing everything read through it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._at = 0  # how much of _buffer was read: no copy of the rest per read
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) - self._at < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer = self._buffer[self._at :] + chunk
            self._at = 0
        end = len(self._buffer) if n < 0 else min(len(self._buffer), self._at + n)
        data = self._buffer[self._at : end]
        self._at = end
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest(self.hash.hexdigest(), self.size)


def _entries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ArchiveError(f"{folder} is not a folder: nothing to archive")
    found = sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
    for path in found:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ArchiveError(
                f"{path}: only regular files and folders can be in a model archive",
                hint="copy the file the link points to into the model folder instead",
            )
    return found


def _write(folder: Path, sink: IO[bytes] | None) -> Digest:
    writer = _HashingWriter(sink)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path in _entries(folder):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            mode = path.stat().st_mode
            info.mode = 0o755 if mode & stat.S_IXUSR else 0o644
            info.size = path.stat().st_size
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return writer.digest()


def digest_folder(folder: Path) -> Digest:
    """The digest of the archive of ``folder``, without writing the archive."""
    return _write(folder, None)


def pack(folder: Path, dest: Path) -> Digest:
    """Archive ``folder`` to ``dest`` (reading each file once) and return its digest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with partial.open("wb") as handle:
            digest = _write(folder, handle)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return digest


MAX_NAME = 1024  # characters of an entry's path
MAX_PART = 255  # characters of one name in it (most file systems' limit)
MAX_DEPTH = 64
MAX_ENTRIES = 100_000


def _safe_target(root: Path, name: str, seen: dict[str, bool], is_dir: bool) -> Path:
    """Where entry ``name`` goes under ``root``, refusing what no archive mlci writes has:
    an absolute or escaping path, an empty, ``.`` or ``..`` part, a name or depth past the
    bounds, an entry twice, a file where a folder is (or under a file)."""
    parts = name.rstrip("/").split("/") if is_dir else name.split("/")
    problem = None
    if not name or name.startswith("/") or "\0" in name:
        problem = "an absolute or empty path"
    elif any(part in ("", ".", "..") for part in parts):
        problem = "an empty, '.' or '..' part"
    elif len(name) > MAX_NAME or any(len(part) > MAX_PART for part in parts):
        problem = f"a name longer than {MAX_NAME} characters (or a part longer than {MAX_PART})"
    elif len(parts) > MAX_DEPTH:
        problem = f"more than {MAX_DEPTH} levels of folders"
    else:
        path = "/".join(parts)
        for depth in range(1, len(parts)):
            if seen.get("/".join(parts[:depth])) is False:
                problem = "an entry under a file"
                break
        else:
            if path in seen:
                problem = "the same path twice" if seen[path] is False or not is_dir else None
            if problem is None:
                seen[path] = is_dir
    if problem is not None:
        raise ArchiveError(
            f"the archive holds an unsafe path {name[:120]!r} ({problem}): refusing to unpack it"
        )
    return root.joinpath(*parts)


def unpack(
    chunks: Iterable[bytes],
    dest: Path,
    *,
    expected: str | None,
    source: str,
    keep: Path | None = None,
) -> Digest:
    """Unpack an archive stream into ``dest`` (a new folder) while hashing it: one pass.

    With ``expected``, a different digest removes ``dest`` and raises. With
    ``keep``, the archive's bytes are also written there as they stream by.
    """
    if keep is not None:
        chunks = _tee(chunks, keep)
    if dest.exists():
        raise ArchiveError(
            f"{dest} exists already: not unpacking over it", hint="choose another folder, or remove it"
        )
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    reader = _HashingReader(chunks)
    seen: dict[str, bool] = {}  # path -> is a folder
    try:
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for count, member in enumerate(tar, start=1):
                    if count > MAX_ENTRIES:
                        raise ArchiveError(f"{source} holds more than {MAX_ENTRIES} entries: refusing it")
                    if not member.isdir() and not member.isfile():
                        what = member.name[:120]
                        raise ArchiveError(
                            f"{source}: entry {what!r} is not a regular file: refusing to unpack it"
                        )
                    target = _safe_target(partial, member.name, seen, member.isdir())
                    try:
                        if member.isdir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        handle = tar.extractfile(member)
                        assert handle is not None
                        with target.open("wb") as out:
                            shutil.copyfileobj(handle, out, CHUNK)
                        if member.mode & stat.S_IXUSR:
                            target.chmod(0o755)
                    except OSError as exc:
                        raise ArchiveError(
                            f"{source}: cannot unpack entry {member.name[:120]!r}: {exc.strerror or exc}",
                            hint=f"check the free space and permissions of {dest.parent}"
                            if exc.errno in (28, 13)
                            else None,
                        ) from None
            reader.drain()
        except tarfile.TarError as exc:
            raise ArchiveError(f"{source} is not a valid model archive: {exc}") from None
        digest = _checked(reader.digest(), expected, source)
        os.replace(partial, dest)
        return digest
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def verify(chunks: Iterable[bytes], *, expected: str | None, source: str) -> Digest:
    """Hash an archive stream without keeping it: the check a promotion needs
    when nothing here will use the files."""
    reader = _HashingReader(chunks)
    reader.drain()
    return _checked(reader.digest(), expected, source)


def _checked(digest: Digest, expected: str | None, source: str) -> Digest:
    if expected is not None and digest.sha256 != expected:
        raise ArchiveError(
            f"{source}: sha256 {digest.sha256} does not match the registry's {expected}: "
            "these are not the bytes that were registered",
            hint="the stored model was replaced or corrupted; do not deploy it. "
            "Register the model again from its inputs (a new version), and find out who changed it",
        )
    return digest


def _tee(chunks: Iterable[bytes], path: Path) -> Iterator[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            yield chunk


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
