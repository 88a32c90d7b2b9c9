from collections import Counter

from llmos.data._batching import BatchPlan, _split


def plan(**kw) -> BatchPlan:
    lengths = tuple((i * 37) % 50 + 1 for i in range(103))
    return BatchPlan(lengths, **{"batch_size": 4, "seed": 7, **kw})


def test_epoch_is_deterministic_and_varies_by_epoch() -> None:
    p = plan()
    assert p.epoch(0) == p.epoch(0)
    assert p.epoch(0) != p.epoch(1)


def test_step_batches_do_not_depend_on_how_workers_split_them() -> None:
    # 2 workers × 4 == 1 worker × 8 == 1 worker × 4 × accumulation 2
    a = plan(batch_size=4, world_size=2).epoch(3)
    b = plan(batch_size=8, world_size=1).epoch(3)
    c = plan(batch_size=4, grad_accum=2).epoch(3)
    assert a == b == c


def test_ranks_partition_each_step_exactly() -> None:
    plans = [plan(world_size=2, grad_accum=2, rank=r) for r in range(2)]
    for step in plans[0].epoch(0):
        shards = [i for p in plans for micro in p.micro_batches(step) for i in micro]
        assert sorted(shards) == sorted(step)
        assert all(len(m) > 0 for p in plans for m in p.micro_batches(step))


def test_each_example_once_per_epoch_except_a_dropped_tail() -> None:
    p = plan(world_size=2, grad_accum=2)  # step of 16; 103 = 6 × 16 + 7 → tail of 7 kept (≥ 4)
    seen = Counter(i for step in p.epoch(0) for i in step)
    assert set(seen.values()) == {1} and len(seen) == 103
    assert p.steps_per_epoch() == 7
    tiny_tail = BatchPlan(tuple(range(1, 19)), batch_size=4, world_size=2, grad_accum=2)  # 18 = 16 + 2
    assert tiny_tail.steps_per_epoch() == 1 and len(tiny_tail.epoch(0)) == 1


def test_length_grouping_cuts_padding() -> None:
    def padding(p: BatchPlan) -> int:
        return sum(max(p.lengths[i] for i in s) * len(s) - sum(p.lengths[i] for i in s) for s in p.epoch(0))

    assert padding(plan(group_by_length=True)) < 0.5 * padding(plan(group_by_length=False))


def test_split_sizes_differ_by_at_most_one() -> None:
    assert [len(x) for x in _split(list(range(7)), 3)] == [3, 2, 2]
