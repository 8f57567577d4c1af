"""`mlc package --format container`: a build context for an image that runs `mlc serve` for one version.

As Azure ML's image packaging and MLflow's `build-docker` do: a container per model with its
environment. The context holds:
- `Dockerfile`: slim Python base, two stages (the first installs the pinned requirements and
  mlc's built wheel, with its compiled extension, into a virtual environment; the second copies
  only that environment), a non-root user, `HEALTHCHECK` on `/v2/health/ready`, and the layout
  the version's profile found (else the target's defaults) as the default command;
- `requirements.txt`: the package versions the registry recorded for the version, pinned, and
  mlc's other requirements pinned to the versions this mlc runs with;
- `wheels/`: mlc's wheel (`--wheel`, else built from this mlc's source checkout);
- `mlc-home/`: a registry holding just this version (artifact, signature, runtime plan, profile),
  so the image serves exactly what was packaged; `start.py` re-hashes the artifact before serving.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from mlc.deploy._formats import PackageOptions, PackageResult, register_format
from mlc.deploy.source import PackageSource, sizing_readme
from mlc.errors import MlcError, UsageError
from mlc.files import atomic_write
from mlc.registry import Registry

BASE_IMAGE = "python:{major}.{minor}-slim-bookworm"
PORT = 8080
GRPC_PORT = 8081  # mlc serve --grpc-port: KServe v2 gRPC (GRPCInferenceService) beside HTTP
APP = "/app"
_HOME = "mlc-home"

_START = '''"""Verify the packaged artifact against its recorded digest, then run the command (mlc serve ...)."""

import hashlib
import json
import os
import sys
from pathlib import Path

manifest = json.loads(Path(__file__).with_name("model.json").read_text())
blob = Path(os.environ["MLC_HOME"]) / manifest["blob"]
digest = hashlib.sha256(blob.read_bytes()).hexdigest()
if digest != manifest["sha256"]:
    sys.exit(f"refusing to serve {manifest['ref']}: {blob} has sha256 {digest}, the package recorded "
             f"{manifest['sha256']}; rebuild the image from the package")
print(f"{manifest['ref']}: artifact verified (sha256 {digest[:12]}); serving", flush=True)
os.execvp(sys.argv[1], sys.argv[1:])
'''


def serve_command(source: PackageSource, served_ref: str, port: int = PORT, grpc_port: int = GRPC_PORT) -> list[str]:
    """`mlc serve` with the packaged layout spelled out, so the image serves what was sized, on
    HTTP and gRPC (both KServe v2, over the same batchers)."""
    lay = source.layout
    return ["mlc", "serve", served_ref, "--host", "0.0.0.0", "--port", str(port), "--grpc-port", str(grpc_port),
            "--target", f"{APP}/target.toml", "--workers", str(lay.workers), "--instances", str(lay.instances),
            "--threads", str(lay.threads), "--max-batch-size", str(lay.max_batch_size),
            "--max-queue-delay-us", str(lay.max_queue_delay_us)]


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of the wheel going into the image (not of the mlc running here, whose
    installed metadata may be older than the source the wheel was built from)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def served_requirements(wheel: Path) -> list[str]:
    """What the image installs: the wheel's requirements whose markers hold in the image (the same
    Python as here) with the `grpc` extra's (the image serves gRPC on GRPC_PORT), markers dropped."""
    from packaging.requirements import Requirement

    out = []
    for line in wheel_requirements(wheel):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": "grpc"}):
            req.marker = None
            out.append(str(req))
    return out


def requirements(source: PackageSource, wheel: Path) -> str:
    """The recorded versions pinned; the wheel's other requirements pinned to what runs here."""
    required = served_requirements(wheel)
    needed = {_requirement_name(req) for req in required}
    if source.target.device == "gpu":
        needed.add("onnxruntime-gpu")
    # Only what serving needs: the framework libraries (xgboost, lightgbm) are not, for an ONNX version.
    recorded = {k.lower(): v for k, v in source.mv.packages.items() if k.lower() in needed}
    lines = [f"# Pinned by mlc package for {source.ref}.",
             "# Recorded with the version by the registry (what it was optimized and measured with):"]
    lines += [f"{name}=={version}" for name, version in sorted(recorded.items())]
    others = []
    for req in required:
        name = _requirement_name(req)
        if name in recorded:
            continue
        try:
            others.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            others.append(req)
    lines += ["# mlc's other requirements, at the versions this mlc runs with:", *sorted(set(others))]
    return "\n".join(lines) + "\n"


