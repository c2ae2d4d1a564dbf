"""Output folders: written atomically, and never at the cost of a file snncc did not write.

A build folder carries a marker, ``.snncc-build.json``, listing the entries snncc wrote
into it. Writing a build into a folder:

- that does not exist or is empty: the whole folder is built beside it and renamed into
  place;
- that is a build folder (it has the marker, or it is a build of an snncc from before the
  marker: a ``report.json`` with ``snncc_version``): snncc's previous entries are replaced
  by the new ones and every other entry is left as it was;
- that holds only build folders of its own (``build/`` holding ``build/demo``): the new
  entries are added beside them;
- that holds anything else: refused before any work, naming what is there, unless
  ``force`` is given, in which case snncc's entries are written beside the others (an
  entry of the same name is replaced; a protected file, the source model say, never is).

The entries are built in a temporary folder beside the target and moved in at the end; a
failed or interrupted run puts every replaced entry back and leaves the folder as it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from snncc.errors import Diagnostic, SnnccError

if TYPE_CHECKING:
    from snncc.backends.parallel import HwConfig
    from snncc.compiler import CompiledModel

MARKER = ".snncc-build.json"
_LEGACY = ("model.snn", "report.json", "hls", "verilog")  # what builds before the marker held


def write_build(folder: Path, model: CompiledModel, targets: Iterable[str],
                emitting: Callable[[str], AbstractContextManager[object]] = nullcontext,
                hw: HwConfig | None = None) -> dict:
    """A build's entries in `folder`: model.snn, a folder per hardware target and
    report.json; the report (`emitting(target)` wraps each target's emit, for progress;
    `hw` is the targets' parallelism knob)."""
    from snncc.backends import registry
    from snncc.metrics.report import compile_report

    model.save(folder / "model.snn")
    report = compile_report(model)
    targets = list(targets)
    emitted = {}
    for t in sorted(targets, key=lambda t: (registry.EMIT_ORDER + (t,)).index(t)):
        with emitting(t):
            emitted[t] = registry.emit(t, model.graph, folder / t, hw=hw)
    report["targets"].update((t, emitted[t]) for t in targets)
    write_report(folder, report)
    return report


def write_report(folder: Path, report: dict) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def _marker_entries(folder: Path) -> set[str] | None:
    """The entries snncc wrote into `folder`, or None if it is not a build folder."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            entries = json.loads(marker.read_text()).get("entries", [])
            return {str(e) for e in entries if "/" not in str(e) and str(e) not in ("", ".", "..")}
        except (OSError, ValueError, AttributeError):
            return set()
    report = folder / "report.json"
    if report.is_file():
        try:
            legacy = "snncc_version" in json.loads(report.read_text())
        except (OSError, ValueError, TypeError):
            legacy = False
        if legacy:
            return {e for e in _LEGACY if (folder / e).exists()}
    return None


def is_build_folder(folder: Path) -> bool:
    return folder.is_dir() and _marker_entries(folder) is not None


def _owned(target: Path, force: bool) -> set[str]:
    """The entries of an existing `target` that a new build may replace (refuses a folder
    of someone else's files unless `force`)."""
    entries = sorted(p.name for p in target.iterdir())
    owned = _marker_entries(target)
    if owned is not None:
        return owned | {MARKER}
    foreign = [e for e in entries if not is_build_folder(target / e)]
    if not foreign or force:
        return set()
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    raise SnnccError(Diagnostic(
        f"the output folder is not an snncc build folder and is not empty (it holds {shown})",
        file=str(target),
        fix="choose another folder with -o, or pass --force to write snncc's files beside "
            "what is there (nothing else in it is touched)"))


def _protected_inside(target: Path, names: Iterable[str], protect: Iterable[Path]) -> str | None:
    """The first of `names` (entries of target) that is or holds a protected file."""
    protected = [p.resolve() for p in protect if p is not None and Path(p).exists()]
    for name in names:
        entry = (target / name).resolve()
        for p in protected:
            if p == entry or entry in p.parents:
                return name
    return None


@contextmanager
def atomic_dir(target: Path, *, force: bool = False, protect: Iterable[Path | None] = ()
               ) -> Iterator[Path]:
    """Yield a temporary folder to build into; on success its entries become `target`'s
    (see the module docstring for which existing entries may be replaced)."""
    target = Path(target)
    kept = [Path(p) for p in protect if p is not None]
    blocker = _file_in_the_way(target)
    if blocker is not None:
        raise SnnccError(Diagnostic(
            f"cannot create the output folder: '{blocker}' is a file, not a folder",
            file=str(target), fix="choose another folder with -o"))
    owned = _owned(target, force) if target.is_dir() else set()
    try:
        parent = target.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    except OSError as e:
        raise SnnccError(Diagnostic(f"cannot create the output folder ({why(e)})",
                                    file=str(target),
                                    fix="choose a writable folder with -o")) from None
    try:
        yield tmp
        _write_marker(tmp)
        if target.is_dir() and any(target.iterdir()):
            _merge_into(tmp, target, owned, force, kept)
        else:
            _move_into_place(tmp, target)
    except OSError as e:
        raise SnnccError(Diagnostic(f"cannot write the output ({why(e)}); the previous "
                                    "output, if any, is unchanged", file=str(target),
                                    fix=what_to_do(e))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_marker(tmp: Path) -> None:
    from snncc.version import __version__

    entries = sorted(p.name for p in tmp.iterdir() if p.name != MARKER)
    (tmp / MARKER).write_text(json.dumps({"snncc_version": __version__, "entries": entries},
                                         indent=2) + "\n")


def _merge_into(tmp: Path, target: Path, owned: set[str], force: bool,
                protect: list[Path]) -> None:
    """Replace `owned` entries of `target` by the entries of `tmp`; leave the rest."""
    new = sorted(p.name for p in tmp.iterdir())
    new.remove(MARKER)
    new.append(MARKER)  # the marker goes in last: until then the old one stands
    clash = [e for e in new if (target / e).exists() and e not in owned and not force]
    if clash:
        raise SnnccError(Diagnostic(
            f"the output folder holds '{clash[0]}', which snncc did not write; it would be "
            "replaced", file=str(target),
            fix="move it away, choose another folder with -o, or pass --force"))
    replaced = sorted({e for e in owned | set(new) if (target / e).exists()
                       or (target / e).is_symlink()})
    hit = _protected_inside(target, replaced, protect)
    if hit is not None:
        raise SnnccError(Diagnostic(
            f"the output folder's '{hit}' is (or holds) an input of this command; it would be "
            "replaced", file=str(target), fix="choose another folder with -o"))
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.resolve().parent))
    moved: list[str] = []
    placed: list[str] = []
    try:
        for e in replaced:
            (target / e).rename(trash / e)
            moved.append(e)
        for e in new:
            (tmp / e).rename(target / e)
            placed.append(e)
    except BaseException:
        for e in placed:
            _remove(target / e)
        for e in moved:
            (trash / e).rename(target / e)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _file_in_the_way(path: Path) -> Path | None:
    """The path itself or its nearest existing ancestor, if that is not a folder."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _move_into_place(tmp: Path, target: Path) -> None:
    """`tmp` becomes `target` (an empty or missing folder)."""
    if target.is_dir():
        target.rmdir()  # empty: checked by the caller
    tmp.rename(target)


def what_to_do(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space or choose another folder with -o"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a writable folder with -o"
    return "choose another folder with -o"


def why(e: OSError) -> str:
    """The system's words for an OSError ('No space left on device')."""
    return e.strerror or (os.strerror(e.errno) if e.errno else str(e))
