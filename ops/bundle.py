"""claims-dc bundle (or python -m ops.bundle): offline bundles, for hosts with no registry.

Two products, each its own bundle: the claim application (claimapp/, build/bundle) and the
backup tool that runs on the data-center hosts (ops/backup.py and ops/backuplib/,
build/backup-bundle). A bundle is one directory:

    <product>-<version>-py3-none-any.whl   the product, built from its sources
    <dependency wheels>                    every dependency, pinned by constraints.txt
    requirements.txt                       every wheel as name==version --hash=sha256:...
    SHA256SUMS                             the digest of every file above
    SHA256SUMS.sig                         `ssh-keygen -Y sign` over SHA256SUMS

A host verifies the signature against a signer key it got from the inventory (never from the
bundle itself), checks every digest, and installs with `pip --no-index --require-hashes`.

    claims-dc bundle build [--product claimapp|backup|review|all] [--key KEY]
    claims-dc bundle verify [--product claimapp] --allowed-signers FILE

The version is the product's base version plus a digest of its sources, so a changed
product is a new release and an unchanged one is the same release, rebuilt or not.
Exit codes: 0 ok, 1 the build or the verification failed, 2 usage, 4 an unexpected failure
(named).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ops import manifest

REPO = Path(__file__).resolve().parent.parent
BASE_VERSION = "0.1.0"
DEFAULT_KEY = REPO / ".keys" / "bundle_signing_ed25519"
SIGNER = "claims-dc-release"
NAMESPACE = "claims-dc-bundle"


@dataclass(frozen=True)
class Product:
    name: str
    files: tuple[str, ...]  # paths under REPO: files, or directories taken whole
    requires: tuple[str, ...]  # direct dependencies; constraints.txt pins the whole tree
    out: Path
    package_data: str = ""
    scripts: str = ""

    def sources(self) -> list[Path]:
        out: list[Path] = []
        for rel in self.files:
            path = REPO / rel
            if path.is_dir():
                out += [p for p in sorted(path.rglob("*"))
                        if p.is_file() and "__pycache__" not in p.parts]  # fmt: skip
            else:
                out.append(path)
        return out


CLAIMAPP = Product(
    name="claimapp",
    files=("claimapp",),
    requires=("flask", "psycopg[binary]", "psycopg-pool", "argon2-cffi", "gunicorn"),
    out=REPO / "build" / "bundle",
    package_data='claimapp = ["migrations/*.sql", "docs/*.md", "templates/*.html", "static/*"]',
)
BACKUP = Product(
    name="claims-dc-backup",
    files=("ops/__init__.py", "ops/backup.py", "ops/backuplib", "ops/status.py"),
    requires=("boto3", "cryptography", "pyfastcdc", "zstandard"),
    out=REPO / "build" / "backup-bundle",
    package_data='"ops.backuplib" = ["FORMAT.md"]',
    scripts='claims-dc-backup = "ops.backup:main"',
)
REVIEW = Product(
    name="claims-dc-access-review",
    files=(
        "ops/__init__.py",
        "ops/access_review.py",
        "ops/files.py",
        "ops/manifest.py",
        "ops/reviewlib",
        "ops/status.py",
    ),
    requires=("boto3", "paramiko", "psycopg[binary]", "pyyaml"),
    out=REPO / "build" / "review-bundle",
    scripts='claims-dc-access-review = "ops.access_review:main"',
)
PRODUCTS = {"claimapp": CLAIMAPP, "backup": BACKUP, "review": REVIEW}
DEFAULT_OUT = CLAIMAPP.out
# Built for the hosts: Debian 12 (glibc 2.36), CPython 3.11, x86_64, whatever the control
# node runs on. pip does not widen a given platform to older glibc versions, so every
# manylinux tag a glibc-2.36 host accepts is listed.
GLIBC_MINOR = 36
TARGET = (
    *(f"--platform=manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 4, -1)),
    "--platform=manylinux2014_x86_64",
    "--platform=manylinux2010_x86_64",
    "--platform=manylinux1_x86_64",
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
    "--abi=abi3",
    "--abi=none",
    "--only-binary=:all:",
)
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.+\.whl$")


class BundleError(RuntimeError):
    pass


def progress(msg: str) -> None:
    print(f"bundle: {msg}", file=sys.stderr, flush=True)


def source_digest(product: Product = CLAIMAPP) -> str:
    """Digest of the product's sources: what decides its version."""
    h = hashlib.sha256()
    for path in product.sources():
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def version(product: Product = CLAIMAPP) -> str:
    return f"{BASE_VERSION}+src.{source_digest(product)}"


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise BundleError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def ensure_signing_key(key: Path) -> Path:
    """The release signing key: made once, mode 0600, never in the repo (.keys/ is ignored)."""
    try:
        return manifest.ensure_key(key, SIGNER)
    except subprocess.CalledProcessError as e:
        raise BundleError(f"ssh-keygen (signing key) failed: {e.stderr.strip()}") from e


def allowed_signers_line(public_key: Path) -> str:
    return manifest.allowed_signers_line(public_key, SIGNER, NAMESPACE)


def _project(tree: Path, product: Product) -> None:
    """A throwaway project holding only the product, so its wheel needs only its own deps."""
    for path in product.sources():
        dest = tree / path.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    deps = ", ".join(f'"{d}"' for d in product.requires)
    top = sorted({Path(f).parts[0] for f in product.files})
    scripts = f"[project.scripts]\n{product.scripts}\n\n" if product.scripts else ""
    (tree / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools==84.2.1"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{product.name}"\nversion = "{version(product)}"\n'
        f'requires-python = ">=3.11"\ndependencies = [{deps}]\n\n{scripts}'
        f"[tool.setuptools.packages.find]\ninclude = {json.dumps([f'{t}*' for t in top])}\n\n"
        f"[tool.setuptools.package-data]\n{product.package_data}\n"
    )


