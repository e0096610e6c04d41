"""A real S3 endpoint for tests: moto's server mode on 127.0.0.1 (a free port), in a thread.

:func:`s3_server` sets the standard AWS environment (``AWS_ENDPOINT_URL`` and dummy
credentials) for the code under test, which finds the endpoint the way it would find a real
one; nothing in the package knows about moto.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

ENV_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(buckets: tuple[str, ...] = ("lensfinder",)) -> Iterator[str]:
    """Run a moto S3 server, point the AWS environment at it, create ``buckets``; yield the URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "AKIDTESTONLY13",
            "AWS_SECRET_ACCESS_KEY": "dummy-secret-for-moto-13",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        for b in buckets:  # moto's state is per process: a server started earlier made it already
            if not fs.exists(b):
                fs.mkdir(b)
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import fsspec
        import s3fs

        fsspec.config.conf.clear()
        # the instance cache is per class: an S3FileSystem made for this server (its endpoint
        # came from the environment) must not be reused against the next one
        s3fs.S3FileSystem.clear_instance_cache()
        fsspec.AbstractFileSystem.clear_instance_cache()
