"""Resolve the JVM jars (Delta, Spark's Kafka connector, the Kafka broker) with Maven into local folders.

Sessions and spark-submit only ever use these local jars: nothing is downloaded when a job starts.
Resolution is skipped when the pom and the installed Spark have not changed since the last run.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lakestream.errors import SetupError

logger = logging.getLogger(__name__)

_VERSION_SUFFIX = re.compile(r"-\d[\w.\-]*\.jar$")


@dataclass(frozen=True)
class JarSet:
    """One Maven-resolved folder of jars."""

    name: str
    pom: Path
    target: Path
    # Spark-side jars skip artifacts pyspark already ships, so the classpath holds one copy of each.
    skip_artifacts_of: Path | None = None


def require_tool(name: str, version_args: list[str], hint: str) -> str:
    """Return the first line of `name --version`, or raise SetupError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise SetupError(f"{name} is not on PATH; {hint}")
    result = subprocess.run([path, *version_args], capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise SetupError(f"`{name} {' '.join(version_args)}` failed ({output[:300]}); {hint}")
    return output.splitlines()[0] if output else name


def check_java() -> str:
    """Java 17+ must be installed: Spark 4 and Kafka 4 need it."""
    line = require_tool(
        "java", ["-version"], "install a JDK 17 or newer (e.g. `apt-get install openjdk-17-jdk-headless`)"
    )
    match = re.search(r'version "(\d+)', line)
    if match and int(match.group(1)) < 17:
        raise SetupError(f"Java 17 or newer is required, found: {line}; install openjdk-17 and put it first on PATH")
    return line


def check_maven() -> str:
    """Maven resolves the JVM jars from Maven Central."""
    return require_tool("mvn", ["-v"], "install Maven 3.8+ (e.g. `apt-get install maven`)")


def pyspark_jars_dir() -> Path:
    """The jars folder of the installed pyspark."""
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def artifact_name(jar: str) -> str:
    """`delta-spark_4.2_2.13-4.4.0.jar` -> `delta-spark_4.2_2.13`."""
    return _VERSION_SUFFIX.sub("", jar)


def fingerprint(jar_set: JarSet) -> str:
    """What the resolved folder depends on: the pom text and, for Spark jars, the pyspark jar list."""
    digest = hashlib.sha256(jar_set.pom.read_bytes())
    if jar_set.skip_artifacts_of is not None:
        digest.update("\n".join(sorted(p.name for p in jar_set.skip_artifacts_of.glob("*.jar"))).encode())
    return digest.hexdigest()[:16]


def _stamp_matches(stamp: Path, wanted: str, *, force: bool) -> bool:
    """True when an earlier build left a stamp with the same fingerprint (and no rebuild is forced)."""
    return not force and stamp.exists() and stamp.read_text().strip() == wanted


def resolve_jar_set(jar_set: JarSet, *, force: bool = False) -> list[Path]:
    """Resolve one jar set into its target folder unless it is already up to date; return the jars."""
    stamp = jar_set.target / ".fingerprint"
    wanted = fingerprint(jar_set)
    if _stamp_matches(stamp, wanted, force=force):
        jars = sorted(jar_set.target.glob("*.jar"))
        if jars:
            logger.info("%s jars up to date in %s (%d jars)", jar_set.name, jar_set.target, len(jars))
            return jars
    logger.info("resolving %s jars with Maven from %s", jar_set.name, jar_set.pom)
    with tempfile.TemporaryDirectory(prefix=f"lakestream-{jar_set.name}-") as staging:
        command = [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(jar_set.pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise SetupError(
                f"Maven could not resolve the {jar_set.name} jars from {jar_set.pom}:\n{tail}\n"
                "Check the network access to Maven Central (or a mirror in ~/.m2/settings.xml) and re-run `make setup`."
            )
        staged = sorted(Path(staging).glob("*.jar"))
        if jar_set.skip_artifacts_of is not None:
            shipped = {artifact_name(p.name) for p in jar_set.skip_artifacts_of.glob("*.jar")}
            staged = [p for p in staged if artifact_name(p.name) not in shipped]
        if not staged:
            raise SetupError(f"Maven resolved no jars for {jar_set.name} from {jar_set.pom}; check the pom")
        if jar_set.target.exists():
            shutil.rmtree(jar_set.target)
        jar_set.target.mkdir(parents=True)
        for jar in staged:
            shutil.copy2(jar, jar_set.target / jar.name)
    stamp.write_text(wanted + "\n")
    jars = sorted(jar_set.target.glob("*.jar"))
    logger.info("%s jars resolved into %s (%d jars)", jar_set.name, jar_set.target, len(jars))
    return jars


LOCAL_FS_SOURCES = Path(__file__).parent / "jvm"
LOCAL_FS_CLASS = "io.lakestream.hadoop.NioLocalFileSystem"
LOCAL_FS_CONTEXT_CLASS = "io.lakestream.hadoop.NioLocalFs"


def build_local_fs_jar(target: Path, *, force: bool = False) -> Path | None:
    """Compile the java.nio local file system (lakestream/platform/jvm) against pyspark's Hadoop into `target`.

    Returns the jar, or None when no javac is installed (sessions then keep Hadoop's default local file system,
    which works, only slower). Skipped when the sources and pyspark's Hadoop have not changed.
    """
    javac = shutil.which("javac")
    if javac is None:
        logger.warning("javac not found (a JRE, not a JDK?): local sessions keep Hadoop's chmod-per-file local FS")
        return None
    hadoop = sorted(pyspark_jars_dir().glob("hadoop-client-api-*.jar"))
    if not hadoop:
        raise SetupError(f"no hadoop-client-api jar in {pyspark_jars_dir()}; reinstall pyspark (`make setup`)")
    sources = sorted(LOCAL_FS_SOURCES.rglob("*.java"))
    digest = hashlib.sha256(hadoop[-1].name.encode())
    for source in sources:
        digest.update(source.read_bytes())
    wanted = digest.hexdigest()[:16]
    stamp = target.with_suffix(".fingerprint")
    if target.exists() and _stamp_matches(stamp, wanted, force=force):
        logger.info("local file system jar up to date: %s", target)
        return target
    with tempfile.TemporaryDirectory(prefix="lakestream-localfs-") as staging:
        command = [javac, "--release", "17", "-nowarn", "-cp", str(hadoop[-1]), "-d", staging, *map(str, sources)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SetupError(f"javac could not compile {LOCAL_FS_SOURCES}:\n{result.stderr.strip()[-2000:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: lakestream setup\n\n")
            for compiled in sorted(Path(staging).rglob("*.class")):
                jar.write(compiled, compiled.relative_to(staging).as_posix())
    stamp.write_text(wanted + "\n")
    logger.info("local file system jar built: %s", target)
    return target


def list_jars(folder: Path, *, what: str) -> list[Path]:
    """The jars of a resolved folder, or a SetupError telling the user to run `make setup`."""
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise SetupError(f"no {what} jars in {folder}; run `make setup` (it resolves them with Maven)")
    return jars
