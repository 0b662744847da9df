"""The studio's HTTP side: the JSON API, the event stream of a job, its picture, the page, and the
API's documentation at ``/docs`` (Swagger UI served from this machine, not from a CDN).

Every answer that is not a success is JSON ``{"detail": "one readable line"}``."""

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated, AsyncIterable

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import one_line
from engine.images import ImageError
from engine.settings import DEFAULTS, SettingsError

from .inputs import (MAX_FIELDS, MAX_FILES, BadInput, bundled_names, bundled_path, read_job, refused, request_schema,
                     settings_description)
from .files import DiskFull
from .jobs import FINISHED, NotCancellable, QueueFull, Studio

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_MB = 25
POLL = 0.1               # s between looks at a followed job (a dict read; the worker never waits for it)
PROGRESS_EVERY = 0.25    # s: progress alone is sent at most this often; a new preview or state at once
# The page and its pictures come from this server only.
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'"


def create_app(studio: Studio, *, max_upload_mb: int = MAX_UPLOAD_MB) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(studio.close)

    app = FastAPI(title="nst studio", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  # FastAPI's OpenTelemetry off, its exporters too (FASTAPI_OTEL_AUTO_CONFIGURE would add
                  # them): nothing leaves the machine, and a request costs no spans
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                             "auto_configure": False},
                  description="Neural style transfer jobs: submit pictures and settings, follow the picture as it "
                              "forms, stop it, fetch the result. Errors are `{\"detail\": \"one line\"}`.")
    _errors(app, max_upload_mb)
    limit = max_upload_mb * 2 ** 20

    app.add_middleware(UploadLimit, limit=limit, detail=f"the upload is larger than the {max_upload_mb} MB limit")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        if not request.url.path.startswith("/docs"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    def existing(job_id: str) -> str:
        if studio.snapshot(job_id) is None:
            raise HTTPException(404, f"no job {job_id}")
        return job_id

    @app.post("/api/jobs", status_code=202, max_body_size=limit, summary="Submit a picture to make",
              openapi_extra={"requestBody": request_schema()},
              responses={202: {"description": "the job, queued"}, 400: {"description": "an image file refused"},
                         413: {"description": "over the upload limit, or pictures of more decoded pixels than "
                                               "a job takes"},
                         422: {"description": "a setting refused"},
                         429: {"description": "the line is full (Retry-After)"},
                         507: {"description": "the server's disk cannot keep the job"}})
    async def create_job(request: Request) -> JSONResponse:
        """Checks the settings and the pictures (the CLI's own checks, every field read by the
        settings' declarations) and queues the job: 202 with the job, 422 for a setting, 400 for an
        image file, 413 for an upload over the limit, 429 with Retry-After when the line is full."""
        if len(studio.waiting) >= studio.queue_size:   # refused before any picture is decoded
            raise QueueFull(studio.retry_after())
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("multipart/form-data", "application/x-www-form-urlencoded", ""):
            raise BadInput(415, f"a job is sent as multipart/form-data, not {kind[:60]}")
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)
        try:
            # decoding pictures takes a core for a while: not on the event loop
            job = await asyncio.to_thread(lambda: studio.submit(read_job(form)))
        finally:
            await form.close()
        return JSONResponse(studio.snapshot(job.id), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs", summary="This server's jobs, newest first")
    def list_jobs(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict]:
        return studio.history(limit)

    @app.get("/api/jobs/{job_id}", summary="A job: state, place in the line, progress, settings, error")
    def get_job(job_id: Annotated[str, Depends(existing)]) -> dict:
        return studio.snapshot(job_id)

    @app.post("/api/jobs/{job_id}/cancel", summary="Stop a job; a running one keeps its best picture so far")
    def cancel_job(job_id: Annotated[str, Depends(existing)]) -> dict:
        try:
            return studio.cancel(job_id)
        except NotCancellable as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/api/jobs/{job_id}/rerun", status_code=202, summary="Run an interrupted job again, from its kept "
                                                                  "pictures and settings",
              responses={202: {"description": "the job, queued again"}, 409: {"description": "not interrupted"},
                         429: {"description": "the line is full (Retry-After)"}})
    def rerun_job(job_id: Annotated[str, Depends(existing)]) -> JSONResponse:
        try:
            job = studio.rerun(job_id)
        except NotCancellable as exc:
            raise HTTPException(409, str(exc)) from None
        return JSONResponse(job, status_code=202)

    @app.get("/api/jobs/{job_id}/events", response_class=EventSourceResponse,
             summary="Server-sent events: `progress` while the job waits or runs, then one of `done`, "
                     "`cancelled`, `failed` or `interrupted`; each carries the job as JSON")
    async def job_events(job_id: Annotated[str, Depends(existing)]) -> AsyncIterable[ServerSentEvent]:
        sent_version, sent_key, sent_at = None, None, 0.0
        while True:
            job = studio.jobs.get(job_id)
            if job is None or job.state in FINISHED:   # a job of an earlier server is finished too
                view = studio.snapshot(job_id)
                yield ServerSentEvent(event=view["state"], data=view)
                return
            if job.version != sent_version:
                version, key = job.version, (job.state, job.preview, job.stop.is_set(), len(studio.waiting))
                if key != sent_key or time.monotonic() - sent_at >= PROGRESS_EVERY:
                    yield ServerSentEvent(event="progress", data=studio.snapshot(job_id))
                    sent_version, sent_key, sent_at = version, key, time.monotonic()
            await asyncio.sleep(POLL)

    @app.get("/api/jobs/{job_id}/image", summary="The result once made (PNG, its settings in the metadata), "
                                                 "else the latest preview (JPEG)",
             response_class=Response, responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
    def job_image(job_id: Annotated[str, Depends(existing)], download: bool = False) -> Response:
        path = studio.image(job_id)
        try:
            # read whole: a preview is replaced (renamed over) every second, and a file response would
            # announce one file's length and send another's bytes
            data = path.read_bytes() if path is not None else None
        except FileNotFoundError:   # the preview made way for the result, or the job was pruned
            path = studio.image(job_id)
            data = path.read_bytes() if path is not None else None
        if data is None:
            raise HTTPException(404, f"job {job_id} has no picture yet")
        headers = {"Cache-Control": "no-store"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="nst-{job_id}{path.suffix}"'
        return Response(data, media_type="image/png" if path.suffix == ".png" else "image/jpeg", headers=headers)

    @app.get("/api/bundled", summary="The bundled photographs and paintings, and the default settings")
    def list_bundled() -> dict:
        return {"content": bundled_names("content"), "style": bundled_names("style"), "defaults": DEFAULTS.to_dict()}

    @app.get("/api/settings", summary="Every setting's declaration (what the page builds its controls from) "
                                      "and the pictures a job may take besides the photograph and paintings")
    def list_settings() -> dict:
        return settings_description()

    @app.get("/api/bundled/{kind}/{name}", summary="A bundled image", response_class=FileResponse)
    def bundled_image(kind: str, name: str):
        path = bundled_path(kind, name) if kind in ("content", "style") else None
        if path is None:
            raise HTTPException(404, f"no bundled {kind} image {name}")
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _docs(app)
    return app


class UploadLimit:
    """A request that announces a body over the limit is answered 413 in one line of JSON before any
    of it is read. (The route's own ``max_body_size`` still stops a body that does not announce its
    length, answering in Starlette's plain text.)"""

    def __init__(self, app, limit: int, detail: str):
        self.app, self.limit, self.detail = app, limit, detail

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                response = JSONResponse({"detail": self.detail}, status_code=413, headers={"Connection": "close"})
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def _docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle-v2 package when it is installed: FastAPI's own /docs
    loads it from a CDN, and nothing here may load from outside the machine."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return
    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")


def _errors(app: FastAPI, max_upload_mb: int) -> None:
    """Every refusal as ``{"detail": one line}``."""

    def answer(status: int, detail, headers=None) -> JSONResponse:
        return JSONResponse({"detail": one_line(detail)}, status_code=status, headers=headers)

    @app.exception_handler(BadInput)
    async def bad_input(request, exc: BadInput):
        return answer(exc.status, exc.detail)

    @app.exception_handler(SettingsError)
    async def bad_setting(request, exc: SettingsError):
        return answer(422, refused(exc).detail)

    @app.exception_handler(ImageError)
    async def bad_image(request, exc: ImageError):   # a bundled image that cannot be read
        return answer(400, exc)

    @app.exception_handler(DiskFull)
    async def disk_full(request, exc: DiskFull):   # the server's disk, not the request: 507, one line
        return answer(507, exc)

    @app.exception_handler(QueueFull)
    async def queue_full(request, exc: QueueFull):
        return answer(429, exc, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
        return answer(422, f"{where}: {error.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 413:
            detail = f"the upload is larger than the {max_upload_mb} MB limit"
        return answer(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        return answer(500, f"internal error: {one_line(exc)}")
