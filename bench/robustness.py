"""Robustness of the app as a public Space meets it: hostile inputs, many users at once, XSS in a browser,
fairness between sessions, memory as sessions come and go, and the findings of the public-Space security issue.

Launches ``app.py`` in a subprocess on 127.0.0.1 (a free port; no other network), with tiny random-weight
models (``bge_explorer.models.random_models``: a BERT of hidden size 32, 2 layers) so that a run takes minutes,
a server of its own per mode, then:

1. **hostile** — sends every hostile input of issue 5 through ``gradio_client`` (binary renamed .txt,
   non-UTF-8, empty, whitespace-only, a 1 GB sparse upload, a 50 MB line, ragged/missing-column CSV, JSON
   nested 10,000 deep, a JSONL with one bad line, a zip bomb and a ``../`` zip in Evaluate, encrypted /
   malformed / text-less PDFs, queries of 0 and 100,000 characters, k of 0 and 10^9, model ids ``../../etc``,
   a URL and a local repo asking for remote code) and classifies each answer: *handled* (a message naming
   the problem), *crashed* (no such message) or *server error* (no answer, or the app then fails a normal
   search, which is tried after every input);
2. **load** — N concurrent clients (default 20), each with its own small corpus and S searches (default 20);
   every answer must hold only that client's documents. Prints errors, p50/p95 latency and the server's
   peak resident memory (VmHWM of its process);
3. **xss** — in Debian's Chromium (Playwright, never ``playwright install``) loads a corpus of XSS payloads,
   builds the index, searches with a payload query, and counts dialogs, scripts that ran (``window.__pwned``),
   live markup made from user text (event handlers, ``javascript:`` links, images) and requests that left
   127.0.0.1;
4. **fairness** (``--fairness``) — N clients (default 10, each its own small built corpus) search in a loop, idle
   and then while ONE other session builds a synthetic corpus of 20,000 one-chunk documents (chunking none;
   the server gets BGE_EXPLORER_MAX_CHUNKS = chunks x 1.2). Search latency p50/p95 idle and during the build,
   the ratio p95 during / idle (target < 2), and the big build's time alone and with the searches (its
   slowdown; two builder sessions, since the encoding cache is per session). Bounded by time limits;
   :func:`run_fairness`, :class:`FairnessReport`;
5. **memory** (``--memory``) — a server with a short TTL (``--ttl``, default 10 s: a state expires TTL seconds
   after it was last *written*, even while an event of its session runs, so with 5 s the first build, which
   loads the model, can lose its state mid-build). VmRSS after a warm-up session was dropped, sampled while 50
   sessions (2 at a time; each uploads its own 2,000-document corpus, builds, searches 3 times, then stays
   connected until its state is past the TTL and is then closed) come and go, and again once every state is
   past the TTL and Gradio's sweep ran; end / start (target <= 1.2) and the session directories under
   BGE_EXPLORER_TMP_DIR (target: back to 0). Then 10 sessions whose tab closes at once (heartbeat dropped):
   Gradio keeps a closed tab's state 3,600 s whatever the TTL (see GRADIO_SWEEP_S below). Then, in-process,
   what dropped sessions still leave on the heap (:func:`probe_residue`); :func:`run_memory`,
   :class:`MemoryReport`;
6. **findings** (``--findings``) — one row per finding of the public-Space issue (1 qrels split traversal,
   2 unbounded instruction, 3 a build freezing others, 4 a dropped connection, 5 existence oracle for server
   paths, 6 Hub downloads, 7 size bombs, 8 memory, 9a-9f odd inputs and files left behind), each probed
   against a running server through gradio_client (plain HTTP where a script would go past it: server paths
   as file data, a partial upload) and classified as in ``hostile``, plus *leaked* and *missed* (a measured
   target missed); 3 and 8 reuse the fairness and memory reports (small ones are measured when those modes
   are not asked for); :func:`run_findings`, :class:`Finding`.

    python bench/robustness.py                      # 1-3: 20 clients x 20 searches
    python bench/robustness.py --clients 5 --searches 5 --skip-browser
    python bench/robustness.py --fairness --memory --findings      # 4-6 at full size
    python bench/robustness.py --fairness --fair-clients 2 --fair-chunks 2000 --memory --sessions 5
    python bench/robustness.py --all --json report.json

With any of --fairness / --memory / --findings only those run; --all runs everything. Exit status 0 when
crashed, leaks, errors under load, scripts executed, missed targets and unhandled findings are all 0.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import html
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = str(ROOT / "assets" / "sample_corpus.jsonl")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ------------------------------------------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python app.py`` on 127.0.0.1:<free port> in a subprocess, offline, with its own temp folders."""

    def __init__(self, workdir: str | Path, model_root: str | Path, env: dict[str, str] | None = None,
                 concurrency: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.workdir / "server.log"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                    "BGE_EXPLORER_AUTO_UMAP": "0", "GRADIO_TEMP_DIR": str(self.workdir / "gradio"),
                    "BGE_EXPLORER_TMP_DIR": str(self.workdir / "sessions"),
                    "BGE_EXPLORER_MODEL_ROOTS": str(Path(model_root).resolve()), **(env or {})}
        self.env.pop("BGE_EXPLORER_TRUST_REMOTE_CODE", None)
        self.args = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(self.port),
                     "--no-preload", "--no-warm-umap"]
        if concurrency:
            self.args += ["--concurrency", str(concurrency)]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.args, cwd=str(ROOT), env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the app did not answer within 240 s:\n{self.log_tail()}")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _status_mb(self, field: str) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except (OSError, AttributeError):
            pass
        return None

    def rss_mb(self) -> float:
        """Resident memory of the server process now (VmRSS), MiB."""
        value = self._status_mb("VmRSS")
        return float("nan") if value is None else value

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server process (VmHWM), MiB."""
        value = self._status_mb("VmHWM")
        if value is not None:
            return value
        try:
            import psutil

            return psutil.Process(self.process.pid).memory_info().rss / 2**20
        except Exception:
            return float("nan")

    @property
    def sessions_dir(self) -> Path:
        return Path(self.env["BGE_EXPLORER_TMP_DIR"])

    @property
    def gradio_dir(self) -> Path:
        return Path(self.env["GRADIO_TEMP_DIR"])

    def session_dirs(self) -> list[str]:
        """The per-session directories under BGE_EXPLORER_TMP_DIR now."""
        try:
            return sorted(p.name for p in self.sessions_dir.iterdir() if p.name.startswith("session-"))
        except OSError:
            return []

    def gradio_files(self) -> list[Path]:
        """Every file in Gradio's upload/output cache (GRADIO_TEMP_DIR), loose temp files included."""
        try:
            return sorted(p for p in self.gradio_dir.rglob("*") if p.is_file())
        except OSError:
            return []

    def limits(self):
        """The :class:`~bge_explorer.settings.Limits` this server runs with (from its environment)."""
        from bge_explorer.settings import Limits

        return Limits.from_env(self.env)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def server_limits(server: Server | None):
    from bge_explorer.settings import Limits

    return server.limits() if server is not None else Limits.from_env()


def drop_connection(url: str, c) -> None:
    """What a closed tab (or a proxy cutting the line) does to the server, now rather than at gradio_client's next
    heartbeat (up to 15 s): a heartbeat connection of ``c``'s session opens and closes. Gradio then runs the app's
    ``unload`` handler and marks the session closed (its state is then kept 3,600 s for a reconnect)."""
    import httpx

    with contextlib.suppress(Exception):
        with httpx.stream("GET", url.rstrip("/") + f"/gradio_api/heartbeat/{c.session_hash}", timeout=10) as response:
            for _ in response.iter_lines():
                break  # the first "ALIVE": the server registered this connection; closing it now is the drop
    with contextlib.suppress(Exception):
        c.close()


def reconnect(url: str, session_hash: str):
    """A new client on an existing browser session (a reloaded tab reconnecting)."""
    c = client(url)
    c.session_hash = session_hash
    c._refresh_heartbeat.set()  # its heartbeat reconnects under the old session
    return c


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def print_table(title: str, headers: list[str], rows: list[list[Any]], log: Callable[[str], None] = print) -> None:
    """A plain text table: ``title``, a header row, a rule, the rows (cells as str)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    log(f"\n{title}")
    log(line(cells[0]))
    log("  " + "  ".join("-" * w for w in widths))
    for r in cells[1:]:
        log(line(r))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def synthetic_corpus(path: str | Path, n_docs: int, words: tuple[int, int] = (20, 40), seed: int = 0,
                     prefix: str = "doc") -> Path:
    """``n_docs`` short documents of random words from the tiny model's vocabulary (JSONL, ids ``<prefix>-<i>``);
    indexed with chunking ``none`` they make exactly ``n_docs`` chunks."""
    import random

    from bge_explorer.models.random_models import WORDS

    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n_docs):
            text = " ".join(rng.choices(WORDS, k=rng.randint(*words)))
            f.write(json.dumps({"_id": f"{prefix}-{i}", "title": f"{prefix} {i}", "text": text}) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ hostile files

def _pdf_maker():
    spec = importlib.util.spec_from_file_location("pdf_maker", ROOT / "tests" / "pdf_maker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_pdf


def make_remote_code_model(folder: Path, marker: Path) -> str:
    """A local model directory whose config asks for custom code (auto_map) that would create ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["EvilModel"], "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}}))
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
                                    "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
    return str(folder)


