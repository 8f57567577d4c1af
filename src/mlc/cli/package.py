"""`mlc package`: the CLI face of mlc.deploy.package (Triton repository, KServe manifest, container)."""

from __future__ import annotations

from pathlib import Path

import click

from mlc.cli._common import console, err_console, handle_errors, json_option, print_json


@click.command("package")
@click.argument("ref", metavar="REF")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(["triton", "kserve", "container"]),
              help="triton: a model repository; kserve: an InferenceService manifest; container: a build context.")
@click.option("--target", default=None, help="Hardware target whose profile sizes the package (default: cpu).")
@click.option("--engine", type=click.Choice(["onnx"]),
              help="triton: export the plain ONNX for Triton's ONNX Runtime backend even where the version's "
                   "runtime plan uses mlc's engines (the note says the speed given up).")
@click.option("--runtime", type=click.Choice(["mlc", "triton"]), default="mlc", show_default=True,
              help="kserve: served by the mlc container or by Triton from the exported repository.")
@click.option("--image", help="kserve --runtime mlc: the container image (default NAME-mlc:VERSION).")
@click.option("--storage-uri", help="kserve --runtime triton: where the Triton repository is stored (s3://, gs://, pvc://).")
@click.option("--wheel", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="container: mlc's wheel to install in the image (default: built from this mlc's source).")
@json_option
@handle_errors
def package_cmd(ref: str, dest: Path, fmt: str, target: str | None, engine: str | None, runtime: str,
                image: str | None, storage_uri: str | None, wheel: Path | None, as_json: bool) -> None:
    """Package a registered version for deployment beyond one machine, into the new folder DEST.

    Sizing (batching, instances, threads, cores, memory, replicas) comes from the version's
    recorded profile for the target, else the target's defaults; each package's README says
    which, and on what machine it was measured. `mlc models export` stays the verified copy of
    the artifact alone.
    """
    from mlc.deploy import PackageOptions, package

    options = PackageOptions(engine=engine, runtime=runtime, image=image, storage_uri=storage_uri, wheel=wheel)
    result = package(ref, fmt, dest, target=target, options=options)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"packaged {result.ref} as {result.format} in {result.dest}", highlight=False)
    for path in result.files:
        console.print(f"  {path}", highlight=False)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
