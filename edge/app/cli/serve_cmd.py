"""`edge serve`."""

from __future__ import annotations

import click

from .util import COUNT, NON_NEGATIVE, PORT

TOKEN_ENV = "EDGE_API_TOKEN"  # also named in edge.server.settings


@click.command()
@click.argument("bundle", required=False, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0: all; needs a token).")
@click.option("--port", default=8000, type=PORT, show_default=True)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    show_envvar=True,
    help="Bearer token required on every /v1 route (prefer the environment variable: argv is visible to ps).",
)
@click.option("--no-auth", is_flag=True, help="No token (refused unless --host is a loopback address).")
@click.option("--max-upload-mb", default=20.0, show_default=True, help="Largest accepted upload.")
@click.option(
    "--max-pixels",
    default=50_000_000,
    show_default=True,
    help="Largest accepted image (width x height): decompression-bomb guard.",
)
@click.option("--max-decoded-mb", default=64.0, show_default=True, help="Decoding budget per image, from its header (bombs).")
@click.option("--max-connections", default=64, type=COUNT, show_default=True, help="Open connections; more get 503.")
@click.option("--header-timeout", default=10.0, show_default=True, help="Seconds for request headers to arrive.")
@click.option("--body-timeout", default=60.0, show_default=True, help="Seconds for a whole upload (10 s idle closes it).")
@click.option("--workers", default=2, type=COUNT, show_default=True, help="Inference worker threads.")
@click.option(
    "--queue-size",
    default=16,
    type=NON_NEGATIVE,
    show_default=True,
    help="Requests that may wait for a worker; beyond that: 503.",
)
@click.option(
    "--cors-origin", "cors_origins", multiple=True, help="Allow this browser origin (repeatable). CORS is off by default."
)
@click.option("--layer", default=None, help="Grad-CAM target layer (default: the card's gradcam_layer).")
@click.option(
    "--require-signature",
    type=click.Path(),
    default=None,
    metavar="PUB",
    help="Refuse a bundle not signed with this Ed25519 public key (edge bundle sign).",
)
@click.option(
    "--types",
    "types_bundle",
    default="types",
    show_default=True,
    help="Fracture-type bundle answering types=true on /v1/predict ('none': refuse such requests).",
)
@click.option("--log-level", type=click.Choice(["warning", "info", "debug"]), default="info", show_default=True)
def serve(
    bundle,
    host,
    port,
    token,
    no_auth,
    max_upload_mb,
    max_pixels,
    max_decoded_mb,
    max_connections,
    header_timeout,
    body_timeout,
    workers,
    queue_size,
    cors_origins,
    layer,
    require_signature,
    types_bundle,
    log_level,
) -> None:
    """Serve predictions and Grad-CAM explanations over HTTP (FastAPI on uvicorn).

    \b
    Routes:
      POST /v1/predict   multipart field 'file' (PNG, JPEG or DICOM) -> probabilities, label, decision;
                         'types=true' adds 'fracture_type' with its measured (weak) accuracy
      POST /v1/explain   same, plus the heatmap (overlay PNG as base64 and the raw grid);
                         optional fields 'method' (gradcam|gradcam++|scorecam) and 'target'
      GET  /v1/model     the model card       GET /healthz, /readyz     GET /docs (OpenAPI)
    \b
    Examples:
      EDGE_API_TOKEN=$(openssl rand -hex 16) edge serve --host 0.0.0.0
      edge serve runs/resnet/bundle --no-auth --port 8080        # loopback only
      curl -H "Authorization: Bearer $EDGE_API_TOKEN" -F file=@xray.jpg localhost:8000/v1/explain
    """
    import atexit
    import logging
    import shutil
    import tempfile

    from edge.app.server.settings import ServerSettings

    settings = ServerSettings(
        host=host,
        port=port,
        token=None if no_auth else token,
        no_auth=no_auth,
        max_upload_mb=max_upload_mb,
        max_pixels=max_pixels,
        max_decoded_mb=max_decoded_mb,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        workers=workers,
        queue_size=queue_size,
        cors_origins=tuple(cors_origins),
        layer=layer,
    ).check()  # before loading anything heavy
    # TensorFlow's autograph writes a module file per converted function into the temp dir and
    # never removes them: give this process a private temp dir, removed on exit
    tempfile.tempdir = tempfile.mkdtemp(prefix="edge-serve-")
    atexit.register(shutil.rmtree, tempfile.tempdir, True)
    import uvicorn

    from edge.app.server import create_app
    from edge.core.bundle import load_bundle
    from edge.core.signing import require_signed

    b = load_bundle(bundle)
    require_signed(b, require_signature)
    types = None if types_bundle.lower() == "none" else load_bundle(types_bundle)
    if types is not None and require_signature:  # a signed server runs only signed models: the type model too
        explicit = click.get_current_context().get_parameter_source("types_bundle") == click.core.ParameterSource.COMMANDLINE
        if explicit:
            require_signed(types, require_signature)
        else:
            types = None
            click.echo("fracture types off: --require-signature and no signed --types bundle given", err=True)
    logging.getLogger("edge.app.server").setLevel(log_level.upper())
    click.echo(f"serving {b.summary()} on http://{host}:{port} (docs at /docs, auth {'off' if no_auth else 'on'})", err=True)
    if types is not None:
        click.echo(f"fracture types on request (types=true): {types.card.extra.get('accuracy_statement', '')}", err=True)
    uvicorn.run(
        create_app(b, settings, scratch_dir=tempfile.tempdir, types=types), log_level=log_level, **settings.uvicorn_kwargs()
    )
