"""Reading request bodies with a size limit enforced while the bytes arrive."""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from chimp.shared.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

RAW_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "application/octet-stream"})


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"upload is larger than the {limit / 1024 / 1024:g} MiB limit",
        detail={"limit_bytes": limit},
    )


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip/deflate request body decompressed, refusing (413) past ``limit`` bytes."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return body
    wbits = _WBITS.get(name)
    if wbits is None:
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none"
        )
    inflater = zlib.decompressobj(wbits)
    try:
        # At most limit + 1 bytes: a small bomb cannot make us inflate gigabytes.
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequestError(f"body is not valid {name} data: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise BadRequestError(f"{name} body is truncated")
    return data


async def _replay(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def read_image_upload(request: Request, limit: int) -> bytes:
    """Image bytes from a multipart ``file`` field or a raw image body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if (
        content_type
        and content_type != "multipart/form-data"
        and (content_type not in RAW_IMAGE_TYPES)
    ):
        raise UnsupportedMediaTypeError(
            f"unsupported content type {content_type!r}: send multipart/form-data with a "
            "'file' field, or a raw image/jpeg or image/png body"
        )
    body = await read_limited(request, limit)
    if content_type != "multipart/form-data":
        return body
    parser = MultiPartParser(request.headers, _replay(body), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequestError(f"malformed multipart body: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequestError("multipart body has no 'file' field with an image")
        return await upload.read()
    finally:
        await form.close()
