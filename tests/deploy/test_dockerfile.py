"""The stages of ``deploy/docker/Dockerfile``, read as text (no container engine needed).

The ``dcap`` target (Intel's DCAP runtime) is built outside CI: ``make images``
and the image tests build ``daemon`` and ``sample`` only, and podman/buildah
build only the stages a target needs. These tests keep that true: no stage
those targets need depends on ``dcap``, the build script never names it, and
the tags it builds are the ones the chart's dcap presets name.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
SCRIPT = REPO / "tools" / "container-images.sh"
PRESETS = REPO / "deploy" / "helm" / "presets"

_FROM = re.compile(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", re.MULTILINE | re.IGNORECASE)


def _stages() -> dict[str, str]:
    """Stage name -> its text (from its FROM line to the next one)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    matches = list(_FROM.finditer(text))
    return {
        match.group(2): text[
            match.start() : (matches[i + 1].start() if i + 1 < len(matches) else len(text))
        ]
        for i, match in enumerate(matches)
    }


def _needs(stage: str, stages: dict[str, str]) -> set[str]:
    """The stages ``stage`` is built from: its base and every ``--from=``/``from=`` source."""
    text = stages[stage]
    base = _FROM.match(text)
    assert base is not None
    sources = {base.group(1), *re.findall(r"\bfrom=([\w.-]+)", text)}
    found = {stage}
    for source in sources & stages.keys():
        found |= _needs(source, stages)
    return found


def test_dcap_is_a_target_of_the_daemon_dockerfile() -> None:
    stages = _stages()
    assert list(stages)[-1] == "dcap"
    dcap = stages["dcap"]
    assert dcap.startswith("FROM ${DCAP_BASE_IMAGE} AS dcap")
    # Intel's runtime packages, both quote providers, from Intel's repository.
    for package in (
        "libsgx-dcap-ql",
        "libsgx-qe3-logic",
        "libsgx-ae-qe3",
        "libsgx-ae-pce",
        "libsgx-ae-id-enclave",
        "libsgx-dcap-default-qpl",
        "az-dcap-client",
    ):
        assert package in dcap, package
    assert "download.01.org/intel-sgx/sgx_repo/ubuntu" in dcap
    # The project comes from the builder's wheel, not from a second build.
    assert _needs("dcap", stages) == {"dcap", "builder", "python"}
    assert "SGX_QUOTE_HELPER_BACKEND=dcap" in dcap
    # Marked as such in the comment that introduces it.
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert text.index("AS sample") < text.rindex("BUILT OUTSIDE CI") < text.index("AS dcap")


def test_targets_built_in_ci_do_not_need_the_dcap_stage() -> None:
    stages = _stages()
    for target in ("daemon", "sample"):
        assert "dcap" not in _needs(target, stages), target


def test_build_script_builds_dcap_only_on_request_with_the_presets_tags() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    build = re.search(r"^    build\)\n(.*?)^        ;;", script, re.MULTILINE | re.DOTALL)
    assert build is not None
    built = re.findall(r"build_one (\S+)", build.group(1))
    assert built == ["daemon", "sample"]
    dcap = re.search(r"^    dcap\)\n(.*?)^        ;;", script, re.MULTILINE | re.DOTALL)
    assert dcap is not None
    assert re.findall(r"build_one (\S+)", dcap.group(1)) == ["dcap"]
    assert '-dcap-$provider"' in dcap.group(1)
    # The presets that run the dcap backend name exactly those tags.
    for preset, provider in (("intel", "intel"), ("aks", "azure")):
        text = (PRESETS / f"{preset}.yaml").read_text(encoding="utf-8")
        assert re.search(rf'^  tagSuffix: "-dcap-{provider}"$', text, re.MULTILINE), preset
        assert f"QUOTE_PROVIDER={provider}" in text
