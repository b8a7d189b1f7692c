"""Reading what the CPU computes natively, and the precision and engine "auto" choose from it."""

import warnings

import pytest

import keras_fcn
from keras_fcn import engines, inference
from keras_fcn.cpu import CPU, host_cpu, parse_cpuinfo

# Two-core excerpts of /proc/cpuinfo (flags shortened), as Linux writes them.
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
COOPER_LAKE = "model name\t: Intel(R) Xeon(R) Platinum 8380H\nflags\t\t: avx2 fma avx512f avx512_bf16\n"
ICE_LAKE = "model name\t: Intel(R) Xeon(R) Platinum 8375C\nflags\t\t: avx2 fma avx512f avx512bw avx512_vnni\n"
EPYC = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize(
    "text, model, native_bfloat16, kind",
    [
        (SAPPHIRE_RAPIDS, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", True, "x86_amx"),
        (COOPER_LAKE, "Intel(R) Xeon(R) Platinum 8380H", True, "x86_avx512"),
        (ICE_LAKE, "Intel(R) Xeon(R) Platinum 8375C", False, "x86_avx512"),
        (EPYC, "AMD EPYC", False, "x86_avx2"),
        # ARM lists bf16, but the engines' measured order covers x86 only: nothing is assumed.
        (GRAVITON3, "", False, "other"),
        ("", "", False, "other"),
    ],
)
def test_parse_cpuinfo(text, model, native_bfloat16, kind):
    cpu = parse_cpuinfo(text)
    assert (cpu.model, cpu.native_bfloat16, cpu.kind) == (model, native_bfloat16, kind)


def test_vector_flags_are_the_ones_that_matter_for_speed():
    assert parse_cpuinfo(SAPPHIRE_RAPIDS).vector_flags() == [
        "amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512bw", "avx512f", "fma"
    ]


def test_host_cpu_without_cpuinfo_assumes_nothing(tmp_path):
    cpu = host_cpu(str(tmp_path / "missing"))
    assert cpu == CPU(model="", flags=frozenset()) and not cpu.native_bfloat16 and cpu.kind == "other"


@pytest.mark.parametrize("text, expected", [(SAPPHIRE_RAPIDS, "bfloat16"), (COOPER_LAKE, "bfloat16"),
                                            (ICE_LAKE, "float32"), (EPYC, "float32"), (GRAVITON3, "float32")])
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it(text, expected, monkeypatch):
    monkeypatch.setattr(inference, "host_cpu", lambda: parse_cpuinfo(text))
    assert inference.resolve_precision("auto") == expected
    assert inference.resolve_precision("float16") == "float16"  # an explicit precision is kept


def test_auto_engines_follow_the_measured_order_of_the_host_kind(monkeypatch):
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo(GRAVITON3))
    assert keras_fcn.engines.auto_engines(model, "float32") == ("tensorflow",)  # not measured there
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo(EPYC))
    # On AVX2 hosts: OpenVINO, then ONNX Runtime (float32 only), then TensorFlow; each only when installed.
    openvino, onnxruntime = engines.installed("openvino"), engines.installed("onnxruntime")
    assert engines.auto_engines(model, "float32") == ("openvino",) * openvino + ("onnxruntime",) * onnxruntime + (
        "tensorflow",
    )
    # Weights over LARGE_WEIGHTS_BYTES (here 7 float32: the model has 8): ONNX Runtime, which holds them once, first.
    monkeypatch.setattr(engines, "LARGE_WEIGHTS_BYTES", 4 * 7)
    assert engines.auto_engines(model, "float32") == ("onnxruntime",) * onnxruntime + ("openvino",) * openvino + (
        "tensorflow",
    )
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo(ICE_LAKE))
    monkeypatch.setattr(engines, "LARGE_WEIGHTS_BYTES", 4 * 8)
    assert engines.auto_engines(model, "float32")[0] == ("onnxruntime" if onnxruntime else "openvino")
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo(EPYC))
    # OpenVINO computes bfloat16 only where the CPU has it natively (elsewhere it would run float32).
    assert engines.auto_engines(model, "bfloat16") == ("tensorflow",)
    assert engines.auto_engines(model, "float16") == ("tensorflow",)
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo(SAPPHIRE_RAPIDS))
    assert engines.auto_engines(model, "bfloat16") == ("openvino",) * openvino + ("tensorflow",)
    monkeypatch.setattr(engines, "host_cpu", lambda: parse_cpuinfo(EPYC))
    two_outputs = keras.Model(inputs, [keras.layers.Conv2D(2, 1)(inputs), keras.layers.Conv2D(2, 1)(inputs)])
    assert engines.auto_engines(two_outputs, "float32") == ("tensorflow",)


def test_bfloat16_emulated_on_this_cpu_is_warned_about(monkeypatch):
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    monkeypatch.setattr(inference, "host_cpu", lambda: parse_cpuinfo(EPYC))
    with pytest.warns(RuntimeWarning, match="This CPU has no native bfloat16 .*: TensorFlow emulates it, slower than "
                      'float32. precision="auto" computes float32 here'):
        run = inference.inference_function(model, engine="tensorflow", precision="bfloat16")
    assert run.precision == "bfloat16"
    monkeypatch.setattr(inference, "host_cpu", lambda: parse_cpuinfo(SAPPHIRE_RAPIDS))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        inference.inference_function(model, engine="tensorflow", precision="bfloat16")
