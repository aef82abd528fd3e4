"""libnegcut from Python through ctypes: translate images with a generator,
and train one.

    from negcut_ctypes import Negcut
    ng = Negcut()                                   # finds libnegcut.so.0; Negcut(backend=3, device=1): GPU 1
    with ng.translator("latest_net_G.safetensors") as tr:   # or (..., bf16=True, tile_px=512)
        tr.translate_file("horse.jpg", "zebra.png")
        out = tr.translate_rgb8(pixels, width, height)   # bytes in, bytes out

    ng = Negcut(seed=1)
    with ng.trainer("negcut", dataroot="datasets/horse2zebra", ngf=32) as t:
        t.run(1000, progress=lambda p: print(p["iteration"], p["g_total"]))
        t.save_network("G", "latest_net_G.safetensors")
        t.save_state("train_state.safetensors")     # t.load_state(...) resumes exactly

Only the standard library is needed. Every failing call raises NegcutError
with the library's status name and message.
"""
import ctypes
import ctypes.util
import os
import weakref

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


class _TrainerOptions(ctypes.Structure):
    VERSION = 4
    _I, _F, _D, _S = ctypes.c_int32, ctypes.c_float, ctypes.c_double, ctypes.c_char_p
    _fields_ = [("version", ctypes.c_uint32), ("mode", _I), ("dataroot", _S), ("dir_a", _S),
                ("dir_b", _S), ("input_nc", _I), ("output_nc", _I), ("ngf", _I), ("ndf", _I),
                ("n_blocks", _I), ("n_layers_d", _I), ("no_antialias", _I),
                ("no_antialias_up", _I), ("n_nce_layers", _I), ("nce_layers", _I * 8),
                ("num_patches", _I), ("netf_nc", _I), ("z_dim", _I), ("nce_t", _F),
                ("lambda_gan", _F), ("lambda_nce", _F), ("lambda_ms_neg", _F), ("nce_idt", _I),
                ("flip_equivariance", _I), ("gan_vanilla", _I), ("lr", _D), ("beta1", _D),
                ("beta2", _D), ("n_epochs", _I), ("n_epochs_decay", _I), ("batch_size", _I),
                ("load_size", _I), ("crop_size", _I), ("preprocess", _I), ("no_flip", _I),
                ("prefetch", _I), ("detach_negatives", _I), ("ema_from_f", _I),
                ("diversity_all_calls", _I), ("eager", _I), ("tf32", _I), ("conv_algo", _I)]


class _Progress(ctypes.Structure):
    _fields_ = [("iteration", ctypes.c_int64), ("total_iterations", ctypes.c_int64),
                ("epoch", ctypes.c_int64), ("iterations_per_epoch", ctypes.c_int64),
                ("lr", ctypes.c_double), ("images_per_second", ctypes.c_double)] + \
               [(n, ctypes.c_float) for n in ("d_real", "d_fake", "g_gan", "nce_x", "nce_y",
                                              "g_total", "n_total", "diversity")]


MODES = {"cut": 0, "fastcut": 1, "negcut": 2, "fastnegcut": 3}  # negcut_train_mode
PREPROCESS = {"resize_and_crop": 0, "crop": 1, "scale_width": 2, "scale_width_and_crop": 3,
              "none": 4}
NETS = {"G": 0, "D": 1, "F": 2, "N": 3, "F_": 4}  # negcut_net_id
ALLREDUCE_HOST = 1
_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_Progress), ctypes.c_void_p)
_ALLREDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                                 ctypes.c_void_p)


# cmake --install writes here the installed library's path relative to this
# file's folder; None where the module runs from the source tree.
_INSTALLED_LIBRARY = None


