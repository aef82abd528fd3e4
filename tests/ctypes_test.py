"""The ctypes binding (examples/python/negcut_ctypes.py) against the C
program: the same model and image give the same bytes; errors raise.
usage: ctypes_test.py LIBNEGCUT_SO NEGCUT_TRANSLATE SOURCE_DIR"""
import os
import subprocess
import sys
import tempfile

lib_path, translate_bin, src = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "examples", "python"))
import negcut_ctypes as nc  # noqa: E402

ng = nc.Negcut(lib_path, backend=2, threads=1)
assert ng.version().count(".") == 2, ng.version()
with tempfile.TemporaryDirectory() as tmp:
    # A random generator made and saved through the C API itself (no torch
    # needed; translate_cli covers converted .pth files).
    lib = ng.lib
    import ctypes
    lib.negcut_net_create_generator.restype = ctypes.c_int32
    lib.negcut_net_create_generator.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_void_p]
    lib.negcut_net_save.restype = ctypes.c_int32
    lib.negcut_net_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.negcut_net_free.argtypes = [ctypes.c_void_p]
    g = ctypes.c_void_p()
    ng._check(lib.negcut_net_create_generator(ctypes.byref(g), ng.ctx, None), ng.ctx)
    model = os.path.join(tmp, "G.safetensors")
    ng._check(lib.negcut_net_save(g, model.encode()), ng.ctx)
    lib.negcut_net_free(g)

    # an image written by the library, then translated both ways
    w, h = 37, 29
    pixels = bytes((x * 7 + y * 13 + c * 50) % 256 for y in range(h) for x in range(w) for c in range(3))
    with ng.translator(model) as tr:
        out = tr.translate_rgb8(pixels, w, h)
        assert len(out) == w * h * 3
        src_png = os.path.join(tmp, "in.png")
        img = nc._Image()
        buf = ctypes.create_string_buffer(pixels, len(pixels))
        img.width, img.height, img.channels, img.stride_bytes = w, h, 3, w * 3
        img.pixels = ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8))
        ng._check(lib.negcut_image_save(ng.ctx, ctypes.byref(img), src_png.encode(), None), ng.ctx)
        py_png = os.path.join(tmp, "py.png")
        assert tr.translate_file(src_png, py_png) == (w, h)
        try:
            tr.translate_rgb8(b"\0" * 5, 1, 1)
            raise SystemExit("a wrong buffer size was accepted")
        except ValueError:
            pass
    c_png = os.path.join(tmp, "c.png")
    subprocess.run([translate_bin, "--model", model, "--threads", "1", "--output", c_png, src_png],
                   check=True, stderr=subprocess.DEVNULL)
    assert open(c_png, "rb").read() == open(py_png, "rb").read(), "ctypes and C outputs differ"
    # options reach the library: an 8 px tile is refused (the minimum is 16), a
    # valid tiling runs, an unknown option is a TypeError
    try:
        ng.translator(model, tile_px=8)
        raise SystemExit("tile_px 8 was accepted")
    except nc.NegcutError as e:
        assert "tile_px" in str(e), e
    with ng.translator(model, tile_px=16, overlap_px=4, eager=True) as tr:
        tiled = tr.translate_rgb8(pixels, w, h)
        assert len(tiled) == w * h * 3 and tiled != out, "tiling changed nothing"
    # exact tiles (version 4 of the struct) give the whole image's bytes
    # where the overlap covers the generator's reach (here all of the image)
    with ng.translator(model, tile_px=16, overlap_px=64, exact_tiles=True) as tr:
        exact = tr.translate_rgb8(pixels, w, h)
        assert sum(abs(p - q) for p, q in zip(exact, out)) <= len(out) // 100, "exact tiles differ"
    try:
        ng.translator(model, bf17=True)
        raise SystemExit("an unknown option was accepted")
    except TypeError:
        pass
    try:
        ng.translator(os.path.join(tmp, "missing.safetensors"))
        raise SystemExit("a missing model was accepted")
    except nc.NegcutError as e:
        assert "NEGCUT_ERR_IO" in str(e), e
    # the context's device reaches the library (a negative one is refused)
    try:
        nc.Negcut(lib_path, backend=2, threads=1, device=-1)
        raise SystemExit("device -1 was accepted")
    except nc.NegcutError as e:
        assert "device -1" in str(e), e

    # Channels other than RGB in and out: a gray-to-RGBA generator through
    # both programs (the same bytes, a 1-channel input read as luma, 4 out),
    # and one with 64 outputs, which neither can write as an image.
    class GenOptions(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("input_nc", ctypes.c_int32),
                    ("output_nc", ctypes.c_int32), ("ngf", ctypes.c_int32),
                    ("n_blocks", ctypes.c_int32), ("no_antialias", ctypes.c_int32),
                    ("no_antialias_up", ctypes.c_int32), ("init_id", ctypes.c_uint32),
                    ("init_gain", ctypes.c_float)]

    def odd_model(name, cin, cout):
        o = GenOptions(1, cin, cout, 8, 2, 0, 0, 0, 0.0)
        gen, path = ctypes.c_void_p(), os.path.join(tmp, name)
        ng._check(lib.negcut_net_create_generator(ctypes.byref(gen), ng.ctx, ctypes.byref(o)), ng.ctx)
        ng._check(lib.negcut_net_save(gen, path.encode()), ng.ctx)
        lib.negcut_net_free(gen)
        return path

    gray_rgba, wide = odd_model("g4.safetensors", 1, 4), odd_model("g64.safetensors", 3, 64)
    with ng.translator(gray_rgba) as tr:
        assert (tr.in_channels, tr.channels) == (1, 4)
        assert len(tr.translate_rgb8(bytes(w * h), w, h)) == w * h * 4
        tr.translate_file(src_png, os.path.join(tmp, "py4.png"))
    subprocess.run([translate_bin, "--model", gray_rgba, "--threads", "1", "--output",
                    os.path.join(tmp, "c4.png"), src_png], check=True, stderr=subprocess.DEVNULL)
    py4, c4 = (open(os.path.join(tmp, f), "rb").read() for f in ("py4.png", "c4.png"))
    assert py4 == c4, "gray-to-RGBA outputs of ctypes and C differ"
    assert py4[25] == 6, "not an RGBA PNG"  # IHDR colour type
    with ng.translator(wide) as tr:
        try:
            tr.translate_file(src_png, os.path.join(tmp, "py64.png"))
            raise SystemExit("a 64-channel result was written as an image")
        except nc.NegcutError as e:
            assert "64" in str(e), e
    r = subprocess.run([translate_bin, "--model", wide, "--output", os.path.join(tmp, "c64.png"),
                        src_png], stderr=subprocess.PIPE, text=True)
    assert r.returncode == 2 and "64 channels" in r.stderr, (r.returncode, r.stderr)

    # negcut-translate's folders: two inputs of one base name are refused
    # before anything is written; a folder's only image goes into OUT/ as a
    # folder's images do, never to a file named OUT.
    for d in ("a", "b", "one"):
        os.mkdir(os.path.join(tmp, d))
    for d in ("a", "b"):
        os.link(src_png, os.path.join(tmp, d, "x.png"))
    r = subprocess.run([translate_bin, "--model", model, "--output", os.path.join(tmp, "ab"),
                        os.path.join(tmp, "a"), os.path.join(tmp, "b")], stderr=subprocess.PIPE,
                       text=True)
    assert r.returncode == 2 and "both be written as x.png" in r.stderr, (r.returncode, r.stderr)
    assert not os.path.exists(os.path.join(tmp, "ab")), "refused run created its folder"
    os.link(src_png, os.path.join(tmp, "one", "y.png"))
    subprocess.run([translate_bin, "--model", model, "--threads", "1", "--output",
                    os.path.join(tmp, "one_out"), os.path.join(tmp, "one")], check=True,
                   stderr=subprocess.DEVNULL)
    assert open(os.path.join(tmp, "one_out", "y.png"), "rb").read() == open(c_png, "rb").read()
    r = subprocess.run([translate_bin, "--model", model, "--tile", "abc", src_png],
                       stderr=subprocess.PIPE, text=True)
    assert r.returncode == 2 and "--tile" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([translate_bin, "--model", model, "--tile", "8", src_png],
                       stderr=subprocess.PIPE, text=True)
    assert r.returncode == 2 and "at least 16" in r.stderr, (r.returncode, r.stderr)
    # a result never replaces its input: a file or a folder given as its own
    # output is refused before anything is written
    before = open(src_png, "rb").read(), open(os.path.join(tmp, "one", "y.png"), "rb").read()
    for args in (["--output", src_png, src_png],
                 ["--output", os.path.join(tmp, "one"), os.path.join(tmp, "one")],
                 ["--output", os.path.join(tmp, "one") + "/.", os.path.join(tmp, "one", "y.png"),
                  os.path.join(tmp, "a", "x.png")]):
        r = subprocess.run([translate_bin, "--model", model] + args, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 2 and "would be written over it" in r.stderr, (args, r.returncode, r.stderr)
    after = open(src_png, "rb").read(), open(os.path.join(tmp, "one", "y.png"), "rb").read()
    assert before == after, "an input was overwritten"
ng.close()
print("ctypes binding test passed")
