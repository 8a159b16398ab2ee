"""The project's own errors: an error whose message is written for the user, not a bug.

Every exception the project raises for something the user can fix derives from :class:`CounterofferError`: a config
or suite file that does not validate, an agent spec, a command-line argument, an ``--out`` folder holding another
run's settings, a catalogue or episodes file that cannot be read, a path that does not exist. Its message says what
is wrong and what to do, so the command line prints it as one line and exits with status 2. Any other exception (a
``ValueError`` from a bug, or from inside TRL three hours into a run) is not one of these: it propagates with its
traceback and the command exits with status 1.

Each class also derives from the built-in exception it replaced (``ValueError``, ``FileNotFoundError``,
``RuntimeError``), so ``except ValueError`` callers keep working. The classes are importable from where they are
defined (``counteroffer.agents.base.AgentSpecError``, ``counteroffer.catalog.loaders.CatalogError``, ...); this
module holds the base classes they share.

Internal exceptions are deliberately not project errors: ``AgentFailure`` (an agent's failure, recorded per episode
by the rollout engine), ``GameOver`` (a move played into a finished game is a bug), ``MalformedResponse`` (an
endpoint answer that is asked again), the server's ``APIError`` (an HTTP answer) and private helper classes.
"""

from __future__ import annotations


class CounterofferError(Exception):
    """An error whose message is meant for the user: the command line prints it as one line and exits 2."""


class ConfigError(CounterofferError, ValueError):
    """A configuration or usage error: a config or suite file that cannot be read or does not validate, an agent
    spec, a command-line argument, an ``--out`` folder that holds another run's settings, a name that is not in the
    suite; the message names the file, the field or the argument."""


class InputError(CounterofferError, ValueError):
    """A file the user pointed at holds something unusable (a catalogue record, a training log line)."""


class InputNotFoundError(CounterofferError, FileNotFoundError):
    """A file or folder the user named does not exist, or is not the kind of run folder the command needs."""