def _load(path):
    """The library: path, else $NEGCUT_LIBRARY, else the one installed with this
    module, else the system's (ldconfig's, then the loader's search path)."""
    if path is None:
        path = os.environ.get("NEGCUT_LIBRARY")
    if path is None and _INSTALLED_LIBRARY is not None:
        path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                             _INSTALLED_LIBRARY))
        if not os.path.exists(path):  # the module copied elsewhere
            path = None
    if path is None:
        path = ctypes.util.find_library("negcut") or "libnegcut.so.0"
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
        "negcut_trainer_options_init_v2": (I32, [ctypes.POINTER(_TrainerOptions), U32, I32]),
        "negcut_trainer_create": (I32, [ctypes.POINTER(P), P, ctypes.POINTER(_TrainerOptions)]),
        "negcut_trainer_free": (None, [P]),
        "negcut_trainer_set_data_parallel_v2": (I32, [P, I32, I32, _ALLREDUCE_FN, P, U32]),
        "negcut_trainer_step": (I32, [P]),
        "negcut_trainer_step_batch": (I32, [P, P, P, U32, U32]),
        "negcut_trainer_set_epoch": (I32, [P, ctypes.c_int64]),
        "negcut_trainer_progress": (I32, [P, ctypes.POINTER(_Progress)]),
        "negcut_trainer_run": (I32, [P, ctypes.c_int64, _PROGRESS_FN, P]),
        "negcut_trainer_save_network": (I32, [P, I32, ctypes.c_char_p]),
        "negcut_trainer_save_state": (I32, [P, ctypes.c_char_p]),
        "negcut_trainer_load_state": (I32, [P, ctypes.c_char_p]),
        "negcut_trainer_visuals": (I32, [P, ctypes.POINTER(U32), ctypes.POINTER(U32), P, P, P, P]),
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
        self._handles = weakref.WeakSet()  # translators and trainers, closed before the context
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

    def trainer(self, mode="cut", **options):
        """A trainer with the reference defaults of mode ("cut", "fastcut", "negcut",
        "fastnegcut"); options: any field of negcut_trainer_options (dataroot, dir_a,
        dir_b, ngf, lr, batch_size, crop_size, eager, conv_algo, ...), with
        nce_layers a list and preprocess a name or number; booleans are fine."""
        return Trainer(self, mode, options)

    def close(self):
        """Frees the context, after every translator and trainer still open on it."""
        for h in list(getattr(self, "_handles", ())):
            h.close()
        if getattr(self, "ctx", None):
            self.lib.negcut_ctx_free(self.ctx)
            self.ctx = None

    def __del__(self):
        self.close()


