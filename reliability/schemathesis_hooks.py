# Schemathesis hooks for the hostile-requests group (reliability/hostile.mjs
# loads them with SCHEMATHESIS_HOOKS=reliability.schemathesis_hooks):
#
# - a fresh client address (cf-connecting-ip) per request, so the per-IP
#   rate limit of the API-key routes does not turn the run into 429s;
# - one JSON line per response in $HOSTILE_ST_LOG (status, method, whether
#   an error answer has the JSON error shape), which hostile.mjs counts;
# - real image bytes for the image media types ($HOSTILE_ST_SAMPLES: a
#   directory of sample.{jpeg,png,webp,avif,gif}): the image service checks
#   that the bytes are the type claimed, which a schema cannot say;
# - in schema-valid (positive) cases only: the documented rules OpenAPI 3.0
#   cannot express (SHAPING), and real objects ($HOSTILE_ST_FIXTURES) half of
#   the time, so that reads reach stored jobs, HLS files and images instead
#   of 404s;
# - failures excused by a documented product rule (EXCUSES): dropped, but
#   logged one by one, and hostile.mjs prints their counts in its rows.
import itertools
import json
import os
import random
import re
import threading

import schemathesis
from hypothesis import strategies as st

# 100.64.0.0/10 (shared address space): never one of the 10.x addresses devkit/client.mjs hands out.
_BASE = random.randrange(1 << 21)
_counter = itertools.count()
_lock = threading.Lock()
_log_path = os.environ.get("HOSTILE_ST_LOG")
_log = open(_log_path, "a", encoding="utf-8") if _log_path else None
_fixtures = json.loads(os.environ.get("HOSTILE_ST_FIXTURES") or "{}")

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif", "gif": "image/gif"}
_VIDEO_EXT = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm", "video/x-matroska": "mkv", "video/matroska": "mkv", "video/ogg": "ogv"}

_samples = {}
_samples_dir = os.environ.get("HOSTILE_ST_SAMPLES")
if _samples_dir:
    for ext, media_type in _IMAGE_TYPES.items():
        path = os.path.join(_samples_dir, f"sample.{ext}")
        if os.path.exists(path):
            with open(path, "rb") as f:
                _samples[media_type] = f.read()
            schemathesis.openapi.media_type(media_type, st.just(_samples[media_type]))


def _write(line: dict) -> None:
    if _log is None:
        return
    with _lock:
        _log.write(json.dumps(line) + "\n")
        _log.flush()


def _fresh_ip() -> str:
    n = (_BASE + next(_counter)) % (1 << 22)
    return f"100.{64 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def _is_positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode.is_positive


def _raw_bytes(value):
    data = getattr(value, "data", value)  # schemathesis' Binary wraps bytes
    return data if isinstance(data, (bytes, bytearray)) else None


def _sniff_image(data: bytes):
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return None


def _media_type(case) -> str:
    return (case.media_type or "").split(";")[0].strip().lower()


# The documented rules a schema-valid request must also follow, which
# OpenAPI 3.0 cannot express; hostile.mjs lists them in its rows.
SHAPING = {
    "upload-app-id": ("image", "POST /upload carries app_id in the form or the query (one of them is required, and OpenAPI 3.0 cannot say so: a raw body's app_id can only be a query parameter, which a form does not need)"),
    "unsigned-reads": ("image", "reads of an image (GET/HEAD /assets/..., /images/{app_id}/{image_id}/{options}, /cdn-cgi/image/...) leave the optional exp and sig out half of the time: a valid pair is an HMAC with the app's URL-signing secret, which no schema can produce, so with them every read is a 401"),
    "form-file-type": ("image", "a form's file part is a real image labelled with its own type (the service checks the bytes; Schemathesis pairs any bytes with any listed type)"),
    "notify-raw-key": ("video", "POST /notify-upload-complete names the raw_key of its own app_id, video_id and content_type (a cross-field rule)"),
    "session-size": ("video", "POST /generate-upload-url with multipart true names the size (required for a resumable session; a cross-field rule OpenAPI 3.0 cannot state)"),
    "notify-no-callback": ("video", "POST /notify-upload-complete and POST /uploads without callback_url: one is accepted only for an app whose operator configured a webhook secret (IV_WEBHOOKS), and only for a public https host, rules of the deployment the schema cannot state"),
    "encryption-signed": ("video", "POST /notify-upload-complete and POST /uploads with encryption \"aes-128\" also set require_signed_urls true (the key is served to token holders only: a cross-field rule)"),
    "download-ids": ("video", "GET/HEAD /download names its video either by app_id and video_id (a public video) or by token alone (a signed one): both ids without a token, or the token alone (a cross-field rule OpenAPI 3.0 cannot state)"),
    "caption-file": ("video", "POST /videos/{app_id}/{video_id}/captions/{language} carries a real WebVTT file (the service reads it strictly, naming the faulty line: a file format no schema can state)"),
    "endpoint-url": ("video", "a webhook endpoint's url (create and update) is a public https URL (https, a host that resolves to no private or loopback address), which no JSON Schema pattern can state"),
}

