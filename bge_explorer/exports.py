"""What a session exports, shared by the CLI and the app: chunk tables with vectors, result tables as CSV.

Every CSV goes through :func:`bge_explorer.data.safe_text.safe_csv_frame`, so a cell that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@`` ...) is written as text (OWASP's CSV-injection advice).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bge_explorer.data.safe_text import safe_csv_frame
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.results import Ranking


def chunk_table(session) -> pd.DataFrame:
    """The current index's chunks (CHUNK_COLUMNS, ``page`` nullable Int64) with ``embedding`` (float32 list) and
    ``model`` (the model's identity: Hub revision or file hash) and ``model_name``. Raises ExplorerError without
    a dense index."""
    state = session.index_state()
    if state.vectors is None:
        raise ExplorerError("Build a dense index first: there are no vectors to export.")
    table = state.chunks.table.copy()
    table["embedding"] = list(np.asarray(state.vectors, np.float32))
    table["model"] = state.embedder.identity
    table["model_name"] = state.embedder.spec.name
    return table


def results_table(ranking: Ranking, config: RetrievalConfig | None = None) -> pd.DataFrame:
    """One query's results (both rankings) as a flat table with the query, instruction, reranker and config id."""
    table = ranking.table.copy()
    table.insert(0, "query", ranking.query)
    table.insert(1, "instruction", ranking.instruction)
    table.insert(2, "reranker", ranking.reranker or "")
    if config is not None:
        table.insert(3, "config_id", config.id)
    return table


def write_csv(table: pd.DataFrame, path: str) -> str:
    """Write ``table`` as CSV with formula-looking cells neutralised; returns ``path``."""
    safe_csv_frame(table).to_csv(path, index=False)
    return path
