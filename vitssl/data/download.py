"""`data.download=NAME`: fetch a dataset from its authors' host into `data.root`, resumably (an
interrupted transfer continues where it stopped), with a progress bar, every file checked against its
published MD5 before anything is unpacked. `VITSSL_DOWNLOAD_MIRROR=URL` fetches the same file names
from another server (a local mirror; the tests use one on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vitssl.errors import DataError


@dataclass(frozen=True)
class Resource:
    url: str
    md5: str  # as published with the dataset (and checked by torchvision and others)
    unpack: bool = True  # a tar archive unpacked into data.root; else the file is placed there as is


VGG = "https://www.robots.ox.ac.uk/~vgg/data"
SOURCES: dict[str, tuple[Resource, ...]] = {
    "cifar10": (Resource("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                         "c58f30108f718f92721af3b95e74349a"),),
    "cifar100": (Resource("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                          "eb9058c3a382ffc7106e4002c42a8d85"),),
    "flowers102": (Resource(f"{VGG}/flowers/102/102flowers.tgz", "52808999861908f626f3c1f4e79d11fa"),
                   Resource(f"{VGG}/flowers/102/imagelabels.mat", "e0620be6f572b9609742df49c70aed4d", unpack=False),
                   Resource(f"{VGG}/flowers/102/setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c", unpack=False)),
    "pets": (Resource(f"{VGG}/pets/data/images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
             Resource(f"{VGG}/pets/data/annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f")),
    "cub200": (Resource("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                        "97eceeb196236b17998738112f37df78"),),
    "stl10": (Resource("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                       "91f7769df0f17e558f3565bffb0c7dfb"),),
}
PARTS = ".vitssl-download"  # in data.root: files fetched so far (kept until everything is unpacked)


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _url(resource: Resource) -> str:
    mirror = os.environ.get("VITSSL_DOWNLOAD_MIRROR")
    return f"{mirror.rstrip('/')}/{resource.url.rsplit('/', 1)[1]}" if mirror else resource.url


def fetch(url: str, dest: Path, progress: bool = True) -> None:
    """`url` into `dest`, through `dest.part`: a part left by an interrupted transfer is continued
    with an HTTP range request (or started again where the server does not serve ranges)."""
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to fetch: the part is whole
            part.replace(dest)
            return
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server sent the whole file again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                desc=f"downloading {dest.name}", disable=not progress, dynamic_ncols=True) as bar:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise OSError(f"the connection closed after {part.stat().st_size} of {total} bytes")
    part.replace(dest)


def download(name: str, root: Path, progress: bool = True) -> None:
    """Fetch, check and unpack dataset `name` into `root`."""
    if name not in SOURCES:
        raise DataError(f"data.download={name}: no download for it; choose one of {', '.join(SOURCES)}")
    created = not root.exists()
    parts = root / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    for res in SOURCES[name]:
        url = _url(res)
        dest = parts / res.url.rsplit("/", 1)[1]
        if not dest.is_file():
            try:
                fetch(url, dest, progress)
            except (OSError, urllib.error.URLError) as e:
                reason = getattr(e, "reason", None) or e
                kept = [p for p in parts.iterdir() if p.stat().st_size]
                if created and not kept:  # nothing fetched: leave nothing behind
                    shutil.rmtree(root, ignore_errors=True)
                where = f"; the {sum(p.stat().st_size for p in kept)} bytes fetched so far are kept in " \
                        f"'{parts}' and the next run continues" if kept else ""
                raise DataError(f"cannot download {name} from {url}: {reason}{where}; or download it by hand and "
                                f"unpack it into '{root}'") from None
        got = md5(dest)
        if got != res.md5:
            dest.unlink()
            raise DataError(f"downloaded {dest.name} has MD5 {got}, expected {res.md5}: corrupt or tampered; it was "
                            "deleted and nothing was unpacked, try again")
    for res in SOURCES[name]:
        dest = parts / res.url.rsplit("/", 1)[1]
        if res.unpack:
            with tarfile.open(dest) as tar:
                tar.extractall(root, filter="data")
        else:
            shutil.copyfile(dest, root / dest.name)
    shutil.rmtree(parts)