_ENDPOINT_URL = "https://api.example.com/hooks/media"


def _shape(case) -> None:
    path, media_type = case.path, _media_type(case)
    if case.method.upper() in ("GET", "HEAD") and path.startswith(("/assets/", "/images/", "/cdn-cgi/")) and random.random() < 0.5:
        case.query = {k: v for k, v in (case.query or {}).items() if k not in ("exp", "sig")}
    if path == "/upload":
        form_app = case.body.get("app_id") if isinstance(case.body, dict) and media_type == "multipart/form-data" else None
        if not form_app and not (case.query or {}).get("app_id"):
            case.query = {**(case.query or {}), "app_id": "yourAppId"}
    if path == "/upload" and media_type == "multipart/form-data" and isinstance(case.body, dict):
        data = _raw_bytes(case.body.get("file"))
        sniffed = _sniff_image(data) if data is not None else None
        if sniffed is None and "file" in case.body and "image/jpeg" in _samples:
            case.body = {**case.body, "file": _samples["image/jpeg"]}
            sniffed = "image/jpeg"
        if sniffed:
            case.multipart_content_types = {**(case.multipart_content_types or {}), "file": sniffed}
    if path == "/generate-upload-url" and isinstance(case.body, dict) and case.body.get("multipart") is True:
        if not isinstance(case.body.get("size"), int):
            case.body = {**case.body, "size": 1024}
    if path == "/notify-upload-complete" and isinstance(case.body, dict):
        body = case.body
        ext = _VIDEO_EXT.get(body.get("content_type"))
        if ext and isinstance(body.get("app_id"), str) and isinstance(body.get("video_id"), str):
            case.body = {**body, "raw_key": f"raw/{body['app_id']}/{body['video_id']}/source.{ext}"}
        case.body = {k: v for k, v in case.body.items() if k != "callback_url"}
    if path in ("/notify-upload-complete", "/uploads") and isinstance(case.body, dict) and case.body.get("encryption") == "aes-128":
        case.body = {**case.body, "require_signed_urls": True}
    if path == "/download":
        query = dict(case.query or {})
        if query.get("token") is not None:
            query = {k: v for k, v in query.items() if k not in ("app_id", "video_id")}
        else:
            query = {**query, "app_id": query.get("app_id") or "yourAppId", "video_id": query.get("video_id") or "yourVideoId"}
            query.pop("token", None)
        case.query = query
    if path == "/uploads" and isinstance(case.body, dict):
        case.body = {k: v for k, v in case.body.items() if k != "callback_url"}
    if path == "/videos/{app_id}/{video_id}/captions/{language}" and case.method.upper() == "POST":
        case.body = "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nA <i>hostile</i> run's caption\n"
    if path in ("/webhooks/endpoints", "/webhooks/endpoints/{endpoint_id}") and isinstance(case.body, dict) and "url" in case.body:
        case.body = {**case.body, "url": _ENDPOINT_URL}


def _use_fixture(case) -> None:
    """Points a positive request at real objects, half of the time."""
    if random.random() < 0.5:
        return
    path, method = case.path, case.method.upper()
    video, image = _fixtures.get("video"), _fixtures.get("image")
    if video and path.startswith("/hls/"):
        params = dict(case.path_parameters or {})
        for name in ("app_id", "video_id", "output_id", "rung", "segment"):
            if name in params:
                params[name] = video[name]
        case.path_parameters = params
    elif video and path in ("/job-status", "/playback-url", "/job-events") or (video and path == "/download" and "token" not in (case.query or {})):
        case.query = {**(case.query or {}), "app_id": video["app_id"], "video_id": video["video_id"]}
    elif video and path == "/cancel-job" and isinstance(case.body, dict):
        case.body = {**case.body, "app_id": video["app_id"], "video_id": video["video_id"]}
    elif image and "{image_id}" in path and method in ("GET", "HEAD"):
        case.path_parameters = {**(case.path_parameters or {}), "app_id": image["app_id"], "image_id": image["image_id"]}