class _Handle:
    """A library handle: closed by close(), at the end of a with block, when
    collected, or with its context."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Translator(_Handle):
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
        ng._handles.add(self)
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
        if getattr(self, "tr", None):
            if self.ng.ctx:  # else the context went first (collected together): leak, not crash
                self.ng.lib.negcut_translator_free(self.tr)
                self.ng.lib.negcut_model_free(self.model)
            self.tr = self.model = None


class _ErrorBox:
    """An exception raised in a callback, for the call that ran it to raise."""
    error = None


def _floats(x, n, name):
    """n floats for C: from a float32 buffer (bytes, array('f'), numpy) or a sequence."""
    try:
        m = memoryview(x)
    except TypeError:
        m = None
    if m is not None:
        if m.format.lstrip("@=<") not in ("f", "B", "b", "c"):  # float32, or raw bytes of them
            raise ValueError("%s: a buffer of %r items, not float32" % (name, m.format))
        if m.nbytes != 4 * n:
            raise ValueError("%s: expected %d float32 values (%d bytes), got %d bytes"
                             % (name, n, 4 * n, m.nbytes))
        return (ctypes.c_float * n).from_buffer_copy(m)
    if len(x) != n:
        raise ValueError("%s: expected %d floats, got %d" % (name, n, len(x)))
    return (ctypes.c_float * n)(*x)


class Trainer(_Handle):
    """negcut_trainer (include/negcut/train.h). One thread at a time."""

    def __init__(self, ng, mode, options=None):
        self.ng, lib = ng, ng.lib
        if isinstance(mode, str):
            if mode not in MODES:
                raise ValueError("unknown mode %r (%s)" % (mode, ", ".join(MODES)))
            mode = MODES[mode]
        opts = _TrainerOptions()
        ng._check(lib.negcut_trainer_options_init_v2(ctypes.byref(opts), _TrainerOptions.VERSION,
                                                     mode), None)
        fields = dict(_TrainerOptions._fields_)
        self._keep = []  # the option strings, alive while the trainer may read them
        for name, value in (options or {}).items():
            if name in ("version", "mode", "n_nce_layers") or name not in fields:
                raise TypeError("unknown trainer option %r" % name)
            if name == "nce_layers":
                layers = [int(v) for v in value]
                if not 1 <= len(layers) <= 8:
                    raise ValueError("nce_layers: 1 to 8 layers")
                opts.n_nce_layers = len(layers)
                opts.nce_layers[:len(layers)] = layers
            elif name in ("dataroot", "dir_a", "dir_b"):
                self._keep.append(None if value is None else os.fsencode(value))
                setattr(opts, name, self._keep[-1])
            elif name == "preprocess" and isinstance(value, str):
                if value not in PREPROCESS:
                    raise ValueError("unknown preprocess %r (%s)" % (value, ", ".join(PREPROCESS)))
                opts.preprocess = PREPROCESS[value]
            elif fields[name] in (ctypes.c_float, ctypes.c_double):
                setattr(opts, name, float(value))
            else:
                setattr(opts, name, int(value))
        self.options = opts
        self.t = ctypes.c_void_p()
        self._allreduce = None
        self._box = _ErrorBox()
        ng._check(lib.negcut_trainer_create(ctypes.byref(self.t), ng.ctx, ctypes.byref(opts)),
                  ng.ctx)
        ng._handles.add(self)

    def _call(self, status):
        self.ng._check(status, self.ng.ctx)

    def set_data_parallel(self, rank, world, allreduce, host=True):
        """Makes this trainer rank `rank` of `world` (docs/PARALLEL.md). allreduce(data,
        count) replaces the count floats of data (a ctypes float array, host memory when
        host is true, as on the CPU backends) by their sum over the ranks; for mpi4py:
        comm.Allreduce(MPI.IN_PLACE, numpy.ctypeslib.as_array(data, (count,)), MPI.SUM).
        An exception it raises fails the step and is raised again by it."""
        box = self._box  # not self: no cycle through the trainer, whose free must come first

        def call(data, count, user):
            try:
                allreduce((ctypes.c_float * count).from_address(ctypes.addressof(data.contents)),
                          count)
                return 0
            except BaseException as e:  # noqa: B902 (handed back to the caller)
                box.error = e
                return 1
        fn = _ALLREDUCE_FN(call)
        self._call(self.ng.lib.negcut_trainer_set_data_parallel_v2(
            self.t, rank, world, fn, None, ALLREDUCE_HOST if host else 0))
        self._allreduce = fn  # kept alive while the library may call it (a refusal kept the old)

    def _stepped(self, status):
        error, self._box.error = self._box.error, None
        if error is not None and status != OK:
            raise error
        self._call(status)

    def step(self):
        """One iteration on the next batch of the data folders."""
        self._stepped(self.ng.lib.negcut_trainer_step(self.t))

    def step_batch(self, real_a, real_b, height, width):
        """One iteration on a batch of the caller's: real_a and real_b hold
        batch_size * input_nc * height * width floats in [-1, 1] (NCHW), as a
        sequence of numbers or an object with the buffer protocol of float32."""
        n = self.options.batch_size * self.options.input_nc * height * width
        a, b = _floats(real_a, n, "real_a"), _floats(real_b, n, "real_b")
        self._stepped(self.ng.lib.negcut_trainer_step_batch(self.t, a, b, height, width))

    def set_epoch(self, epoch):
        self._call(self.ng.lib.negcut_trainer_set_epoch(self.t, epoch))

    @staticmethod
    def _dict(p):
        return {name: getattr(p, name) for name, _ in _Progress._fields_}

    def progress(self):
        """A dict: iteration, total_iterations, epoch, iterations_per_epoch, lr,
        images_per_second, and the last iteration's losses (d_real, d_fake, g_gan,
        nce_x, nce_y, g_total, n_total, diversity)."""
        p = _Progress()
        self._call(self.ng.lib.negcut_trainer_progress(self.t, ctypes.byref(p)))
        return self._dict(p)

    def run(self, iterations=0, progress=None):
        """Runs iterations more iterations (0: to the end of the schedule), calling
        progress(dict) after each; a true return value stops the run (NegcutError
        NEGCUT_ERR_CANCELLED), and so does an exception, which run raises again."""
        box = self._box

        def call(p, user):
            try:
                return 1 if progress(Trainer._dict(p.contents)) else 0
            except BaseException as e:  # noqa: B902 (handed back to the caller)
                box.error = e
                return 1
        fn = _PROGRESS_FN(call) if progress else _PROGRESS_FN()
        self._stepped(self.ng.lib.negcut_trainer_run(self.t, iterations, fn, None))

    def save_network(self, net, path):
        """net: "G" (the file translators load), "D", "F", or for NEGCUT "N", "F_"."""
        if net not in NETS:
            raise ValueError("unknown network %r (%s)" % (net, ", ".join(NETS)))
        self._call(self.ng.lib.negcut_trainer_save_network(self.t, NETS[net], os.fsencode(path)))

    def save_state(self, path):
        self._call(self.ng.lib.negcut_trainer_save_state(self.t, os.fsencode(path)))

    def load_state(self, path):
        self._call(self.ng.lib.negcut_trainer_load_state(self.t, os.fsencode(path)))

    def visuals(self):
        """The last iteration's first images: (width, height, {"real_a", "fake_b",
        "real_b", "idt_b"}), each RGB8 bytes with rows packed."""
        w, h = ctypes.c_uint32(), ctypes.c_uint32()
        self._call(self.ng.lib.negcut_trainer_visuals(self.t, ctypes.byref(w), ctypes.byref(h),
                                                      None, None, None, None))
        n = w.value * h.value * self.options.output_nc
        bufs = [ctypes.create_string_buffer(max(n, 1)) for _ in range(4)]
        self._call(self.ng.lib.negcut_trainer_visuals(self.t, ctypes.byref(w), ctypes.byref(h),
                                                      *bufs))
        names = ("real_a", "fake_b", "real_b", "idt_b")
        return w.value, h.value, {k: b.raw[:n] for k, b in zip(names, bufs)}

    def close(self):
        if getattr(self, "t", None):
            if self.ng.ctx:  # else the context went first (collected together): leak, not crash
                self.ng.lib.negcut_trainer_free(self.t)
            self.t = None