def dockerfile(source: PackageSource, wheel_name: str, served_ref: str) -> str:
    base = BASE_IMAGE.format(major=sys.version_info.major, minor=sys.version_info.minor)
    cmd = json.dumps(serve_command(source, served_ref))
    probe = json.dumps(["python", "-c", "import urllib.request; "
                        f"urllib.request.urlopen('http://127.0.0.1:{PORT}/v2/health/ready', timeout=2)"])
    return f"""# syntax=docker/dockerfile:1
# Written by mlc package for {source.ref} (sha256 {source.mv.digest}), target {source.target.name}.

# Stage 1: the pinned requirements and mlc's wheel (its compiled extension inside) in a venv.
FROM {base} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
COPY wheels/{wheel_name} /tmp/wheels/{wheel_name}
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \\
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/{wheel_name}

# Stage 2: only the venv, the registry holding this version, and a non-root user.
FROM {base}
ENV PATH=/opt/venv/bin:$PATH MLC_HOME={APP}/{_HOME} PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 --user-group mlc
COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 {_HOME} {APP}/{_HOME}
COPY start.py model.json target.toml {APP}/
USER 10001:10001
WORKDIR {APP}
EXPOSE {PORT} {GRPC_PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD {probe}
ENTRYPOINT ["python", "{APP}/start.py"]
CMD {cmd}
"""


def _source_tree() -> Path | None:
    """This mlc's source checkout, when it is installed from one (pip install -e, or from a path)."""
    try:
        direct = metadata.distribution("mlc").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    url = json.loads(direct or "{}").get("url", "")
    if not url.startswith("file://"):
        return None
    root = Path(url[len("file://"):])
    return root if (root / "pyproject.toml").is_file() else None


def build_wheel(out: Path) -> Path:
    """mlc's wheel, built from its source checkout (the compiled extension built with it)."""
    root = _source_tree()
    if root is None:
        raise UsageError("mlc is not installed from a source checkout, so its wheel cannot be built here",
                         "pass the wheel to put in the image: --wheel PATH (pip wheel --no-deps mlc)")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                               "-w", tmp, str(root)], capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("mlc-*.whl"))
        if done.returncode != 0 or not wheels:
            raise MlcError(f"building mlc's wheel from {root} failed:\n{done.stderr[-2000:]}",
                           "fix the build, or pass a wheel with --wheel PATH")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], out / wheels[0].name))


def _home_with_version(source: PackageSource, home: Path) -> tuple[str, str]:
    """A registry at `home` holding the version alone; returns its ref there and its blob's path."""
    mv = source.mv
    registry = Registry(home)
    copied = registry.register(mv.name, source.artifact, format=mv.format, framework=mv.framework,
                               signature=mv.signature, tags={**mv.tags, "packaged-from": mv.ref},
                               description=mv.description, source=mv.source, metrics=mv.metrics)
    registry.engine.dispose()  # closes SQLite's WAL into the database file before it is copied
    blob = registry.store.verified_path(copied.digest).relative_to(home)
    return copied.ref, str(blob)


def build(source: PackageSource, dest: Path, options: PackageOptions) -> PackageResult:
    if options.wheel is not None and not options.wheel.is_file():
        raise UsageError(f"--wheel {options.wheel} is not a file")
    dest.mkdir(parents=True, exist_ok=True)
    wheels = dest / "wheels"
    if options.wheel is not None:
        wheels.mkdir()
        wheel = Path(shutil.copy2(options.wheel, wheels / options.wheel.name))
    else:
        wheel = build_wheel(wheels)
    served_ref, blob = _home_with_version(source, dest / _HOME)
    atomic_write(dest / "model.json", json.dumps(
        {"ref": source.ref, "served_as": served_ref, "sha256": source.mv.digest, "blob": blob}, indent=2).encode())
    atomic_write(dest / "start.py", _START.encode())
    # The target travels with the image: an installed mlc need not ship (or know) this profile.
    if not source.target.source or not Path(source.target.source).is_file():
        raise UsageError(f"target {source.target.name} has no profile file to put in the image")
    shutil.copyfile(source.target.source, dest / "target.toml")
    atomic_write(dest / "requirements.txt", requirements(source, wheel).encode())
    atomic_write(dest / "Dockerfile", dockerfile(source, wheel.name, served_ref).encode())
    tag = f"{re.sub(r'[^a-z0-9._-]+', '-', source.mv.name.lower())}-mlc:{source.mv.version}"
    body = (f"A container build context serving `{source.ref}` with `mlc serve` on port {PORT} "
            f"(KServe v2 HTTP; health at `/v2/health/ready`) and {GRPC_PORT} (KServe v2 gRPC, "
            f"`inference.GRPCInferenceService`, with `grpc.health.v1`). Build and run:\n\n"
            f"    docker build -t {tag} .\n    docker run -p {PORT}:{PORT} -p {GRPC_PORT}:{GRPC_PORT} {tag}\n\n"
            f"Inside the image the version is `{served_ref}` of a registry holding only it (`{_HOME}/`, tagged "
            f"`packaged-from={source.ref}`); `start.py` re-hashes its artifact before serving. The default "
            f"command is the sized layout: `{' '.join(serve_command(source, served_ref))}`.")
    atomic_write(dest / "README.md", sizing_readme(source, f"Container: {source.ref}", body).encode())
    files = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    return PackageResult("container", source.ref, dest, tuple(files))


register_format("container", build)
