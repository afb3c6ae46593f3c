"""A failed checkpoint write and a file that is no checkpoint say which file, why and what to do."""

import errno
import re

import pytest
import torch
from mmengine.fileio import get_file_backend

from dinoreg_dense.engine import install_atomic_backend, load_run_checkpoint
from dinoreg_dense.engine.run_checkpoint import describe_non_checkpoint


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_full_disk_names_the_file_keeps_the_old_one_and_suggests_space(
    tmp_path, monkeypatch, failing
):
    install_atomic_backend()
    target = tmp_path / "iter_20.pth"
    backend = get_file_backend(str(target))
    backend.put(b"old checkpoint", target)

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr("os.fsync", no_space)
    else:
        # module-level name: only the backend's open() is replaced, not pytest's
        monkeypatch.setattr(
            "dinoreg_dense.engine.atomic_backend.open",
            _opener_whose_write_fails(no_space),
            raising=False,
        )
    with pytest.raises(OSError) as error:
        backend.put(b"new, half written", target)

    assert error.value.errno == errno.ENOSPC
    message = str(error.value)
    assert str(target) in message
    assert "No space left on device" in message
    assert "previous file is intact" in message
    assert "free some space" in message and "--work-dir" in message
    assert target.read_bytes() == b"old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["iter_20.pth"]


def _opener_whose_write_fails(fail):
    """open() whose files raise ``fail()`` on write, as a full disk does."""
    real_open = open

    class FailingFile:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            fail()

        def __getattr__(self, name):
            return getattr(self.file, name)

    def fake_open(path, mode="r", *args, **kwargs):
        return FailingFile(real_open(path, mode, *args, **kwargs))

    return fake_open


def test_other_write_errors_keep_their_type_and_give_no_disk_advice(tmp_path, monkeypatch):
    install_atomic_backend()
    target = tmp_path / "iter_30.pth"
    backend = get_file_backend(str(target))

    def denied(*args):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("os.replace", denied)
    with pytest.raises(PermissionError, match=re.escape(str(target))) as error:
        backend.put(b"new", target)
    assert "no partial file was left" in str(error.value)
    assert "free some space" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "described"),
    [
        (b"hello notes\nsecond line\n", "it starts with text: 'hello notes'"),
        (b"", "it is empty"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "git lfs pull"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"w": {}}', "safetensors"),
        (bytes(range(1, 64)), "it starts with the bytes 01 02 03 04 05 06 07 08"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_called_so(tmp_path, content, described):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(RuntimeError) as error:
        load_run_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path} is not a PyTorch checkpoint (")
    assert described in message
    assert "written by tools/train.py" in message


def test_text_cut_inside_a_character_is_still_text():
    head = ("é" * 40).encode()[:63]
    assert describe_non_checkpoint(head).startswith("it starts with text: 'éé")


def test_torch_save_files_are_not_refused_by_their_first_bytes(tmp_path):
    for legacy in (False, True):
        path = tmp_path / f"ckpt_{legacy}.pth"
        torch.save({"state_dict": {}}, path, _use_new_zipfile_serialization=not legacy)
        assert describe_non_checkpoint(path.read_bytes()[:64]) is None
        assert load_run_checkpoint(path) == {"state_dict": {}}
