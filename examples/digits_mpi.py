"""digits_mlp.py on several processes: data-parallel training over MPI.

The same model, data, key and global batch as ``digits_mlp.py``; each of the
``p`` ranks computes the gradients of its shard of each batch of 64 and one
``Allreduce`` per step sums them, so the run — dropout masks included —
equals the single-process one to float rounding and prints the same test
accuracy. Rank 0 alone prints and writes the checkpoint.

Run:  mpiexec -n 2 python -m mpi4py examples/digits_mpi.py [--epochs N] [--out DIR]
"""

from __future__ import annotations

import time

from digits_mlp import parse_args, prepare
from mpi4py import MPI

import nnfunc as nf
from nnfunc import distributed, metrics
from nnfunc.callbacks import checkpoint, early_stopping


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    start = time.perf_counter()

    s = prepare(args.epochs)
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
    result = distributed.fit(
        s.model, nf.softmax_cross_entropy, s.opt, s.params, s.train,
        epochs=args.epochs, batch_size=64, key=s.key, validation=s.val,
        metrics=[metrics.accuracy], progress=not args.quiet,
        callbacks=[early_stopping("val_loss", patience=15),
                   checkpoint(args.out / "digits_mpi.npz", every=10)],
    )
    test = nf.train.evaluate(s.model, nf.softmax_cross_entropy, result.params, s.data.x_test,
                             s.data.y_test, metrics=[metrics.accuracy])
    if rank == 0:
        print(f"ranks: {size}, epochs run: {result.epoch}, "
              f"best val_loss: {min(result.history['val_loss']):.4f}")
        print(f"time: {time.perf_counter() - start:.1f}s")
        print(f"test accuracy: {test['accuracy']:.3f}")


if __name__ == "__main__":
    main()