def make_hostile_files(folder: str | Path) -> dict[str, Path]:
    """Every hostile file of the issue, written to ``folder`` (the 1 GB one is sparse: no disk used)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    files["binary"] = put("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)
    files["latin1"] = put("latin1.txt", "Café crème brûlée in Zürich: déjà vu, façade, naïve.\n".encode("cp1252") * 20)
    files["empty"] = put("empty.txt", b"")
    files["whitespace"] = put("blank.txt", b"   \n\t\n  \r\n" * 100)
    huge = folder / "huge.txt"
    with open(huge, "wb") as f:
        f.truncate(2**30)  # 1 GiB, sparse
    files["huge"] = huge
    words = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu "
    files["long_line"] = put("one-line.txt", (words * (50 * 2**20 // len(words) + 1))[:50 * 2**20])
    # under the text budget of the default chunk limit (2,048 characters a chunk), over it once chunked by 16 tokens
    files["long_words"] = put("one-line-12mb.txt", (words * (12 * 2**20 // len(words) + 1))[:12 * 2**20])
    files["ragged"] = put("ragged.csv", b"id,text\n1,fine row\n2,too,many,fields\n3\n4,another fine row\n")
    files["missing_column"] = put("nocol.csv", b"id,body\n1,some text\n")
    files["deep_json"] = put("deep.json", b"[" * 10_000 + b"]" * 10_000)
    files["bad_line"] = put("one-bad-line.jsonl", b'{"_id": "g1", "text": "good one"}\n{"_id": "b", "text": \n'
                                                  b'{"_id": "g2", "text": "good two"}\n')
    write_pdf = _pdf_maker()
    plain_pdf = write_pdf(folder / "plain.pdf", ["Some text in a PDF."])
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(plain_pdf))
    writer.encrypt(user_password="secret", owner_password="owner")
    with open(folder / "encrypted.pdf", "wb") as f:
        writer.write(f)
    files["encrypted_pdf"] = folder / "encrypted.pdf"
    files["malformed_pdf"] = put("malformed.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\n"
                                                  b"garbage \x00\xff trailer << /Root 9 0 R >>\n%%EOF\n")
    files["notext_pdf"] = write_pdf(folder / "scanned.pdf", [""])
    files["zip_slip"] = folder / "slip.zip"
    with zipfile.ZipFile(files["zip_slip"], "w") as z:
        z.writestr("../../evil.txt", "pwned")
        z.writestr("queries.jsonl", '{"_id": "q1", "text": "x"}\n')
    files["zip_bomb"] = folder / "bomb.zip"
    with zipfile.ZipFile(files["zip_bomb"], "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("corpus.jsonl", "w", force_zip64=True) as member:
            block = b"\x00" * 2**24
            for _ in range(72):  # 1.125 GiB of zeros, about 1 MB compressed
                member.write(block)
    return files


# ---------------------------------------------------------------------------------------------- hostile checks

@dataclasses.dataclass
class Outcome:
    name: str
    status: str  # handled / crashed / server error
    message: str


def _message(exc: BaseException) -> str:
    return " ".join(html.unescape(str(exc)).split())


def _text(value: Any) -> str:
    return html.unescape(json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value)


def normal_search_works(c) -> bool:
    try:
        before, *_ = c.predict("eiffel tower paris", "none", "", 5, "none", 5, api_name="/search")
        return len(before["data"]) == 5
    except Exception:
        return False


def hostile_cases(files: dict[str, Path], models: dict[str, str], marker: Path, limits: Any = None
                  ) -> list[tuple[str, str, Callable, list[str]]]:
    """(name, which client: 'fresh' / 'indexed', call(client) -> value, substrings one of which the message must
    hold). A call that returns normally is judged on its returned text (e.g. a problem listed, a note).
    ``limits``: the server's :class:`~bge_explorer.settings.Limits` (default: from this environment)."""
    from gradio_client import handle_file

    from bge_explorer.settings import Limits

    limits = limits or Limits.from_env()

    def upload(*names: str, text_column: str = "") -> Callable:
        return lambda c: c.predict([handle_file(str(files[n])) for n in names], text_column, "", "", api_name="/load_corpus")

    def query(q: str, k: Any = 5, top_n: Any = 5, reranker: str = "none") -> Callable:
        return lambda c: c.predict(q, "none", "", k, reranker, top_n, api_name="/search")

    def build(model: str) -> Callable:
        return lambda c: c.predict(model, "auto", "auto", "none", 256, 32, api_name="/build_index")

    def raw_upload(name: str) -> Callable:
        """Straight to Gradio's upload route, past gradio_client's own size check: the server must refuse it."""
        def call(c):
            import httpx

            with open(files[name], "rb") as f:
                try:
                    response = httpx.post(c.src.rstrip("/") + "/gradio_api/upload",
                                          files={"files": (files[name].name, f, "text/plain")}, timeout=120)
                except httpx.TransportError as exc:  # the server closed the connection mid-upload
                    raise RuntimeError(f"upload cut off by the server after {f.tell() / 2**20:,.0f} MiB "
                                       f"({type(exc).__name__})") from None
            if response.status_code >= 400:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            return response.text
        return call

    def upload_and_build(name: str, size: int = 256, overlap: int = 32) -> Callable:
        def call(c):
            upload(name)(c)
            return c.predict(models["encoder"], "auto", "auto", "tokens", size, overlap, api_name="/build_index")
        return call

    def evaluate(name: str) -> Callable:
        return lambda c: c.predict([handle_file(str(files[name]))], "test", models["encoder"], "none", "", "none",
                                   20, 0, False, models["encoder"], "none", "", "none", 20, 0, "ndcg@10",
                                   api_name="/evaluate")

    return [
        ("binary file renamed .txt", "fresh", upload("binary"), ["binary file"]),
        ("non-UTF-8 (cp1252) text", "fresh", upload("latin1"), ["decoded as"]),
        ("zero-byte file", "fresh", upload("empty"), ["empty (0 bytes)"]),
        ("whitespace-only file", "fresh", upload("whitespace"), ["only whitespace"]),
        ("1 GB upload (sparse)", "fresh", upload("huge"), ["maximum file size of 104857600", "over the limit"]),
        ("1 GB upload straight to /upload", "fresh", raw_upload("huge"), ["HTTP 413"]),
        ("a single 50 MB line", "fresh", upload("long_line"), ["1</b> documents", "over the limit",
                                                               "BGE_EXPLORER_MAX_CHUNKS"]),
        ("a single 12 MB line, indexed by 16 tokens", "fresh", upload_and_build("long_words", 16, 0),
         [f"over the limit of {limits.max_chunks:,} chunks", "BGE_EXPLORER_MAX_CHUNKS"]),
        ("CSV with ragged rows", "fresh", upload("ragged"), ["fields where the header has"]),
        ("CSV missing its text column", "fresh", upload("missing_column", text_column="text"), ["no column 'text'"]),
        ("JSON nested 10,000 levels", "fresh", upload("deep_json"), ["nested too deeply"]),
        ("JSONL with one bad line", "fresh", upload("bad_line"), ["line 2"]),
        ("encrypted PDF", "fresh", upload("encrypted_pdf"), ["encrypted"]),
        ("malformed PDF", "fresh", upload("malformed_pdf"), ["not a readable PDF"]),
        ("PDF with no text layer", "fresh", upload("notext_pdf"), ["no text layer"]),
        ("zip bomb (Evaluate)", "fresh", evaluate("zip_bomb"), ["more than the limit"]),
        ("zip with ../ paths (Evaluate)", "fresh", evaluate("zip_slip"), ["unsafe zip member"]),
        ("query of 0 characters", "indexed", query(""), ["Type a query"]),
        ("query of 100,000 characters", "indexed", query("x" * 100_000), ["over the limit of 2,000"]),
        ("k = 0", "indexed", query("eiffel", k=0), ["1,000", "minimum value 1"]),
        ("k = 10^9", "indexed", query("eiffel", k=10**9), ["1,000", "maximum value 1000"]),
        ("reranker top n = 10^9", "indexed", query("eiffel", top_n=10**9, reranker=models["encoder"]),
         ["1,000", "maximum value 1000"]),
        ("model id ../../etc", "indexed", build("../../etc"), ["'..' is not allowed"]),
        ("model id that is a URL", "indexed", build("https://evil.example/model.bin"), ["is a URL"]),
        ("model dir outside the allowed roots", "indexed", build("/etc"), ["outside the directories"]),
        ("model asking for remote code", "indexed", build(models["remote_code"]), ["remote code is off"]),
    ]


def run_hostile(url: str, files: dict[str, Path], models: dict[str, str], marker: Path,
                server: Server | None = None, log: Callable[[str], None] = print) -> list[Outcome]:
    """Every hostile input through gradio_client; a normal search (another client) must work after each."""
    from gradio_client import handle_file

    base = client(url)  # the bystander: a normal user whose search must keep working
    base.predict([handle_file(SAMPLE)], "", "", "", api_name="/load_corpus")
    base.predict(models["encoder"], "auto", "auto", "none", 256, 32, api_name="/build_index")
    outcomes = []
    for name, which, call, expected in hostile_cases(files, models, marker, server_limits(server)):
        c = client(url)
        if which == "indexed":
            c.predict([handle_file(SAMPLE)], "", "", "", api_name="/load_corpus")
            c.predict(models["encoder"], "auto", "auto", "none", 256, 32, api_name="/build_index")
        started = time.monotonic()
        try:
            message, raised = _text(call(c)), False
        except Exception as exc:  # AppError carries the gr.Error message; anything else is the transport
            message, raised = _message(exc), True
            if type(exc).__name__ not in ("AppError", "ValueError", "RuntimeError"):
                message = f"{type(exc).__name__}: {message}"
        ok_after = normal_search_works(base) and (server is None or server.alive())
        if which == "indexed" and ok_after:
            ok_after = normal_search_works(c)  # the user who sent it keeps a working session too
        if marker.exists():
            status, message = "crashed", "REMOTE CODE RAN: " + message
        elif not ok_after:
            status = "server error"
        elif any(e.lower() in message.lower() for e in expected):
            status = "handled"
        else:
            status = "crashed"
        shown = message if len(message) < 220 else message[:200] + "…"
        log(f"  {status:12s} {name:38s} {time.monotonic() - started:5.1f} s  {'(raised) ' if raised else ''}{shown}")
        outcomes.append(Outcome(name, status, message))
    return outcomes


# ------------------------------------------------------------------------------------------------------- load

@dataclasses.dataclass
class LoadReport:
    clients: int
    searches: int
    answers: int
    errors: list[str]
    leaks: list[str]
    latencies: list[float]
    build_latencies: list[float]
    wall_s: float

    def percentile(self, q: float, values: list[float] | None = None) -> float:
        values = sorted(self.latencies if values is None else values)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


TOPICS = ["volcano magma lava eruption ash", "ocean tide coral reef whale", "piano chord melody sonata",
          "bread flour yeast oven crust", "comet orbit telescope galaxy star", "river delta flood silt bank",
          "chess opening gambit endgame rook", "bee hive honey pollen queen"]


def client_corpus(folder: Path, i: int, docs: int = 6) -> Path:
    """A small corpus whose document ids all start with ``c<i>-``."""
    path = folder / f"client-{i:03d}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for j in range(docs):
            topic = TOPICS[(i + j) % len(TOPICS)]
            f.write(json.dumps({"_id": f"c{i}-d{j}", "title": f"client {i} doc {j}",
                                "text": f"Notes {j} of client {i} about {topic}. " * 3}) + "\n")
    return path


def run_load(url: str, model: str, folder: str | Path, n_clients: int = 20, n_searches: int = 20,
             log: Callable[[str], None] = print) -> LoadReport:
    """``n_clients`` users at once, each: upload its own corpus, build an index, ``n_searches`` searches."""
    from gradio_client import handle_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpora = [client_corpus(folder, i) for i in range(n_clients)]
    errors: list[str] = []
    leaks: list[str] = []
    latencies: list[float] = []
    builds: list[float] = []
    answers = [0]
    lock = threading.Lock()
    start = threading.Barrier(n_clients)

    def user(i: int) -> None:
        mine = f"c{i}-"
        try:
            c = client(url)
            start.wait(timeout=120)
            c.predict([handle_file(str(corpora[i]))], "", "", "", api_name="/load_corpus")
            t = time.monotonic()
            c.predict(model, "auto", "auto", "none", 256, 32, api_name="/build_index")
            with lock:
                builds.append(time.monotonic() - t)
        except Exception as exc:
            with lock:
                errors.append(f"client {i} setup: {_message(exc)[:200]}")
            return
        for s in range(n_searches):
            words = TOPICS[(i + s) % len(TOPICS)].split()
            topic = words[s % len(words)]
            t = time.monotonic()
            try:
                before, _after, summary, _detail = c.predict(f"{topic} notes", "none", "", 10, "none", 10,
                                                             api_name="/search")
            except Exception as exc:
                with lock:
                    errors.append(f"client {i} search {s}: {_message(exc)[:200]}")
                continue
            elapsed = time.monotonic() - t
            docs = [row[1] for row in before["data"]]
            foreign = [d for d in docs if not str(d).startswith(mine)]
            with lock:
                latencies.append(elapsed)
                answers[0] += 1
                if foreign or not docs:
                    leaks.append(f"client {i} search {s}: {foreign or 'no rows'}")

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n_clients) as pool:
        list(pool.map(user, range(n_clients)))
    report = LoadReport(n_clients, n_searches, answers[0], errors, leaks, latencies, builds, time.monotonic() - started)
    for line in (errors + leaks)[:10]:
        log("  " + line)
    return report


