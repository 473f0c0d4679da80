import pytest
import torch

from vitssl.config import DataConfig
from vitssl.data.dataset import ImageDataset, load_dataset
from vitssl.data.loader import BatchLoader
from vitssl.errors import DataError


def memory_ds(n=50):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return ImageDataset("t", "train", torch.arange(n), ["x"], 4, images=images)


def ids(batch):
    return batch[0][:, 0, 0, 0].tolist()


def test_epoch_order_seeded_and_resumable():
    dl = BatchLoader(memory_ds(), batch_size=8, device=torch.device("cpu"), seed=1)
    assert len(dl) == 6
    full = [ids(b) for b in dl.epoch(2)]
    assert full == [ids(b) for b in dl.epoch(2)]
    assert [ids(b) for b in dl.epoch(2, start=4)] == full[4:]
    assert full != [ids(b) for b in dl.epoch(3)]
    flat = sum(full, [])
    assert len(set(flat)) == len(flat) == 48
    assert all(torch.equal(b[0][:, 0, 0, 0].long(), b[1]) for b in dl.epoch(0))  # labels travel with images


def test_ranks_share_out_the_global_batch():
    per_rank = [[ids(b) for b in BatchLoader(memory_ds(), batch_size=4, device=torch.device("cpu"), seed=0,
                                             rank=r, world=3).epoch(0)] for r in range(3)]
    single = [ids(b) for b in BatchLoader(memory_ds(), batch_size=12, device=torch.device("cpu"), seed=0).epoch(0)]
    for step in range(len(single)):
        together = per_rank[0][step] + per_rank[1][step] + per_rank[2][step]
        assert sorted(together) == sorted(single[step])


def test_evaluation_order_sees_every_image_once():
    dl = BatchLoader(memory_ds(50), batch_size=8, device=torch.device("cpu"), shuffle=False, drop_last=False)
    assert sum((ids(b) for b in dl.epoch(0)), []) == list(range(50))


def test_too_few_images_for_a_batch():
    with pytest.raises(DataError, match="fewer than one batch"):
        BatchLoader(memory_ds(10), batch_size=16, device=torch.device("cpu"))


@pytest.mark.filterwarnings("error")  # no warning from the decode path (read-only PIL buffers)
def test_streaming_matches_memory(cifar_small):
    cfg = DataConfig(root=str(cifar_small), image_size=32, num_workers=0)
    mem = BatchLoader(load_dataset(cfg, "test"), batch_size=8, device=torch.device("cpu"), seed=5)
    cfg.cache = "stream"
    stream = BatchLoader(load_dataset(cfg, "test"), batch_size=8, device=torch.device("cpu"), seed=5, num_workers=1)
    for (a, la), (b, lb) in zip(mem.epoch(1), stream.epoch(1)):
        assert torch.equal(a, b) and torch.equal(la, lb)
