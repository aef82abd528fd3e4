"""libnegcut from Python through ctypes: translate images with a generator.

    from negcut_ctypes import Negcut
    ng = Negcut()                                   # finds libnegcut.so.0; Negcut(backend=3, device=1): GPU 1
    with ng.translator("latest_net_G.safetensors") as tr:   # or (..., bf16=True, tile_px=512)
        tr.translate_file("horse.jpg", "zebra.png")
        out = tr.translate_rgb8(pixels, width, height)   # bytes in, bytes out

Only the standard library is needed. Every failing call raises NegcutError
with the library's status name and message.
"""
import ctypes
import ctypes.util
import os

OK = 0


class NegcutError(RuntimeError):
    pass


class _Image(ctypes.Structure):
    _fields_ = [("width", ctypes.c_uint32), ("height", ctypes.c_uint32),
                ("channels", ctypes.c_uint32), ("stride_bytes", ctypes.c_size_t),
                ("pixels", ctypes.POINTER(ctypes.c_uint8))]


# Each options struct mirrors one version of the C struct, and is filled by
# negcut_X_options_init_v2 with that version: later libraries, whose structs
# may be larger, write no byte beyond it.
class _TranslatorOptions(ctypes.Structure):
    VERSION = 4
    _fields_ = [("version", ctypes.c_uint32), ("max_memory_bytes", ctypes.c_uint64),
                ("tile_px", ctypes.c_int32), ("overlap_px", ctypes.c_int32), ("bf16", ctypes.c_int32),
                ("tf32", ctypes.c_int32), ("eager", ctypes.c_int32), ("conv_algo", ctypes.c_int32),
                ("exact_tiles", ctypes.c_int32)]


CONV_AUTO, CONV_DIRECT, CONV_WINOGRAD = 0, 1, 2  # negcut_conv_algo


