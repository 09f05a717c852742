"""``amls2 upscale clip.mp4``: every frame upscaled as an image, same frame rate and count, no
partial video under the final name, the planning rules of images."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from amls2.cli import main
from amls2.imaging import images
from amls2.inference import video

FPS = 12.0
FRAMES = 6
SIZE = (40, 32)  # width, height


def write_clip(path, frames=FRAMES, size=SIZE, fps=FPS) -> list[np.ndarray]:
    """A small moving gradient written with cv2.VideoWriter; returns the frames as decoded."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(frames):
        frame = np.stack([(xx * 5 + i * 9) % 256, (yy * 6) % 256, (xx + yy + i * 20) % 256], -1)
        writer.write(cv2.GaussianBlur(frame.astype(np.uint8), (5, 5), 1.5))
    writer.release()
    return read_clip(path)


def read_clip(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert capture.get(cv2.CAP_PROP_FPS) > 0
    capture.release()
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_upscale_of_a_clip_with_espcn_keeps_fps_and_frames(tmp_path, capsys, caplog):
    pytest.importorskip("keras")
    caplog.set_level(logging.INFO)
    clip = tmp_path / "clip.mp4"
    source_frames = write_clip(clip)
    assert len(source_frames) == FRAMES
    code = main(["upscale", str(clip), "--model", "espcn", "--scale", "2"])
    out = tmp_path / "clip_x2_espcn.mp4"
    assert code == 0, capsys.readouterr().err
    assert str(out) in capsys.readouterr().out
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    capture.release()
    upscaled = read_clip(out)
    assert len(upscaled) == FRAMES and upscaled[0].shape == (64, 80, 3)
    # Each frame is, within codec error, the frame upscaled as an image file would be.
    for i, frame in enumerate(source_frames):
        still = tmp_path / f"frame{i}.png"
        cv2.imwrite(str(still), frame)
        assert main(["upscale", str(still), "--model", "espcn", "--scale", "2"]) == 0
        as_image = cv2.imread(str(tmp_path / f"frame{i}_x2_espcn.png"))
        assert psnr(upscaled[i], as_image) > 30, i
    assert any("frames/s" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_interrupted_clip_leaves_no_partial_video(tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.mp4"
    write_clip(clip)
    from amls2.inference import upscale

    calls = []
    real = upscale.upscale_image

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(upscale, "upscale_image", interrupted)
    code = main(["upscale", str(clip), "--model", "bicubic", "--scale", "2"])
    assert code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--suffix", ""], ["output path equals the input"]),
        (["--max-pixels", "100"], ["clip.mp4", "--max-pixels"]),
    ],
)
def test_clip_refused_before_any_write(tmp_path, capsys, extra, words):
    clip = tmp_path / "clip.mp4"
    write_clip(clip)
    before = clip.read_bytes()
    code = main(["upscale", str(clip), "--model", "bicubic", "--scale", "2", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert clip.read_bytes() == before


def test_clip_whose_output_is_another_input_is_refused(tmp_path, capsys):
    write_clip(tmp_path / "clip.mp4")
    write_clip(tmp_path / "clip_x2_bicubic.mp4")  # the user's file, named like an output
    argv = ["upscale", str(tmp_path / "clip.mp4"), str(tmp_path / "clip_x2_bicubic.mp4")]
    code = main([*argv, "--model", "bicubic", "--scale", "2"])
    assert code == 2 and "is an input of this run" in capsys.readouterr().err


def test_not_a_video_is_a_one_line_error(tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    code = main(["upscale", str(fake), "--model", "bicubic", "--scale", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 2 and len(err) == 1 and "notes.mp4" in err[0] and "not a readable video" in err[0]
    )


def test_is_video_by_suffix():
    assert video.is_video("a/B.MP4") and video.is_video("x.avi")
    assert not video.is_video("x.png")
    assert images.IMAGE_SUFFIXES and not any(video.is_video(f"x{s}") for s in images.IMAGE_SUFFIXES)