@schemathesis.hook
def before_call(context, case, kwargs):
    if _is_positive(case):
        _shape(case)
        _use_fixture(case)
    case.headers = {**(case.headers or {}), "cf-connecting-ip": _fresh_ip()}
    # Every edit above keeps a case what it was (schema-valid values into
    # positive cases; an undeclared header), so take the edited containers as
    # the case's own instead of letting Schemathesis revalidate them: it
    # checks path parameters in their percent-encoded form and would relabel
    # a valid `width%3D320` as negative. (Private API of the pinned 4.32.5.)
    keep = getattr(case, "_record_starting_state", None)
    if keep is not None:
        keep()


# Failures a documented product rule explains; dropped here, counted by hostile.mjs.
EXCUSES = {
    "form-field-wins": "POST /upload with a form: an invalid app_id/image_id/require_signed_urls query parameter is not read when the form has a valid field of that name (README and OpenAPI: the field wins over the query)",
    "unnamed-form-part": "POST /upload with a form part named \"\": refused (400), since RFC 7578 requires a field name and browsers never send unnamed fields; the schema cannot forbid an empty property name",
    "mislabelled-positive": "a case Schemathesis labelled schema-valid whose form id field actually violates the id pattern",
}


def _form_fields_valid(case, names) -> bool:
    """Each named form field is there and valid, so it wins over the query's."""
    body = case.body if isinstance(case.body, dict) else {}
    flag_ok = lambda v: isinstance(v, str) and v in ("true", "false")
    return all(flag_ok(body.get(n)) if n == "require_signed_urls" else isinstance(body.get(n), str) and bool(_ID.match(body[n])) for n in names)


def _form_ids_valid(case, names) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    return all(isinstance(body.get(n), str) and _ID.match(body[n]) for n in names)


def _query_id_valid(name, value) -> bool:
    # The query's image_id may be empty (allowEmptyValue: a random id); app_id may not.
    if name == "require_signed_urls":
        return str(value).lower() in ("true", "false", "")
    return bool(_ID.match(str(value))) or (name == "image_id" and value == "")


def _excuse(failure, case, response):
    code = getattr(failure, "code", "")
    is_form = case.path == "/upload" and _media_type(case) == "multipart/form-data" and isinstance(case.body, dict)
    if not is_form:
        return None
    if code == "ST201":
        meta = case.meta
        negative = {str(loc).rsplit(".", 1)[-1].lower() for loc, c in meta.components.items() if c.mode.is_negative} if meta else set()
        bad_query = [n for n in ("app_id", "image_id", "require_signed_urls") if n in (case.query or {}) and not _query_id_valid(n, case.query[n])]
        if negative == {"query"} and bad_query and _form_fields_valid(case, bad_query):
            return "form-field-wins"
    if code == "ST202" and response.status_code == 400:
        if "" in case.body:
            return "unnamed-form-part"
        ids = [n for n in ("app_id", "image_id") if case.body.get(n)]
        if ids and not _form_ids_valid(case, ids):
            return "mislabelled-positive"
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    reason = _excuse(failure, case, response)
    if reason is None:
        return True
    _write({"excused": reason, "code": getattr(failure, "code", ""), "operation": f"{case.method.upper()} {case.path}", "status": response.status_code})
    return False


def _error_shape_ok(response) -> bool:
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.split(";")[0].strip().lower() != "application/json":
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)


@schemathesis.hook
def after_call(context, case, response):
    status = response.status_code
    method = (response.request.method or case.method).upper()
    line = {
        "status": status,
        "method": method,
        "operation": f"{case.method.upper()} {case.path}",
        "url": response.request.url,
        # A HEAD answer carries no body by definition.
        "error_json": _error_shape_ok(response) if status >= 400 and method != "HEAD" else None,
    }
    if status >= 500 or line["error_json"] is False:
        line["body"] = response.content[:300].decode("utf-8", "replace")
    _write(line)


if __name__ == "__main__":
    print(json.dumps({"shaping": SHAPING, "excuses": EXCUSES}))
