"""A run's model behind a network address, speaking TensorFlow Serving's REST API (FastAPI + uvicorn).

`python -m core serve RUN` answers, for each served run under its NAME:

- `GET  /v1/models/NAME`: the model's status (TensorFlow Serving's `model_version_status`);
- `GET  /v1/models/NAME/metadata`: the input and output signature, and the labels in output order;
- `POST /v1/models/NAME:predict`: `{"instances": [...]}`, each instance an S x S x 3 array of 0-255
  RGB pixels or `{"b64": "<an image file, base64>"}`, answered `{"predictions": [[p, ...], ...]}`
  (class probabilities in label order);
- `POST /v1/models/NAME:classify`: one or more image files as a multipart upload (`curl -F
  file=@photo.jpg`), answered with labels and probabilities exactly as `python -m core predict`; a file
  that cannot be read is marked with its sentence in its place, and the others are answered.

The server is a thin face over the prediction code the command line and the Predictions page use
(`core.engine.evaluation.predict` and its kind's decoder, `core.engine.inputs`), so the
three give the same answers. Every bad request is one sentence in TensorFlow Serving's
`{"error": ...}` shape, never a traceback: 400 for a malformed body, 401 without the key
(TL_SERVE_KEY), 404 for an unknown model (naming the served models only to callers with the key), 413 for a body over the import cap. FastAPI, pydantic and
TensorFlow are imported inside the functions that need them, so the Export page and the command
line can use the text helpers below without them.
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of the routes defined inside
# create_app(), where Request is a local name, so they must be evaluated where they are written.
import base64
import binascii
import functools
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from core.data.limits import ImportLimits, size_words
from core.engine import evaluation
from core.engine import inputs as model_inputs
from core.errors import DatasetError, ServingError, TransferLabError
from core.ship import runfiles
from core.store import runs

log = logging.getLogger("transferlab.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501  # TensorFlow Serving's REST port
VERSION = "1"  # one version per served run; the tf-serving export's folder is NAME/1/
SIGNATURE = "serving_default"
INPUT, OUTPUT = "image", "probabilities"  # the SavedModel export's signature names
# Images in one request: bounds the memory a request can take (each is S x S x 3 float32 once decoded).
MAX_INSTANCES = 64
# Requests handled at once; more are answered 503 by uvicorn instead of piling up in memory.
MAX_CONCURRENT = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# ---------------------------------------------------------------- the served models


@dataclass
class ServedModel:
    """One run's model, loaded once, under the name its address uses."""

    name: str
    run_dir: Path
    classes: list[str]
    image_size: int
    model: Any
    # Keras models are not made for concurrent calls; requests take turns on each model.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    kind: str = "image"  # the kind of data it takes (core.spec.kinds): how a b64 file is decoded

    def probabilities(self, arrays: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of float 0-255 images, computed as `predict` computes them."""
        chunk = evaluation.PREDICT_CHUNK
        with self.lock:
            return np.concatenate([self.model.predict_on_batch(arrays[i : i + chunk])
                                   for i in range(0, len(arrays), chunk)])

    def classify(self, files: list[tuple[str, bytes]], top_k: int) -> list[dict[str, Any]]:
        """`python -m core predict`'s answers for image files (the very same function)."""
        with self.lock:
            return evaluation.predict(self.run_dir, files, top_k=top_k, model=self.model)


def default_name(run_dir: Path) -> str:
    """The name a run is served under unless told otherwise: its dataset's name (`flowers-1a2b3c...` -> `flowers`)."""
    dataset_id = runs.load_config(run_dir).dataset_id
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset_id.rsplit("-", 1)[0])[:64].strip("-._")
    return name if _NAME.match(name) else "model"


def check_name(name: str) -> str:
    """A model name usable in an address (letters, digits, '-', '_', '.'); ServingError otherwise."""
    if not _NAME.match(name):
        raise ServingError(f"The model name '{name}' cannot be part of an address; use letters, digits, '-', '_' "
                           "or '.' (at most 64, starting with a letter or digit).")
    return name


