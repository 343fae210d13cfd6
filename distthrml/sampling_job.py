"""The `distthrml run` sampling job (kept for imports; the code lives in `distthrml.jobs`)."""

from .jobs import ConfigError as ConfigError
from .jobs import RunConfig as RunConfig
from .jobs import load_run_config as load_run_config
from .jobs import parse_run_config as parse_run_config
from .jobs import run_sampling as run_sampling