# --------------------------------------------------------------------------------------------------- fairness

@dataclasses.dataclass
class FairnessReport:
    """Search latency of ``clients`` sessions, idle and while another session builds ``chunks`` chunks."""

    clients: int
    chunks: int
    model: str
    idle: list[float]  # search latencies (s), no build running
    during: list[float]  # search latencies (s) of searches started while the big build ran
    idle_s: float  # length of the idle phase
    build_alone_s: float  # the big build with nobody else active (client-side wall time)
    build_during_s: float  # the same build (another session, nothing cached) while the clients search
    build_alone_server_s: float | None  # the time the app itself reports in its status
    build_during_server_s: float | None
    build_chunks: int | None
    errors: list[str]
    leaks: list[str]
    load_before: str = ""
    load_after: str = ""

    def p(self, which: str, q: float) -> float:
        return percentile(getattr(self, which), q)

    @property
    def p95_ratio(self) -> float:
        return self.p("during", 95) / self.p("idle", 95)

    @property
    def stalled(self) -> int:
        """Searches during the build that took more than 3 x the idle p95 (a stretch with the model held)."""
        return sum(x > 3 * self.p("idle", 95) for x in self.during)

    @property
    def build_slowdown(self) -> float:
        return self.build_during_s / self.build_alone_s if self.build_alone_s else float("nan")

    @property
    def met(self) -> bool:
        return self.p95_ratio < 2 and not self.errors and not self.leaks and bool(self.during)

    def rows(self) -> list[list[Any]]:
        f = lambda x: f"{x:.3f}"  # noqa: E731
        return [
            ["idle (no build)", len(self.idle), f(self.p("idle", 50)), f(self.p("idle", 95)), f(max(self.idle, default=0)),
             f"{self.idle_s:.1f}"],
            [f"during a {self.chunks:,}-chunk build", len(self.during), f(self.p("during", 50)),
             f(self.p("during", 95)), f(max(self.during, default=0)), f"{self.build_during_s:.1f}"],
        ]

    def print(self, log: Callable[[str], None] = print) -> None:
        print_table(f"fairness: {self.clients} clients searching (k=10, dense) — model {self.model}",
                    ["phase", "searches", "p50 s", "p95 s", "max s", "phase s"], self.rows(), log)
        server = lambda x: f"{x:.1f} s" if x is not None else "n/a"  # noqa: E731
        print_table("fairness: summary", ["measure", "value", "target"], [
            ["search p95 during / idle", f"{self.p95_ratio:.2f}", "< 2"],
            ["search p50 during / idle", f"{self.p('during', 50) / self.p('idle', 50):.2f}", ""],
            ["build alone (client / app status)", f"{self.build_alone_s:.1f} s / {server(self.build_alone_server_s)}", ""],
            ["build with searches (client / app)", f"{self.build_during_s:.1f} s / {server(self.build_during_server_s)}",
             ""],
            ["searches stalled (> 3 x idle p95) during the build", str(self.stalled), "report"],
            ["build slowdown (with / alone)", f"{self.build_slowdown:.2f}", "report"],
            ["chunks in the big build", f"{self.build_chunks or 0:,}", f"{self.chunks:,}"],
            ["errors / leaks", f"{len(self.errors)} / {len(self.leaks)}", "0 / 0"],
            ["load average before / after", f"{self.load_before} / {self.load_after}", ""],
        ], log)


def _server_seconds(status: Any) -> float | None:
    import re

    match = re.search(r"in ([0-9.]+) s", html.unescape(str(status)))
    return float(match.group(1)) if match else None


def _chunks_in(status: Any) -> int | None:
    import re

    match = re.search(r"Index ready: ([0-9,]+) chunks", html.unescape(str(status)))
    return int(match.group(1).replace(",", "")) if match else None


def run_fairness(url: str, model: str, folder: str | Path, n_clients: int = 10, n_chunks: int = 20_000,
                 idle_s: float | None = None, limit_s: float = 900, log: Callable[[str], None] = print
                 ) -> FairnessReport:
    """``n_clients`` sessions (own small corpus each, built) search in a loop, first with nothing else running (the
    idle baseline, ``idle_s`` long; default: as long as the big build took alone, 10 to 60 s), then while ONE other
    session builds a synthetic corpus of ``n_chunks`` one-chunk documents. The big build also runs once alone first,
    in a third session, so its own slowdown is known (two sessions: the second build embeds everything again, the
    encoding cache being per session). Every phase is bounded by ``limit_s``. The server needs
    BGE_EXPLORER_MAX_CHUNKS >= ``n_chunks``."""
    from gradio_client import handle_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    big = synthetic_corpus(folder / "big.jsonl", n_chunks, seed=1, prefix="big")
    corpora = [client_corpus(folder, i) for i in range(n_clients)]
    errors: list[str] = []
    leaks: list[str] = []
    lock = threading.Lock()

    def setup(i: int):
        c = client(url)
        c.predict([handle_file(str(corpora[i]))], "", "", "", api_name="/load_corpus")
        c.predict(model, "auto", "auto", "none", 256, 32, api_name="/build_index")
        c.predict("notes", "none", "", 10, "none", 10, api_name="/search")  # warm
        return c

    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(min(n_clients, 4)) as pool:
        searchers = list(pool.map(setup, range(n_clients)))
    builders = []
    for _ in range(2):
        b = client(url)
        b.predict([handle_file(str(big))], "", "", "", api_name="/load_corpus")
        builders.append(b)
    log(f"  {n_clients} searching sessions built, the {n_chunks:,}-document corpus loaded in 2 sessions "
        f"({time.monotonic() - t:.1f} s)")

    def build(b) -> tuple[float, Any]:
        started = time.monotonic()
        out = b.submit(model, "auto", "auto", "none", 256, 32, api_name="/build_index").result(timeout=limit_s)
        return time.monotonic() - started, out[1]

    alone_s, alone_status = build(builders[0])
    log(f"  the big build alone: {alone_s:.1f} s ({html.unescape(str(alone_status))[:160]})")
    idle_s = idle_s if idle_s is not None else max(10.0, min(60.0, alone_s))

    def search_loop(i: int, stop: threading.Event, out: list[tuple[float, float]], deadline: float) -> None:
        c, mine, s = searchers[i], f"c{i}-", 0
        while not stop.is_set() and time.monotonic() < deadline:
            words = TOPICS[(i + s) % len(TOPICS)].split()
            started = time.monotonic()
            try:
                before, *_ = c.submit(f"{words[s % len(words)]} notes", "none", "", 10, "none", 10,
                                      api_name="/search").result(timeout=120)
            except Exception as exc:
                with lock:
                    errors.append(f"client {i} search {s}: {_message(exc)[:200]}")
                s += 1
                continue
            elapsed = time.monotonic() - started
            foreign = [d for d in (row[1] for row in before["data"]) if not str(d).startswith(mine)]
            with lock:
                out.append((started, elapsed))
                if foreign or not before["data"]:
                    leaks.append(f"client {i} search {s}: {foreign[:3] or 'no rows'}")
            s += 1

    def phase(seconds: float | None, during_build: bool) -> tuple[list[tuple[float, float]], float, Any, float]:
        out: list[tuple[float, float]] = []
        stop = threading.Event()
        deadline = time.monotonic() + (seconds if seconds is not None else limit_s)
        threads = [threading.Thread(target=search_loop, args=(i, stop, out, deadline), daemon=True)
                   for i in range(n_clients)]
        for th in threads:
            th.start()
        status, build_s, started = None, 0.0, time.monotonic()
        if during_build:
            time.sleep(1.0)  # every client has a search in flight
            started = time.monotonic()
            try:
                build_s, status = build(builders[1])
            except Exception as exc:
                errors.append(f"the big build during the searches: {_message(exc)[:200]}")
                build_s = time.monotonic() - started
            stop.set()
        for th in threads:
            th.join(timeout=150)
        return out, started, status, build_s

    idle, _, _, _ = phase(idle_s, False)
    idle_lat = [e for _, e in idle]
    log(f"  idle phase: {len(idle_lat)} searches in {idle_s:.0f} s, p95 {percentile(idle_lat, 95):.3f} s")
    during, build_start, during_status, during_s = phase(None, True)
    build_end = build_start + during_s
    during_lat = [e for s0, e in during if build_start <= s0 < build_end]
    log(f"  during the build: {len(during_lat)} searches in {during_s:.1f} s, "
        f"p95 {percentile(during_lat, 95):.3f} s")
    for b in (*searchers, *builders):
        with contextlib.suppress(Exception):
            b.close()
    for line in (errors + leaks)[:10]:
        log("  " + line)
    return FairnessReport(n_clients, n_chunks, model, idle_lat, during_lat, idle_s, alone_s, during_s,
                          _server_seconds(alone_status), _server_seconds(during_status),
                          _chunks_in(during_status), errors, leaks, load_before, loadavg())


# ----------------------------------------------------------------------------------------------------- memory

# Gradio (6.x) drops expired gr.State values in route_utils._delete_state: a background task started with the
# server that calls state_holder.delete_all_expired_state() and then sleeps 1 s, forever. A state expires
# time_to_live seconds after it was last *written* (SessionState.__setitem__ stamps it), but a session whose
# heartbeat connection closed (a closed tab; gradio_client.close()) is `is_closed` and then expires only after
# SessionState.STATE_TTL_WHEN_CLOSED = 3,600 s, whatever time_to_live says. Gradio's file cache (delete_cache)
# is a separate task: every max(60, min(600, TTL)) s it deletes the files it registered that are older than
# max(60, TTL) s.
GRADIO_SWEEP_S = 1.0
GRADIO_CLOSED_TTL_S = 3_600


