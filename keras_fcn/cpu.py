"""What this host's CPU is and computes natively, read from `/proc/cpuinfo` (never assumed)."""

import dataclasses
import functools

CPUINFO = "/proc/cpuinfo"
# x86 flags of instructions that compute bfloat16 products natively (AMX tiles, AVX512-BF16 dot products).
NATIVE_BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")
# Host kinds, fastest instruction set first: (kind, the flag that makes a host that kind).
HOST_KINDS = (("x86_amx", "amx_bf16"), ("x86_avx512", "avx512f"), ("x86_avx2", "avx2"))
OTHER_HOST = "other"


@dataclasses.dataclass(frozen=True)
class CPU:
    """A CPU as `/proc/cpuinfo` describes its first core.

    Attributes:
        model: str, the `model name` line (e.g. `"AMD EPYC"`), or `""`
            when there is none (e.g. some ARM kernels).
        flags: frozenset of str, the `flags` (x86) or `Features` (ARM)
            of the first core.
    """

    model: str
    flags: frozenset

    @property
    def native_bfloat16(self):
        """Whether the CPU multiplies bfloat16 natively (AMX or AVX512-BF16): only then is bfloat16 faster."""
        return any(flag in self.flags for flag in NATIVE_BFLOAT16_FLAGS)

    @property
    def kind(self):
        """The host kind the engine choice is measured on: `"x86_amx"`, `"x86_avx512"`, `"x86_avx2"` or `"other"`."""
        return next((kind for kind, flag in HOST_KINDS if flag in self.flags), OTHER_HOST)

    def vector_flags(self):
        """The flags that matter for speed (AVX-512 and AMX extensions, AVX2, FMA), sorted."""
        return sorted(flag for flag in self.flags if flag.startswith(("avx512", "amx")) or flag in ("avx2", "fma"))


def parse_cpuinfo(text):
    """The `CPU` described by the text of `/proc/cpuinfo`: the first core's model name and flags.

    Args:
        text: str, the contents of `/proc/cpuinfo`.

    Returns:
        A `CPU`; its flags are empty when the text lists none.
    """
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("model name", "flags", "features") and key not in fields:
            fields[key] = value.strip()
    flags = fields.get("flags", fields.get("features", ""))
    return CPU(model=fields.get("model name", ""), flags=frozenset(flags.split()))


@functools.lru_cache(maxsize=None)
def host_cpu(path=CPUINFO):
    """This host's `CPU`, read once from `path`; a CPU with no model and no flags when it cannot be read.

    Args:
        path: str, the cpuinfo file (default `/proc/cpuinfo`, Linux).

    Returns:
        A `CPU`. Without the file (not Linux), nothing is known, so nothing
        is assumed: no native bfloat16 and the `"other"` host kind.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return parse_cpuinfo(file.read())
    except OSError:
        return CPU(model="", flags=frozenset())
