"""Recorded by `python bench/engine_cost.py --simulate --write-table`."""

TABLE = {
    "source": "python bench/engine_cost.py --simulate --write-table (full SD 1.4, fp16, meta)",
    "tflop_per_sample_512": {
        "capture": 0.8033,
        "plain": 0.8033,
        "backward": 1.7217,
        "gated": 0.8359,
        "record": 0.8051,
        "replay": 0.9013,
    },
    "peak_gib_512": {
        "1": 4.34,
        "4": 5.6,
    },
}
