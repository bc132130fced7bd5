"""Robustness of the app as a public Space meets it: hostile inputs, many users at once, XSS in a browser.

Launches ``app.py`` in a subprocess on 127.0.0.1 (a free port; no other network), with tiny random-weight
models (``bge_explorer.models.random_models``) so that a run takes minutes, then:

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
   127.0.0.1.

    python bench/robustness.py                      # everything, 20 clients x 20 searches
    python bench/robustness.py --clients 5 --searches 5 --skip-browser

Exit status 0 when crashed, leaks, errors under load and scripts executed are all 0.
"""
from __future__ import annotations

import argparse
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

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server process (VmHWM), MiB."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        try:
            import psutil

            return psutil.Process(self.process.pid).memory_info().rss / 2**20
        except Exception:
            return float("nan")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


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


def hostile_cases(files: dict[str, Path], models: dict[str, str], marker: Path) -> list[tuple[str, str, Callable, list[str]]]:
    """(name, which client: 'fresh' / 'indexed', call(client) -> value, substrings one of which the message must
    hold). A call that returns normally is judged on its returned text (e.g. a problem listed, a note)."""
    from gradio_client import handle_file

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

    def upload_and_build(name: str) -> Callable:
        def call(c):
            upload(name)(c)
            return c.predict(models["encoder"], "auto", "auto", "tokens", 256, 32, api_name="/build_index")
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
        ("a single 50 MB line", "fresh", upload("long_line"), ["1</b> documents", "over the limit"]),
        ("a single 50 MB line, indexed by tokens", "fresh", upload_and_build("long_line"),
         ["over the limit of 50,000 chunks"]),
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
    for name, which, call, expected in hostile_cases(files, models, marker):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--searches", type=int, default=20, help="searches per client (default 20)")
    parser.add_argument("--skip-hostile", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, files)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bge-robustness-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    marker = work / "REMOTE_CODE_RAN"
    try:
        t = time.monotonic()
        models = prepare_models(work / "models", marker)
        files = make_hostile_files(work / "hostile") if not args.skip_hostile else {}
        print(f"prepared models and hostile files in {time.monotonic() - t:.1f} s; starting the app …")
        with Server(work, work / "models") as server:
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
        rows = summary_table(outcomes, load, xss, peak)
        width = max(len(k) for k, _ in rows)
        print("\nsummary\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
        bad = failures(outcomes, load, xss)
        print("\nPASS" if bad == 0 else f"\nFAIL ({bad} problem(s))")
        return 0 if bad == 0 else 1
    finally:
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