def load(run_dir: Path, name: str | None = None) -> ServedModel:
    """A finished run's model, loaded and run once (so the first request is not the slow one)."""
    name = check_name(name or default_name(run_dir))
    state = runs.read_status(run_dir).get("state", "unknown")
    if state not in runfiles.EXPORTABLE_STATES or not (run_dir / "model.keras").is_file():
        raise ServingError(f"Run '{run_dir.name}' has no finished model to serve yet (state: {state}).")
    config = runs.load_config(run_dir)
    served = ServedModel(name, run_dir, runfiles.classes(run_dir), config.image_size, evaluation.load_model(run_dir),
                         kind=model_inputs.of_config(config).id)
    served.probabilities(model_inputs.blank(config))
    return served


def load_all(pairs: list[tuple[Path, str | None]]) -> list[ServedModel]:
    """Several runs, each under its own name; ServingError when two would share one."""
    served: list[ServedModel] = []
    for run_dir, name in pairs:
        wanted = check_name(name or default_name(run_dir))
        if any(m.name == wanted for m in served):
            raise ServingError(f"Two runs would be served as '{wanted}'; give each its own name with --name.")
        served.append(load(run_dir, wanted))
    return served


# ---------------------------------------------------------------- what the answers hold


def _tensor(shape: list[int]) -> dict[str, Any]:
    return {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": str(n), "name": ""} for n in shape],
                                                  "unknown_rank": False}}


