"""Readers for the files under deploy/: Dockerfiles, YAML, job files, the Gramine template, CLI."""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import jinja2
import yaml  # type: ignore[import-untyped]  # types-PyYAML is not a dev dependency

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


# ---- Dockerfiles ---------------------------------------------------------------------------


@dataclass
class Instruction:
    """One Dockerfile instruction: keyword, raw arguments, and its build stage (0-based)."""

    keyword: str
    args: str
    stage: int

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's list, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = yaml.safe_load(text)
        assert isinstance(value, list), self.args
        return [str(item) for item in value]


@dataclass
class Dockerfile:
    """A parsed Dockerfile: instructions in order, ARG defaults declared before the first FROM."""

    path: Path
    instructions: list[Instruction] = field(default_factory=list)
    global_args: dict[str, str] = field(default_factory=dict)

    def stage(self, index: int) -> list[Instruction]:
        """The instructions of stage ``index`` (negative counts from the end)."""
        count = 1 + max(i.stage for i in self.instructions)
        wanted = index % count
        return [i for i in self.instructions if i.stage == wanted]

    def args_in_stage(self, index: int, build_args: dict[str, str] | None = None) -> dict[str, str]:
        """ARG values visible in a stage (globals, then the stage's own ARGs).

        ``build_args`` are ``docker build --build-arg`` values: as in Docker, they replace the
        default of an ARG the stage declares and are ignored otherwise.
        """
        given = build_args or {}
        values = {k: given.get(k, v) for k, v in self.global_args.items()}
        for ins in self.stage(index):
            if ins.keyword == "ARG":
                name, has_default, default = ins.args.partition("=")
                name = name.strip()
                if has_default:  # a bare `ARG NAME` re-declares a global: it keeps its default
                    values[name] = default.strip().strip('"')
                if name in given:
                    values[name] = given[name]
        return values

    def expand(self, text: str, index: int, build_args: dict[str, str] | None = None) -> str:
        """Substitute ``${NAME}`` / ``$NAME`` with the ARG values of stage ``index``."""
        return _expand(text, self.args_in_stage(index, build_args), self.path.name)

    def froms(self) -> list[tuple[str, str | None]]:
        """Each FROM as (image after ARG expansion, stage alias)."""
        out = []
        for ins in self.instructions:
            if ins.keyword == "FROM":
                parts = ins.args.split()
                # FROM sees only the ARGs declared before the first FROM.
                image = _expand(parts[0], self.global_args, f"{self.path.name} FROM")
                alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
                out.append((image, alias))
        return out


def _expand(text: str, values: dict[str, str], where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"{where}: ${name} has no ARG default"
        return values[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, text)


def parse_dockerfile(path: Path) -> Dockerfile:
    """Parse instructions (continuation lines joined, comments dropped); refuse unknown keywords."""
    known = {
        "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
        "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
    }  # fmt: skip
    result = Dockerfile(path)
    stage = -1
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        assert keyword in known, f"{path}: unknown instruction {keyword!r}"
        if keyword == "FROM":
            stage += 1
        if keyword == "ARG" and stage < 0:
            name, _, default = args.partition("=")
            result.global_args[name.strip()] = default.strip().strip('"')
        result.instructions.append(Instruction(keyword, args.strip(), max(stage, 0)))
    assert not pending, f"{path}: ends inside a continued line"
    assert stage >= 0, f"{path}: no FROM"
    return result


def dockerfiles() -> list[Path]:
    """Every Dockerfile under deploy/."""
    return sorted(p for p in DEPLOY.rglob("Dockerfile"))


# ---- YAML and kustomize ----------------------------------------------------------------------


def load_yaml(path: Path) -> list[Any]:
    """All documents of a YAML file (empty documents dropped)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


@dataclass
class Kustomization:
    """A kustomization folder: its file and the resources it lists (recursively)."""

    folder: Path
    spec: dict[str, Any]
    objects: list[dict[str, Any]]


def load_kustomization(folder: Path) -> Kustomization:
    """Read a kustomization and every object of its resources (bases recursively)."""
    spec = load_yaml(folder / "kustomization.yaml")[0]
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (folder / entry).resolve()
        assert target.exists(), f"{folder}: resource {entry} does not exist"
        if target.is_dir():
            objects.extend(load_kustomization(target).objects)
        else:
            objects.extend(load_yaml(target))
    return Kustomization(folder, spec, objects)


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The objects of a kind (and name)."""
    return [
        o
        for o in objects
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]


def replicas(kust: Kustomization, name: str) -> int:
    """A StatefulSet's replicas after the overlay's ``replicas:`` override, if any."""
    for entry in kust.spec.get("replicas", []):
        if entry["name"] == name:
            return int(entry["count"])
    (sts,) = find(kust.objects, "StatefulSet", name)
    return int(sts["spec"]["replicas"])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name."""
    return {item["name"]: item for item in container.get("env", [])}


def under(path: str | PurePath, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it (POSIX paths)."""
    return PurePosixPath(path).is_relative_to(PurePosixPath(root))


# ---- job files -------------------------------------------------------------------------------


def job_paths(config: object) -> dict[str, Path]:
    """Every path a loaded job file references, by dotted field name.

    Walks the validated config's dataclasses; fields left at their default (such as the Gramine
    attestation root under the simulated provider) and the job file's own path are not references.
    """
    found: dict[str, Path] = {}

    def walk(value: object, name: str, default: object) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f"{name}.{f.name}".lstrip("."), f.default)
        elif isinstance(value, Path) and name != "source" and value != default:
            found[name] = value
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                walk(item, f"{name}[{index}]", None)

    walk(config, "", None)
    return found


