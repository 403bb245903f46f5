#!/usr/bin/env python3
"""Replays what the Dockerfile's build stage sees, since CI has no Docker: copies the files the
.dockerignore allow-list admits into a temporary directory (as `COPY . .` does), then checks
that Cargo can read the manifest there (every declared target present) and that every file the
sources embed or include (include_str!, include_bytes!, #[path], sqlx::migrate!, build.rs's
proto files) is inside the copy. Also checks that the Dockerfile builds only after `COPY . .`
and creates no placeholder sources (the class of bug that once broke the image: a dependency
stage with placeholders for one bench while Cargo.toml declared four)."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def allowed_paths() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if entries[0] != "*":
        sys.exit(".dockerignore must start with '*' (an allow-list)")
    return [entry[1:] for entry in entries[1:] if entry.startswith("!")]


def copy_context(into: Path) -> None:
    for name in allowed_paths():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name)
        elif source.exists():
            shutil.copy2(source, into / name)


def check_dockerfile() -> list[str]:
    problems = []
    text = (ROOT / "Dockerfile").read_text()
    builder = text.split("# ---- runtime")[0]
    copy_all = builder.find("COPY . .")
    build = builder.find("cargo build")
    if copy_all < 0 or build < 0 or build < copy_all:
        problems.append("Dockerfile: the build stage must run `cargo build` after `COPY . .`")
    if re.search(r"echo .*> *(src|benches|build\.rs)", builder):
        problems.append("Dockerfile: the build stage creates placeholder sources")
    return problems


def check_includes(context: Path) -> list[str]:
    problems = []
    pattern = re.compile(
        r'(?:include_str!|include_bytes!)\(\s*"([^"]+)"\s*\)|#\[path\s*=\s*"([^"]+)"\]'
    )
    sources = list((context / "src").rglob("*.rs"))
    if (context / "build.rs").exists():
        sources.append(context / "build.rs")
    for source in sources:
        text = source.read_text()
        for match in pattern.finditer(text):
            relative = match.group(1) or match.group(2)
            if (source.parent / relative).resolve().exists():
                continue
            problems.append(f"{source.relative_to(context)} includes {relative}, not in the image's build context")
        for directory in re.findall(r'sqlx::migrate!\(\s*"([^"]+)"\s*\)', text):
            if not (context / directory).is_dir():
                problems.append(f"{source.relative_to(context)} embeds {directory}/, not in the build context")
        for proto in re.findall(r'"(proto/[^"]+\.proto)"', text):
            if not (context / proto).exists():
                problems.append(f"{source.relative_to(context)} compiles {proto}, not in the build context")
    return problems


def check_manifest(context: Path) -> list[str]:
    result = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline", "--locked"],
        cwd=context,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return [f"cargo cannot read the manifest in the build context:\n{result.stderr}"]
    problems = []
    # Cargo drops a declared target whose file is missing from its metadata, but refuses to
    # build: check the declarations themselves.
    manifest = tomllib.loads((context / "Cargo.toml").read_text())
    folders = {"bin": "src/bin", "bench": "benches", "test": "tests", "example": "examples"}
    for kind, folder in folders.items():
        for target in manifest.get(kind, []):
            path = target.get("path", f"{folder}/{target['name']}.rs")
            if not (context / path).exists():
                problems.append(f"Cargo.toml declares {kind} {target['name']} at {path}, not in the build context")
    for package in json.loads(result.stdout)["packages"]:
        for target in package["targets"]:
            if not Path(target["src_path"]).exists():
                problems.append(f"target {target['name']} ({target['src_path']}) is missing")
    return problems


def main() -> None:
    problems = check_dockerfile()
    with tempfile.TemporaryDirectory() as directory:
        context = Path(directory)
        copy_context(context)
        problems += check_manifest(context)
        problems += check_includes(context)
    if problems:
        print("the image's build inputs are incomplete:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("image build inputs: complete (Dockerfile, .dockerignore, manifest, includes)")


if __name__ == "__main__":
    main()