@dataclass
class BuildResult:
    out: str
    version: str
    wheels: list[str]
    rebuilt: bool


def build(out: Path | None = None, key: Path = DEFAULT_KEY,
          product: Product = CLAIMAPP) -> BuildResult:  # fmt: skip
    out = out or product.out
    ensure_signing_key(key)
    stamp = out / "BUNDLE.json"
    want = version(product)
    constraints = REPO / "constraints.txt"
    inputs = hashlib.sha256(constraints.read_bytes() + want.encode()).hexdigest()
    if stamp.exists():
        meta = json.loads(stamp.read_text())
        if meta.get("inputs") == inputs and verify(out, allowed_signers(key)) == []:
            return BuildResult(str(out), want, meta["wheels"], rebuilt=False)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="claims-dc-bundle-") as tmp:
        work = Path(tmp)
        stage = work / "bundle"
        stage.mkdir()
        _project(work / "src", product)
        progress(f"building {product.name} {want}")
        _run(
            [python, "-m", "pip", "wheel", "--no-deps", "-q",
             "--wheel-dir", str(stage), str(work / "src")],
            f"pip wheel {product.name}",
        )  # fmt: skip
        progress("fetching the pinned dependency wheels")
        _run(
            [python, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             *TARGET, "-c", str(constraints), "--dest", str(stage), *product.requires],
            "pip download",
        )  # fmt: skip
        wheels = sorted(p.name for p in stage.glob("*.whl"))
        strays = sorted(p.name for p in stage.iterdir() if not p.name.endswith(".whl"))
        if strays:
            raise BundleError(f"not wheels, refusing to ship them: {strays}")
        lines = []
        for name in wheels:
            m = WHEEL_NAME.match(name)
            if not m:
                raise BundleError(f"cannot read name and version from wheel {name!r}")
            lines.append(
                f"{m['name']}=={m['version']} --hash=sha256:{manifest.sha256_file(stage / name)}"
            )
        (stage / "requirements.txt").write_text("\n".join(lines) + "\n")
        manifest.write(stage, [*wheels, "requirements.txt"])
        try:
            manifest.sign(stage, key, NAMESPACE)
        except subprocess.CalledProcessError as e:
            raise BundleError(f"ssh-keygen -Y sign failed: {e.stderr.strip()}") from e
        (stage / "BUNDLE.json").write_text(
            json.dumps(
                {"product": product.name, "version": want, "inputs": inputs, "wheels": wheels},
                indent=2,
            )
            + "\n"
        )
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, out)
    return BuildResult(str(out), want, wheels, rebuilt=True)


def allowed_signers(key: Path = DEFAULT_KEY) -> Path:
    """The signer file beside the key's public half, as a host would hold it."""
    path = key.with_name(key.name + ".allowed_signers")
    path.write_text(allowed_signers_line(key.with_suffix(".pub")))
    return path


def verify(out: Path, signers: Path) -> list[str]:
    """What is wrong with the bundle in `out`; empty when it is intact and signed."""
    problems = manifest.verify(out, signers, SIGNER, NAMESPACE)
    if (out / manifest.SUMS).exists():
        extra = {p.name for p in out.glob("*.whl")} - set(manifest.listed(out))
        problems += [f"{name}: a wheel not listed in SHA256SUMS" for name in sorted(extra)]
    return problems


PROG = "claims-dc bundle"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=("build", "verify", "version"))
    p.add_argument(
        "--product",
        choices=(*PRODUCTS, "all"),
        default="claimapp",
        help="which bundle (default claimapp; build takes 'all')",
    )
    p.add_argument("--out", type=Path, help="bundle directory (default: the product's)")
    p.add_argument(
        "--key",
        type=Path,
        default=Path(os.environ.get("CLAIMS_DC_SIGNING_KEY", DEFAULT_KEY)),
        help="signing key (default: $CLAIMS_DC_SIGNING_KEY or .keys/bundle_signing_ed25519)",
    )
    p.add_argument("--allowed-signers", type=Path, help="verify: the trusted signer file")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    try:
        args = p.parse_args(argv)
        products = list(PRODUCTS.values()) if args.product == "all" else [PRODUCTS[args.product]]
        if args.command != "build" and len(products) != 1:
            p.error(f"{args.command} takes one --product")
        if args.out and len(products) != 1:
            p.error("--out needs one --product")
    except SystemExit as e:
        return 2 if e.code not in (0, None) else 0
    try:
        return _command(args, products)
    except Exception as e:  # named, never a traceback
        print(f"{PROG}: unexpected failure: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
        return 4


def _command(args: argparse.Namespace, products: list[Product]) -> int:
    if args.command == "version":
        found = version(products[0])
        print(json.dumps({"product": products[0].name, "version": found}) if args.json else found)
        return 0
    try:
        if args.command == "build":
            for product in products:
                result = build(args.out, args.key, product)
                if args.json:
                    print(json.dumps(result.__dict__))
                else:
                    what = "built" if result.rebuilt else "up to date"
                    print(f"{result.out}: {product.name} {result.version}, "
                          f"{len(result.wheels)} wheels, signed ({what})")  # fmt: skip
            return 0
        out = args.out or products[0].out
        signers = args.allowed_signers or allowed_signers(args.key)
        problems = verify(out, signers)
        args.out = out
    except BundleError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"bundle": str(args.out), "problems": problems}))
    else:
        print("\n".join(problems) or f"{args.out}: signature and every digest verify")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