def status_body() -> dict[str, Any]:
    """GET /v1/models/NAME, as TensorFlow Serving answers it for a loaded model."""
    return {"model_version_status": [{"version": VERSION, "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def metadata_body(served: ServedModel) -> dict[str, Any]:
    """GET /v1/models/NAME/metadata: TensorFlow Serving's signature block, plus the labels and the run."""
    size = served.image_size
    kind = model_inputs.get(served.kind)
    shape, _, name = kind.signature(size)
    signature = {
        "inputs": {name: {**_tensor([-1, *shape]), "name": f"{SIGNATURE}_{name}:0"}},
        "outputs": {OUTPUT: {**_tensor([-1, len(served.classes)]), "name": "StatefulPartitionedCall:0"}},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": VERSION},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
        "labels": served.classes,
        "image_size": size,
        "input": f"{kind.words}, {' x '.join(map(str, shape))} per item; or {{\"b64\": ...}}, a file in base64",
        "output": "one probability per label, in the order of 'labels'",
        "run": served.run_dir.name,
    }


@functools.lru_cache(maxsize=1)
def _predict_request() -> Any:
    """The pydantic model of a :predict body (made on first use: pydantic is not imported with this module)."""
    from pydantic import BaseModel, ConfigDict

    class PredictRequest(BaseModel):
        """TensorFlow Serving's predict body: row format (`instances`) or columnar (`inputs`)."""

        model_config = ConfigDict(extra="forbid")
        signature_name: str = SIGNATURE
        instances: Any = None
        inputs: Any = None

    return PredictRequest


def _validation_sentence(exc: Any) -> str:
    """One sentence for pydantic's first complaint about a :predict body."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    if error["type"] == "json_invalid":
        return f"The request body is not valid JSON ({error['msg'].removeprefix('Invalid JSON: ')})."
    if error["type"] == "model_type":
        return 'The request body must be a JSON object such as {"instances": [...]}.'
    if error["type"] == "extra_forbidden":
        return (f"The request has a field '{where}' that this server does not know; send "
                '{"instances": [...]} (or {"inputs": [...]}).')
    return f"The field '{where}' of the request is wrong: {error['msg']}."


def _unwrap(value: Any, name: str = INPUT) -> Any:
    """An instance named by the signature's one input (`{"image": ...}`, `{"waveform": ...}`) is that input."""
    if isinstance(value, dict) and set(value) == {name}:
        return value[name]
    return value


def instance_array(served: ServedModel, value: Any, number: int, limits: ImportLimits) -> np.ndarray:
    """One instance as the model takes it: an S x S x 3 array of 0-255 pixels, or a decoded b64 image file."""
    size = served.image_size
    kind = model_inputs.get(served.kind)
    shape, _, name = kind.signature(size)
    value = _unwrap(value, name)
    if isinstance(value, str):  # a text, for a model of texts: its kind reads it as a handed-in text
        try:
            return kind.decode(value.encode("utf-8"), size, limits)
        except DatasetError as exc:
            raise ServingError(f"Instance {number} is {exc}.") from None
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(f"Instance {number} is an object but not {{\"b64\": \"...\"}}; send an image file as "
                               "base64 text under 'b64', or the pixels as an array.")
        try:
            data = base64.b64decode(value["b64"].replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(f"Instance {number}'s 'b64' is not valid base64 text.") from None
        try:
            return model_inputs.get(served.kind).decode(data, size, limits)
        except DatasetError as exc:
            raise ServingError(f"Instance {number} is {exc}.") from None
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ServingError(f"Instance {number} is neither an array of numbers of shape {size} x {size} x 3 nor "
                           '{"b64": "..."}.') from None
    if array.shape != shape:
        got = " x ".join(map(str, array.shape)) or "a single number"
        raise ServingError(f"Instance {number} has shape {got}; this model takes {' x '.join(map(str, shape))} "
                           f"{kind.words} (or a file as {{\"b64\": \"...\"}}, which is decoded for you).")
    low, high = kind.value_range
    if not np.isfinite(array).all() or array.min() < low or array.max() > high:
        raise ServingError(f"Instance {number} has values outside {low:g}-{high:g}; send raw {kind.words} (the "
                           "model scales them itself).")
    return array


def predict_answer(served: ServedModel, body: bytes, limits: ImportLimits) -> dict[str, Any]:
    """The answer to POST /v1/models/NAME:predict; ServingError (400) for a malformed body."""
    from pydantic import ValidationError

    try:
        request = _predict_request().model_validate_json(body)
    except ValidationError as exc:
        raise ServingError(_validation_sentence(exc)) from None
    if request.signature_name not in (SIGNATURE, ""):
        raise ServingError(f"This model has one signature, '{SIGNATURE}'; '{request.signature_name}' does not exist.")
    if (request.instances is None) == (request.inputs is None):
        raise ServingError('Send the images as {"instances": [...]} (or, columnar, {"inputs": [...]}), one of the two.')
    rows = request.instances if request.instances is not None else _unwrap(request.inputs)
    if isinstance(rows, dict) and "b64" in rows:
        rows = [rows]
    if not isinstance(rows, list) or not rows:
        raise ServingError("'instances' must be a non-empty list with one entry per image.")
    if len(rows) > MAX_INSTANCES:
        raise ServingError(f"A request may hold at most {MAX_INSTANCES} images; this one has {len(rows)}. Send them "
                           "in several requests.")
    arrays = np.stack([instance_array(served, value, i + 1, limits) for i, value in enumerate(rows)])
    probabilities = served.probabilities(arrays).tolist()
    return {"predictions": probabilities} if request.instances is not None else {"outputs": probabilities}


def classify_answer(served: ServedModel, files: list[tuple[str, bytes]], top_k: int | None) -> dict[str, Any]:
    """The answer to a multipart POST /v1/models/NAME:classify: `predict`'s results for each file, in order; a
    file that cannot be read has {"file", "error"} in its place."""
    if not files:
        raise ServingError("Send the images as files in a multipart form, e.g. curl -F file=@photo.jpg URL.")
    if len(files) > MAX_INSTANCES:
        raise ServingError(f"A request may hold at most {MAX_INSTANCES} images; this one has {len(files)}.")
    k = len(served.classes) if top_k is None else top_k
    if not 1 <= k <= len(served.classes):
        raise ServingError(f"top_k must be between 1 and {len(served.classes)} (the number of labels).")
    results = served.classify(files, k)
    # One unreadable file does not cost the others their answers: it keeps its place, marked with its
    # sentence; only a request where nothing could be read is refused.
    if all("error" in result for result in results):
        raise ServingError(f"Nothing was classified: {results[0]['error']}")
    return {"model": served.name, "results": results}


# ---------------------------------------------------------------- the web application


def _capped(receive: Callable[[], Any], limit: int) -> Callable[[], Any]:
    """The ASGI receive channel of a request, refusing (413) once its body passes `limit` bytes."""
    from fastapi import HTTPException

    seen = 0

    async def limited() -> Any:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return limited


def _too_large(limit: int) -> str:
    return (f"The request is larger than {size_words(limit)}, the most this server accepts (TL_IMPORT_MAX_FILE_MB); "
            "send smaller images or fewer at a time.")


def create_app(models: list[ServedModel], key: str | None = None, limits: ImportLimits | None = None) -> Any:
    """The FastAPI application serving these models (key: the API key every request must carry, or None)."""
    from fastapi import Depends, FastAPI

    limits = limits or ImportLimits.from_env()
    by_name = {m.name: m for m in models}
    app = FastAPI(title="TransferLab model server", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_authoriser(key))])
    _add_model_routes(app, models, limits)
    _add_error_handlers(app, by_name, key)
    return app


def _key_given(request: Any, key: str | None) -> bool:
    """Whether a request carries the server's API key (always, when the server has none)."""
    if key is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), key.encode())