class _CtxOptions(ctypes.Structure):
    VERSION = 1
    _fields_ = [("version", ctypes.c_uint32), ("backend", ctypes.c_int32),
                ("threads", ctypes.c_int32), ("device", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


def _load(path):
    if path is None:
        path = os.environ.get("NEGCUT_LIBRARY") or ctypes.util.find_library("negcut") or "libnegcut.so.0"
    lib = ctypes.CDLL(path)
    P, S, I32, U32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint32
    sig = {
        "negcut_status_str": (ctypes.c_char_p, [I32]),
        "negcut_version_string": (ctypes.c_char_p, []),
        "negcut_ctx_options_init_v2": (I32, [ctypes.POINTER(_CtxOptions), U32]),
        "negcut_ctx_create": (I32, [ctypes.POINTER(P), ctypes.POINTER(_CtxOptions)]),
        "negcut_ctx_free": (None, [P]),
        "negcut_ctx_last_error": (ctypes.c_char_p, [P]),
        "negcut_model_load": (I32, [ctypes.POINTER(P), P, ctypes.c_char_p]),
        "negcut_model_free": (None, [P]),
        "negcut_model_input_channels": (I32, [P]),
        "negcut_model_output_channels": (I32, [P]),
        "negcut_translator_options_init_v2": (I32, [ctypes.POINTER(_TranslatorOptions), U32]),
        "negcut_translator_create": (I32, [ctypes.POINTER(P), P, P, ctypes.POINTER(_TranslatorOptions)]),
        "negcut_translator_free": (None, [P]),
        "negcut_translate_rgb8": (I32, [P, ctypes.c_char_p, U32, U32, S, P, S]),
        "negcut_image_load": (I32, [ctypes.POINTER(ctypes.POINTER(_Image)), P, ctypes.c_char_p, P]),
        "negcut_image_save": (I32, [P, ctypes.POINTER(_Image), ctypes.c_char_p, P]),
        "negcut_image_free": (None, [ctypes.POINTER(_Image)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


class Negcut:
    """One library context (backend 0 = auto, 1 = ref, 2 = cpu, 3 = cuda; device:
    the GPU of the cuda backend)."""

    def __init__(self, library=None, backend=0, threads=0, seed=0, device=0):
        self.lib = _load(library)
        opts = _CtxOptions()
        self.lib.negcut_ctx_options_init_v2(ctypes.byref(opts), _CtxOptions.VERSION)
        opts.backend, opts.threads, opts.seed, opts.device = backend, threads, seed, device
        self.ctx = ctypes.c_void_p()
        self._check(self.lib.negcut_ctx_create(ctypes.byref(self.ctx), ctypes.byref(opts)), None)

    def _check(self, status, ctx):
        if status != OK:
            raise NegcutError("%s: %s" % (self.lib.negcut_status_str(status).decode(),
                                          self.lib.negcut_ctx_last_error(ctx).decode()))

    def version(self):
        return self.lib.negcut_version_string().decode()

    def translator(self, model_path, **options):
        """options: any field of negcut_translator_options (max_memory_bytes,
        tile_px, overlap_px, bf16, tf32, eager, conv_algo: CONV_AUTO or
        CONV_DIRECT); booleans are fine."""
        return Translator(self, model_path, options)

    def close(self):
        if self.ctx:
            self.lib.negcut_ctx_free(self.ctx)
            self.ctx = None

    def __del__(self):
        self.close()


class Translator:
    def __init__(self, ng, model_path, options=None):
        self.ng, lib = ng, ng.lib
        opts = _TranslatorOptions()
        lib.negcut_translator_options_init_v2(ctypes.byref(opts), _TranslatorOptions.VERSION)
        for name, value in (options or {}).items():
            if name == "version" or name not in dict(_TranslatorOptions._fields_):
                raise TypeError("unknown translator option %r" % name)
            setattr(opts, name, int(value))
        self.model, self.tr = ctypes.c_void_p(), ctypes.c_void_p()
        ng._check(lib.negcut_model_load(ctypes.byref(self.model), ng.ctx, model_path.encode()), ng.ctx)
        try:
            ng._check(lib.negcut_translator_create(ctypes.byref(self.tr), ng.ctx, self.model,
                                                   ctypes.byref(opts)), ng.ctx)
        except NegcutError:
            lib.negcut_model_free(self.model)
            self.model = None
            raise
        self.in_channels = lib.negcut_model_input_channels(self.model)
        self.channels = lib.negcut_model_output_channels(self.model)

    def translate_rgb8(self, pixels, width, height):
        """pixels: width * height * in_channels bytes (3: RGB, 1: gray), rows packed.
        Returns width * height * channels bytes (the model's output channels) the same way."""
        if len(pixels) != width * height * self.in_channels:
            raise ValueError("expected %d bytes" % (width * height * self.in_channels))
        out = ctypes.create_string_buffer(width * height * self.channels)
        self.ng._check(self.ng.lib.negcut_translate_rgb8(self.tr, bytes(pixels), width, height,
                                                         width * self.in_channels, out,
                                                         width * self.channels), self.ng.ctx)
        return out.raw

    def translate_file(self, src, dst):
        """Translates an image file (PNG or JPEG) into dst, which gets the model's output
        channels (1 gray, 3 RGB, 4 RGBA; JPEG drops alpha). A gray model reads the image's
        BT.601 luma."""
        lib, ctx = self.ng.lib, self.ng.ctx
        if self.in_channels not in (1, 3) or self.channels not in (1, 3, 4):
            raise NegcutError("the model takes %d and gives %d channels; image files need 1 or 3 "
                              "in and 1, 3 or 4 out" % (self.in_channels, self.channels))
        img = ctypes.POINTER(_Image)()
        try:
            self.ng._check(lib.negcut_image_load(ctypes.byref(img), ctx, src.encode(), None), ctx)
            w, h, stride = img.contents.width, img.contents.height, img.contents.stride_bytes
            raw = ctypes.string_at(img.contents.pixels, stride * h)
        finally:
            lib.negcut_image_free(img)
        rgb = b"".join(raw[y * stride:y * stride + w * 3] for y in range(h))
        if self.in_channels == 1:
            rgb = bytes(int(0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2] + 0.5)
                        for i in range(0, len(rgb), 3))
        out = ctypes.create_string_buffer(self.translate_rgb8(rgb, w, h), w * h * self.channels)
        res = _Image(w, h, self.channels, w * self.channels,
                     ctypes.cast(out, ctypes.POINTER(ctypes.c_uint8)))
        self.ng._check(lib.negcut_image_save(ctx, ctypes.byref(res), dst.encode(), None), ctx)
        return w, h

    def close(self):
        if self.tr:
            self.ng.lib.negcut_translator_free(self.tr)
            self.ng.lib.negcut_model_free(self.model)
            self.tr = self.model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
