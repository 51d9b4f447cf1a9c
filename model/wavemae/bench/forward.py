"""Parameter count and eager forward time of a WaveMAE config (default: the spec's, seq_len 256).

    python -m wavemae.bench.forward [--seq-len 256] [--batch 1 32]

Prints, per batch size, the time of a masked ``forward`` (the model's default ``n_mask``) and of
an all-visible ``encode``, in ``torch.inference_mode`` on this machine's default thread count.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> None:
    import torch

    from wavemae.models import WaveMAE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = WaveMAE(seq_len=args.seq_len).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"WaveMAE(seq_len={args.seq_len}) defaults: {n_params:,} parameters, "
        f"{torch.get_num_threads()} threads"
    )
    for b in args.batch:
        x = torch.randn(b, args.seq_len)
        visible = torch.ones(b, args.seq_len, dtype=torch.bool)
        cases = {
            f"masked forward (n_mask={model.n_mask})": lambda x=x: model(x),
            "all-visible encode": lambda x=x, v=visible: model.encode(x, v),
        }
        with torch.inference_mode():
            for name, run in cases.items():
                run()  # warm-up
                start = time.perf_counter()
                for _ in range(args.repeats):
                    run()
                ms = (time.perf_counter() - start) / args.repeats * 1e3
                print(f"batch {b:4d}  {name:28s} {ms:9.2f} ms")


if __name__ == "__main__":
    main()
