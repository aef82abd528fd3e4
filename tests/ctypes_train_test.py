"""The ctypes binding's trainer (examples/python/negcut_ctypes.py) against the
C program and against itself: the options struct's layout, the same
generator bytes as negcut-train after the same iterations, exact resume,
caller batches, the progress callback, errors, and two data-parallel ranks
on two threads against one trainer of their joint batch.
usage: ctypes_train_test.py LIBNEGCUT_SO EXAMPLES_BIN_DIR SOURCE_DIR"""
import array
import ctypes
import gc
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import threading

lib_path, bin_dir, src = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "examples", "python"))
import negcut_ctypes as nc  # noqa: E402

TINY = dict(ngf=4, ndf=4, n_blocks=1, nce_layers=[0, 4, 8, 12], num_patches=16, netf_nc=16,
            load_size=36, crop_size=32)
CLI_TINY = ["--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--nce-layers", "0,4,8,12",
            "--num-patches", "16", "--netf-nc", "16", "--load-size", "36", "--crop-size", "32"]


def ctx(seed=0):
    return nc.Negcut(lib_path, backend=2, threads=1, seed=seed)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tensors(path):
    """A safetensors file's F32 tensors as name -> list of floats."""
    data = read(path)
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = array.array("f", data[8 + n + a:8 + n + b]).tolist()
    return out


def expect_error(fn, exc, text):
    try:
        fn()
    except exc as e:
        assert text in str(e), (text, str(e))
        return
    raise SystemExit("no %s (%s)" % (exc.__name__, text))


ng = ctx()
# The struct mirrors version 4 field by field: init fills the reference
# defaults (REFERENCE.md) where this layout puts them.
o = nc._TrainerOptions()
ng._check(ng.lib.negcut_trainer_options_init_v2(ctypes.byref(o), 4, nc.MODES["negcut"]), None)
assert (o.version, o.mode, o.dataroot, o.input_nc, o.ngf, o.ndf, o.n_blocks, o.n_layers_d) == \
    (4, 2, None, 3, 64, 64, 9, 3), "options struct layout"
assert list(o.nce_layers[:o.n_nce_layers]) == [0, 4, 8, 12, 16] and o.num_patches == 256
assert (o.netf_nc, o.z_dim, o.nce_idt, o.flip_equivariance) == (256, 64, 1, 0)
assert abs(o.nce_t - 0.07) < 1e-7 and o.lambda_nce == 1 and o.lambda_ms_neg == 1
assert (o.lr, o.beta1, o.beta2) == (2e-4, 0.5, 0.999)
assert (o.n_epochs, o.n_epochs_decay, o.batch_size, o.load_size, o.crop_size) == (200, 200, 1, 286, 256)
assert (o.detach_negatives, o.ema_from_f, o.eager, o.tf32, o.conv_algo) == (0, 0, 0, 0, 0)
ng._check(ng.lib.negcut_trainer_options_init_v2(ctypes.byref(o), 4, nc.MODES["fastcut"]), None)
assert (o.lambda_nce, o.nce_idt, o.flip_equivariance, o.n_epochs, o.n_epochs_decay) == (10, 0, 1, 150, 50)

