"""The reproducible build: the locks, the Dockerfile, .dockerignore and compose's use of them.

No Docker engine runs here, so the files are parsed: the locks and pyproject.toml by ``packaging``,
the Dockerfile instruction by instruction, docker-compose.yml against the Compose Specification's
own JSON schema (vendored in tests/fixtures/, see its README). That the lock installs on a clean
venv is tests/integration/test_lock_installs.py.
"""
from __future__ import annotations

import json
import re
import shlex
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from webhooks import defaults

REPO = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = REPO / "requirements" / "runtime.txt"
DEV_LOCK = REPO / "requirements" / "dev.txt"
COMPOSE_SCHEMA = REPO / "tests" / "fixtures" / "compose" / "compose-spec.json"
CROSSFILL_SERVICES = ("web", "worker", "beat", "flower", "console")
#: Floors above releases with known vulnerabilities (pyproject.toml says which).
SECURITY_FLOORS = {"requests": "2.32.4", "gunicorn": "23", "flask": "3.1.1", "werkzeug": "3.1.4",
                   "jinja2": "3.1.6", "urllib3": "2.6"}


# --- the locks ------------------------------------------------------------------------------------

def lock_entries(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """``{name: (pinned version, [hashes])}`` of a ``--generate-hashes`` lock file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--hash") else line.strip()
        if not line or line.startswith("-"):
            assert not line.startswith(("-e", "--editable", "-i", "--index-url", "--extra-index-url")), \
                f"{path.name}: unexpected option line {line!r}"
            continue
        requirement, *options = shlex.split(line)
        name, _, version = requirement.partition("==")
        assert version, f"{path.name}: {requirement!r} is not pinned with =="
        hashes = [option.removeprefix("--hash=") for option in options if option.startswith("--hash=")]
        entries[canonicalize_name(name.split("[")[0])] = (Version(version), hashes)
    return entries


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirements_of(*extras: str) -> list[Requirement]:
    project = pyproject()["project"]
    wanted = [Requirement(spec) for spec in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(spec) for spec in project["optional-dependencies"][extra]]
    return wanted


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_pin_of_the_lock_carries_sha256_hashes(lock: Path) -> None:
    entries = lock_entries(lock)

    assert len(entries) > 20
    for name, (_, hashes) in entries.items():
        assert hashes, f"{lock.name}: {name} has no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", digest) for digest in hashes), name


@pytest.mark.parametrize(("lock", "extras"), [(RUNTIME_LOCK, ("flower",)), (DEV_LOCK, ("dev", "flower"))],
                         ids=["runtime.txt", "dev.txt"])
def test_the_lock_pins_every_dependency_of_pyproject_within_its_range(lock: Path, extras: tuple[str, ...]) -> None:
    entries = lock_entries(lock)

    for requirement in requirements_of(*extras):
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{lock.name} lacks {requirement} (run make lock)"
        version = entries[name][0]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{lock.name} pins {name}=={version}, outside pyproject.toml's {requirement} (run make lock)"


def test_the_dev_lock_holds_the_runtime_locks_versions() -> None:
    runtime, dev = lock_entries(RUNTIME_LOCK), lock_entries(DEV_LOCK)

    assert set(runtime) <= set(dev)
    assert {name: dev[name][0] for name in runtime} == {name: pinned for name, (pinned, _) in runtime.items()}


def test_the_locks_hold_the_build_backend_pyproject_names() -> None:
    build_requires = [Requirement(spec) for spec in pyproject()["build-system"]["requires"]]
    build_in = [Requirement(line) for line in (REPO / "requirements" / "build.in").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    assert {str(r) for r in build_requires} <= {str(r) for r in build_in}
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        entries = lock_entries(lock)
        for requirement in build_in:
            assert requirement.specifier.contains(entries[canonicalize_name(requirement.name)][0])


@pytest.mark.parametrize("name", sorted(SECURITY_FLOORS))
def test_pyproject_floors_sit_above_known_vulnerable_releases(name: str) -> None:
    [requirement] = [r for r in requirements_of() if canonicalize_name(r.name) == name]
    floor = Version(SECURITY_FLOORS[name])

    assert not any(requirement.specifier.contains(Version(v)) for v in below(floor)), \
        f"{requirement} admits a release below {floor}"
    assert lock_entries(RUNTIME_LOCK)[name][0] >= floor


def below(floor: Version) -> list[str]:
    """A few releases just under *floor*."""
    major, minor, micro = (floor.release + (0, 0))[:3]
    candidates = [f"{major - 1}.99.99"]
    if minor:
        candidates.append(f"{major}.{minor - 1}.99")
    if micro:
        candidates.append(f"{major}.{minor}.{micro - 1}")
    return candidates


def test_make_installs_the_lock_with_hashes_and_reinstalls_when_it_changes() -> None:
    makefile = (REPO / "Makefile").read_text()
    stamp_rule = re.search(r"^\$\(STAMP\): (.*)$", makefile, re.M)
    locks = re.search(r"^LOCKS := (.*)$", makefile, re.M)

    assert stamp_rule and locks
    assert "$(LOCKS)" in stamp_rule[1].split() and "pyproject.toml" in stamp_rule[1].split()
    assert set(locks[1].split()) == {"requirements/runtime.txt", "requirements/dev.txt"}
    assert "pip install --quiet --require-hashes -r requirements/dev.txt" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^lock:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


# --- the Dockerfile --------------------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions ``(KEYWORD, arguments)``, one list per stage (FROM starts one)."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        elif not stages:
            assert keyword.upper() == "ARG", f"{keyword} before the first FROM"
            continue
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages


def test_the_dockerfile_is_multi_stage_and_the_final_stage_takes_only_the_builders_venv() -> None:
    *builders, final = dockerfile_stages()

    assert builders, "one stage: the build tools would ship in the image"
    copies = [arguments for keyword, arguments in final if keyword == "COPY"]
    assert copies and all(arguments.startswith("--from=") for arguments in copies), copies
    runs = " ".join(arguments for keyword, arguments in final if keyword == "RUN")
    assert not re.search(r"\b(apt-get|apk|gcc|build-essential|make|pip install)\b", runs), runs


def test_the_image_runs_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]

    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "no USER: the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert [keyword for keyword, _ in final].index("USER") > max(
        index for index, (keyword, _) in enumerate(final) if keyword in {"RUN", "COPY"})


def test_the_builder_installs_only_the_locked_wheels_with_their_hashes() -> None:
    builder = dockerfile_stages()[0]
    installs = [arguments for keyword, arguments in builder if keyword == "RUN" and "pip install" in arguments]

    [dependencies, project] = installs
    assert "--require-hashes" in dependencies and "-r requirements/runtime.txt" in dependencies
    assert "--only-binary :all:" in dependencies
    assert "--no-deps" in project and "--no-build-isolation" in project
    assert ("COPY", "requirements/runtime.txt requirements/runtime.txt") in builder


def test_the_images_healthcheck_probes_the_receiver_its_command_starts() -> None:
    final = dockerfile_stages()[-1]
    [healthcheck] = [arguments for keyword, arguments in final if keyword == "HEALTHCHECK"]
    [cmd] = [json.loads(arguments) for keyword, arguments in final if keyword == "CMD"]

    assert "CMD " in healthcheck and "/healthz" in healthcheck and "'8000'" in healthcheck
    assert cmd[0] == "gunicorn" and cmd[cmd.index("--bind") + 1] == f"0.0.0.0:{defaults.PORT}"


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    packages = {pattern.rstrip("*") for pattern in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}

    def ignored(path: str) -> bool:
        return any(fnmatch(path, pattern) for pattern in patterns)

    for needed in sorted(packages | {"pyproject.toml", "README.md", "requirements"}):
        assert (REPO / needed).exists(), needed
        assert not ignored(needed), f".dockerignore drops {needed}, which the image builds from"
    for dropped in (".venv", ".env", "var", ".git", "tests"):
        assert ignored(dropped), f".dockerignore sends {dropped} to the builder"


# --- docker-compose.yml ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_compose_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    # Draft 7 named explicitly: the schema's $schema URL is not one jsonschema recognises.
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))

    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
              for error in validator.iter_errors(compose)]

    assert not errors, errors


def test_the_schema_rejects_what_compose_rejects() -> None:
    # The vendored schema is the real one, not a permissive stand-in.
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))

    assert not validator.is_valid({"services": {"web": {"build": {"context": ".", "dockerfile_inlined": "x"}}}})
    assert not validator.is_valid({"services": {"web": {"image": "redis", "restart_policy": "always"}}})
    assert validator.is_valid({"services": {"web": {"build": {"context": ".", "dockerfile": "Dockerfile"}}}})


@pytest.mark.parametrize("service", CROSSFILL_SERVICES)
def test_compose_builds_every_crossfill_service_from_the_dockerfile(compose: dict[str, Any], service: str) -> None:
    build = compose["services"][service]["build"]

    assert "dockerfile_inline" not in build
    assert build["context"] == "." and build.get("dockerfile", "Dockerfile") == "Dockerfile"


def test_flower_is_published_on_the_hosts_loopback_only(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]

    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert "--address" not in " ".join(flower["command"])  # inside its container it listens on all interfaces


def test_flower_requires_basic_auth_from_the_environment(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]

    # ${NAME:?...}: compose refuses to start without it, and Flower reads FLOWER_BASIC_AUTH itself
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", flower["environment"]["FLOWER_BASIC_AUTH"])
    assert not any("basic" in str(arg) for arg in flower["command"])  # no password on the command line


@pytest.mark.parametrize(("service", "probe"), [("web", "/readyz"), ("flower", ":5555/healthcheck"),
                                                ("console", ":8001/healthz"), ("worker", "inspect ping")])
def test_compose_gives_each_role_a_health_check_of_its_own(compose: dict[str, Any], service: str,
                                                           probe: str) -> None:
    assert probe in " ".join(compose["services"][service]["healthcheck"]["test"])


def test_beat_opts_out_of_the_receivers_health_check(compose: dict[str, Any]) -> None:
    assert compose["services"]["beat"]["healthcheck"] == {"disable": True}
