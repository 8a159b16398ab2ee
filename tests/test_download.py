"""``counteroffer.catalog.download`` against a real loopback HTTP server laid out like GitHub raw.

The server's files are copies of ../shared/data, so these tests also pin that the manifest matches the shared
copies; upstream itself is out of reach here (see the module docstring of ``download``).
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from counteroffer.catalog.download import (
    BASE_URL_ENV_VAR,
    DEFAULT_BASE_URL,
    DataDownloadError,
    DataFile,
    download_data,
    load_manifest,
    resolve_base_url,
    sha256_of,
    verify_data,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared data copies not found at {SHARED_DATA}"
)

CRAIGSLIST = ("craigslist",)


@dataclass
class Mirror:
    """A loopback server holding the pinned files; records every GET and can answer with errors."""

    root: Path
    base_url: str = ""
    requests: list[str] = field(default_factory=list)
    scripted: dict[str, list[int]] = field(default_factory=dict)  # url path -> statuses to answer first

    def path_of(self, data_file: DataFile) -> Path:
        return self.root / data_file.url_path

    def answer(self, data_file: DataFile, *statuses: int) -> None:
        """Answer the next requests for ``data_file`` with ``statuses``, then serve it normally."""
        self.scripted["/" + data_file.url_path] = list(statuses)

    def gets(self, data_file: DataFile) -> int:
        return Counter(self.requests)["/" + data_file.url_path]


def _handler(mirror: Mirror) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(mirror.root), **kwargs)

        def do_GET(self) -> None:
            mirror.requests.append(self.path)
            if statuses := mirror.scripted.get(self.path):
                self.send_error(statuses.pop(0))
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data copies not found at {SHARED_DATA}")
    served = Mirror(root=tmp_path / "served")
    for data_file in load_manifest():
        target = served.path_of(data_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_DATA / data_file.local_path, target)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_manifest_lists_every_file_once() -> None:
    files = load_manifest()
    assert Counter(f.dataset for f in files) == {"amazon": 18, "craigslist": 2}
    assert len({f.local_path for f in files}) == len(files)
    assert all(f.url_path.startswith(("TianXiaSJTU/AmazonPriceHistory/", "GeneralCoder365/agreemate/")) for f in files)


def test_unknown_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_manifest(["ebay"])


@needs_shared_data
def test_shared_copies_match_manifest() -> None:
    assert verify_data(SHARED_DATA) == []


def test_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BASE_URL_ENV_VAR, raising=False)
    assert resolve_base_url() == DEFAULT_BASE_URL
    monkeypatch.setenv(BASE_URL_ENV_VAR, "http://mirror.example")
    assert resolve_base_url() == "http://mirror.example"
    assert resolve_base_url("http://explicit.example") == "http://explicit.example"


def test_full_download_matches_shared_copies(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    events: list[tuple[str, str]] = []
    report = download_data(dest, base_url=mirror.base_url, progress=lambda f, e: events.append((f.local_path, e)))

    manifest = load_manifest()
    assert report.downloaded == manifest and report.skipped == []
    assert _files_under(dest) == {f.local_path for f in manifest}  # no temporary files left behind
    for data_file in manifest:
        saved = dest / data_file.local_path
        assert sha256_of(saved) == data_file.sha256
        assert saved.read_bytes() == (SHARED_DATA / data_file.local_path).read_bytes()
    assert verify_data(dest) == []
    assert events[:2] == [(manifest[0].local_path, "downloading"), (manifest[0].local_path, "downloaded")]


def test_second_call_skips_verified_files(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)
    mirror.requests.clear()

    report = download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)

    assert report.downloaded == [] and len(report.skipped) == 2
    assert mirror.requests == []


def test_force_downloads_again(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)
    mirror.requests.clear()

    report = download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST, force=True)

    assert len(report.downloaded) == 2 and report.skipped == []
    assert len(mirror.requests) == 2
    assert verify_data(dest, CRAIGSLIST) == []


def test_only_damaged_file_is_fetched_again(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)
    damaged, intact = load_manifest(CRAIGSLIST)
    _flip_byte(dest / damaged.local_path)
    mirror.requests.clear()

    report = download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)

    assert report.downloaded == [damaged] and report.skipped == [intact]
    assert verify_data(dest, CRAIGSLIST) == []


def test_corrupted_upstream_file_is_rejected(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    bad = load_manifest(CRAIGSLIST)[0]
    _flip_byte(mirror.path_of(bad))
    served_sha = sha256_of(mirror.path_of(bad))

    with pytest.raises(DataDownloadError) as caught:
        download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)

    message = str(caught.value)
    assert "checksum mismatch" in message and bad.local_path in message
    assert bad.url(mirror.base_url) in message
    assert bad.sha256 in message and served_sha in message
    assert caught.value.file == bad
    assert _files_under(dest) == set()  # neither the bad file nor a temporary file


def test_corrupted_upstream_file_keeps_verified_copy(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST)
    bad = load_manifest(CRAIGSLIST)[0]
    _flip_byte(mirror.path_of(bad))

    with pytest.raises(DataDownloadError, match="checksum mismatch"):
        download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST, force=True)

    assert verify_data(dest, CRAIGSLIST) == []
    assert _files_under(dest) == {f.local_path for f in load_manifest(CRAIGSLIST)}


def test_missing_upstream_file_gives_clear_error_without_retry(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    gone = load_manifest(CRAIGSLIST)[1]
    mirror.path_of(gone).unlink()

    with pytest.raises(DataDownloadError) as caught:
        download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST, backoff=0)

    message = str(caught.value)
    assert "HTTP 404" in message and gone.local_path in message and gone.url(mirror.base_url) in message
    assert "--base-url" in message
    assert mirror.gets(gone) == 1
    first = load_manifest(CRAIGSLIST)[0]
    assert _files_under(dest) == {first.local_path}  # the file fetched before the failure stays


def test_server_errors_are_retried_then_reported(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    failing = load_manifest(CRAIGSLIST)[0]
    mirror.answer(failing, 500, 500, 500)

    with pytest.raises(DataDownloadError) as caught:
        download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST, retries=2, backoff=0)

    assert "HTTP 500" in str(caught.value) and "3 attempt(s)" in str(caught.value)
    assert mirror.gets(failing) == 3
    assert _files_under(dest) == set()


def test_transient_server_error_recovers(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    flaky = load_manifest(CRAIGSLIST)[0]
    mirror.answer(flaky, 503)

    report = download_data(dest, base_url=mirror.base_url, datasets=CRAIGSLIST, retries=1, backoff=0)

    assert len(report.downloaded) == 2
    assert mirror.gets(flaky) == 2
    assert verify_data(dest, CRAIGSLIST) == []


def test_unreachable_server_is_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"

    with pytest.raises(DataDownloadError, match=r"after 2 attempt\(s\): ConnectError") as caught:
        download_data(tmp_path / "data", base_url=base_url, datasets=CRAIGSLIST, retries=1, backoff=0)

    assert base_url in str(caught.value)
    assert _files_under(tmp_path / "data") == set()


@needs_shared_data
def test_verify_data_reports_tampered_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(SHARED_DATA / "craigslist_bargain", root / "craigslist_bargain")
    tampered, missing = load_manifest(CRAIGSLIST)
    _flip_byte(root / tampered.local_path)
    (root / missing.local_path).unlink()

    problems = verify_data(root, CRAIGSLIST)

    assert len(problems) == 2
    assert problems[0].startswith(tampered.local_path) and tampered.sha256 in problems[0]
    assert problems[1] == f"{missing.local_path}: missing"


def test_default_destination_is_user_cache(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    report = download_data(base_url=mirror.base_url, datasets=CRAIGSLIST)

    assert report.dest == tmp_path / "cache" / "counteroffer" / "data"
    assert verify_data(report.dest, CRAIGSLIST) == []