@dataclasses.dataclass
class MemoryReport:
    """Server memory and session directories before and after ``sessions`` sessions came and went."""

    sessions: int
    parallel: int
    ttl_s: float
    chunks_per_session: int
    start_mb: float  # VmRSS after a warm-up session was dropped
    peak_mb: float  # highest VmRSS sampled (every 0.5 s) during the sessions
    end_mb: float  # VmRSS once every state is past the TTL and the sweep ran
    hwm_mb: float  # VmHWM at the end (the kernel's peak)
    dirs_start: int
    dirs_peak: int
    dirs_end: int
    gradio_files_start: int
    gradio_files_end: int
    wait_s: float
    elapsed_s: float
    errors: list[str]
    closed_sessions: int = 0  # then: sessions whose tab closed (heartbeat dropped) right after their work
    closed_end_mb: float = float("nan")
    closed_dirs_end: int = 0
    closed_wait_s: float = 0.0
    dirs_after_exit: int | None = None  # session dirs still on disk once the server process exited
    load_before: str = ""
    load_after: str = ""

    @property
    def ratio(self) -> float:
        return self.end_mb / self.start_mb

    @property
    def met(self) -> bool:
        return self.ratio <= 1.2 and self.dirs_end == 0 and not self.errors

    def print(self, log: Callable[[str], None] = print) -> None:
        rows = [["sessions x parallel", f"{self.sessions} x {self.parallel}", ""],
                ["chunks per session", f"{self.chunks_per_session:,}", ""],
                ["session TTL / Gradio state sweep", f"{self.ttl_s:g} s / every {GRADIO_SWEEP_S:g} s", ""],
                ["RSS start (warm, no session)", f"{self.start_mb:,.0f} MiB", ""],
                ["RSS peak (sampled) / VmHWM", f"{self.peak_mb:,.0f} / {self.hwm_mb:,.0f} MiB", ""],
                [f"RSS end ({self.wait_s:.0f} s after the last session)", f"{self.end_mb:,.0f} MiB", ""],
                ["RSS end / start", f"{self.ratio:.2f}", "<= 1.2"],
                ["session dirs start / peak / end", f"{self.dirs_start} / {self.dirs_peak} / {self.dirs_end}", "end 0"],
                ["Gradio cache files start / end", f"{self.gradio_files_start} / {self.gradio_files_end}", "report"],
                ["errors", str(len(self.errors)), "0"],
                ["phase wall time", f"{self.elapsed_s:.0f} s", ""]]
        if self.closed_sessions:
            rows += [[f"then {self.closed_sessions} closed tabs: RSS {self.closed_wait_s:.0f} s later",
                      f"{self.closed_end_mb:,.0f} MiB ({self.closed_end_mb / self.start_mb:.2f} x start)", "report"],
                     ["closed tabs: session dirs left", str(self.closed_dirs_end),
                      f"Gradio keeps them {GRADIO_CLOSED_TTL_S:,} s"]]
        if self.dirs_after_exit is not None:
            rows.append(["session dirs on disk after the server exited", str(self.dirs_after_exit), "0"])
        rows.append(["load average before / after", f"{self.load_before} / {self.load_after}", ""])
        print_table("memory: sessions that come and go (idle past the TTL, then closed)",
                    ["measure", "value", "target"], rows, log)


class _Sampler(threading.Thread):
    """VmRSS of the server every ``interval`` s; ``peak`` and the session directory count's peak."""

    def __init__(self, server: Server, interval: float = 0.5):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.peak, self.dirs_peak = 0.0, 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            self.dirs_peak = max(self.dirs_peak, len(self.server.session_dirs()))
            self.halt.wait(self.interval)


def run_memory(server: Server, model: str, folder: str | Path, n_sessions: int = 50, parallel: int = 2,
               chunks: int = 2_000, searches: int = 3, closed: int = 10, log: Callable[[str], None] = print
               ) -> MemoryReport:
    """``n_sessions`` sessions, ``parallel`` at a time, each: upload its own corpus (``chunks`` one-chunk
    documents), build, ``searches`` searches, then idle with the client connected until its state is past the
    server's TTL and Gradio's 1 s sweep dropped it (an open tab left alone), then the client closes. RSS (VmRSS)
    is read after a warm-up session was dropped the same way, sampled during, and read again once every state
    is past the TTL. Then ``closed`` more sessions whose tab closes right after their work (heartbeat dropped):
    Gradio keeps those states 3,600 s, so they show what a closed tab holds for that hour."""
    from gradio_client import handle_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ttl = float(server.env.get("BGE_EXPLORER_SESSION_TTL_S") or 3_600)
    grace = GRADIO_SWEEP_S + 3.0  # the sweep's interval plus the time a drop (malloc_trim included) takes
    errors: list[str] = []
    lock = threading.Lock()
    load_before = loadavg()

    def session(i: int, close_at_once: bool = False) -> tuple[Any, float]:
        """One visitor's work; -> (its client, when its state was last written)."""
        c = client(url)
        corpus = synthetic_corpus(folder / f"session-{i:03d}.jsonl", chunks, seed=100 + i, prefix=f"s{i}")
        try:
            c.predict([handle_file(str(corpus))], "", "", "", api_name="/load_corpus")
            _, status, *_ = c.predict(model, "auto", "auto", "none", 256, 32, api_name="/build_index")
            if "Index ready" not in str(status):
                raise RuntimeError(f"no index: {html.unescape(str(status))[:120]}")
            for s in range(searches):
                before, *_ = c.predict(f"river music query {s}", "none", "", 10, "none", 10, api_name="/search")
                if not before["data"] or any(not str(row[1]).startswith(f"s{i}-") for row in before["data"]):
                    raise RuntimeError(f"search {s}: rows of another session or none")
        except Exception as exc:
            with lock:
                errors.append(f"session {i}: {_message(exc)[:200]}")
        finally:
            with contextlib.suppress(OSError):
                corpus.unlink()
        if close_at_once:
            drop_connection(url, c)
        return c, time.monotonic()

    url = server.url
    started = time.monotonic()
    for attempt in (-1, -2):  # loads the model, warms tokenizers, allocator, Gradio
        warm, last = session(attempt)
        time.sleep(max(0.0, last + ttl + grace - time.monotonic()))
        warm.close()
        if not errors:
            break
        # The first build also loads the model: when that outlasts the TTL, Gradio drops the state mid-build (a
        # state expires TTL seconds after it was last written, running event or not) and the build ends quietly.
        log(f"  warm-up session failed ({errors[-1]}); once more, the model now loaded")
        errors.clear()
    time.sleep(1.0)
    start_mb, dirs_start, gradio_start = server.rss_mb(), len(server.session_dirs()), len(server.gradio_files())
    log(f"  after a warm-up session dropped: RSS {start_mb:,.0f} MiB, {dirs_start} session dir(s)")
    sampler = _Sampler(server)
    sampler.start()
    pending: list[tuple[float, Any]] = []  # (close no earlier than, client)
    pending_lock = threading.Lock()
    reaper_halt = threading.Event()

    def reaper() -> None:  # closes each client once its state is past the TTL (the sweep dropped it)
        while True:
            now = time.monotonic()
            with pending_lock:
                due = [c for t, c in pending if t <= now]
                pending[:] = [(t, c) for t, c in pending if t > now]
                left = len(pending)
            for c in due:
                with contextlib.suppress(Exception):
                    c.close()
            if reaper_halt.is_set() and not left:
                return
            time.sleep(0.5)

    reaper_thread = threading.Thread(target=reaper, daemon=True)
    reaper_thread.start()
    last_write = [time.monotonic()]

    def visit(i: int) -> None:
        c, when = session(i)
        with pending_lock:
            pending.append((when + ttl + grace, c))
            last_write[0] = max(last_write[0], when)
        if (i + 1) % 10 == 0:
            log(f"  {i + 1} sessions done, RSS {server.rss_mb():,.0f} MiB, {len(server.session_dirs())} dir(s)")

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(visit, range(n_sessions)))
    end_at = last_write[0] + ttl + grace
    time.sleep(max(0.0, end_at - time.monotonic()))
    reaper_halt.set()
    reaper_thread.join(timeout=60)
    time.sleep(1.0)
    sampler.halt.set()
    sampler.join()
    end_mb, dirs_end, gradio_end = server.rss_mb(), len(server.session_dirs()), len(server.gradio_files())
    report = MemoryReport(n_sessions, parallel, ttl, chunks, start_mb, max(sampler.peak, end_mb), end_mb,
                          server.peak_rss_mb(), dirs_start, sampler.dirs_peak, dirs_end, gradio_start, gradio_end,
                          ttl + grace, time.monotonic() - started, errors)
    log(f"  {n_sessions} sessions gone: RSS {end_mb:,.0f} MiB ({report.ratio:.2f} x start), {dirs_end} dir(s)")
    if closed:
        last = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            for _, when in pool.map(lambda i: session(i, close_at_once=True), range(n_sessions, n_sessions + closed)):
                last = max(last, when)
        time.sleep(max(0.0, last + ttl + grace - time.monotonic()))
        report.closed_sessions, report.closed_wait_s = closed, ttl + grace
        report.closed_end_mb, report.closed_dirs_end = server.rss_mb(), len(server.session_dirs())
        log(f"  then {closed} closed tabs, {ttl + grace:.0f} s later: RSS {report.closed_end_mb:,.0f} MiB, "
            f"{report.closed_dirs_end} dir(s)")
    report.load_before, report.load_after = load_before, loadavg()
    for line in errors[:10]:
        log("  " + line)
    return report


def probe_residue(model: str, folder: str | Path, n_sessions: int = 5, chunks: int = 2_000, ttl_s: float = 30,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """In-process (the app launched in this process, so its objects can be counted): what stays on the heap once
    ``n_sessions`` sessions were dropped by the TTL. Counts live AppState objects, Gradio's per-session
    ``SessionState`` objects (state_holder.session_data) and the JSON size of the component values they keep
    (``config_values``: the last value of every input and output of the session, which ``delete_state`` leaves),
    and the heap growth by file (tracemalloc, client objects deleted first). Sets the environment of this process."""
    import gc
    import tracemalloc

    from gradio_client import handle_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "BGE_EXPLORER_AUTO_UMAP": "0",
                       "BGE_EXPLORER_SESSION_TTL_S": f"{ttl_s:g}", "GRADIO_TEMP_DIR": str(folder / "gradio"),
                       "BGE_EXPLORER_TMP_DIR": str(folder / "sessions"),
                       "BGE_EXPLORER_MODEL_ROOTS": str(Path(model).resolve().parent)})
    from bge_explorer.app import layout, state as app_state
    from bge_explorer.models.loading import load_embedder

    load_embedder(model)
    demo = layout.build_app()
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    holder = demo.server_app.state_holder

    def visit(i: int) -> None:
        c = client(url)
        corpus = synthetic_corpus(folder / f"s{i}.jsonl", chunks, seed=100 + i, prefix=f"s{i}")
        c.predict([handle_file(str(corpus))], "", "", "", api_name="/load_corpus")
        c.predict(model, "auto", "auto", "none", 256, 32, api_name="/build_index")
        for s in range(3):
            c.predict(f"river {s}", "none", "", 10, "none", 10, api_name="/search")
        return c  # stays connected until its state is past the TTL (a closed tab's state is kept 3,600 s)

    def leave(clients: list[Any]) -> None:
        for c in clients:
            c.close()
        clients.clear()
        gc.collect()

    def heap() -> None:
        gc.collect()
        app_state.release_memory()

    try:
        clients = [visit(-1)]
        time.sleep(ttl_s + GRADIO_SWEEP_S + 3)
        leave(clients)
        heap()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        clients = [visit(i) for i in range(n_sessions)]
        time.sleep(ttl_s + GRADIO_SWEEP_S + 3)
        leave(clients)
        heap()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        with warnings.catch_warnings():  # isinstance on every object touches deprecated torch attributes
            warnings.simplefilter("ignore")
            alive = sum(isinstance(o, app_state.AppState) for o in gc.get_objects())
        kept = list(holder.session_data.values())
        values = sum(len(json.dumps(s.config_values, default=str)) for s in kept)
        growth = [(str(st.traceback[0].filename).split("site-packages/")[-1], st.size_diff)
                  for st in after.compare_to(before, "filename") if st.size_diff > 0][:8]
        report = {"sessions": n_sessions + 1, "appstate_alive": alive, "gradio_sessionstates_kept": len(kept),
                  "gr_state_values_kept": sum(len(s.state_data) for s in kept),
                  "config_values_json_mb": values / 2**20, "config_values_json_mb_per_session": values / 2**20 / len(kept),
                  "heap_growth_by_file_kib": [(f, round(d / 1024)) for f, d in growth],
                  "state_holder_capacity": holder.capacity}
    finally:
        demo.close()
    print_table(f"memory, in-process: what {n_sessions + 1} dropped sessions leave on the heap", ["measure", "value"], [
        ["AppState objects alive (dropped: 0 expected)", report["appstate_alive"]],
        ["Gradio SessionState objects kept", f"{report['gradio_sessionstates_kept']} (kept until "
                                             f"{report['state_holder_capacity']:,} sessions, then LRU)"],
        ["gr.State values kept in them", report["gr_state_values_kept"]],
        ["component values they keep (JSON)", f"{report['config_values_json_mb']:.2f} MB, "
                                              f"{report['config_values_json_mb_per_session']:.2f} MB a session"],
        *[[f"heap growth: {f}", f"{kib:,} KiB"] for f, kib in report["heap_growth_by_file_kib"]]], log)
    return report