def _authoriser(key: str | None) -> Callable[..., None]:
    """The dependency every route has: 401 without the key."""
    from fastapi import HTTPException, Request

    def authorised(request: Request) -> None:
        if not _key_given(request, key):
            raise HTTPException(401, "This server needs its API key: send the header 'Authorization: Bearer KEY' "
                                     "(the key is the server's TL_SERVE_KEY).", headers={"WWW-Authenticate": "Bearer"})

    return authorised


def _answerer(limits: ImportLimits) -> Callable[..., Any]:
    """answer(served, verb, request, top_k): a :predict or :classify request's body read (capped) and answered."""
    from fastapi import HTTPException, Request

    async def body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_file_bytes:
            raise HTTPException(413, _too_large(limits.max_file_bytes))
        return await Request(request.scope, _capped(request.receive, limits.max_file_bytes)).body()

    async def answer(served: ServedModel, verb: str, request: Request, top_k: int | None) -> Any:
        data = await body(request)
        if verb == "predict":
            return await _in_thread(predict_answer, served, data, limits)
        kind = request.headers.get("content-type", "")
        if not kind.lower().startswith("multipart/form-data"):
            raise ServingError(f":classify takes a multipart upload of image files (curl -F file=@photo.jpg), not "
                               f"'{kind or 'no content type'}'; for JSON use :predict.")
        replay = _replay(data)
        form = await Request(request.scope, replay).form(max_files=MAX_INSTANCES, max_fields=MAX_INSTANCES)
        try:
            files = [(item.filename or field_name, await item.read()) for field_name, item in form.multi_items()
                     if not isinstance(item, str)]
        finally:
            await form.close()
        return await _in_thread(classify_answer, served, files, top_k)

    return answer


