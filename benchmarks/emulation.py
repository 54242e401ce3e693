"""Run kfedge on CPUs this machine is not: arm64 (Cortex-A72 / A76 ...) and x86-64 without VNNI.

Debian's ``qemu-user-static`` runs foreign Linux programs one CPU model at a time (TCG: every
instruction is translated). This module builds, once per machine, an **arm64 userland**: a
Debian 12 Python 3.11 (``mmdebstrap --variant=extract``, no emulation needed to build it) plus
the aarch64 wheels of kfedge's runtime dependencies (the base dependencies, the ``serving``
extra and ``onnx``, at the versions of ``constraints/requirements.lock``), installed from this
side with ``pip install --target --platform ...``. kfedge itself is pure Python and comes from
the repository (``src/`` on ``PYTHONPATH``, the other packages mapped by a ``sitecustomize``).

What emulation gives and what it does not: a model *runs* on the emulated CPU's instructions
(NEON, the int8 dot product where the model has it, no VNNI on an emulated Haswell), so
accuracy and "it loads, it answers" are real; latency is not (TCG is 10-100x slower and not
in proportion to real hardware).

Traps handled here:

* ONNX Runtime parses ``/proc/cpuinfo`` on import and crashes on the host's x86 one; qemu-user's
  ``-L`` prefix (``QEMU_LD_PREFIX``) remaps any absolute path that exists under the prefix, so
  each CPU model gets a prefix directory whose ``proc/cpuinfo`` describes that CPU (the rest of
  the prefix links to the userland).
* ``-cpu max`` enables SME, which qemu 7.2 emulates wrongly (LiteRT INT8 answers wrongly): a
  CPU model is always named (:data:`ARM_CPUS`).
* A child process (kfedge times latency in one, the model server's decode pool spawns) runs
  through binfmt_misc; ``QEMU_CPU`` and ``QEMU_LD_PREFIX`` carry the CPU and the prefix to it.
* ``psutil`` 5.9.8 (pinned; kserve needs < 6) has no aarch64 wheel: the userland takes
  Debian's ``python3-psutil`` (5.9.4) instead.

The x86-64 class without VNNI runs the *host* interpreter (this venv) under
``qemu-x86_64-static -cpu Haswell`` (AVX2, no AVX-512, no VNNI in qemu 7.2's TCG); its child
processes run natively (an x86 binary needs no binfmt), so time nothing in a child there.

The cache directory is ``$KFEDGE_EMU_CACHE/arm64-<hash>`` (default ``~/.cache/kfedge``); the
hash covers the Debian packages, the wheel list with versions and this module's userland
layout, so a lock change builds a new userland. It is built in a temporary directory and
renamed into place (atomic), under a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "constraints" / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"

#: Debian release and mirror of the arm64 userland (Python 3.11, like kfedge's images).
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: Debian packages of the userland (their dependencies come along).
DEBIAN_PACKAGES = (
    "python3.11",
    "python3-psutil",
    "libstdc++6",
    "libgcc-s1",
    "zlib1g",
    "libgomp1",
    "ca-certificates",
)
#: Runtime dependencies without an aarch64 wheel at the locked version -> the Debian package.
FROM_DEBIAN = {"psutil": "python3-psutil"}
#: Needed beyond the base dependencies and the ``serving`` extra: ``kfedge evaluate`` of a
#: ``.onnx`` model reads it with the ``onnx`` package.
EXTRA_REQUIREMENTS = ("onnx",)
#: Platform tags accepted for aarch64 wheels (glibc 2.36 in Debian 12).
AARCH64_PLATFORMS = (
    *(f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)),
    "manylinux2014_aarch64",
    "linux_aarch64",
)
PYTHON_VERSION = "3.11"

_CPUINFO_TEMPLATE = (
    "processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {rev}\n\n"
)
_V82 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop"


#: Arm CPU models qemu emulates that kfedge cares about: MIDR part number, cpuinfo fields.
ARM_CPUS: dict[str, dict[str, str]] = {
    # Raspberry Pi 4: Armv8.0, no int8 dot product.
    "cortex-a72": {
        "part": "0xd08",
        "variant": "0x0",
        "rev": "3",
        "features": "fp asimd evtstrm crc32 cpuid",
    },
    # Raspberry Pi 5: Armv8.2 with the int8 dot product (asimddp).
    "cortex-a76": {"part": "0xd0b", "variant": "0x4", "rev": "1", "features": _V82 + " asimddp"},
    # AWS Graviton 2 / Ampere Altra.
    "neoverse-n1": {
        "part": "0xd0c",
        "variant": "0x3",
        "rev": "1",
        "features": _V82 + " asimddp ssbs",
    },
}
#: The dot-product expectation of each model (what ``HWCAP_ASIMDDP`` must say).
ARM_DOTPROD = {"cortex-a72": False, "cortex-a76": True, "neoverse-n1": True}
#: x86-64 CPU models: qemu model -> the ``flags`` the fake /proc/cpuinfo lists.
X86_CPUS: dict[str, str] = {
    "Haswell": (
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
        "sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid "
        "pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c "
        "rdrand hypervisor lahf_lm abm fsgsbase bmi1 avx2 smep bmi2 erms invpcid"
    ),
}
_LAYOUT_VERSION = "2"  # bump when the userland layout below changes


# -- availability ------------------------------------------------------------------------------
def _binfmt_enabled(name: str) -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc") / name
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def available() -> str | None:
    """Whether arm64 emulation can run here.

    Returns:
        None when it can, else the reason it cannot (what to install or run).
    """
    if sys.platform != "linux":
        return f"qemu-user emulation needs Linux (this is {sys.platform})"
    if shutil.which("qemu-aarch64-static") is None:
        return "qemu-aarch64-static is absent (apt-get install qemu-user-static)"
    if not _binfmt_enabled("qemu-aarch64"):
        return (
            "binfmt_misc has no enabled qemu-aarch64 entry, so arm64 child processes cannot "
            "run (apt-get install binfmt-support; mount -t binfmt_misc binfmt_misc "
            "/proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64)"
        )
    try:
        key = _userland_key()
    except RuntimeError as exc:
        return str(exc)
    if not (_cache_parent() / f"arm64-{key}" / "manifest.json").is_file():
        if shutil.which("mmdebstrap") is None:
            return "mmdebstrap is absent (apt-get install mmdebstrap) and no userland is cached"
    return None


def x86_available(cpu: str = "Haswell") -> str | None:
    """Whether the host interpreter can run under ``qemu-x86_64-static -cpu CPU``.

    Args:
        cpu: The qemu x86-64 CPU model.

    Returns:
        None when it can, else the reason it cannot.
    """
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "the x86-64 CPU classes are emulated on an x86-64 Linux host only"
    if shutil.which("qemu-x86_64-static") is None:
        return "qemu-x86_64-static is absent (apt-get install qemu-user-static)"
    if cpu not in X86_CPUS:
        return f"no /proc/cpuinfo description of x86 CPU model {cpu!r} (known: {list(X86_CPUS)})"
    return None


# -- the wheel list ------------------------------------------------------------------------------
def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path = LOCK_FILE) -> dict[str, str]:
    """The ``name==version`` pins of a requirements lock, by canonical name."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        name, sep, version = line.partition("==")
        if sep:
            pins[_canon(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def runtime_requirements() -> list[str]:
    """The requirement strings the userland starts from: base, ``serving`` extra, ``onnx``.

    An extra that names the project's own extras (``serving = ["kfedge[serving-litert,...]"]``)
    is expanded here: kfedge itself is imported from the work tree, it is not a wheel.
    """
    from packaging.requirements import Requirement

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    own = _canon(project["name"])

    def expand(specs: Sequence[str], seen: frozenset[str]) -> list[str]:
        out: list[str] = []
        for spec in specs:
            req = Requirement(spec)
            if _canon(req.name) != own:
                out.append(spec)
                continue
            for extra in sorted(set(req.extras) - seen):
                out.extend(expand(extras[extra], seen | {extra}))
        return out

    return [
        *project["dependencies"],
        *expand(extras["serving"], frozenset({"serving"})),
        *EXTRA_REQUIREMENTS,
    ]


def wheel_list() -> dict[str, str]:
    """Every distribution the userland needs, with the locked version (aarch64, Python 3.11).

    The dependency closure is read from the installed metadata of this environment (the
    dev venv holds all of it), with the markers evaluated for Linux aarch64 and the extras
    followed; the versions come from ``constraints/requirements.lock``.

    Returns:
        Canonical name -> version, sorted by name (a distribution the lock does not pin,
        i.e. setuptools, at the version installed here).

    Raises:
        RuntimeError: A needed distribution is not installed here.
    """
    from packaging.requirements import Requirement

    env = {
        "python_version": PYTHON_VERSION,
        "python_full_version": PYTHON_VERSION + ".2",
        "platform_machine": "aarch64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    pins = locked_versions()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in runtime_requirements()]
    names: set[str] = set()
    while todo:
        req = todo.pop()
        key = (_canon(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            dist = importlib_metadata.distribution(req.name)
        except importlib_metadata.PackageNotFoundError as exc:
            raise RuntimeError(
                f"{req.name} is not installed in {sys.prefix}, so its dependencies are unknown "
                "(make creates the venv with everything)"
            ) from exc
        for spec in dist.requires or []:
            sub = Requirement(spec)
            extras = req.extras or {""}
            if sub.marker and not any(sub.marker.evaluate({**env, "extra": e}) for e in extras):
                continue
            todo.append(sub)
    # pip-compile leaves setuptools out of a lock: those take this environment's version
    return {n: pins.get(n) or importlib_metadata.version(n) for n in sorted(names)}


def _userland_key() -> str:
    wheels = wheel_list()
    blob = json.dumps(
        {
            "layout": _LAYOUT_VERSION,
            "suite": DEBIAN_SUITE,
            "debs": DEBIAN_PACKAGES,
            "wheels": wheels,
            "from_debian": FROM_DEBIAN,
            "cpus": ARM_CPUS,
            "sitecustomize": _SITECUSTOMIZE,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# -- building --------------------------------------------------------------------------------------
_SITECUSTOMIZE = '''"""kfedge emulation: import the kfedge packages outside src/ (package-dir)."""
import importlib.util
import json
import os
import sys


class _KfedgeDirs:
    def __init__(self, dirs):
        self.dirs = dirs

    def find_spec(self, name, path=None, target=None):
        where = self.dirs.get(name)
        if where is None:
            return None
        return importlib.util.spec_from_file_location(
            name, os.path.join(where, "__init__.py"), submodule_search_locations=[where]
        )


_dirs = json.loads(os.environ.get("KFEDGE_EMU_PACKAGES") or "{}")
if _dirs:
    sys.meta_path.append(_KfedgeDirs(_dirs))
'''


def _cache_parent() -> Path:
    return Path(os.environ.get("KFEDGE_EMU_CACHE") or Path.home() / ".cache" / "kfedge")


def _run(cmd: Sequence[str], what: str, timeout: float) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def midr(model: str) -> int:
    """The MIDR_EL1 value of an :data:`ARM_CPUS` model (implementer Arm, architecture 0xf)."""
    info = ARM_CPUS[model]
    return (
        (0x41 << 24)
        | (int(info["variant"], 16) << 20)
        | (0xF << 16)
        | (int(info["part"], 16) << 4)
        | int(info["rev"])
    )


def _write_cpu_prefixes(base: Path) -> None:
    """``cpu/<model>/``: links to the userland's top level plus that CPU's ``proc/cpuinfo``.

    Also ``sys/devices/system/cpu/cpuN/regs/identification/midr_el1`` (oneDNN's xbyak_aarch64
    in OpenVINO reads it, and warns "Can't open MIDR_EL1 sysfs entry" on the host's x86 sysfs);
    every other ``/sys`` path still reads the host's (qemu remaps only paths present here).
    """
    root = base / "root"
    for model, info in ARM_CPUS.items():
        prefix = base / "cpu" / model
        prefix.mkdir(parents=True)
        for entry in root.iterdir():
            if entry.name != "proc":
                (prefix / entry.name).symlink_to(Path("..", "..", "root", entry.name))
        (prefix / "proc").mkdir()
        text = "".join(_CPUINFO_TEMPLATE.format(n=n, **info) for n in range(os.cpu_count() or 1))
        (prefix / "proc" / "cpuinfo").write_text(text)
        for n in range(os.cpu_count() or 1):
            ident = prefix / "sys" / "devices" / "system" / "cpu" / f"cpu{n}" / "regs"
            (ident / "identification").mkdir(parents=True)
            (ident / "identification" / "midr_el1").write_text(f"0x{midr(model):016x}\n")


def _build(dest: Path, wheels: Mapping[str, str]) -> dict[str, Any]:
    """Build the userland into ``dest`` (which must not exist); the manifest it records."""
    started = time.perf_counter()
    dest.mkdir(parents=True)
    _run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=extract",
            "--arch=arm64",
            "--include=" + ",".join(DEBIAN_PACKAGES),
            DEBIAN_SUITE,
            str(dest / "root"),
            DEBIAN_MIRROR,
        ],
        "mmdebstrap (the arm64 Debian userland)",
        timeout=1800,
    )
    debian_s = time.perf_counter() - started
    platforms = [arg for p in AARCH64_PLATFORMS for arg in ("--platform", p)]
    pip_wheels = [f"{n}=={v}" for n, v in wheels.items() if n not in FROM_DEBIAN]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-warn-script-location",
            "--target",
            str(dest / "site"),
            *platforms,
            "--only-binary=:all:",
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            *pip_wheels,
        ],
        "pip (the aarch64 wheels)",
        timeout=1800,
    )
    (dest / "shim").mkdir()
    (dest / "shim" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    _write_cpu_prefixes(dest)
    manifest = {
        "suite": DEBIAN_SUITE,
        "debian_packages": list(DEBIAN_PACKAGES),
        "wheels": dict(wheels),
        "from_debian": FROM_DEBIAN,
        "build_s": {
            "debian": round(debian_s, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def userland() -> Path:
    """The arm64 userland directory: built on first use (minutes), reused afterwards.

    Returns:
        ``$KFEDGE_EMU_CACHE/arm64-<hash>`` with ``root/`` (Debian), ``site/`` (wheels),
        ``shim/`` (sitecustomize), ``cpu/<model>/`` (qemu prefixes) and ``manifest.json``.

    Raises:
        RuntimeError: Emulation is unavailable here, or the build failed.
    """
    reason = available()
    if reason:
        raise RuntimeError(reason)
    wheels = wheel_list()
    parent = _cache_parent()
    final = parent / f"arm64-{_userland_key()}"
    if (final / "manifest.json").is_file():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    with open(parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "manifest.json").is_file():  # another process built it meanwhile
            return final
        tmp = parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _build(tmp, wheels)
            shutil.rmtree(final, ignore_errors=True)  # a broken one without manifest
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def manifest() -> dict[str, Any]:
    """The manifest of the (built or reused) userland: packages, wheels, build seconds."""
    return json.loads((userland() / "manifest.json").read_text())


# -- running ---------------------------------------------------------------------------------------
def _package_dirs() -> dict[str, str]:
    """The kfedge packages outside ``src/`` (pyproject ``package-dir``), as absolute paths."""
    dirs = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    return {name: str(ROOT / d) for name, d in dirs.items() if name != "kfedge"}


def arm64_env(cpu: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an emulated arm64 Python (children inherit the CPU and prefix).

    Args:
        cpu: An :data:`ARM_CPUS` model.
        base: The environment to extend (default: this process's).

    Returns:
        The environment.
    """
    if cpu not in ARM_CPUS:
        raise ValueError(f"unknown Arm CPU model {cpu!r}; known: {', '.join(ARM_CPUS)}")
    land = userland()
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(key, None)
    env.update(
        QEMU_CPU=cpu,
        QEMU_LD_PREFIX=str(land / "cpu" / cpu),
        PYTHONPATH=os.pathsep.join(
            [str(land / "shim"), str(land / "site"), str(ROOT / "src"), str(ROOT)]
        ),
        KFEDGE_EMU_PACKAGES=json.dumps(_package_dirs()),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def arm64_python() -> Path:
    """The userland's arm64 ``python3.11`` (its ``sys.executable`` under emulation)."""
    return userland() / "root" / "usr" / "bin" / "python3.11"


def arm64_command(args: Sequence[str], cpu: str = "cortex-a72") -> list[str]:
    """The command line running ``python3.11 ARGS`` on an emulated Arm CPU (env: :func:`arm64_env`).

    Args:
        args: Python's arguments (``-m kfedge.evaluate ...``, ``-c CODE``...).
        cpu: An :data:`ARM_CPUS` model.

    Returns:
        The argument list.
    """
    land = userland()
    return [
        "qemu-aarch64-static",
        "-cpu",
        cpu,
        "-L",
        str(land / "cpu" / cpu),
        str(arm64_python()),
        *args,
    ]


def run_python(
    args: Sequence[str],
    cpu: str = "cortex-a72",
    env: Mapping[str, str] | None = None,
    timeout: float | None = 900,
    cwd: str | Path | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the arm64 Python 3.11 under ``qemu-aarch64-static -cpu CPU``, with kfedge importable.

    Args:
        args: Python's arguments.
        cpu: An :data:`ARM_CPUS` model (never ``max``: qemu 7.2's SME emulation is wrong).
        env: Variables to add to the emulation environment.
        timeout: Seconds before the run is killed (None: no limit).
        cwd: Working directory.
        check: Raise :class:`subprocess.CalledProcessError` on a non-zero exit.

    Returns:
        The completed process (text stdout / stderr captured).
    """
    full_env = arm64_env(cpu)
    full_env.update(env or {})
    return subprocess.run(
        arm64_command(args, cpu),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=check,
    )


def popen_python(
    args: Sequence[str], cpu: str = "cortex-a72", env: Mapping[str, str] | None = None, **kw: Any
) -> subprocess.Popen[bytes]:
    """Start the arm64 Python (like :func:`run_python`) without waiting (a server)."""
    full_env = arm64_env(cpu)
    full_env.update(env or {})
    return subprocess.Popen(arm64_command(args, cpu), env=full_env, **kw)


def _x86_prefix(cpu: str) -> Path:
    """A qemu prefix holding only ``proc/cpuinfo`` for an x86 CPU model (cached)."""
    prefix = _cache_parent() / f"x86-{cpu}-{_LAYOUT_VERSION}"
    cpuinfo = prefix / "proc" / "cpuinfo"
    if not cpuinfo.is_file():
        cpuinfo.parent.mkdir(parents=True, exist_ok=True)
        block = (
            "processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 60\n"
            "model name\t: Intel Core Processor (Haswell, qemu TCG)\nflags\t\t: {flags}\n\n"
        )
        text = "".join(block.format(n=n, flags=X86_CPUS[cpu]) for n in range(os.cpu_count() or 1))
        tmp = cpuinfo.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.rename(cpuinfo)
    return prefix


def run_x86_python(
    args: Sequence[str],
    cpu: str = "Haswell",
    env: Mapping[str, str] | None = None,
    timeout: float | None = 900,
    cwd: str | Path | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run this environment's Python under ``qemu-x86_64-static -cpu CPU`` (no VNNI).

    Child processes it starts run natively (unemulated): time nothing in a child.

    Args:
        args: Python's arguments.
        cpu: A :data:`X86_CPUS` model.
        env: Variables to add to this process's environment.
        timeout: Seconds before the run is killed (None: no limit).
        cwd: Working directory.
        check: Raise :class:`subprocess.CalledProcessError` on a non-zero exit.

    Returns:
        The completed process (text stdout / stderr captured).

    Raises:
        RuntimeError: The x86 emulation is unavailable here.
    """
    reason = x86_available(cpu)
    if reason:
        raise RuntimeError(reason)
    prefix = str(_x86_prefix(cpu))
    full_env = {**os.environ, "QEMU_CPU": cpu, "QEMU_LD_PREFIX": prefix, **(env or {})}
    cmd = ["qemu-x86_64-static", "-cpu", cpu, "-L", prefix, sys.executable, *args]
    return subprocess.run(
        cmd, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=check
    )


# -- inside the emulated CPU -------------------------------------------------------------------
def _arm_midr() -> int:
    """MIDR_EL1 of the CPU running this process (Arm Linux and qemu-user let EL0 read it)."""
    import ctypes
    import mmap

    code = (0xD5380000).to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little")  # mrs; ret
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    func = ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    value = int(func())
    del func
    return value


def _x86_cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
    """CPUID(leaf, subleaf) -> (eax, ebx, ecx, edx), executed here (qemu answers for its model)."""
    import ctypes
    import mmap

    instructions = (
        ("53", "push rbx"),
        ("89f8", "mov eax, edi"),
        ("89f1", "mov ecx, esi"),
        ("4989d0", "mov r8, rdx"),
        ("0fa2", "cpuid"),
        ("418900", "mov [r8], eax"),
        ("41895804", "mov [r8+4], ebx"),
        ("41894808", "mov [r8+8], ecx"),
        ("4189500c", "mov [r8+12], edx"),
        ("5b", "pop rbx"),
        ("c3", "ret"),
    )
    code = bytes.fromhex("".join(hex_ for hex_, _ in instructions))
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    proto = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)
    func = proto(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    out = (ctypes.c_uint32 * 4)()
    func(leaf, subleaf, ctypes.addressof(out))
    del func
    return out[0], out[1], out[2], out[3]


def cpu_facts() -> dict[str, Any]:
    """What the CPU running this process says it is (run it inside the emulation).

    Returns:
        ``machine`` (``platform.machine()``), ``kfedge_isa`` (:func:`kfedge.cpu.detect_isa`)
        and, on arm64, ``midr`` / ``cpu_part`` (MIDR_EL1, read with ``mrs``), ``cpu_model``
        (the :data:`ARM_CPUS` name of that part) and ``dotprod`` (``HWCAP_ASIMDDP``, what the
        kernel / qemu says, not /proc/cpuinfo); on x86-64 the ``vnni`` / ``avx512f`` / ``avx2``
        bits of CPUID as ONNX Runtime sees them (through ``kfedge.cpu`` on the cpuinfo we give
        it, and through the runtime libraries' own CPUID probes).
    """
    import ctypes
    import platform

    facts: dict[str, Any] = {"machine": platform.machine(), "python": platform.python_version()}
    try:
        from kfedge.cpu import detect_isa

        facts["kfedge_isa"] = detect_isa().name
    except Exception as exc:  # noqa: BLE001 - a fact, recorded
        facts["kfedge_isa"] = f"error: {exc}"
    if facts["machine"] == "aarch64":
        midr = _arm_midr()
        part = f"0x{(midr >> 4) & 0xFFF:03x}"
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        hwcap = int(libc.getauxval(16))  # AT_HWCAP
        facts.update(
            midr=f"0x{midr:08x}",
            cpu_part=part,
            cpu_model=next((m for m, i in ARM_CPUS.items() if i["part"] == part), None),
            dotprod=bool(hwcap & (1 << 20)),  # HWCAP_ASIMDDP
            qemu_cpu=os.environ.get("QEMU_CPU"),
        )
    elif facts["machine"] == "x86_64":
        _, ebx7, ecx7, _ = _x86_cpuid(7, 0)
        eax71 = _x86_cpuid(7, 1)[0]
        facts.update(
            avx2=bool(ebx7 & (1 << 5)),
            avx512f=bool(ebx7 & (1 << 16)),
            avx512_vnni=bool(ecx7 & (1 << 11)),
            avx_vnni=bool(eax71 & (1 << 4)),
            qemu_cpu=os.environ.get("QEMU_CPU"),
        )
        facts["vnni"] = facts["avx512_vnni"] or facts["avx_vnni"]
    return facts


if __name__ == "__main__":
    if sys.argv[1:] == ["facts"]:
        print(json.dumps(cpu_facts()))
    else:
        sys.exit("usage: python -m benchmarks.emulation facts")