# --------------------------------------------------------------------------------------------------- findings

STATUSES = ("handled", "crashed", "leaked", "server error", "missed")
SECRET_MARKERS = ("root:x:0:0", "SECRET-TOKEN", "hunter2", "api_key=")


@dataclasses.dataclass
class Finding:
    """One finding of the public-Space security issue and what each of its probes got."""

    key: str
    title: str
    checked: str  # served (gradio_client) / served (raw HTTP) / measured / in-process
    outcomes: list[Outcome]
    note: str = ""

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return all(o.status == "handled" for o in self.outcomes)


def _flat(value: Any) -> str:
    """Every string inside a returned value (tables included), joined: what a visitor would see, unescaped."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            out.append(html.unescape(v))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif v is not None:
            out.append(str(v))
    walk(value)
    return " | ".join(out)


def judge(name: str, call: Callable[[], Any], expected: list[str] | Callable[[str], bool], *,
          leak: Callable[[str], str] | None = None, bystander=None, server: Server | None = None,
          max_s: float | None = None, log: Callable[[str], None] = print) -> Outcome:
    """run_hostile's classification for one probe: *handled* (the expected message, within ``max_s``), *leaked*
    (``leak(message)`` names what got out), *server error* (the bystander's normal search then fails, or the
    server died), else *crashed*."""
    started = time.monotonic()
    try:
        message, raised = _flat(call()), False
    except Exception as exc:
        message, raised = _message(exc), True
        if type(exc).__name__ not in ("AppError", "ValueError", "RuntimeError"):
            message = f"{type(exc).__name__}: {message}"
    elapsed = time.monotonic() - started
    ok_after = (bystander is None or normal_search_works(bystander)) and (server is None or server.alive())
    what = leak(message) if leak else ""
    matched = expected(message) if callable(expected) else any(e.lower() in message.lower() for e in expected)
    if what:
        status, message = "leaked", f"{what}: {message}"
    elif not ok_after:
        status = "server error"
    elif matched and (max_s is None or elapsed <= max_s):
        status = "handled"
    else:
        status = "crashed"
        if matched:
            message = f"took {elapsed:.1f} s (more than {max_s:g} s): {message}"
    shown = " ".join(message.split())
    shown = shown if len(shown) < 200 else shown[:180] + "…"
    log(f"    {status:12s} {name:44s} {elapsed:5.1f} s  {'(raised) ' if raised else ''}{shown}")
    return Outcome(name, status, message)


def beir_zip(path: Path, corpus_mb: float = 0) -> Path:
    """A BEIR zip of the sample corpus (two judged queries, split ``test``) with a ``secret.tsv`` beside the qrels
    folder; ``corpus_mb`` > 0: instead a synthetic corpus.jsonl of that many MB (it compresses ~90x)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if corpus_mb:
            with z.open("corpus.jsonl", "w", force_zip64=True) as member:
                written, i = 0, 0
                while written < corpus_mb * 2**20:
                    line = (json.dumps({"_id": f"d{i}", "text": "volcano lava " * 30}) + "\n").encode()
                    member.write(line)
                    written, i = written + len(line), i + 1
        else:
            z.write(SAMPLE, "corpus.jsonl")
        z.writestr("queries.jsonl", '{"_id": "1", "text": "eiffel tower"}\n{"_id": "2", "text": "python language"}\n')
        z.writestr("qrels/test.tsv", "query-id\tcorpus-id\tscore\n1\teiffel-tower\t1\n2\tpython-language\t1\n")
        z.writestr("secret.tsv", "query-id\tcorpus-id\tscore\nalice\tapi_key=SECRET-TOKEN\t1\nbob\thunter2\t1\n")
    return path


def _secret_in(message: str) -> str:
    found = [m for m in SECRET_MARKERS if m in message]
    return f"content from outside the split ({', '.join(found)})" if found else ""


def partial_upload(url: str, mb: int = 5, declared_mb: int = 20) -> None:
    """An upload that stops half-way: ``mb`` MiB of a declared ``declared_mb`` MiB body, then the socket closes."""
    import urllib.parse

    u = urllib.parse.urlparse(url)
    boundary = "bgeexplorerboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"part.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    length = len(head) + declared_mb * 2**20 + len(f"\r\n--{boundary}--\r\n")
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: multipart/"
                  f"form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n".encode() + head)
        for _ in range(mb):
            s.sendall(b"x" * 2**20)
        time.sleep(1.0)


def raw_call(url: str, api: str, data: list[Any], timeout: float = 60) -> str:
    """An API call over plain HTTP (/gradio_api/call/<api>): what any script can send, past gradio_client's own
    file handling (which would upload a local path). -> the event stream's text."""
    import httpx

    response = httpx.post(url.rstrip("/") + f"/gradio_api/call/{api}", json={"data": data}, timeout=timeout)
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    event = response.json()["event_id"]
    return httpx.get(url.rstrip("/") + f"/gradio_api/call/{api}/{event}", timeout=timeout).text[:1000]