def _add_model_routes(app: Any, models: list[ServedModel], limits: ImportLimits) -> None:
    """TensorFlow Serving's addresses: status, metadata, :predict and :classify, with or without a version."""
    from fastapi import HTTPException, Request

    by_name = {m.name: m for m in models}
    answer = _answerer(limits)

    def model(name: str, version: str | None = None) -> ServedModel:
        # Only callers with the key get here (the app's dependency runs first), so naming the models is fine.
        if name not in by_name:
            raise HTTPException(404, f"There is no model '{name}' here; this server has {_names(by_name)}.")
        if version is not None and version != VERSION:
            raise HTTPException(404, f"Model '{name}' has only version {VERSION}, not '{version}'.")
        return by_name[name]

    def split_verb(name_verb: str) -> tuple[str, str]:
        name, sep, verb = name_verb.rpartition(":")
        if not sep or verb not in ("predict", "classify"):
            raise HTTPException(404, f"'{name_verb}' is not something a model does here; POST to NAME:predict "
                                     "(JSON) or NAME:classify (a multipart image upload).")
        return name, verb

    @app.get("/v1/models/{name}")
    def status(name: str) -> Any:
        model(name)
        return status_body()

    @app.get("/v1/models/{name}/metadata")
    def metadata(name: str) -> Any:
        return metadata_body(model(name))

    @app.get("/v1/models/{name}/versions/{version}")
    def version_status(name: str, version: str) -> Any:
        model(name, version)
        return status_body()

    @app.get("/v1/models/{name}/versions/{version}/metadata")
    def version_metadata(name: str, version: str) -> Any:
        return metadata_body(model(name, version))

    # One route per address shape, split on ':' here: '{name}:predict' and '{name}:classify' as two
    # routes would collide in the router.
    @app.post("/v1/models/{name_verb}")
    async def act(name_verb: str, request: Request, top_k: int | None = None) -> Any:
        name, verb = split_verb(name_verb)
        return await answer(model(name), verb, request, top_k)

    @app.post("/v1/models/{name}/versions/{version_verb}")
    async def version_act(name: str, version_verb: str, request: Request, top_k: int | None = None) -> Any:
        version, verb = split_verb(version_verb)
        return await answer(model(name, version), verb, request, top_k)

    @app.get("/v1/models")
    def listing() -> Any:
        return {"models": [{"name": m.name, "version": VERSION, "labels": m.classes, "run": m.run_dir.name}
                           for m in models]}


def _add_error_handlers(app: Any, by_name: dict[str, ServedModel], key: str | None) -> None:
    """Every failure as TensorFlow Serving's {"error": sentence}; model names only to callers with the key."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # An address no route matches is answered before the key is checked: name the models only to
        # a caller who sent the key.
        names = f" ({_names(by_name)})" if _key_given(request, key) else ""
        message = exc.detail if isinstance(exc.detail, str) and exc.detail.endswith(".") else {
            404: f"There is nothing at {request.url.path}; the models are at /v1/models/NAME{names}.",
            405: f"{request.method} is not allowed at {request.url.path}; GET the status and metadata, POST "
                 ":predict and :classify.",
        }.get(exc.status_code, f"The request failed ({exc.detail}).")
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
        return JSONResponse({"error": f"The parameter '{where}' is wrong: {first['msg']}."}, 400)

    @app.exception_handler(TransferLabError)
    async def plain_error(request: Request, exc: TransferLabError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"The server hit an internal error ({type(exc).__name__}); the details are in "
                                      "its log."}, 500)


def _names(by_name: dict[str, ServedModel]) -> str:
    return ", ".join(f"'{n}'" for n in by_name) or "no models"


def _replay(data: bytes) -> Callable[[], Any]:
    """An ASGI receive channel that hands over an already-read body once."""
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run model work off the event loop, so status requests are answered while a model computes."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


# ---------------------------------------------------------------- running it


def is_loopback(host: str) -> bool:
    """True when only programs on this computer can reach the address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); ServingError with a sentence when it cannot be had."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror:
        raise ServingError(f"'{host}' is not an address of this computer; use 127.0.0.1 (this computer only) or "
                           "0.0.0.0 (every network it is on).") from None
    except OSError as exc:
        raise ServingError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}); another program may use that "
                           "port: choose another with --port.") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, sock: socket.socket) -> str:
    """The base address a client uses for a bound socket."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{sock.getsockname()[1]}"


def _server(models: list[ServedModel], key: str | None, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(create_app(models, key), log_level=log_level, limit_concurrency=MAX_CONCURRENT,
                            timeout_keep_alive=5, server_header=False)
    return uvicorn.Server(config)


def run_server(models: list[ServedModel], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, key: str | None = None,
               ready: Callable[[str], None] | None = None, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C); `ready` gets the base address once the port is bound."""
    sock = bind(host, port)
    server = _server(models, key, log_level)
    if ready is not None:
        ready(url_of(host, sock))
    server.run(sockets=[sock])


