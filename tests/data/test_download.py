"""`data.download=NAME` against a server on 127.0.0.1 (never the internet): small fabricated archives
in the official file names, checked against their MD5, a dropped connection resumed with a range
request, a corrupt file deleted before anything is unpacked."""

from __future__ import annotations

import http.server
import tarfile
import threading
from pathlib import Path

import pytest

from tests.data.test_official import flowers
from vitssl.config.sections import DataConfig
from vitssl.data import download
from vitssl.data.dataset import load_dataset
from vitssl.errors import DataError


class Server(http.server.ThreadingHTTPServer):
    """Serves `files` (name -> bytes) with HTTP ranges; the first response for a name in `drop` stops
    after `drop[name]` bytes, as a dropped connection does. `ranges` records the Range headers seen."""

    def __init__(self, files: dict[str, bytes], drop: dict[str, int]):
        self.files, self.drop, self.ranges = files, dict(drop), []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[1]
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        self.server.ranges.append((name, rng))
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = self.server.drop.pop(name, None)
        self.wfile.write(data[start:cut] if cut is not None else data[start:])


@pytest.fixture
def serve(monkeypatch):
    servers = []

    def start(files: dict[str, bytes], drop: dict[str, int] | None = None) -> Server:
        server = Server(files, drop or {})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("VITSSL_DOWNLOAD_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/files")
        return server

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def flowers_files(tmp_path: Path) -> dict[str, bytes]:
    src = flowers(tmp_path / "src")
    with tarfile.open(tmp_path / "102flowers.tgz", "w:gz") as tar:
        tar.add(src / "jpg", arcname="jpg")
    return {"102flowers.tgz": (tmp_path / "102flowers.tgz").read_bytes(),
            "imagelabels.mat": (src / "imagelabels.mat").read_bytes(), "setid.mat": (src / "setid.mat").read_bytes()}


def use_checksums(monkeypatch, name: str, files: dict[str, bytes]) -> None:
    import hashlib

    monkeypatch.setitem(download.SOURCES, name, tuple(
        download.Resource(r.url, hashlib.md5(files[r.url.rsplit("/", 1)[1]]).hexdigest(), r.unpack)
        for r in download.SOURCES[name]))


def test_flowers102_download_resumes_a_dropped_transfer_and_reads_as_distributed(tmp_path, serve, monkeypatch):
    files = flowers_files(tmp_path)
    use_checksums(monkeypatch, "flowers102", files)
    server = serve(files, drop={"102flowers.tgz": 100})
    root = tmp_path / "flowers"
    cfg = DataConfig(root=str(root), download="flowers102", image_size=16, num_workers=0)
    with pytest.raises(DataError, match=r"cannot download flowers102 .* 100 bytes fetched so far are kept"):
        load_dataset(cfg, "train", progress=False)
    assert (root / download.PARTS / "102flowers.tgz.part").stat().st_size == 100
    ds = load_dataset(cfg, "train", progress=False)  # the same command again
    assert ("102flowers.tgz", "bytes=100-") in server.ranges  # continued, not started over
    assert ds.name == "flowers102" and ds.labels.tolist() == [0, 1, 2]
    assert not (root / download.PARTS).exists() and (root / "setid.mat").is_file()
    n = len(server.ranges)
    load_dataset(cfg, "test", progress=False)
    assert len(server.ranges) == n  # present: nothing fetched again


def test_a_file_whose_checksum_differs_is_deleted_and_nothing_is_unpacked(tmp_path, serve, monkeypatch):
    files = flowers_files(tmp_path)
    use_checksums(monkeypatch, "flowers102", files)
    serve({**files, "setid.mat": files["setid.mat"] + b"tampered"})
    root = tmp_path / "flowers"
    with pytest.raises(DataError, match=r"setid.mat has MD5 \w+, expected \w+: corrupt or tampered"):
        download.download("flowers102", root, progress=False)
    assert not (root / "jpg").exists() and not (root / download.PARTS / "setid.mat").exists()
    assert (root / download.PARTS / "102flowers.tgz").is_file()  # the good archive is kept for the next try


def test_every_download_names_an_official_file_and_a_layout_that_reads_it():
    from vitssl.data import official

    for name, resources in download.SOURCES.items():
        assert name.startswith("cifar") or name in official.LAYOUTS
        assert all(r.url.startswith(("https://", "http://")) and len(r.md5) == 32 for r in resources)
