from medgap.data.samplers import TwoStreamBatchSampler


def take(sampler, n):
    iterator = iter(sampler)
    return [next(iterator) for _ in range(n)]


def test_batches_have_labelled_then_unlabelled_and_cover_each_epoch():
    labelled, unlabelled = [0, 1, 2, 3], [10, 11, 12, 13, 14, 15]
    sampler = TwoStreamBatchSampler(labelled, unlabelled, 2, 3, seed=7)
    batches = take(sampler, 4)
    for batch in batches:
        assert [i for i, _ in batch[:2]] and all(i in labelled for i, _ in batch[:2])
        assert all(i in unlabelled for i, _ in batch[2:]) and len(batch) == 5
    first_epoch = [i for batch in batches[:2] for i, _ in batch[:2]]
    assert sorted(first_epoch) == labelled  # each labelled case once per pass
    assert take(TwoStreamBatchSampler(labelled, unlabelled, 2, 3, seed=7), 4) == batches


def test_resume_continues_the_same_stream():
    full = take(TwoStreamBatchSampler([0, 1, 2], [5, 6], 2, 1, seed=1), 9)
    resumed = take(TwoStreamBatchSampler([0, 1, 2], [5, 6], 2, 1, seed=1, start_step=5), 4)
    assert resumed == full[5:]


def test_ranks_partition_the_global_batch_without_overlap():
    labelled, unlabelled = list(range(8)), list(range(100, 112))
    single = TwoStreamBatchSampler(labelled, unlabelled, 4, 6, seed=2)
    ranks = [TwoStreamBatchSampler(labelled, unlabelled, 2, 3, seed=2, rank=r, world_size=2) for r in range(2)]
    for step in range(3):
        parts = [ranks[r].batch(step) for r in range(2)]
        positions = [sample for part in parts for sample in part]
        assert len(set(positions)) == len(positions)  # no sample (case, seed) on two ranks
        assert sorted(positions) == sorted(single.batch(step))  # together: the single-process global batch
