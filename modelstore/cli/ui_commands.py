"""``modelstore ui``: the read-only registry pages (``modelstore.ui``) on a local HTTP server."""

from __future__ import annotations

import click

from modelstore.cli import OneLineErrorCommand, state


@click.command("ui", cls=OneLineErrorCommand, short_help="Browse the registry in a web browser.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but a loopback address shows the registry to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5050,
    show_default=True,
    help="Port to listen on; 0 picks a free one (the URL printed says which).",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int) -> None:
    """Serve read-only pages over the registry: its models with their versions, tags,
    properties, descriptions, aliases, sizes and digests, and a page per version with its files,
    its AZUREML_MODEL_DIR layout and the commands to deploy or serve it. Nothing is written.

    Exit codes: 0 after Ctrl-C, 1 if the port is taken or there is no registry.
    """
    from modelstore.ui.server import serve_ui

    home = state(ctx).registry(read_only=True, create=False).home  # no registry: one line
    ctx.exit(serve_ui(home, host, port, lambda url: click.echo(f"Registry pages at {url}")))
