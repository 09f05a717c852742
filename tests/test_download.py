"""Downloads against a local HTTP server on 127.0.0.1 (with Range support), and safe extraction."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from amls2.data import datasets
from amls2.data.download import (
    CHECKSUMS_FILE,
    download_dataset,
    fetch,
    recorded_checksums,
    safe_extract,
    select_archives,
)
from amls2.data.pairing import load_pairs
from amls2.errors import DownloadError
from amls2.imaging.images import to_uint8
from amls2.imaging.resize import bicubic_downscale


class FileServer:
    """Serves ``files`` (URL path -> bytes); honours ``Range: bytes=N-`` unless ``ranges`` is False;
    records the Range header of every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.ranges_supported = True
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if range_header and server.ranges_supported:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def unchecked_div2k_sizes(monkeypatch):
    """The tiny stand-ins served here do not have the official DIV2K sizes: do not check them."""
    info = datasets.DATASETS["DIV2K"]
    archives = tuple(dataclasses.replace(a, size=None) for a in info.archives)
    monkeypatch.setitem(datasets.DATASETS, "DIV2K", dataclasses.replace(info, archives=archives))


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def png_bytes(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", to_uint8(img)[..., ::-1])
    assert ok
    return buf.tobytes()


def image_bytes(img: np.ndarray, suffix: str) -> bytes:
    import cv2

    ok, buf = cv2.imencode(suffix, to_uint8(img)[..., ::-1])
    assert ok
    return buf.tobytes()


def make_tar(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def div2k_valid_zips(rng):
    """Tiny stand-ins for DIV2K_valid_HR.zip and DIV2K_valid_LR_bicubic_X2.zip (official tree)."""
    hr_entries, lr_entries = {}, {}
    for number in (801, 802):
        hr = rng.random((24, 24, 3)).astype(np.float32)
        hr_entries[f"DIV2K_valid_HR/{number:04d}.png"] = png_bytes(hr)
        lr_entries[f"DIV2K_valid_LR_bicubic/X2/{number:04d}x2.png"] = png_bytes(
            bicubic_downscale(hr, 2)
        )
    return make_zip(hr_entries), make_zip(lr_entries)


def test_download_and_extract_the_official_div2k_tree(server, tmp_path, div2k_valid_zips):
    hr_zip, lr_zip = div2k_valid_zips
    server.files["/DIV2K_valid_HR.zip"] = hr_zip
    server.files["/DIV2K_valid_LR_bicubic_X2.zip"] = lr_zip
    folder = download_dataset(
        "DIV2K",
        tmp_path,
        parts=["valid_HR", "valid_LR_bicubic_X2"],
        base_url=server.url,
        progress=False,
    )
    assert folder == tmp_path / "DIV2K"
    assert sorted(p.name for p in (folder / "DIV2K_valid_HR").iterdir()) == ["0801.png", "0802.png"]
    assert (tmp_path / "_downloads" / "DIV2K_valid_HR.zip").read_bytes() == hr_zip
    pairs = load_pairs("DIV2K", scale=2, track="bicubic", data_dir=tmp_path, split="valid")
    assert [p.name for p in pairs] == ["0801", "0802"]
    assert not [p for p in tmp_path.rglob("*") if ".extract-" in p.name or p.suffix == ".part"]


def test_rerun_skips_extracted_archives_without_network(server, tmp_path, div2k_valid_zips):
    server.files["/DIV2K_valid_HR.zip"] = div2k_valid_zips[0]
    download_dataset("DIV2K", tmp_path, parts=["valid_HR"], base_url=server.url, progress=False)
    assert len(server.requests) == 1
    download_dataset("DIV2K", tmp_path, parts=["valid_HR"], base_url=server.url, progress=False)
    assert len(server.requests) == 1


def test_resume_from_a_partial_file_uses_http_range(server, tmp_path):
    data = bytes(range(256)) * 300
    server.files["/data.bin"] = data
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(data[:10000])
    fetch(
        f"{server.url}/data.bin",
        dest,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        progress=False,
    )
    assert dest.read_bytes() == data
    assert server.requests == [("/data.bin", "bytes=10000-")]
    assert not (tmp_path / "data.bin.part").exists()


def test_resume_restarts_when_the_server_ignores_range(server, tmp_path):
    data = b"abcdefghij" * 1000
    server.files["/data.bin"] = data
    server.ranges_supported = False
    (tmp_path / "data.bin.part").write_bytes(b"XXXX")  # a stale prefix must not be kept
    fetch(f"{server.url}/data.bin", tmp_path / "data.bin", progress=False)
    assert (tmp_path / "data.bin").read_bytes() == data


def test_complete_part_file_is_not_downloaded_again(server, tmp_path):
    data = b"0123456789" * 50
    server.files["/data.bin"] = data
    (tmp_path / "data.bin.part").write_bytes(data)
    fetch(f"{server.url}/data.bin", tmp_path / "data.bin", size=len(data), progress=False)
    assert (tmp_path / "data.bin").read_bytes() == data
    assert server.requests == []


def test_checksum_mismatch_is_an_error_and_discards_the_file(server, tmp_path):
    server.files["/data.bin"] = b"payload" * 100
    with pytest.raises(DownloadError, match="sha256") as info:
        fetch(f"{server.url}/data.bin", tmp_path / "data.bin", sha256="0" * 64, progress=False)
    assert "data.bin" in str(info.value)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_size_mismatch_is_an_error(server, tmp_path):
    server.files["/data.bin"] = b"x" * 100
    with pytest.raises(DownloadError, match="expected 99"):
        fetch(f"{server.url}/data.bin", tmp_path / "data.bin", size=99, progress=False)


def test_http_404_is_a_clear_download_error(server, tmp_path):
    with pytest.raises(DownloadError, match=r"DIV2K_valid_HR\.zip: HTTP 404"):
        download_dataset("DIV2K", tmp_path, parts=["valid_HR"], base_url=server.url, progress=False)
    assert not (tmp_path / "DIV2K").exists()


def test_unreachable_server_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch("http://127.0.0.1:9/none.zip", tmp_path / "none.zip", progress=False, timeout=5)


@pytest.mark.parametrize("evil", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt"])
def test_zip_with_an_escaping_entry_is_rejected(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"good/a.txt": b"a", evil: b"boom"}))
    target = tmp_path / "out" / "data"
    with pytest.raises(DownloadError, match="evil.txt"):
        safe_extract(archive, target)
    assert not target.exists()  # nothing extracted, not even the good entry
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # the temporary folder is gone


def test_malicious_zip_served_by_http_is_rejected(server, tmp_path):
    server.files["/DIV2K_valid_HR.zip"] = make_zip({"../../escape.png": b"x"})
    with pytest.raises(DownloadError, match="escape.png"):
        download_dataset(
            "DIV2K", tmp_path / "root", parts=["valid_HR"], base_url=server.url, progress=False
        )
    assert not (tmp_path / "escape.png").exists()


def _tar_with(member: tarfile.TarInfo, tmp_path: Path) -> Path:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        tf.addfile(member)
    return archive


@pytest.mark.parametrize(
    ("link", "kind"),
    [
        ("../../etc/passwd", tarfile.SYMTYPE),
        ("/etc/passwd", tarfile.SYMTYPE),
        ("../outside", tarfile.LNKTYPE),
    ],
)
def test_tar_link_pointing_out_is_rejected(tmp_path, link, kind):
    member = tarfile.TarInfo("data/link")
    member.type, member.linkname = kind, link
    with pytest.raises(DownloadError, match="points outside"):
        safe_extract(_tar_with(member, tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_with_an_inner_symlink_and_files_extracts(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = b"hello"
        info = tarfile.TarInfo("pkg/a.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg/b.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
        tf.addfile(link)
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "b.txt").read_bytes() == b"hello"


def test_extraction_merges_into_an_existing_tree(tmp_path):
    first, second = tmp_path / "x2.zip", tmp_path / "x3.zip"
    first.write_bytes(make_zip({"LR/X2/a.png": b"2"}))
    second.write_bytes(make_zip({"LR/X3/a.png": b"3"}))
    safe_extract(first, tmp_path / "out")
    safe_extract(second, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "LR").iterdir()) == ["X2", "X3"]


def test_not_an_archive_is_rejected(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="not a zip or tar"):
        safe_extract(tmp_path / "x.zip", tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "message"),
    [("Manga109", "Manga109/HR"), ("samples", "embedded"), ("BSD200", "BSD200")],
)
def test_datasets_without_archive_say_where_to_get_them(tmp_path, name, message):
    with pytest.raises(DownloadError, match=message):
        download_dataset(name, tmp_path)


def test_parts_select_by_name_or_pattern():
    assert [a.part for a in select_archives("DIV2K")] == ["train_HR", "valid_HR"]
    picked = [a.filename for a in select_archives("DIV2K", ["valid_LR_unknown_X*"])]
    assert picked == [f"DIV2K_valid_LR_unknown_X{s}.zip" for s in (2, 3, 4)]
    with pytest.raises(DownloadError, match="valid_LR_X9"):
        select_archives("DIV2K", ["valid_LR_X9"])


# ----------------------------------------------------------------------------- T91, benchmark.tar


@pytest.fixture
def benchmark_tar(rng):
    """A small benchmark.tar of EDSR's layout: Set5 (2 images) and Set14 (1), HR + LR_bicubic."""
    entries, hrs = {}, {}
    for dataset, names in (("Set5", ("baby", "bird")), ("Set14", ("zebra",))):
        for name in names:
            hr = rng.random((24, 24, 3)).astype(np.float32)
            hrs[name] = hr
            entries[f"benchmark/{dataset}/HR/{name}.png"] = png_bytes(hr)
            for scale in (2, 3, 4):
                lr = bicubic_downscale(hr, scale)
                entries[f"benchmark/{dataset}/LR_bicubic/X{scale}/{name}x{scale}.png"] = png_bytes(
                    lr
                )
    return make_tar(entries), hrs


def test_benchmark_sets_come_from_one_shared_tar(server, tmp_path, benchmark_tar):
    data, hrs = benchmark_tar
    server.files["/benchmark.tar"] = data
    set5 = download_dataset("Set5", tmp_path, base_url=server.url, progress=False)
    set14 = download_dataset("Set14", tmp_path, base_url=server.url, progress=False)
    assert server.requests == [("/benchmark.tar", None)]  # downloaded once, extracted twice
    assert sorted(p.name for p in (set5 / "HR").iterdir()) == ["baby.png", "bird.png"]
    assert sorted(p.name for p in (set14 / "HR").iterdir()) == ["zebra.png"]
    assert not (tmp_path / "benchmark").exists() and not (set5 / "benchmark").exists()
    pairs = load_pairs("Set5", scale=3, track="bicubic", data_dir=tmp_path)
    assert [p.name for p in pairs] == ["baby", "bird"]
    # The LR comes from the archive's LR_bicubic/X3 file (8x8), not synthesised.
    assert pairs[0].lr.shape == (8, 8, 3) and pairs[0].params is None
    assert np.abs(pairs[0].hr - hrs["baby"]).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("root", ["", "SRCNN_v1/"])
def test_t91_comes_from_the_srcnn_archive_train_folder(server, tmp_path, rng, root):
    entries = {f"{root}Test/Set5/baby_GT.bmp": b"not wanted", f"{root}README.txt": b"x"}
    for number in (1, 2, 10):
        img = rng.random((20, 16, 3)).astype(np.float32)
        entries[f"{root}Train/t{number}.bmp"] = image_bytes(img, ".bmp")
    archive = make_zip(entries)
    server.files["/SRCNN_v1.zip"] = archive
    folder = download_dataset("T91", tmp_path, base_url=server.url, progress=False)
    assert sorted(p.name for p in (folder / "HR").iterdir()) == ["t1.bmp", "t10.bmp", "t2.bmp"]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["HR"]
    pairs = load_pairs("T91", scale=2, track="bicubic", data_dir=tmp_path)
    assert len(pairs) == 3 and pairs[0].hr.shape == (20, 16, 3)
    digest = hashlib.sha256(archive).hexdigest()
    assert recorded_checksums(tmp_path / "_downloads") == {"SRCNN_v1.zip": digest}
    line = (tmp_path / "_downloads" / CHECKSUMS_FILE).read_text()
    assert line == f"{digest}  SRCNN_v1.zip\n"  # sha256sum -c format


def test_a_changed_archive_fails_the_recorded_checksum(server, tmp_path, benchmark_tar):
    server.files["/benchmark.tar"] = benchmark_tar[0]
    download_dataset("Set5", tmp_path, base_url=server.url, progress=False)
    recorded = recorded_checksums(tmp_path / "_downloads")["benchmark.tar"]
    # The cached copy is damaged and the server now serves other bytes: neither matches.
    (tmp_path / "_downloads" / "benchmark.tar").write_bytes(b"damaged")
    server.files["/benchmark.tar"] = make_tar({"benchmark/Set14/HR/a.png": b"other"})
    with pytest.raises(DownloadError, match=r"does not match.*recorded on the first download"):
        download_dataset("Set14", tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / "Set14").exists()
    assert recorded_checksums(tmp_path / "_downloads")["benchmark.tar"] == recorded


def test_a_damaged_cached_archive_is_fetched_again_and_checked(server, tmp_path, benchmark_tar):
    server.files["/benchmark.tar"] = benchmark_tar[0]
    download_dataset("Set5", tmp_path, base_url=server.url, progress=False)
    (tmp_path / "_downloads" / "benchmark.tar").write_bytes(b"damaged")
    download_dataset("Set14", tmp_path, base_url=server.url, progress=False)
    assert len(server.requests) == 2
    assert (tmp_path / "Set14" / "HR" / "zebra.png").is_file()


def test_an_archive_without_the_dataset_folder_is_a_clear_error(server, tmp_path):
    server.files["/benchmark.tar"] = make_tar({"benchmark/Set14/HR/a.png": b"x"})
    with pytest.raises(DownloadError, match=r"benchmark\.tar: no folder 'benchmark/Set5'"):
        download_dataset("Set5", tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / "Set5").exists()


def test_benchmark_and_t91_archives_are_the_published_urls():
    assert [a.url for a in select_archives("Urban100")] == [
        "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
    ]
    assert [a.url for a in select_archives("T91")] == [
        "http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_v1.zip"
    ]