with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    subprocess.run([os.path.join(bin_dir, "make_demo_data"), data, "--count", "6", "--test", "2",
                    "--size", "32", "--seed", "3"], check=True, stdout=subprocess.DEVNULL)

    # 3 iterations from the data folders, then the same from negcut-train:
    # the same generator, byte for byte.
    seen = []
    with ng.trainer("cut", dataroot=data, **TINY) as t:
        t.run(3, progress=lambda p: seen.append((p["iteration"], p["g_total"])) and False)
        assert [i for i, _ in seen] == [1, 2, 3], seen
        assert all(math.isfinite(g) and g > 0 for _, g in seen), seen
        p = t.progress()
        assert p["iteration"] == 3 and p["iterations_per_epoch"] == 6 and p["epoch"] == 1, p
        assert p["total_iterations"] == 6 * 400 and p["lr"] == 2e-4, p
        w, h, vis = t.visuals()
        assert (w, h) == (32, 32) and all(len(v) == 32 * 32 * 3 for v in vis.values())
        assert vis["real_a"] != vis["fake_b"] and any(vis["idt_b"]), "visuals"
        t.save_network("G", os.path.join(tmp, "py_G3.safetensors"))
        t.save_state(os.path.join(tmp, "py_state3.safetensors"))
        expect_error(lambda: t.save_network("N", os.path.join(tmp, "N.safetensors")),
                     nc.NegcutError, "NEGCUT_ERR")
        expect_error(lambda: t.save_network("H", os.path.join(tmp, "H.safetensors")),
                     ValueError, "H")
        t.run(2)
        t.save_network("G", os.path.join(tmp, "py_G5.safetensors"))
    subprocess.run([os.path.join(bin_dir, "negcut-train"), "--dataroot", data, "--name", "c",
                    "--checkpoints-dir", os.path.join(tmp, "ck"), "--mode", "cut", "--iters", "3",
                    "--threads", "1", "--backend", "cpu"] + CLI_TINY, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert read(os.path.join(tmp, "ck", "c", "latest_net_G.safetensors")) == \
        read(os.path.join(tmp, "py_G3.safetensors")), "Python and negcut-train trained differently"
    assert read(os.path.join(tmp, "py_G3.safetensors")) != read(os.path.join(tmp, "py_G5.safetensors"))

    # Exact resume: a fresh trainer given the state after 3 iterations ends
    # 2 iterations later where the uninterrupted one did.
    with ng.trainer("cut", dataroot=data, **TINY) as t:
        t.load_state(os.path.join(tmp, "py_state3.safetensors"))
        assert t.progress()["iteration"] == 3
        t.run(2)
        t.save_network("G", os.path.join(tmp, "py_G5r.safetensors"))
    assert read(os.path.join(tmp, "py_G5.safetensors")) == read(os.path.join(tmp, "py_G5r.safetensors"))

    # The progress callback stops a run; an exception in it comes back out.
    with ng.trainer("cut", dataroot=data, **TINY) as t:
        expect_error(lambda: t.run(10, progress=lambda p: p["iteration"] >= 2), nc.NegcutError,
                     "NEGCUT_ERR_CANCELLED")
        assert t.progress()["iteration"] == 2
        expect_error(lambda: t.run(10, progress=lambda p: 1 / 0), ZeroDivisionError, "")
        assert t.progress()["iteration"] == 3

    # Options and errors.
    expect_error(lambda: ng.trainer("cut", ngff=4), TypeError, "ngff")
    expect_error(lambda: ng.trainer("cutt"), ValueError, "cutt")
    expect_error(lambda: ng.trainer("cut", ngf=0), nc.NegcutError, "ngf 0")
    expect_error(lambda: ng.trainer("cut", preprocess="zoom"), ValueError, "zoom")
    expect_error(lambda: ng.trainer("cut", dataroot=os.path.join(tmp, "nowhere"), **TINY),
                 nc.NegcutError, "nowhere")
    with ng.trainer("fastcut", dataroot=data, preprocess="crop", no_flip=True, lr=1e-3, **TINY) as t:
        assert (t.options.preprocess, t.options.no_flip, t.options.lr) == (1, 1, 1e-3)
        t.step()
        assert t.progress()["lr"] == 1e-3

    # Caller batches: a float32 buffer and a list of the same numbers train
    # alike; a batch of the wrong size is refused before the library sees it.
    n = 3 * 32 * 32
    img_a = [math.sin(0.01 * i) for i in range(2 * n)]
    img_b = [math.cos(0.013 * i) * 0.9 for i in range(2 * n)]
    outs = []
    for as_buffer in (True, False):
        with ctx().trainer("negcut", **TINY) as t:
            a, b = img_a[:n], img_b[:n]
            if as_buffer:
                a, b = array.array("f", a), array.array("f", b).tobytes()
            t.step_batch(a, b, 32, 32)
            assert t.progress()["iteration"] == 1 and t.progress()["n_total"] != 0
            expect_error(lambda: t.step_batch(a, img_b[:n - 1], 32, 32), ValueError, "real_b")
            expect_error(lambda: t.step_batch(array.array("d", img_a[:n]), b, 32, 32),
                         ValueError, "float32")
            expect_error(lambda: t.step_batch(array.array("i", [0] * n), b, 32, 32),
                         ValueError, "not float32")
            out = os.path.join(tmp, "sb%d.safetensors" % as_buffer)
            t.save_network("N", out)
            outs.append(read(out))
    assert outs[0] == outs[1], "a buffer and a list trained differently"

    # Data parallelism: ranks 0 and 1 of batch 1 on two threads, summing
    # through Python, against one trainer of batch 2 given both images.
    ITERS = 2
    single = os.path.join(tmp, "single.safetensors")
    single_losses = []
    with ctx(7).trainer("negcut", batch_size=2, **TINY) as t:
        for _ in range(ITERS):
            t.step_batch(img_a, img_b, 32, 32)
            single_losses.append(t.progress()["g_total"])
        t.save_network("G", single)
    bar = threading.Barrier(2)
    shared = [None, None]
    calls = [0, 0]
    losses = [[], []]
    errors = []

    def rank_main(rank):
        def allreduce(data, count):
            calls[rank] += 1
            shared[rank] = data
            bar.wait()
            if rank == 0:
                total = [x + y for x, y in zip(shared[0], shared[1])]
                shared[0][:] = total
                shared[1][:] = total
            bar.wait()
        try:
            with ctx(7).trainer("negcut", **TINY) as t:
                t.set_data_parallel(rank, 2, allreduce)
                for _ in range(ITERS):
                    t.step_batch(img_a[rank * n:(rank + 1) * n], img_b[rank * n:(rank + 1) * n], 32, 32)
                    losses[rank].append(t.progress()["g_total"])
                t.save_network("G", os.path.join(tmp, "rank%d.safetensors" % rank))
        except BaseException as e:  # noqa: B902 (reported by the main thread)
            errors.append(e)
            bar.abort()

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert calls == [4 * ITERS, 4 * ITERS], calls  # D, N, G and F each iteration
    assert read(os.path.join(tmp, "rank0.safetensors")) == read(os.path.join(tmp, "rank1.safetensors")), \
        "the ranks' generators differ"
    for it in range(ITERS):
        mean = (losses[0][it] + losses[1][it]) / 2
        assert abs(mean - single_losses[it]) <= 1e-4 * abs(single_losses[it]), (it, mean, single_losses)
    g_single, g_rank = tensors(single), tensors(os.path.join(tmp, "rank0.safetensors"))
    assert g_single.keys() == g_rank.keys()
    # Adam makes a step of about lr from any gradient, even one of rounding
    # noise: Adam's first two steps move a parameter at most (1 + 1.054) lr
    # with betas (0.5, 0.999), so two runs differ by at most 4.11 lr. The
    # biases of the convolutions that an instance norm follows (every one but
    # the output convolution's) have a true gradient of 0, so their steps go
    # either way; some weights before norms have gradients near the rounding
    # too (on AVX2 0.7% of them moved by up to 0.11 lr, on AVX-512 none by
    # more than 1.5e-8). The rest agree to rounding. A rank that kept its own
    # gradients would move most parameters by about lr.
    last_conv = max((k for k in g_single if k.endswith(".bias")),
                    key=lambda k: int(k.split(".")[1]))
    noise = {k for k in g_single if k.endswith(".bias") and k != last_conv}
    diffs = {kind: [abs(x - y) for k in g_single if (k in noise) == kind
                    for x, y in zip(g_single[k], g_rank[k])] for kind in (False, True)}
    close = sum(d <= 1e-6 for d in diffs[False]) / len(diffs[False])
    print("data parallel against one trainer of batch 2: %.2f%% of the parameters within 1e-6, "
          "all within %.3g; the biases before norms within %.3g (lr 2e-4)"
          % (100 * close, max(diffs[False]), max(diffs[True])))
    assert ITERS == 2 and close >= 0.95, close
    assert max(diffs[False] + diffs[True]) <= 4.11 * 2e-4

    # A failing allreduce fails the step with the function's own exception.
    def broken(data, count):
        raise OSError("network down")
    with ctx(7).trainer("cut", **TINY) as t:
        t.set_data_parallel(0, 2, broken)
        # a refused call leaves the function before in place, and alive
        expect_error(lambda: t.set_data_parallel(5, 2, lambda data, count: None), nc.NegcutError,
                     "rank")
        gc.collect()
        expect_error(lambda: t.step_batch(img_a[:n], img_b[:n], 32, 32), OSError, "network down")

    # Handles dropped without closing, the context with them: collected in
    # any order, nothing is freed after its context.
    for _ in range(3):
        t = ctx().trainer("cut", **TINY)
        t.set_data_parallel(0, 2, broken)
        del t
        gc.collect()

    # Closing the context first closes what is still open on it.
    ng2 = ctx()
    t = ng2.trainer("cut", **TINY)
    ng2.close()
    assert not t.t, "the trainer outlived its context"
ng.close()
print("ctypes training binding test passed")
