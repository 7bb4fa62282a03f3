"""Which files under the project a training command's Python opens for reading.

mlci puts this folder first on the training command's PYTHONPATH, so every Python the
command starts (``python train.py``, ``dvc repro``'s stages, their subprocesses) loads
it at start-up. It adds an audit hook (PEP 578) that notes each file under
``MLCI_AUDIT_ROOT`` opened for reading, and at exit writes them, with the script that
read them and whether it imported MLflow, to ``MLCI_AUDIT_DIR/<pid>.json``; mlci then
warns about a tracked file the training read that is not an input (a change to it would
not retrain), and looks for what the code logged to MLflow itself.

It must not change what the project sees: this folder leaves ``sys.path`` at once, the
project's own ``sitecustomize`` (a virtual environment's, coverage's) still loads, and
nothing is printed. Standard library only, Python 3.8 syntax (the project's Python may be
older than mlci's). A process that ends by ``os._exit`` (a forked worker) writes nothing.
"""

import os
import sys

_LIMIT = 5000  # files noted per process: a bound on what mlci reads back
_CACHE = os.sep + "__pycache__" + os.sep


def _install() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    out = os.environ.get("MLCI_AUDIT_DIR")
    root = os.environ.get("MLCI_AUDIT_ROOT")
    if not out or not root or not hasattr(sys, "addaudithook"):
        return
    roots = tuple({os.path.join(os.path.abspath(root), ""), os.path.join(os.path.realpath(root), "")})
    seen = {}  # type: dict[str, None]  # relative path -> None, in the order first read
    write_only = getattr(os, "O_ACCMODE", 3)

    def hook(event, args):  # type: ignore[no-untyped-def]
        if event != "open" or len(seen) >= _LIMIT:
            return
        try:
            path, mode, flags = args[0], args[1], args[2]
            if path is None or isinstance(path, int):
                return
            if isinstance(mode, str):
                if ("w" in mode or "a" in mode or "x" in mode) and "+" not in mode:
                    return  # written, not read
            elif isinstance(flags, int) and flags & write_only == os.O_WRONLY:
                return
            full = os.path.abspath(os.fsdecode(os.fspath(path)))
            if full.endswith(".pyc") and _CACHE in full:  # an import read its source's bytecode
                folder, name = os.path.split(full)
                full = os.path.join(os.path.dirname(folder), name.split(".", 1)[0] + ".py")
            for prefix in roots:
                if full.startswith(prefix):
                    seen.setdefault(full[len(prefix) :].replace(os.sep, "/"), None)
                    return
        except Exception:
            return

    def write() -> None:
        try:
            import json

            os.makedirs(out, exist_ok=True)
            argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
            record = {
                "argv0": os.path.abspath(argv0) if argv0 else "",
                "files": list(seen),
                "mlflow": "mlflow" in sys.modules,  # the code may have logged to mlci's run itself
            }
            temp = os.path.join(out, f".{os.getpid()}.tmp")
            with open(temp, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            os.replace(temp, os.path.join(out, f"{os.getpid()}.json"))
        except Exception:
            pass

    import atexit

    atexit.register(write)
    sys.addaudithook(hook)


def _chain() -> None:
    """The next ``sitecustomize`` on the path (this one shadowed it), as Python would have loaded it."""
    module = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        if module is not None:
            sys.modules["sitecustomize"] = module
    except Exception as exc:
        sys.stderr.write(
            f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n"
        )


_install()
_chain()
