"""Generate the Python code for vpsmon's .proto files.

``python -m proto.generate`` regenerates the checked-in modules in place;
``generate(out_dir)`` writes them beneath another directory (the sync test
uses this). Generation runs protoc in-process through ``grpc_tools`` and the
``mypy-protobuf`` plugins, both pinned in the ``dev`` extra, so the output
is byte-for-byte reproducible: the include root is the repository root, which
makes the generated imports read ``from proto.vpsmon.v1 import agent_pb2``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

# The repository root: the protoc include root and the default output root.
REPO_ROOT = Path(__file__).resolve().parent.parent

# .proto sources, relative to REPO_ROOT.
PROTO_FILES: tuple[str, ...] = ("proto/vpsmon/v1/agent.proto",)

# Suffixes of the files generated for each .proto file.
GENERATED_SUFFIXES: tuple[str, ...] = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generated_files(proto_file: str) -> list[str]:
    """Paths (relative to the output root) of the files generated for ``proto_file``."""
    stem = proto_file.removesuffix(".proto")
    return [stem + suffix for suffix in GENERATED_SUFFIXES]


def _plugin(name: str) -> str:
    """Locate a protoc plugin executable installed next to this interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"protoc plugin {name!r} not found; install the dev extra (mypy-protobuf)"
        )
    return found


def _well_known_protos() -> str:
    """Include directory of the well-known protos bundled with grpc_tools."""
    return str(resources.files("grpc_tools") / "_proto")


def generate(out_dir: Path) -> list[Path]:
    """Generate Python modules and stubs for PROTO_FILES beneath ``out_dir``.

    The layout mirrors the repository (``out_dir/proto/vpsmon/v1/agent_pb2.py``
    and so on). Returns the generated paths, in a stable order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out = str(out_dir)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={REPO_ROOT}",
        f"--proto_path={_well_known_protos()}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *(str(REPO_ROOT / proto_file) for proto_file in PROTO_FILES),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with exit status {status}")
    paths = [out_dir / name for proto_file in PROTO_FILES for name in generated_files(proto_file)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise RuntimeError(f"protoc did not produce: {', '.join(missing)}")
    return paths


def main() -> None:
    """Regenerate the checked-in modules in place.

    Output goes to a scratch directory first and is copied over only when
    protoc succeeded, so a failed run leaves the checked-in files untouched.
    """
    with tempfile.TemporaryDirectory(prefix="vpsmon-proto-") as tmp:
        tmp_root = Path(tmp)
        for path in generate(tmp_root):
            relative = path.relative_to(tmp_root)
            target = REPO_ROOT / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            if not target.is_file() or target.read_bytes() != data:
                target.write_bytes(data)
                print(f"wrote {relative}")
            else:
                print(f"unchanged {relative}")


if __name__ == "__main__":
    main()