def run_findings(server: Server, models: dict[str, str], folder: str | Path, fairness: FairnessReport | None = None,
                 memory: MemoryReport | None = None, cleanup_server: Server | None = None,
                 log: Callable[[str], None] = print) -> list[Finding]:
    """One row per finding of the public-Space issue, each probed against the running server through
    gradio_client (or plain HTTP where a script would go past gradio_client); 3 and 8 are the fairness and memory
    measurements (``fairness`` / ``memory``: their reports, None: not measured); 9f needs ``cleanup_server``, a
    server with a short BGE_EXPLORER_SESSION_TTL_S."""
    from gradio_client import handle_file

    url, enc = server.url, models["encoder"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clients: list[Any] = []

    def fresh(sample: bool = False, build: bool = False, target: str | None = None):
        c = client(target or url)
        clients.append(c)
        if sample or build:
            c.predict([handle_file(SAMPLE)], "", "", "", api_name="/load_corpus")
        if build:
            c.predict(enc, "auto", "auto", "none", 256, 32, api_name="/build_index")
        return c

    def upload(c, *paths: Path, text_column: str = ""):
        return c.predict([handle_file(str(p)) for p in paths], text_column, "", "", api_name="/load_corpus")

    def evaluate(c, path: Path, split: str = "test", model: str = enc, mode: str = "none", instruction: str = ""):
        return c.predict([handle_file(str(path))], split, model, mode, instruction, "none", 20, 0, False, enc, "none",
                         "", "none", 20, 0, "ndcg@10", api_name="/evaluate")

    def search(c, q: str = "eiffel tower", k: Any = 5, reranker: str = "none", top_n: Any = 5,
               mode: str = "none", instruction: str = ""):
        return c.predict(q, mode, instruction, k, reranker, top_n, api_name="/search")

    def build(c, model: str = enc, chunking: str = "none", size: Any = 256, overlap: Any = 32):
        return c.predict(model, "auto", "auto", chunking, size, overlap, api_name="/build_index")

    bystander = fresh(build=True)
    kw = dict(bystander=bystander, server=server, log=log)
    findings: list[Finding] = []

    def row(key: str, title: str, checked: str, note: str = ""):
        log(f"  {key}. {title}")
        finding = Finding(key, title, checked, [], note)
        findings.append(finding)
        return finding

    # 1. the qrels split stays inside the dataset ---------------------------------------------------------------
    small = beir_zip(folder / "beir.zip")
    f = row("1", "qrels split path traversal (Evaluate)", "served (gradio_client)")
    c = fresh()
    for split in ("../../../../etc/passwd", "/etc/passwd", "../secret", "qrels/../../secret", ".."):
        f.outcomes.append(judge(f"split {split!r}", lambda s=split: evaluate(c, small, s),
                                ["is not a split name"], leak=_secret_in, **kw))
    f.outcomes.append(judge("split of 600 characters", lambda: evaluate(c, small, "x" * 600),
                            ["BGE_EXPLORER_MAX_FIELD_CHARS"], leak=_secret_in, **kw))
    f.outcomes.append(judge("split 'test' (control: evaluates)", lambda: evaluate(c, small, "test"),
                            ["2 queries"], leak=_secret_in, **kw))

    # 2. the instruction is bounded with the query -----------------------------------------------------------------
    f = row("2", "unbounded instruction", "served (gradio_client)")
    c = fresh(build=True)
    bounded = lambda m: "BGE_EXPLORER_MAX_QUERY_CHARS" in m and len(m) < 500  # noqa: E731
    f.outcomes.append(judge("/search, custom instruction of 5 M chars",
                            lambda: search(c, mode="custom", instruction="z" * 5_000_000), bounded, max_s=15, **kw))
    f.outcomes.append(judge("/compare_prefix, instruction of 5 M chars",
                            lambda: c.predict("eiffel", "z" * 5_000_000, 5, api_name="/compare_prefix"), bounded,
                            max_s=15, **kw))
    f.outcomes.append(judge("/evaluate, A's instruction of 1 M chars",
                            lambda: evaluate(c, small, mode="custom", instruction="y" * 1_000_000), bounded,
                            max_s=15, **kw))

    # 3. a build does not freeze the other sessions ----------------------------------------------------------------
    f = row("3", "a build freezing other sessions", "measured (fairness)")
    if fairness is None:
        f.note = "not measured (run with --fairness)"
    else:
        f.note = (f"{fairness.clients} clients, {fairness.chunks:,}-chunk build: p95 {fairness.p('idle', 95):.2f} s idle, "
                  f"{fairness.p('during', 95):.2f} s during (x{fairness.p95_ratio:.2f}), max {max(fairness.during):.1f} s; "
                  f"build x{fairness.build_slowdown:.2f}")
        f.outcomes.append(Outcome("search p95 during a build < 2 x idle", "handled" if fairness.p95_ratio < 2
                                  else "missed", f"ratio {fairness.p95_ratio:.2f}"))
        f.outcomes.append(Outcome("no search failed or leaked during the build",
                                  "handled" if not (fairness.errors or fairness.leaks) else "crashed",
                                  "; ".join((fairness.errors + fairness.leaks)[:3])))

    # 4. a dropped connection keeps the session ---------------------------------------------------------------------
    f = row("4", "dropped connection wiping the session", "served (gradio_client + heartbeat)")

    def idle_drop():
        c = fresh(build=True)
        search(c)
        drop_connection(url, c)
        time.sleep(1.5)
        again = reconnect(url, c.session_hash)
        clients.append(again)
        before, *_ = search(again)
        if len(before["data"]) != 5:
            raise RuntimeError(f"after the reconnect the search got {len(before['data'])} rows")
        return "session intact after the reconnect: the same index answered"

    n_drop = min(9_000, server.limits().max_chunks)
    seen: dict[str, Any] = {}

    def build_drop():
        c = fresh()
        upload(c, synthetic_corpus(folder / "drop.jsonl", n_drop, seed=7, prefix="drop"))
        job = c.submit(enc, "auto", "auto", "none", 256, 32, api_name="/build_index")
        deadline = time.monotonic() + 60
        while job.status().code.name != "PROCESSING" and not job.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # under way: the model is loaded, the chunks are being embedded (about 4 s for 9,000)
        dropped = time.monotonic()
        seen["running_at_drop"] = not job.done()
        drop_connection(url, c)
        out = job.result(timeout=300)
        completed = "Index ready" in _flat(out)
        seen["completed"], seen["ran_on_s"] = completed, time.monotonic() - dropped
        again = reconnect(url, c.session_hash)
        clients.append(again)
        if not completed:
            try:
                search(again)
                raise RuntimeError("the stopped build left an index behind")
            except Exception as exc:
                if "Build the index first" not in _message(exc):
                    raise RuntimeError(f"after the reconnect: {_message(exc)[:200]}") from None
            _, status, *_ = build(again)  # the corpus is still there: build again without uploading
            if f"{n_drop} chunks" not in _flat(status):
                raise RuntimeError(f"the rebuild: {_flat(status)[:200]}")
        before, *_ = search(again, "river music")
        if not before["data"] or not str(before["data"][0][1]).startswith("drop-"):
            raise RuntimeError("after the reconnect the search did not answer from the session's corpus")
        return ("session intact: " + ("the build stopped at the drop (client left), the corpus was kept and the "
                                      "rebuild worked" if not completed else "the build ran to its end"))

    f.outcomes.append(judge("idle session, connection dropped, reconnect", idle_drop, ["session intact"], **kw))
    f.outcomes.append(judge("connection dropped mid-build, reconnect", build_drop, ["session intact"], **kw))
    if seen.get("running_at_drop") and seen.get("completed"):
        f.outcomes.append(Outcome("the client leaving stops its build", "crashed",
                                  f"the build was in flight at the drop and ran {seen['ran_on_s']:.1f} s more to its "
                                  "end: demo.unload's client_left got no request (Gradio passes gr.Request only to a "
                                  "parameter annotated gr.Request), so it found no running job to cancel"))
    elif seen.get("running_at_drop"):
        f.outcomes.append(Outcome("the client leaving stops its build", "handled", "stopped at the next batch"))
    elif seen:
        f.outcomes.append(Outcome("the client leaving stops its build", "missed",
                                  "inconclusive: the build had finished before the drop"))
    for o in f.outcomes[2:]:
        log(f"    {o.status:12s} {o.name:44s} {o.message[:150]}")

    # 5. no existence oracle for server paths ------------------------------------------------------------------------
    f = row("5", "existence oracle for server paths", "served (gradio_client; raw HTTP for files)")
    outside = folder / "outside"
    shutil.copytree(enc, outside / "model", dirs_exist_ok=True)
    (outside / "notes.txt").write_text("a file on the server outside the upload folder\n")
    paths = {"a model dir outside the roots": str(outside / "model"), "a missing dir": str(outside / "missing"),
             "/etc (exists)": "/etc", "/etc/passwd (a file)": "/etc/passwd", "/no/such/dir": "/no/such/dir"}
    files = {"a server file outside the uploads": str(outside / "notes.txt"),
             "a missing .txt": str(outside / "missing.txt"), "/etc/passwd": "/etc/passwd",
             "/etc/hostname": "/etc/hostname", "a directory": "/etc"}
    c = fresh(build=True)

    def answers_of(calls: dict[str, Callable[[], Any]], paths_of: dict[str, str]) -> dict[str, str]:
        got = {}
        for name, call in calls.items():
            try:
                text = _flat(call())
            except Exception as exc:
                text = f"{type(exc).__name__}: {_message(exc)}"
            got[name] = " ".join(text.replace(paths_of[name], "<path>").split())
        return got

    groups = [
        ("model id", answers_of({n: (lambda p=p: build(c, p)) for n, p in paths.items()}, paths)),
        ("reranker id", answers_of({n: (lambda p=p: search(c, reranker=p)) for n, p in paths.items()}, paths)),
        ("corpus file (raw HTTP)", answers_of({n: (lambda p=p: raw_call(url, "load_corpus", [
            [{"path": p, "meta": {"_type": "gradio.FileData"}}], "", "", ""])) for n, p in files.items()}, files)),
        ("Evaluate file (raw HTTP)", answers_of({n: (lambda p=p: raw_call(url, "evaluate", [
            [{"path": p, "meta": {"_type": "gradio.FileData"}}], "test", enc, "none", "", "none", 20, 0, False, enc,
            "none", "", "none", 20, 0, "ndcg@10"])) for n, p in files.items()}, files)),
    ]
    for what, got in groups:
        common = collections.Counter(got.values()).most_common(1)[0][0]
        for name, text in got.items():
            status = "handled" if text == common else "leaked"
            message = text if status == "handled" else f"answer differs from the others ({common[:80]!r}): {text}"
            log(f"    {status:12s} {what + ': ' + name:44s} {' '.join(message.split())[:150]}")
            f.outcomes.append(Outcome(f"{what}: {name}", status, message))
    alive = normal_search_works(bystander) and server.alive()
    if not alive:
        f.outcomes.append(Outcome("bystander after the path probes", "server error", "normal search failed"))

    # 6. Hub downloads are bounded (offline here) --------------------------------------------------------------------
    f = row("6", "unbounded hub downloads (offline server)", "served (gradio_client)",
            "the size cap (BGE_EXPLORER_MAX_MODEL_MB) needs a Hub: in-process, tests/test_security_models.py")
    c = fresh(build=True)
    f.outcomes.append(judge("uncached Hub id as the model", lambda: build(c, "someone/uncached-model-xyz"),
                            ["not in the local Hugging Face cache"], max_s=5, **kw))
    f.outcomes.append(judge("uncached Hub id as the reranker", lambda: search(c, reranker="someone/uncached-reranker"),
                            ["not in the local Hugging Face cache"], max_s=5, **kw))
    f.outcomes.append(judge("model id of 100,000 characters", lambda: build(c, "a/" + "b" * 100_000),
                            ["BGE_EXPLORER_MAX_FIELD_CHARS"], max_s=5, **kw))
    f.outcomes.append(judge("reranker id of 100,000 characters", lambda: search(c, reranker="a/" + "b" * 100_000),
                            ["BGE_EXPLORER_MAX_FIELD_CHARS"], max_s=5, **kw))
    f.outcomes.append(judge("Evaluate model id of 100,000 characters",
                            lambda: evaluate(c, small, model="a/" + "b" * 100_000),
                            ["BGE_EXPLORER_MAX_FIELD_CHARS"], max_s=5, **kw))

    # 7. size bombs inside the limits ---------------------------------------------------------------------------------
    f = row("7", "size bombs", "served (gradio_client)")
    bomb = beir_zip(folder / "corpus-100mb.zip", corpus_mb=100)
    nows = folder / "no-whitespace-40mb.txt"
    with open(nows, "wb") as out:
        for _ in range(40):
            out.write(b"a" * 2**20)
    c = fresh()
    limit_chunks = lambda m: "BGE_EXPLORER_MAX_CHUNKS" in m  # noqa: E731
    for name, call in ((f"Evaluate zip ({os.path.getsize(bomb) / 2**20:.1f} MB) holding a 100 MB corpus",
                        lambda: evaluate(c, bomb)),
                       ("40 MB file without whitespace (Corpus)", lambda: upload(c, nows))):
        hwm = server.peak_rss_mb()
        outcome = judge(name, call, limit_chunks, max_s=60, **kw)
        grown = server.peak_rss_mb() - hwm
        outcome.message += f" [server peak memory +{grown:,.0f} MiB]"
        if grown > 1024 and outcome.status == "handled":
            outcome.status = "crashed"
        f.outcomes.append(outcome)
    nows.unlink()

    # 8. memory ----------------------------------------------------------------------------------------------------
    f = row("8", "memory kept per session", "measured (memory)")
    if memory is None:
        f.note = "not measured (run with --memory)"
    else:
        f.note = (f"{memory.sessions} sessions: RSS {memory.start_mb:,.0f} -> {memory.end_mb:,.0f} MiB "
                  f"(x{memory.ratio:.2f}), dirs {memory.dirs_end} left")
        f.outcomes.append(Outcome("sessions idle past the TTL: RSS back within 1.2 x",
                                  "handled" if memory.ratio <= 1.2 else "missed", f"x{memory.ratio:.2f}"))
        f.outcomes.append(Outcome("sessions idle past the TTL: their dirs deleted",
                                  "handled" if memory.dirs_end == 0 else "leaked", f"{memory.dirs_end} left"))
        if memory.errors:
            f.outcomes.append(Outcome("sessions ran without errors", "crashed", "; ".join(memory.errors[:3])))
        if memory.closed_sessions:
            f.outcomes.append(Outcome(
                "closed tabs: state dropped within TTL + sweep", "handled" if memory.closed_dirs_end == 0 else "missed",
                f"{memory.closed_dirs_end} of {memory.closed_sessions} still held (Gradio keeps a closed tab's state "
                f"{GRADIO_CLOSED_TTL_S:,} s, whatever the TTL)"))

    # 9a-9e. odd inputs ----------------------------------------------------------------------------------------------
    f = row("9a", "odd-length UTF-16", "served (gradio_client)")
    odd = folder / "odd-utf16.txt"
    odd.write_bytes(b"\xff\xfe" + "hello".encode("utf-16-le") + b"!")
    good = folder / "good.txt"
    good.write_text("Good text.")
    f.outcomes.append(judge("odd-length UTF-16 alone", lambda: upload(fresh(), odd), ["not valid UTF-16"], **kw))
    f.outcomes.append(judge("odd-length UTF-16 with a good file", lambda: upload(fresh(), odd, good),
                            lambda m: "not valid UTF-16" in m and "1</b> documents" in m, **kw))

    f = row("9b", 'k = "abc" (non-numbers)', "served (gradio_client)",
            "the numeric inputs name the field before Gradio's bounds check (app/components.py)")
    c = fresh(build=True)
    named = lambda m: "must be a number" in m and "(got a str)" in m  # noqa: E731  ("Top k must be a number ...")
    f.outcomes.append(judge('/search k = "abc"', lambda: search(c, k="abc"), named, **kw))
    f.outcomes.append(judge('/search top_n = "abc" (with a reranker)', lambda: search(c, reranker=enc, top_n="abc"),
                            named, **kw))
    f.outcomes.append(judge('/compare_prefix k = "abc"', lambda: c.predict("eiffel", "", "abc",
                                                                          api_name="/compare_prefix"), named, **kw))
    f.outcomes.append(judge('/build_index chunk size = "abc"', lambda: build(c, chunking="tokens", size="abc"),
                            named, **kw))

    f = row("9c", "CSV with a 10 MB field", "served (gradio_client)")
    big_csv = folder / "big-field.csv"
    big_csv.write_text(f'id,text\n1,"{"word " * 2_000_000}"\n2,short\n')
    f.outcomes.append(judge("10 MB quoted field", lambda: upload(fresh(), big_csv),
                            lambda m: "2</b> documents" in m and "10000000" in m, **kw))
    big_csv.unlink()

    f = row("9d", "bidi controls in file names", "served (gradio_client)")
    spoof = folder / "invoice\u202eexe.txt"
    spoof.write_text("Pay now: tower invoice.")
    empty = folder / "empty\u202etxt.md"
    empty.write_bytes(b"")
    raw = lambda m: "raw U+202E in the page's text" if "\u202e" in m else ""  # noqa: E731
    c = fresh()
    f.outcomes.append(judge("upload named invoice<RLO>exe.txt (+ an empty one)", lambda: upload(c, spoof, empty),
                            ["\\u202e"], leak=raw, **kw))
    f.outcomes.append(judge("…then build and search: results tables", lambda: (build(c), search(c, "tower", k=1,
                                                                                                top_n=1)),
                            ["\\u202e"], leak=raw, **kw))

    f = row("9e", "CSV formula cells in the results export", "served (gradio_client + the file over HTTP)")
    formulas = folder / "formulas.jsonl"
    formulas.write_text("".join(json.dumps(r) + "\n" for r in [
        {"_id": "=HYPERLINK(\"http://evil.example\")", "title": "+1+cmd|' /C calc'!A0", "text": "=cmd|' /C calc'!A0 tower"},
        {"_id": "@SUM(A1)", "title": "\t=1", "text": "-2+3+cmd|' /C calc'!A0 tower"},
        {"_id": "plain", "title": "", "text": "plain tower text"}]))

    def export_formulas():
        import csv
        import io

        import httpx

        c = fresh()
        upload(c, formulas)
        build(c)
        search(c, "tower", k=3, top_n=3)
        exported = c.predict(api_name="/export_results")
        text = httpx.get(exported["url"], timeout=30).text
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        bad = [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")
               or (cell[:1] == "-" and not _is_number(cell))]
        defused = sum(cell.startswith(("'=", "'+", "'@", "'-", "'\t")) for cell in cells)
        return f"{len(cells)} cells, {defused} defused with a leading quote; live formulas: {bad[:3]}" if bad else \
            f"{len(cells)} cells, {defused} defused with a leading quote, none live"

    f.outcomes.append(judge("results CSV of formula-looking ids, titles, text", export_formulas, ["none live"],
                            leak=lambda m: "live formula cells" if "live formulas:" in m else "", **kw))

    # 9f. files cleaned with the session ----------------------------------------------------------------------------
    f = row("9f", "partial uploads / evaluate downloads cleaned with the session",
            "served (short-TTL server; raw socket for the partial upload)")
    if cleanup_server is None:
        f.note = "not checked (needs a server with a short BGE_EXPLORER_SESSION_TTL_S)"
    else:
        cs = cleanup_server
        ttl = float(cs.env.get("BGE_EXPLORER_SESSION_TTL_S") or 3_600)
        loose = lambda: {p for p in cs.gradio_dir.glob("tmp*") if p.is_file()}  # noqa: E731
        before_loose = loose()
        c = fresh(target=cs.url)
        c.predict([handle_file(str(good))], "", "", "", api_name="/load_corpus")
        out = evaluate(c, small)
        downloads = [d.get("path") for d in (out[-1] or []) if isinstance(d, dict)]
        mine = cs.session_dirs()
        in_dir = sum(1 for d in mine for p in (cs.sessions_dir / d).rglob("*") if p.is_file())
        time.sleep(1.0)
        by_uploads = loose() - before_loose  # gr.File's preprocess: an empty NamedTemporaryFile per file, never used
        before_partial = loose()
        partial_upload(cs.url)
        time.sleep(1.0)
        partial = loose() - before_partial
        log(f"    (session dir(s) {mine}: {in_dir} files; Evaluate downloads {len(downloads)}; ordinary uploads left "
            f"{len(by_uploads)} loose temp file(s), the partial upload {len(partial)}; waiting "
            f"{ttl + GRADIO_SWEEP_S + 3:.0f} s past the TTL)")
        time.sleep(ttl + GRADIO_SWEEP_S + 3)  # the client stays connected: an open tab left idle
        left = cs.session_dirs()
        f.outcomes.append(Outcome("upload copy + Evaluate downloads in the session dir, session dropped",
                                  "handled" if in_dir and not set(left) & set(mine) else "leaked",
                                  f"{in_dir} files in {mine} before; dirs left after the TTL: {left}"))
        cached = [p for p in (Path(d) for d in downloads if d) if p.exists()]
        f.outcomes.append(Outcome("Gradio's cached copies of the downloads", "handled" if not cached else "missed",
                                  f"{len(cached)} still in GRADIO_TEMP_DIR (Blocks(delete_cache=...) deletes them "
                                  f"after max(60, TTL) = {max(60, ttl):.0f} s, on a {max(60, min(600, ttl)):.0f} s "
                                  "schedule)"))
        empty = [p for p in by_uploads if p.exists()]
        f.outcomes.append(Outcome("ordinary uploads (2 files): loose temp files", "leaked" if empty else "handled",
                                  f"{len(empty)} empty tmp* file(s) left in GRADIO_TEMP_DIR for good: gradio/components/"
                                  "file.py _process_single_file makes a NamedTemporaryFile(delete=False) per file and "
                                  "drops it; no temp set holds it, so delete_cache never deletes it"
                                  if empty else "none"))
        still = [p for p in partial if p.exists()]
        f.outcomes.append(Outcome("a partial upload (5 of 20 MiB, then the socket closed)",
                                  "handled" if partial and not still else "leaked" if still else "crashed",
                                  f"{len(still)} temp file(s) of {sum(p.stat().st_size for p in still) / 2**20:.0f} MiB "
                                  f"left in GRADIO_TEMP_DIR ({', '.join(p.name for p in still)}): Gradio's "
                                  "GradioMultiPartParser.parse deletes them only on a multipart error, not on a client "
                                  "disconnect, and delete_cache never knew them" if still else
                                  "no temp file left" if partial else "the partial upload left nothing to check"))
        if memory is not None and memory.dirs_after_exit is not None:
            f.outcomes.append(Outcome(
                "session dirs of live sessions once the server exited", "handled" if not memory.dirs_after_exit
                else "leaked", f"{memory.dirs_after_exit} left on disk by the memory run's server (uploads inside): "
                "workspace.sweep only knows the dirs of its own process (_last_used), so a restart never removes them"
                if memory.dirs_after_exit else "none"))
        for o in f.outcomes:
            log(f"    {o.status:12s} {o.name:44s} {o.message[:150]}")
        with contextlib.suppress(Exception):
            c.close()
    for c in clients:
        with contextlib.suppress(Exception):
            c.close()
    return findings


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def print_findings(findings: list[Finding], log: Callable[[str], None] = print) -> None:
    rows = [[f.key, f.title, f.checked, len(f.outcomes), f.count("handled"), f.count("crashed"), f.count("leaked"),
             f.count("server error"), f.count("missed"), f.note] for f in findings]
    print_table("findings of the public-Space issue (handled = a clear message / the target met)",
                ["#", "finding", "checked", "tried", "handled", "crashed", "leaked", "server err", "missed", "note"],
                rows, log)
    bad = [(f.key, o) for f in findings for o in f.outcomes if o.status != "handled"]
    if bad:
        log("\n  not handled:")
        for key, o in bad:
            log(f"    {key:3s} {o.status:12s} {o.name}: {o.message[:300]}")


# -------------------------------------------------------------------------------------------------------- XSS

XSS_PAYLOADS = [
    "<script>window.__pwned = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned='img'; alert('img')\">",
    "<svg onload=\"window.__pwned='svg'\"><circle r=5></circle></svg>",
    "<a href=\"javascript:window.__pwned='link'\" id=\"pwn-link\">click me</a>",
    "[markdown link](javascript:window.__pwned='mdlink')",
    "![markdown image](http://evil.example/pixel.png) ![js](javascript:window.__pwned='mdimg')",
    "${window.__pwned='template'} `${alert('template')}` {{constructor.constructor('window.__pwned=1')()}}",
    "<iframe src=\"javascript:window.top.__pwned='iframe'\"></iframe>",
    "<details open ontoggle=\"window.__pwned='details'\">x</details>",
    "<style>@import 'http://evil.example/x.css';</style><body onload=\"window.__pwned='body'\">",
    "\"><script>window.__pwned='attr'</script><input autofocus onfocus=\"window.__pwned='focus'\">",
]


def xss_corpus(folder: Path) -> Path:
    path = folder / "xss-<img src=x onerror=alert('name')>.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, payload in enumerate(XSS_PAYLOADS):
            f.write(json.dumps({"_id": f"x{i}<b onmouseover=alert(1)>", "title": payload,
                                "text": f"volcano lava {payload} eruption"}) + "\n")
        f.write('{"_id": "broken", "text": "<script>alert(\'bad line\')</script>\n')  # a bad line: goes to Problems
    return path


DANGEROUS_DOM = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const v = attr.value || '';
      if (attr.name.startsWith('on') && /__pwned|alert/.test(v)) bad.push(el.tagName + ' ' + attr.name);
      if ((attr.name === 'href' || attr.name === 'src') && /^\\s*javascript:/i.test(v)) bad.push(el.tagName + ' ' + attr.name);
      if (attr.name === 'src' && /evil\\.example/.test(v)) bad.push(el.tagName + ' src');
    }
  }
  for (const s of document.scripts) if (/__pwned/.test(s.textContent)) bad.push('SCRIPT');
  return bad;
}"""


@dataclasses.dataclass
class XssReport:
    payloads: int
    dialogs: list[str]
    pwned: Any
    dangerous_dom: list[str]
    external_requests: list[str]
    shown_as_text: int
    error: str = ""

    @property
    def executed(self) -> int:
        return len(self.dialogs) + (1 if self.pwned else 0) + len(self.dangerous_dom) + len(self.external_requests)


def run_xss(url: str, model: str, folder: str | Path, log: Callable[[str], None] = print) -> XssReport:
    """Load the XSS corpus in Chromium, build, search with a payload; count what ran."""
    from playwright.sync_api import sync_playwright

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    corpus = xss_corpus(folder)
    dialogs: list[str] = []
    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: external.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")) else None)
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Corpus").wait_for(timeout=60_000)
            page.locator("#corpus-files input[type=file]").set_input_files([str(corpus)])
            page.locator("#corpus-files").get_by_text("xss-", exact=False).first.wait_for(timeout=30_000)
            page.locator("#load-files").click()
            page.locator("#corpus-summary").get_by_text("documents from").wait_for(timeout=60_000)
            page.get_by_label("none").first.check()  # one chunk per document
            page.get_by_role("tab", name="Model & index").click()
            box = page.locator("#model input").first
            box.click()
            box.fill(model)
            box.press("Enter")
            page.keyboard.press("Escape")
            page.locator("#build-index").click()
            page.locator("#index-status").get_by_text("Index ready").wait_for(timeout=180_000)
            page.get_by_role("tab", name="Search").click()
            page.locator("#query textarea").fill("volcano <script>window.__pwned='query'</script> "
                                                 "<img src=x onerror=\"window.__pwned='q'\"> ${alert(1)}")
            page.locator("#search-btn").click()
            page.locator("#search-summary").get_by_text("Query embedded").wait_for(timeout=120_000)
            page.locator("#before [role=gridcell]").first.wait_for(timeout=30_000)
            for row in page.locator("#before [role=row]").all()[1:4]:  # select rows: the chunk detail renders
                row.locator("[role=gridcell]").first.click()
                page.wait_for_timeout(300)
            for link in page.locator("a").all():  # click any link text from the corpus; none may run script
                with contextlib.suppress(Exception):
                    if "click me" in (link.inner_text(timeout=500) or ""):
                        link.click(timeout=1000)
            page.get_by_role("tab", name="Corpus").click()
            page.wait_for_timeout(1500)
            text = page.locator("body").inner_text()
            shown = sum(1 for payload in XSS_PAYLOADS if payload.split(">")[0][:20] in text)
            report = XssReport(len(XSS_PAYLOADS), dialogs, page.evaluate("() => window.__pwned || null"),
                               page.evaluate(DANGEROUS_DOM), sorted(set(external)), shown)
        except Exception as exc:
            report = XssReport(len(XSS_PAYLOADS), dialogs, None, [], sorted(set(external)), 0,
                               error=f"{type(exc).__name__}: {_message(exc)[:300]}")
        context.close()
        browser.close()
    if report.error:
        log("  browser run failed: " + report.error)
    return report


# ----------------------------------------------------------------------------------------------------- report

def summary_table(outcomes: list[Outcome], load: LoadReport | None, xss: XssReport | None,
                  peak_mb: float) -> list[tuple[str, str]]:
    count = lambda status: sum(o.status == status for o in outcomes)  # noqa: E731
    rows = [("hostile inputs tried", str(len(outcomes))), ("handled with a message", str(count("handled"))),
            ("crashed (must be 0)", str(count("crashed"))), ("server errors (must be 0)", str(count("server error")))]
    if load is not None:
        rows += [("concurrent clients x searches", f"{load.clients} x {load.searches}"),
                 ("answers received", f"{load.answers} of {load.clients * load.searches}"),
                 ("leaks (must be 0)", str(len(load.leaks))), ("errors under load (must be 0)", str(len(load.errors))),
                 ("search latency p50 / p95", f"{load.percentile(50):.2f} s / {load.percentile(95):.2f} s"),
                 ("index build latency p50 / p95", f"{load.percentile(50, load.build_latencies):.2f} s / "
                                                   f"{load.percentile(95, load.build_latencies):.2f} s"),
                 ("load phase wall time", f"{load.wall_s:.1f} s")]
    if xss is not None:
        rows += [("XSS payloads loaded in Chromium", str(xss.payloads)),
                 ("payloads shown as text", f"{xss.shown_as_text} of {xss.payloads}"),
                 ("scripts executed (must be 0)", str(xss.executed if not xss.error else f"run failed: {xss.error}"))]
    rows.append(("server peak memory (VmHWM)", f"{peak_mb:,.0f} MiB"))
    return rows


def failures(outcomes: list[Outcome], load: LoadReport | None, xss: XssReport | None) -> int:
    bad = sum(o.status != "handled" for o in outcomes)
    if load is not None:
        bad += len(load.leaks) + len(load.errors) + (load.answers != load.clients * load.searches)
    if xss is not None:
        bad += xss.executed + bool(xss.error)
    return bad


def prepare_models(folder: Path, marker: Path) -> dict[str, str]:
    from bge_explorer.models import random_models

    return {"encoder": random_models.build(folder / "tiny-encoder", "encoder"),
            "remote_code": make_remote_code_model(folder / "remote-code-model", marker)}


def model_note(path: str) -> str:
    """Which encoder the runs use, in words."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
        shape = (f"{config.get('model_type', '?')}, hidden {config.get('hidden_size')}, "
                 f"{config.get('num_hidden_layers')} layers, vocab {config.get('vocab_size')}")
    except (OSError, ValueError):
        shape = "?"
    return f"tiny random-weight encoder (bge_explorer.models.random_models, {shape}) at {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--searches", type=int, default=20, help="searches per client (default 20)")
    parser.add_argument("--skip-hostile", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--fairness", action="store_true", help="search latency while another session builds")
    parser.add_argument("--fair-clients", type=int, default=10, help="searching clients (default 10)")
    parser.add_argument("--fair-chunks", type=int, default=20_000, help="chunks of the big build (default 20,000)")
    parser.add_argument("--fair-idle-s", type=float, default=None,
                        help="idle baseline length (default: the big build's time alone, 10 to 60 s)")
    parser.add_argument("--memory", action="store_true", help="server memory as sessions come and go")
    parser.add_argument("--sessions", type=int, default=50, help="sessions of the memory run (default 50)")
    parser.add_argument("--session-parallel", type=int, default=2, help="sessions at a time (default 2)")
    parser.add_argument("--session-chunks", type=int, default=2_000, help="chunks per session (default 2,000)")
    parser.add_argument("--closed-sessions", type=int, default=10,
                        help="then sessions whose tab closes at once (default 10; 0: none)")
    parser.add_argument("--no-memory-probe", action="store_true",
                        help="skip the in-process count of what dropped sessions leave (part of --memory)")
    parser.add_argument("--ttl", type=float, default=10.0, help="BGE_EXPLORER_SESSION_TTL_S of the memory and "
                        "cleanup servers (default 10)")
    parser.add_argument("--findings", action="store_true", help="one row per finding of the public-Space issue")
    parser.add_argument("--all", action="store_true", help="hostile, load, XSS, fairness, memory and findings")
    parser.add_argument("--json", metavar="PATH", help="also write every report as JSON to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, files)")
    args = parser.parse_args(argv)
    new_modes = args.fairness or args.memory or args.findings
    classic = args.all or not new_modes  # the first three modes run by default, or with --all
    fairness_on, memory_on, findings_on = (args.fairness or args.all, args.memory or args.all,
                                           args.findings or args.all)

    work = Path(tempfile.mkdtemp(prefix="bge-robustness-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    marker = work / "REMOTE_CODE_RAN"
    results: dict[str, Any] = {"load_average_start": loadavg()}
    bad = 0
    try:
        t = time.monotonic()
        models = prepare_models(work / "models", marker)
        note = model_note(models["encoder"])
        results["model"] = note
        print(f"load average {loadavg()}; model: {note}")
        if classic:
            files = make_hostile_files(work / "hostile") if not args.skip_hostile else {}
            print(f"prepared models and hostile files in {time.monotonic() - t:.1f} s; starting the app …")
            with Server(work / "classic", work / "models") as server:
                print(f"app at {server.url} (pid {server.process.pid})")
                outcomes: list[Outcome] = []
                load = xss = None
                if not args.skip_hostile:
                    print("\n1. hostile inputs")
                    outcomes = run_hostile(server.url, files, models, marker, server)
                if not args.skip_load:
                    print(f"\n2. {args.clients} concurrent clients x {args.searches} searches")
                    load = run_load(server.url, models["encoder"], work / "load", args.clients, args.searches)
                if not args.skip_browser:
                    print("\n3. XSS payloads in Chromium")
                    if os.path.exists(CHROMIUM):
                        xss = run_xss(server.url, models["encoder"], work / "xss")
                    else:
                        print(f"  skipped: {CHROMIUM} is missing (bash scripts/install-chromium.sh)")
                peak = server.peak_rss_mb()
                if not server.alive():
                    print("the server died:\n" + server.log_tail())
            shutil.rmtree(work / "hostile", ignore_errors=True)
            rows = summary_table(outcomes, load, xss, peak)
            width = max(len(k) for k, _ in rows)
            print("\nsummary\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
            bad += failures(outcomes, load, xss)
            results["classic"] = {"summary": dict(rows), "hostile": [dataclasses.asdict(o) for o in outcomes]}

        fairness = memory = None
        if fairness_on or findings_on:
            small = not fairness_on  # findings alone: a small measurement for row 3
            clients, chunks = (3, 5_000) if small else (args.fair_clients, args.fair_chunks)
            print(f"\nfairness: {clients} clients searching while one session builds {chunks:,} chunks "
                  f"(load average {loadavg()})")
            env = {"BGE_EXPLORER_MAX_CHUNKS": str(max(10_000, chunks + chunks // 5))}
            with Server(work / "fairness", work / "models", env=env) as server:
                fairness = run_fairness(server.url, models["encoder"], work / "fairness" / "files", clients, chunks,
                                        idle_s=args.fair_idle_s)
            fairness.model = note
            fairness.print()
            bad += not fairness.met
            results["fairness"] = dataclasses.asdict(fairness) | {"p95_ratio": fairness.p95_ratio,
                                                                  "build_slowdown": fairness.build_slowdown,
                                                                  "stalled": fairness.stalled}
        if memory_on or findings_on:
            small = not memory_on
            sessions, closed = (5, 2) if small else (args.sessions, args.closed_sessions)
            print(f"\nmemory: {sessions} sessions ({args.session_parallel} at a time), TTL {args.ttl:g} s "
                  f"(load average {loadavg()})")
            env = {"BGE_EXPLORER_SESSION_TTL_S": f"{args.ttl:g}"}
            with Server(work / "memory", work / "models", env=env) as server:
                memory = run_memory(server, models["encoder"], work / "memory" / "files", sessions,
                                    args.session_parallel, args.session_chunks, closed=closed)
            memory.dirs_after_exit = len(server.session_dirs())  # the server has exited
            memory.print()
            bad += not memory.met
            results["memory"] = dataclasses.asdict(memory) | {"ratio": memory.ratio}
        if findings_on:
            print(f"\nfindings (load average {loadavg()})")
            with Server(work / "findings", work / "models") as server, \
                    Server(work / "cleanup", work / "models", env={"BGE_EXPLORER_SESSION_TTL_S": f"{args.ttl:g}"}
                           ) as cleanup:
                findings = run_findings(server, models, work / "findings" / "files", fairness, memory, cleanup)
                if not server.alive():
                    print("the findings server died:\n" + server.log_tail())
            print_findings(findings)
            bad += sum(not f.ok for f in findings)
            results["findings"] = [dataclasses.asdict(f) for f in findings]
        if memory_on and not args.no_memory_probe:  # last: it launches the app in this process
            print(f"\nmemory, in-process probe (load average {loadavg()})")
            results["memory_probe"] = probe_residue(models["encoder"], work / "probe")
        results["load_average_end"] = loadavg()
        print(f"\nload average at the start {results['load_average_start']}, at the end {results['load_average_end']}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        print("\nPASS" if bad == 0 else f"\nFAIL ({bad} problem(s))")
        return 0 if bad == 0 else 1
    finally:
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