@contextmanager
def background(models: list[ServedModel], host: str = DEFAULT_HOST, port: int = 0, key: str | None = None,
               log_level: str = "warning") -> Iterator[str]:
    """The server in a thread of this process for the duration of a `with` block; yields its base address."""
    sock = bind(host, port)
    server = _server(models, key, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="transferlab-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        if not server.started:
            raise ServingError("The model server did not start; its log says why.")
        yield url_of(host, sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------- how to call it, in words and code


def client_examples(name: str, labels: list[str], image_size: int, url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
                    key: bool = False) -> dict[str, str]:
    """The curl lines and a ten-line Python client for a served model, filled in with its name and labels."""
    auth = ' -H "Authorization: Bearer $TL_SERVE_KEY"' if key else ""
    base = f"{url}/v1/models/{name}"
    curl = "\n".join([
        f"curl{auth} {base}   # status",
        f"curl{auth} {base}/metadata   # signature and labels",
        f"curl{auth} -F file=@photo.jpg {base}:classify",
        "# TensorFlow Serving's way: the image file in base64 inside JSON",
        "(printf '{\"instances\": [{\"b64\": \"'; base64 -w0 photo.jpg; printf '\"}]}') \\",
        f"  | curl{auth} -H 'Content-Type: application/json' -d @- {base}:predict",
    ])
    header = ', "Authorization": "Bearer " + os.environ["TL_SERVE_KEY"]' if key else ""
    python = "\n".join([
        f"import base64, json, urllib.request{', os' if key else ''}",
        "",
        f'URL = "{base}:predict"',
        f"LABELS = {json.dumps(labels)}",
        'with open("photo.jpg", "rb") as f:',
        '    body = json.dumps({"instances": [{"b64": base64.b64encode(f.read()).decode()}]}).encode()',
        f'request = urllib.request.Request(URL, data=body, headers={{"Content-Type": "application/json"{header}}})',
        "with urllib.request.urlopen(request) as response:",
        '    probabilities = json.load(response)["predictions"][0]',
        "best = max(range(len(LABELS)), key=lambda i: probabilities[i])",
        "print(LABELS[best], round(probabilities[best], 3))",
    ])
    return {"curl": curl, "python": python}


def serve_command(run_id: str, name: str, workspace: str | None = None, host: str = DEFAULT_HOST,
                  port: int = DEFAULT_PORT) -> str:
    """The command line that serves one run under a name."""
    parts = ["python -m core serve", run_id, "--name", name]
    if workspace:
        parts += ["--workspace", f"'{workspace}'" if " " in workspace else workspace]
    if host != DEFAULT_HOST:
        parts += ["--host", host]
    if port != DEFAULT_PORT:
        parts += ["--port", str(port)]
    return " ".join(parts)


def docker_lines(name: str, image_size: int) -> str:
    """How to serve the tf-serving export with TensorFlow Serving's own Docker image, and ask it."""
    base = f"http://localhost:{DEFAULT_PORT}/v1/models/{name}"
    return "\n".join([
        "unzip tf_serving.zip && cd tf_serving",
        f'docker run --rm -p {DEFAULT_PORT}:{DEFAULT_PORT} -v "$PWD/{name}:/models/{name}" -e MODEL_NAME={name} '
        "tensorflow/serving",
        f"curl {base}                                         # status",
        f"curl -H 'Content-Type: application/json' -d @request.json {base}:predict",
    ])


def request_json(array: np.ndarray) -> str:
    """A :predict body holding one image as a pixel array (what tensorflow/serving takes for this model)."""
    return json.dumps({"instances": [np.round(array, 2).tolist()]}, separators=(",", ":"))


def tf_serving_readme(name: str, labels: list[str], image_size: int, example: str | None = None) -> str:
    """README.md of the tf-serving export: the folder layout, the docker line, curl and Python examples."""
    base = f"http://localhost:{DEFAULT_PORT}/v1/models/{name}"
    listing = "\n".join(f"{i}. {label}" for i, label in enumerate(labels))
    expected = f"\nFor `request.json` (one of the run's test images) the model answers **{example}** first.\n" if example else ""
    return f"""# {name}: a TransferLab model for TensorFlow Serving

`{name}/1/` is a plain SavedModel (version 1) with one signature, `serving_default`:
`{INPUT}` (float32, N x {image_size} x {image_size} x 3, raw RGB pixels 0-255; the model scales them
itself) -> `{OUTPUT}` (float32, N x {len(labels)}, one per label, in the order of `labels.txt`).

## Serve it

```bash
{docker_lines(name, image_size)}
```

The container answers TensorFlow Serving's REST API on port {DEFAULT_PORT}. The `-p` mapping makes it
reachable from other computers too; use `-p 127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}` to keep it on this one.
{expected}
## Ask it from Python

TensorFlow Serving takes this model's input as pixel arrays (an image file as `{{"b64": ...}}` works only
with TransferLab's own server, `python -m core serve`):

```python
import json, urllib.request
import numpy as np
from PIL import Image

LABELS = {json.dumps(labels)}
image = Image.open("photo.jpg").convert("RGB").resize(({image_size}, {image_size}), Image.BILINEAR)
body = json.dumps({{"instances": [np.asarray(image, dtype=float).tolist()]}}).encode()
request = urllib.request.Request("{base}:predict", data=body, headers={{"Content-Type": "application/json"}})
probabilities = json.load(urllib.request.urlopen(request))["predictions"][0]
print(LABELS[int(np.argmax(probabilities))])
```

TransferLab resizes with TensorFlow's bilinear `tf.image.resize` (after turning the photo upright by
its EXIF tag); Pillow's resize above is close but not bit for bit the same, so probabilities can differ
in the third decimal.

## Labels

{listing}
"""


def tf_serving_readme_text(name: str, labels: list[str], input_name: str, token_ids: bool, image_size: int,
                           example: str | None = None) -> str:
    """README.md of a text model's tf-serving export: what its SavedModel takes (strings, or WordLlama token ids
    where the tokenizer cannot run inside TensorFlow), the docker line and a Python example."""
    base = f"http://localhost:{DEFAULT_PORT}/v1/models/{name}"
    listing = "\n".join(f"{i}. {label}" for i, label in enumerate(labels))
    expected = f"\nFor `request.json` (one of the run's texts) the model answers **{example}** first.\n" if example else ""
    if token_ids:
        takes = (f"`{input_name}` (int32, N x tokens: WordLlama token ids padded with -1; its tokenizer cannot run "
                 "inside TensorFlow, so turn texts into ids first, as below)")
        make = ('from tokenizers import Tokenizer  # pip install tokenizers; tokenizer.json ships with the savedmodel export\n'
                'ids = Tokenizer.from_file("tokenizer.json").encode(text, add_special_tokens=False).ids\n'
                'body = json.dumps({"instances": [ids]}).encode()')
    else:
        takes = f"`{input_name}` (string, N texts; the model splits them into words itself)"
        make = 'body = json.dumps({"instances": [text]}).encode()'
    return f"""# {name}: a TransferLab text model for TensorFlow Serving

`{name}/1/` is a plain SavedModel (version 1) with one signature, `serving_default`:
{takes} -> `{OUTPUT}` (float32, N x {len(labels)}, one per label, in the order of `labels.txt`).

## Serve it

```bash
{docker_lines(name, image_size)}
```
{expected}
## Ask it from Python

```python
import json, urllib.request

LABELS = {json.dumps(labels)}
text = "a text to classify"
{make}
request = urllib.request.Request("{base}:predict", data=body, headers={{"Content-Type": "application/json"}})
probabilities = json.load(urllib.request.urlopen(request))["predictions"][0]
print(LABELS[max(range(len(LABELS)), key=probabilities.__getitem__)])
```

## Labels

{listing}
"""
