"""The exception hierarchy of Lakestream.

Every message names the offending value and says what to do about it, so a command that fails can
print the message as is and exit non-zero.
"""


class LakestreamError(Exception):
    """Base class of every error Lakestream raises on purpose."""


class ConfigError(LakestreamError):
    """The configuration is missing, malformed or refers to something that does not exist."""


class SetupError(LakestreamError):
    """A prerequisite is missing: a tool (Java, Maven), the virtualenv or the resolved JVM jars."""


class ServiceError(LakestreamError):
    """A local service (Kafka broker, MLflow server) failed to start, stop or answer."""


class PortInUseError(ServiceError):
    """A service cannot start because another process already listens on its port."""


class DataError(LakestreamError):
    """Input data breaks a contract (schema, rule, expected table) in a way that stops the job."""