# ---- dependency locks ------------------------------------------------------------------------

LOCKS = REPO / "requirements"
_LOCK_ENTRY = re.compile(r"^([a-z0-9][a-z0-9-]*)==([A-Za-z0-9.!+]+)$")
_LOCK_HASH = re.compile(r"^--hash=sha256:([0-9a-f]{64})$")


@dataclass(frozen=True)
class Locked:
    """One entry of a ``--require-hashes`` lock: exact version and sha256 hashes."""

    version: str
    hashes: tuple[str, ...]


def parse_lock(text: str, where: str = "lock") -> dict[str, Locked]:
    """Parse a lock as pip reads it: ``name==version`` then ``--hash=sha256:...`` options.

    Comments and blank lines are skipped, continuation lines joined. Anything else (another
    option, a range, an entry without a hash, a repeated name) fails the assertion.
    """
    entries: dict[str, Locked] = {}
    logical = re.sub(r"\\\n", " ", text)
    for number, line in enumerate(logical.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        match = _LOCK_ENTRY.match(words[0])
        assert match, f"{where}:{number}: expected name==version, seen {words[0]!r}"
        hashes = []
        for word in words[1:]:
            found = _LOCK_HASH.match(word)
            assert found, f"{where}:{number}: expected --hash=sha256:<64 hex>, seen {word!r}"
            hashes.append(found.group(1))
        assert hashes, f"{where}:{number}: {words[0]} has no hash"
        name = match.group(1)
        assert name not in entries, f"{where}:{number}: {name} is listed twice"
        entries[name] = Locked(match.group(2), tuple(hashes))
    return entries


def read_lock(name: str) -> dict[str, Locked]:
    """``requirements/<name>``, parsed."""
    path = LOCKS / name
    return parse_lock(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))


# ---- the Gramine template ------------------------------------------------------------------


class _GramineVars:
    """The variables gramine-manifest provides itself (`gramine.libos`, `gramine.runtimedir()`)."""

    libos = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"

    @staticmethod
    def runtimedir(libc: str = "glibc") -> str:
        return f"/usr/lib/x86_64-linux-gnu/gramine/runtime/{libc}"


def render_manifest_text(template: Path, defines: dict[str, str]) -> str:
    """Render like gramine-manifest (strict: an undefined name fails): the manifest's text."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(template.read_text(encoding="utf-8")).render(
        gramine=_GramineVars(), **defines
    )


def render_manifest(template: Path, defines: dict[str, str]) -> dict[str, Any]:
    """Render like gramine-manifest and parse the TOML."""
    return tomllib.loads(render_manifest_text(template, defines))


def manifest_defines(
    dockerfile: Dockerfile, build_args: dict[str, str] | None = None
) -> dict[str, str]:
    """The ``-Dname=value`` options of the Dockerfile's gramine-manifest call, ARGs expanded.

    ``build_args`` are the ``--build-arg`` values of one ``docker build``.
    """
    (run,) = [
        i for i in dockerfile.stage(-1) if i.keyword == "RUN" and "gramine-manifest" in i.args
    ]
    words = shlex.split(dockerfile.expand(run.args, -1, build_args))
    defines = {}
    for word in words:
        if word.startswith("-D"):
            name, _, value = word[2:].partition("=")
            defines[name] = value
    return defines


# ---- the CLI ---------------------------------------------------------------------------------


@cache
def cli() -> Any:
    """The command object behind ``cvfl`` (the typer app with every concern registered)."""
    import typer

    from cvfl.cli.app import _register, app

    _register()
    return typer.main.get_command(app)


def _subcommands(command: Any) -> dict[str, Any] | None:
    """A group's sub-commands (typer vendors click; groups are the commands with ``commands``)."""
    subs = getattr(command, "commands", None)
    return dict(subs) if subs is not None else None


def check_invocation(argv: list[str]) -> list[str]:
    """Check ``cvfl ARGV``: each sub-command exists and each option belongs to it.

    Returns the path of sub-command names (e.g. ``["data", "synth"]``).
    """
    command = cli()
    path: list[str] = []
    words = list(argv)
    while (subs := _subcommands(command)) is not None and words and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in subs, f"cvfl {' '.join(path)}: no sub-command {name!r}"
        command = subs[name]
        path.append(name)
    assert _subcommands(command) is None or words in ([], ["--help"]), (
        f"cvfl {' '.join(path)} needs a sub-command, got {argv}"
    )
    options = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for word in words:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            assert name in options, f"cvfl {' '.join(path)}: no option {name!r}"
    return path


def cvfl_calls_in_shell(script: str) -> list[list[str]]:
    """The ``cvfl ...`` commands of a ``sh -c`` script (split at ;, &&, ||; ``exec`` dropped)."""
    calls = []
    for segment in re.split(r"\|\||&&|;", script):
        words = shlex.split(segment)
        if words and words[0] == "exec":
            words = words[1:]
        if words and words[0] == "cvfl":
            calls.append(words[1:])
    return calls


def option_value(argv: list[str], name: str) -> str:
    """The value after option ``name`` in an argument list."""
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]
