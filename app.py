"""BGE Explorer web app: ``python app.py`` serves on 0.0.0.0:7860 (also the Hugging Face Spaces app_file).

Host and port: ``--host`` / ``--port``, or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT. Analytics are off
and the page needs no outbound call. The default model is loaded at start; with no Hub access the
packaged all-MiniLM-L6-v2 is used instead, and the page says so.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no version check, no telemetry
# Gradio's upload/output cache in a folder of its own (emptied on restart, swept by Blocks(delete_cache=...)).
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "bge-explorer-gradio"))

from bge_explorer import settings  # noqa: E402  (reads no environment at import)

ROOT = Path(__file__).resolve().parent
CSS_PATH = ROOT / "assets" / "style.css"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from bge_explorer.models.backends import BACKENDS
    from bge_explorer.models.devices import PRECISIONS

    parser = argparse.ArgumentParser(description="BGE Explorer web app")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                        help="interface to listen on (default 0.0.0.0, or GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default 7860, or GRADIO_SERVER_PORT)")
    parser.add_argument("--concurrency", type=int, default=settings.current().server_concurrency,
                        help="events without a model (corpus loading, map, exports) run at once per handler "
                             "(default 2); events that use a model share BGE_EXPLORER_MODEL_CONCURRENCY")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="how the app runs its models (default torch, or BGE_EXPLORER_BACKEND); openvino: the "
                             "converted models of docs/cpu.md, cached on disk")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="default auto (or BGE_EXPLORER_PRECISION): the fastest precision the quality guard allows "
                             "on this CPU; int8 with --backend openvino only")
    parser.add_argument("--no-preload", action="store_true", help="do not load the default model at start")
    parser.add_argument("--no-warm-umap", action="store_true", help="do not compile UMAP's numba code at start")
    parser.add_argument("--demo-reranker", default=None, metavar="NAME_OR_PATH",
                        help="the reranker 'Try the demo' uses when it can load here (default: the first catalog "
                             "reranker that can)")
    parser.add_argument("--mcp", action="store_true",
                        help="also serve the API as an MCP server (tools: search, evaluate, experiment, compare, ...); "
                             "GRADIO_MCP_SERVER=True does the same")
    return parser.parse_args(argv)


def create_app(preload: bool = True, warm_umap: bool = True, demo_reranker: str | None = None):
    """The Blocks app; loads the default model (at module level on ZeroGPU) and warms UMAP. ``demo_reranker``: the
    reranker "Try the demo" uses when it can load here."""
    from bge_explorer.app import explorer, layout
    from bge_explorer.maps import projection

    if preload:
        notice = explorer.preload_default_model()
        if notice:
            logging.getLogger("bge_explorer").warning(notice)
    else:  # FlagEmbedding's first import initialises transformers' lazy modules, which is not safe from several
        import FlagEmbedding  # noqa: F401  request threads at once (ImportError under the robustness bench)
    if warm_umap:
        projection.warm_up(background=True)
    return layout.build_app(demo_reranker=demo_reranker)


def launch_options(mcp: bool = False) -> dict:
    """``demo.launch`` options from the settings: the stylesheet, the upload limit (Gradio refuses a bigger file
    while it streams in) and ``state_session_capacity`` (Gradio keeps each visitor's state and ~0.34 MB of
    component values for up to this many sessions, 10,000 by default, dropping the least recently used), and
    with ``mcp`` the MCP server (Gradio's: every public endpoint becomes a tool, described by its docstring)."""
    config = settings.current()
    options = dict(css_paths=[CSS_PATH], footer_links=["api", "settings"], max_file_size=config.max_file_size(),
                   state_session_capacity=config.max_sessions)
    if mcp:  # otherwise Gradio's own GRADIO_MCP_SERVER decides
        options["mcp_server"] = True
    return options


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for variable, value in (("BACKEND", args.backend), ("PRECISION", args.precision)):
        if value:
            os.environ[settings.PREFIX + variable] = value
    from bge_explorer.errors import SettingsError
    from bge_explorer.models.backends import deployment_route

    try:
        deployment_route()
    except SettingsError as exc:
        print(f"app.py: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("FlagEmbedding").setLevel(logging.WARNING)  # its fine-tuning runner logs every argument
    demo = create_app(preload=not args.no_preload, warm_umap=not args.no_warm_umap, demo_reranker=args.demo_reranker)

    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options(mcp=args.mcp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
